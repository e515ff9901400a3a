"""Evaluation files -> prompts to sample, with the number of samples of each benchmark.

Rows come from verl parquet files (``data_source, prompt, reward_model.ground_truth, extra_info``; the
data_prep converters' files and LUFFY's ``valid*.parquet`` alike). A benchmark is a ``data_source``
value; files are concatenated in the order given.

Samples per prompt (``n``), first rule that applies:
``--n-per-source name=n`` (the exact data_source, or the same benchmark, :func:`benchmark_key`)
> ``--n`` > the protocol: ``paper`` = 32 for AIME24, AIME25 and AMC (benchmark keys
``aime``/``aime24``/``aime25``/``amc``/``amc23``), 1 elsewhere; ``hpt`` = 16 everywhere (HPT's avg@16,
see :mod:`.suites`); ``avg1`` = 1 everywhere.

A benchmark's key is the grader's canonical source (``recipe_srft.reward.resolve_source``), except
AIME 2025: any data_source naming it (``aime25``, ``AIME25``, ``aime_2025``, ...) is the benchmark
``aime25``, reported and averaged on its own, and graded by the reward as math like every AIME.

Duplicates: LUFFY's file repeats each AIME problem 8 times and each AMC problem 4 times, so that one
sample per row gives avg@8 / avg@4. When a benchmark is sampled ``n > 1`` times per prompt, identical
rows (same prompt and ground truth) are merged into one prompt (the report says how many rows were
merged); with ``n == 1`` rows are kept as they are (LUFFY's own validation numbers). ``--limit N`` keeps
the first N prompts of every benchmark (after merging).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

PAPER_N = 32
PAPER_MULTI_SAMPLE = ("aime", "aime24", "aime25", "amc", "amc23")
HPT_N = 16
PROTOCOLS = ("paper", "hpt", "avg1")
#: report order: the paper's table (AIME25 after AIME24, as HPT's), then anything else in order of appearance
PAPER_ORDER = ("aime", "aime24", "aime25", "amc", "amc23", "math", "math500", "minerva", "olympiad_bench",
               "arc_c", "gpqa", "mmlu_pro")
_AIME25 = re.compile(r"aime_?(20)?25(?!\d)")


def to_py(obj: Any) -> Any:
    """numpy / pyarrow values of a parquet row -> plain Python (JSON-serialisable) values."""
    if isinstance(obj, dict):
        return {str(k): to_py(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_py(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # np.ndarray, np.generic
        return to_py(obj.tolist())
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, float) and obj != obj:  # NaN
        return None
    return obj


def stable_hash(obj: Any, length: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:length]


@dataclass
class Row:
    file: str
    row: int
    source: str
    prompt: Any  # chat list or str
    ground_truth: Any
    extra_info: dict


@dataclass
class PromptItem:
    source: str
    prompt_index: int
    prompt: Any
    ground_truth: Any
    extra_info: dict
    n: int
    prompt_hash: str
    rows: list = field(default_factory=list)  # [(file, row), ...] merged into this prompt


@dataclass
class SourcePlan:
    source: str
    canonical: str
    n: int
    n_rule: str
    num_rows: int
    deduplicated: bool
    duplicate_rows: int  # rows repeating an earlier row (same prompt and ground truth)
    duplicate_rows_merged: int  # of those, merged into one prompt (only when n > 1)
    num_prompts_before_limit: int
    items: list


def load_rows(files: list[str]) -> list[Row]:
    import pandas as pd

    rows: list[Row] = []
    for f in files:
        df = pd.read_parquet(f)
        missing = {"data_source", "prompt", "reward_model"} - set(df.columns)
        if missing:
            raise ValueError(f"{f}: not a verl parquet (missing columns {sorted(missing)})")
        has_extra = "extra_info" in df.columns
        for i, rec in enumerate(df.to_dict("records")):
            rm = to_py(rec["reward_model"]) or {}
            if not isinstance(rm, dict) or rm.get("ground_truth") is None:
                raise ValueError(f"{f}: row {i}: reward_model.ground_truth missing")
            prompt = to_py(rec["prompt"])
            if isinstance(prompt, list):
                prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
            extra = to_py(rec["extra_info"]) if has_extra else {}
            rows.append(Row(file=str(f), row=i, source=str(rec["data_source"]), prompt=prompt,
                            ground_truth=rm["ground_truth"], extra_info=extra if isinstance(extra, dict) else {}))
    return rows


def parse_n_per_source(spec: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    if not spec:
        return out
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"--n-per-source: expected name=n, got {part!r}")
        name, val = part.split("=", 1)
        n = int(val)
        if n < 1:
            raise ValueError(f"--n-per-source: n must be >= 1 ({part!r})")
        out[name.strip()] = n
    return out


def benchmark_key(source: str) -> str:
    """The benchmark a data_source names: the grader's canonical source, or ``aime25`` for AIME 2025.

    ``ValueError`` when the reward cannot grade the source."""
    from recipe_srft.reward import resolve_source

    canonical = resolve_source(source)  # raises for a source the grader does not know
    if canonical in ("aime", "aime24") and _AIME25.search(re.sub(r"[\s\-]+", "_", str(source).strip().lower())):
        return "aime25"
    return canonical


_canonical = benchmark_key


def same_benchmark(a: str, b: str) -> bool:
    """Two benchmark keys that name the same benchmark (``aime24``/``aime``, ``amc23``/``amc``, ``math500``/``math``)."""
    from .metrics import MATH_ALIASES

    return MATH_ALIASES.get(a, a) == MATH_ALIASES.get(b, b)


def choose_n(source: str, canonical: str, protocol: str, n: int | None,
             n_per_source: dict[str, int]) -> tuple[int, str]:
    if source in n_per_source:
        return n_per_source[source], f"--n-per-source {source}"
    for key, val in n_per_source.items():
        try:
            if same_benchmark(_canonical(key), canonical):
                return val, f"--n-per-source {key}"
        except ValueError:
            continue
    if n is not None:
        return n, "--n"
    if protocol == "paper":
        return (PAPER_N, "paper protocol") if canonical in PAPER_MULTI_SAMPLE else (1, "paper protocol")
    if protocol == "hpt":
        return HPT_N, "hpt protocol"
    if protocol == "avg1":
        return 1, "avg1 protocol"
    raise ValueError(f"unknown protocol {protocol!r} ({', '.join(PROTOCOLS)})")


def build_plan(rows: list[Row], protocol: str = "paper", n: int | None = None,
               n_per_source: dict[str, int] | None = None, limit: int | None = None) -> list[SourcePlan]:
    n_per_source = n_per_source or {}
    if n is not None and n < 1:
        raise ValueError("--n must be >= 1")
    by_source: dict[str, list[Row]] = {}
    for r in rows:
        by_source.setdefault(r.source, []).append(r)
    plans = []
    for source, srows in by_source.items():
        canonical = _canonical(source)  # raises ValueError for a source the grader does not know
        n_src, rule = choose_n(source, canonical, protocol, n, n_per_source)
        dedup = n_src > 1
        items: list[PromptItem] = []
        index: dict[str, PromptItem] = {}
        merged = dups = 0
        for r in srows:
            key = stable_hash({"prompt": r.prompt, "gt": r.ground_truth}, 32)
            if key in index:
                dups += 1
                if dedup:
                    index[key].rows.append((r.file, r.row))
                    merged += 1
                    continue
            item = PromptItem(source=source, prompt_index=len(items), prompt=r.prompt, ground_truth=r.ground_truth,
                              extra_info=r.extra_info, n=n_src, prompt_hash=key[:16], rows=[(r.file, r.row)])
            items.append(item)
            index.setdefault(key, item)
        before = len(items)
        if limit is not None:
            items = items[:limit]
        plans.append(SourcePlan(source=source, canonical=canonical, n=n_src, n_rule=rule, num_rows=len(srows),
                                deduplicated=dedup, duplicate_rows=dups, duplicate_rows_merged=merged,
                                num_prompts_before_limit=before,
                                items=items))
    order = {name: i for i, name in enumerate(PAPER_ORDER)}
    plans.sort(key=lambda p: order.get(p.canonical, len(order)))  # stable: others keep their order
    unused = [k for k in n_per_source if k not in by_source
              and not any(same_benchmark(_safe_canonical(k) or "", p.canonical) for p in plans)]
    if unused:
        print(f"[eval] warning: --n-per-source names match no benchmark in the data: {', '.join(unused)}")
    return plans


def _safe_canonical(name: str) -> str | None:
    try:
        return _canonical(name)
    except ValueError:
        return None
