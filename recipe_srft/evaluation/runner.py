"""Sampling, grading, resuming and reporting (the engine behind ``python -m recipe_srft.evaluation``).

Output directory ``OUT``:

* ``samples.jsonl``: one JSON object per graded sample, appended (and fsynced) after every generator
  call: ``source, prompt_index, sample_index, config_hash, prompt_hash, grade_hash, row ([file, row]
  of the first parquet row of the prompt), prompt, ground_truth, response, pred, score, acc,
  backend, dtype, time``.
* ``results.json`` / ``results.md``: the report, always recomputed from ``samples.jsonl``; it records the
  suite (``suite``: protocol, sampling, averages and their sources, :mod:`.suites`), the back end and the
  dtype that ran (``config.dtype_used_this_run``, ``config.dtypes_in_samples``; ``--dtype auto`` resolved
  by :func:`.generators.resolve_dtype`).
* ``merged_model/``: the HF model merged from a verl FSDP checkpoint (only for such a ``--model``).

Resuming: a sample is identified by ``(source, prompt_index, sample_index, config_hash)`` where
``config_hash`` hashes the generation config (model path, temperature, top_p, max_new_tokens, seed;
not ``n``, so raising ``n`` keeps the first samples, and not the back end). A stored sample counts only
when its ``prompt_hash`` (prompt + ground truth) equals the current prompt at that index, so changing
the data files never mixes prompts up. Rerunning a crashed command generates only the missing samples;
a half-written last line is dropped. ``grade_hash`` hashes the grading setup (the source of
``recipe_srft/reward.py`` and of its grading package ``recipe_srft/grading/``, ``--think-format``):
stored samples graded differently are regraded (no generation) and the file is rewritten;
``--regrade`` forces it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from . import metrics
from .data import PROTOCOLS, PromptItem, SourcePlan, build_plan, load_rows, stable_hash
from .generators import Generator, SamplingConfig, sub_seed
from .suites import Suite, get_suite

SAMPLES_FILE = "samples.jsonl"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
DEFAULT_BATCH = {"hf": 32, "vllm": 4096}


_FROM_SUITE = "suite"


@dataclass
class EvalConfig:
    """``protocol``, ``temperature``, ``top_p``, ``max_new_tokens`` and ``think_format`` left unset take the
    suite's values (:mod:`.suites`; ``think_format`` None = per row, as ``--think-format auto``)."""

    model: str
    data: list[str]
    out: str
    protocol: str | None = None
    n: int | None = None
    n_per_source: dict[str, int] = field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    limit: int | None = None
    batch_size: int | None = None
    backend: str = "auto"
    seed: int = 0
    think_format: bool | None | str = _FROM_SUITE
    regrade: bool = False
    report_only: bool = False
    dtype: str = "auto"
    device: str | None = None
    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    grade_workers: int = 8
    progress: bool = True
    suite: str = "paper"
    kv_cache_memory_bytes: int | None = None  # vLLM; on the CPU default generators.CPU_KV_CACHE_BYTES

    def __post_init__(self):
        suite = get_suite(self.suite)
        for name in ("protocol", "temperature", "top_p", "max_new_tokens"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(suite, name))
        if isinstance(self.think_format, str):
            if self.think_format != _FROM_SUITE:
                raise ValueError(f"think_format: True, False, None or {_FROM_SUITE!r}, got {self.think_format!r}")
            self.think_format = suite.think_format

    def suite_info(self) -> Suite:
        return get_suite(self.suite)

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                              seed=self.seed)


def model_id(model: str) -> str:
    p = Path(model).expanduser()
    return str(p.resolve()) if p.exists() else model


def generation_config_hash(cfg: EvalConfig) -> str:
    return stable_hash({"model": model_id(cfg.model), "temperature": float(cfg.temperature),
                        "top_p": float(cfg.top_p), "max_new_tokens": int(cfg.max_new_tokens),
                        "seed": int(cfg.seed)}, 12)


def grading_hash(cfg: EvalConfig) -> str:
    """Changes whenever the grading can: the source of the reward and its grading package, the switches."""
    import recipe_srft.grading.extract as extract
    import recipe_srft.reward as reward

    digest = hashlib.sha256()
    for path in (Path(reward.__file__), *sorted(Path(extract.__file__).parent.glob("*.py"))):
        try:
            digest.update(path.read_bytes())
        except OSError:
            pass
    extraction = os.environ.get("SRFT_REWARD_ANSWER_EXTRACTION") or extract.DEFAULT_ANSWER_EXTRACTION
    return stable_hash({"reward_sha": digest.hexdigest(), "think_format": cfg.think_format,
                        "answer_extraction": extraction}, 12)


# --------------------------------------------------------------------------------------------------
# samples.jsonl
# --------------------------------------------------------------------------------------------------


def read_samples(path: Path, log: Callable = print) -> list[dict]:
    """All records of ``samples.jsonl``; a partial last line (a crash mid-write) is cut off the file."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        log(f"[eval] {path}: dropping a partial last line ({len(data) - cut} bytes, interrupted write)")
        with open(path, "r+b") as f:
            f.truncate(cut)
        data = data[:cut]
    out = []
    for ln, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            log(f"[eval] {path}:{ln}: unreadable line skipped")
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _append(path: Path, records: list[dict]) -> None:
    if not records:
        return
    with open(path, "a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _rewrite(path: Path, records: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _current(records: list[dict], plans: list[SourcePlan], config_hash: str) -> tuple[dict, int]:
    """``{(source, prompt_index, sample_index): record}`` of the records that belong to the current plan."""
    items = {(it.source, it.prompt_index): it for p in plans for it in p.items}
    done: dict[tuple, dict] = {}
    ignored = 0
    for rec in records:
        try:
            key = (rec["source"], int(rec["prompt_index"]), int(rec["sample_index"]))
        except (KeyError, TypeError, ValueError):
            ignored += 1
            continue
        it = items.get(key[:2])
        if (rec.get("config_hash") != config_hash or it is None or rec.get("prompt_hash") != it.prompt_hash
                or not 0 <= key[2] < it.n or key in done):
            ignored += 1
            continue
        done[key] = rec
    return done, ignored


# --------------------------------------------------------------------------------------------------
# grading
# --------------------------------------------------------------------------------------------------


class Grader:
    def __init__(self, cfg: EvalConfig):
        from recipe_srft.reward import compute_score

        self._score = compute_score
        self.kwargs = {} if cfg.think_format is None else {"think_format": bool(cfg.think_format)}
        self.hash = grading_hash(cfg)
        self.pool = ThreadPoolExecutor(max_workers=max(1, cfg.grade_workers))

    def grade_one(self, item: PromptItem, response: str) -> dict:
        r = self._score(data_source=item.source, solution_str=response, ground_truth=item.ground_truth,
                        extra_info=item.extra_info, **self.kwargs)
        return {"pred": r.get("pred", ""), "score": float(r["score"]), "acc": float(r.get("acc", r["score"]))}

    def grade(self, pairs: list[tuple[PromptItem, str]]) -> list[dict]:
        return list(self.pool.map(lambda p: self.grade_one(*p), pairs))

    def close(self):
        self.pool.shutdown(wait=True)


# --------------------------------------------------------------------------------------------------
# work planning
# --------------------------------------------------------------------------------------------------


def pending_calls(plans: list[SourcePlan], done: dict, batch_size: int) -> list[list[tuple[PromptItem, list[int]]]]:
    """Generator calls for the missing samples: each a list of ``(item, sample indices)`` with one count ``k``
    per call and at most ``batch_size`` completions (``k * prompts``) per call."""
    by_k: dict[int, list[tuple[PromptItem, list[int]]]] = {}
    for p in plans:
        for it in p.items:
            missing = [s for s in range(it.n) if (it.source, it.prompt_index, s) not in done]
            for start in range(0, len(missing), batch_size):
                chunk = missing[start:start + batch_size]
                by_k.setdefault(len(chunk), []).append((it, chunk))
    calls = []
    for k, chunks in by_k.items():
        per_call = max(1, batch_size // k)
        for start in range(0, len(chunks), per_call):
            calls.append(chunks[start:start + per_call])
    return calls


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def compute_report(plans: list[SourcePlan], done: dict, suite: Suite | None = None) -> dict:
    benchmarks = {}
    for p in plans:
        scores = []
        for it in p.items:
            s = [done[(it.source, it.prompt_index, j)]["acc"] for j in range(it.n)
                 if (it.source, it.prompt_index, j) in done]
            scores.append(s)
        summ = metrics.summarize(scores, p.n) if p.items else {"n": p.n, "num_prompts": 0, "num_samples": 0,
                                                                "complete": False, "avg": None, "ci95": None,
                                                                "pass_at_k": {}}
        summ.update(canonical_source=p.canonical, n_rule=p.n_rule, num_rows=p.num_rows,
                    deduplicated=p.deduplicated, duplicate_rows=p.duplicate_rows,
                    duplicate_rows_merged=p.duplicate_rows_merged,
                    num_prompts_before_limit=p.num_prompts_before_limit)
        benchmarks[p.source] = summ
    suite = suite or get_suite("paper")
    macro = metrics.macro_averages(((name, b["canonical_source"], b["avg"]) for name, b in benchmarks.items()),
                                   math_group=suite.math, ood_group=suite.ood)
    return {"benchmarks": benchmarks, "macro": macro}


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def render_markdown(results: dict) -> str:
    benches = results["benchmarks"]
    ks = sorted({int(k) for b in benches.values() for k in b.get("pass_at_k", {})})
    head = ["benchmark", "prompts", "n", "avg@n", "95% CI"] + [f"pass@{k}" for k in ks]
    cfg = results["config"]
    ran = ", ".join(f"`{x}`" for x in cfg.get("backends_in_samples") or []) or "none"
    dtypes = ", ".join(f"`{x}`" for x in cfg.get("dtypes_in_samples") or []) or "unknown"
    lines = [f"# Evaluation of `{results['model']}`", "",
             f"{results['timestamp']} - suite `{cfg.get('suite', 'paper')}`, protocol `{cfg['protocol']}`, temperature "
             f"{cfg['temperature']}, top_p {cfg['top_p']}, max new tokens "
             f"{cfg['max_new_tokens']}, seed {cfg['seed']}, config hash "
             f"`{cfg['config_hash']}`; back end {ran}, dtype {dtypes}. Accuracy in %.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, b in benches.items():
        ci = b.get("ci95")
        ci_s = "" if not ci or ci.get("low") is None else f"[{_pct(ci['low'])}, {_pct(ci['high'])}]"
        row = [name + ("" if b.get("complete") else " (incomplete)"), str(b["num_prompts"]), str(b["n"]),
               _pct(b.get("avg")), ci_s] + [_pct(b.get("pass_at_k", {}).get(str(k))) for k in ks]
        lines.append("| " + " | ".join(row) + " |")
    for key, label in (("math_avg", "math avg"), ("ood_avg", "OOD avg")):
        m = results["macro"][key]
        if m["value"] is None:
            continue
        missing = f"; missing {', '.join(m['missing'])}" if m["missing"] else ""
        extra = f"; not averaged: {', '.join(m['extra'])}" if m.get("extra") else ""
        lab = f"**{label}** ({', '.join(m['members'])}{missing}{extra})"
        lines.append("| " + " | ".join([lab, "", "", _pct(m["value"]), ""] + [""] * len(ks)) + " |")
    lines += ["", "Notes:", ""]
    for name, b in benches.items():
        if b["duplicate_rows_merged"]:
            lines.append(f"- {name}: {b['num_rows']} rows hold {b['num_prompts_before_limit']} distinct prompts; "
                         f"identical rows merged ({b['duplicate_rows_merged']} duplicates), each prompt sampled "
                         f"n={b['n']} times ({b['n_rule']}).")
        elif b["duplicate_rows"]:
            lines.append(f"- {name}: n={b['n']} ({b['n_rule']}); {b['duplicate_rows']} duplicate rows kept as they "
                         "are (rows are merged only when n > 1).")
    limited = [name for name, b in benches.items() if b["num_prompts"] < b["num_prompts_before_limit"]]
    if limited:
        lines.append(f"- --limit {results['config']['limit']}: only the first prompts of "
                     f"{', '.join(limited)} were evaluated.")
    lines += [
        "- avg@n: mean score over all prompts x n samples; pass@k: unbiased estimator 1 - C(n-c,k)/C(n,k) "
        "per prompt, averaged over prompts (pass@1 = avg@n).",
        "- 95% CI of avg@n over prompts: n > 1: mean of per-prompt accuracies +- 1.96 * std (ddof=1) / "
        "sqrt(prompts), clipped to [0, 100]; n = 1: Wilson score interval.",
        f"- math avg / OOD avg: unweighted means of the benchmarks' avg@n over the suite's benchmarks "
        f"(suite `{cfg.get('suite', 'paper')}`: {', '.join(results.get('suite', {}).get('math', []))} / "
        f"{', '.join(results.get('suite', {}).get('ood', []))}).",
    ]
    suite = results.get("suite") or {}
    if suite.get("description"):
        lines.append(f"- suite `{suite['name']}`: {suite['description']}. Sources: {'; '.join(suite['references'])}.")
    if results.get("ignored_records"):
        lines.append(f"- samples.jsonl holds {results['ignored_records']} records of other configurations or prompts "
                     "(not used here).")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# main entry
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _exclusive(out: Path):
    """One evaluation per output directory at a time (two would interleave samples.jsonl)."""
    import fcntl

    with open(out / ".eval.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuntimeError(f"another evaluation is running on {out} (lock {out / '.eval.lock'})") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_eval(cfg: EvalConfig, generator: Generator | None = None, log: Callable = print) -> dict:
    """Sample what is missing, grade, and write the report; returns the content of ``results.json``."""
    if cfg.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {cfg.protocol!r} ({', '.join(PROTOCOLS)})")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        return _run_eval(cfg, out, generator, log)


def _run_eval(cfg: EvalConfig, out: Path, generator: Generator | None, log: Callable) -> dict:
    samples_path = out / SAMPLES_FILE

    plans = build_plan(load_rows(cfg.data), protocol=cfg.protocol, n=cfg.n, n_per_source=cfg.n_per_source,
                       limit=cfg.limit)
    for p in plans:
        extra = f", {p.duplicate_rows_merged} duplicate rows merged" if p.duplicate_rows_merged else ""
        log(f"[eval] {p.source}: {len(p.items)} prompts x n={p.n} ({p.n_rule}{extra})")
    config_hash = generation_config_hash(cfg)
    model_info: dict[str, Any] = {}
    if generator is None and not cfg.report_only:
        from .checkpoint import detect_layout

        model_info = detect_layout(cfg.model)  # fail before any work on a path that is no model
    grader = Grader(cfg)
    backend_used = dtype_used = None
    try:
        records = read_samples(samples_path, log)
        done, _ = _current(records, plans, config_hash)
        stale = [r for r in done.values() if cfg.regrade or r.get("grade_hash") != grader.hash]
        if stale:
            items = {(it.source, it.prompt_index): it for p in plans for it in p.items}
            log(f"[eval] regrading {len(stale)} stored samples (grader or --think-format changed, or --regrade)")
            graded = grader.grade([(items[(r["source"], int(r["prompt_index"]))], r["response"]) for r in stale])
            for r, g in zip(stale, graded):
                r.update(g, grade_hash=grader.hash)
            _rewrite(samples_path, records)

        batch_size = cfg.batch_size
        calls = pending_calls(plans, done, batch_size or 10**9)  # sized below once the backend is known
        total = sum(len(ch) for call in calls for _, ch in call)
        log(f"[eval] {len(done)} samples already in {samples_path}, {total} to generate")
        if total and cfg.report_only:
            log(f"[eval] --report-only: {total} samples missing, the report is incomplete")
        elif total:
            if generator is None:
                from .checkpoint import prepare_model
                from .generators import make_generator

                model_info = prepare_model(cfg.model, out, log=log, info=model_info)
                generator = make_generator(cfg.backend, model_info["eval_path"], seed=cfg.seed, dtype=cfg.dtype,
                                           device=cfg.device, tensor_parallel_size=cfg.tensor_parallel_size,
                                           max_model_len=cfg.max_model_len,
                                           gpu_memory_utilization=cfg.gpu_memory_utilization,
                                           kv_cache_memory_bytes=cfg.kv_cache_memory_bytes)
                log(f"[eval] backend {generator.name}, dtype {getattr(generator, 'dtype', '?')} "
                    f"({getattr(generator, 'dtype_reason', '')}): {model_info['eval_path']}")
            backend_used = generator.name
            dtype_used = getattr(generator, "dtype", None)
            batch_size = batch_size or DEFAULT_BATCH.get(generator.name, 32)
            calls = pending_calls(plans, done, batch_size)
            _generate(cfg, generator, grader, calls, total, samples_path, config_hash)
    finally:
        grader.close()

    if not model_info:
        try:
            from .checkpoint import detect_layout

            model_info = detect_layout(cfg.model)
        except Exception as e:  # report-only on another machine, ...
            model_info = {"layout": "unknown", "note": str(e)}

    # the report is always recomputed from the file
    records = read_samples(samples_path, log)
    done, ignored = _current(records, plans, config_hash)
    suite = cfg.suite_info()
    report = compute_report(plans, done, suite)
    backends = sorted({r.get("backend") for r in done.values() if r.get("backend")})
    dtypes = sorted({r.get("dtype") for r in done.values() if r.get("dtype")})
    cfg_dict = dataclasses.asdict(cfg)
    cfg_dict.update(config_hash=config_hash, grade_hash=grader.hash, backend_used_this_run=backend_used,
                    backends_in_samples=backends, dtype_used_this_run=dtype_used, dtypes_in_samples=dtypes,
                    data=[str(Path(d).resolve()) for d in cfg.data])
    results = {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": cfg.model,
        "model_info": model_info,
        "suite": suite.to_dict(),
        "config": cfg_dict,
        "samples_file": str(samples_path.resolve()),
        "num_samples": len(done),
        "ignored_records": ignored,
        "complete": all(b["complete"] for b in report["benchmarks"].values()),
        "ci_method": "n>1: mean of per-prompt accuracies +- 1.96*std(ddof=1)/sqrt(prompts), clipped to [0,1]; "
                     "n=1: Wilson score interval (z=1.96)",
        "pass_at_k_estimator": "unbiased, 1 - C(n-c,k)/C(n,k) per prompt (product form), averaged over prompts",
        **report,
    }
    tmp = out / (RESULTS_JSON + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    os.replace(tmp, out / RESULTS_JSON)
    md = render_markdown(results)
    (out / RESULTS_MD).write_text(md)
    log(md)
    return results


def _generate(cfg: EvalConfig, generator: Generator, grader: Grader, calls, total: int, samples_path: Path,
              config_hash: str) -> None:
    from tqdm import tqdm

    base = cfg.sampling()
    written = 0
    bar = tqdm(total=total, unit="sample", desc="eval", disable=not cfg.progress, file=sys.stderr)
    try:
        for call in calls:
            k = len(call[0][1])
            first_it, first_idx = call[0][0], call[0][1][0]
            seed = sub_seed(cfg.seed, first_it.source, first_it.prompt_index, first_idx)
            sampling = dataclasses.replace(base, seed=seed)
            outs = generator.generate([it.prompt for it, _ in call], k, sampling)
            if len(outs) != len(call) or any(len(o) != k for o in outs):
                raise RuntimeError(f"generator {generator.name} returned {[len(o) for o in outs]} completions "
                                   f"for {len(call)} prompts x {k}")
            pairs = [(it, text) for (it, _), texts in zip(call, outs) for text in texts]
            grades = grader.grade(pairs)
            now = time.time()
            recs = []
            gi = 0
            for (it, idxs), texts in zip(call, outs):
                for s, text in zip(idxs, texts):
                    g = grades[gi]
                    gi += 1
                    recs.append({"source": it.source, "prompt_index": it.prompt_index, "sample_index": s,
                                 "config_hash": config_hash, "prompt_hash": it.prompt_hash,
                                 "grade_hash": grader.hash, "row": list(it.rows[0]), "prompt": it.prompt,
                                 "ground_truth": it.ground_truth, "response": text, **g,
                                 "backend": generator.name, "dtype": getattr(generator, "dtype", None),
                                 "time": round(now, 3)})
            _append(samples_path, recs)
            written += len(recs)
            bar.update(len(recs))
    except BaseException:
        bar.close()
        print(f"[eval] interrupted after {written} new samples (all saved to {samples_path}); "
              "rerun the same command to resume", file=sys.stderr)
        raise
    bar.close()
