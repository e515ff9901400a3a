"""Training rows SRFT would learn from wrongly, found before training: one home for the rules that
``python -m data_prep.validate`` and the trainer's start-up check share.

The rules (each used by both):

* **ground truth** (:func:`ground_truth_problem`): ``reward_model.ground_truth`` must be a non-empty string. A
  missing one makes every trajectory of the group score 0, the demonstration included, which then enters its
  group as a *negative* and is pushed down by the off-policy term.
* **usable demonstration** (:func:`row_demos`): what the agent loop reads, ``recipe_srft.demos.extract_demos``
  over ``srft.demo_fields`` (first non-empty field wins, empty strings do not count). A row without one silently
  trains as a plain GRPO group.
* **demonstration length** (:func:`demo_token_lengths`): the response tokens the agent loop builds
  (``recipe_srft.demos.tokenize_demo``: ``<think>\\n`` de-duplicated against the generation prompt, + EOS),
  against ``data.max_response_length``; a longer one is cut and loses its final answer.
* **the reward's verdict** (:func:`grade_demos`): the demonstration graded against its ground truth by the training
  reward; a score below 1 (or a reward that raises) makes the demonstration a negative example (or stops training).

The start-up check (:func:`preflight_data_check` in ``main_srft`` before Ray starts, when the files and the tokenizer
are on the machine; :func:`check_training_data` in the SRFT trainer before verl builds its datasets, unless the first
found the same files clean; ``DRY_RUN`` when the files are here) scans the training parquet file(s) with these
rules: every row for the first three, a seeded sample of ``srft.data_check_reward_rows`` demonstrations for the
reward (all with ``null``). ``srft.data_check`` then decides: ``error`` (default) stops with the counts, the first row indices and the
``python -m data_prep.validate --fix drop`` command; ``skip`` trains on a copy without those rows (written once per
file and content, so a resumed run reads the same rows) and logs the counts; ``keep`` logs the counts and trains on
the rows as they are. :func:`batch_data_metrics` counts, per step, what reached the batch.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from .demos import eos_tokens, extract_demos, strip_think_prefix

#: values of ``srft.data_check``
DATA_CHECK_MODES = ("error", "skip", "keep")
#: Show a progress bar (when tqdm is installed) while tokenising or grading at least this many demonstrations.
PROGRESS_MIN_ROWS = 2000
TOKENIZE_CHUNK = 256
#: Row indices named per finding in a message.
LIST_ROWS = 10

# finding kinds of the start-up scan
NO_GROUND_TRUTH = "without a ground truth (reward_model.ground_truth)"
NO_DEMO = "without a usable demonstration"
DEMO_TOO_LONG = "with a demonstration over data.max_response_length (cut, it loses its final answer)"
DEMO_REJECTED = "with a demonstration the reward rejects (a negative in its own group)"
KINDS = (NO_GROUND_TRUTH, NO_DEMO, DEMO_TOO_LONG, DEMO_REJECTED)


# ------------------------------------------------------------------------------------------------ the rules
def ground_truth_problem(row: dict) -> Optional[tuple[str, str, str]]:
    """(field, reason, message) when the row has no usable ground truth, else None."""
    reward_model = row.get("reward_model")
    if reward_model is None:
        return "reward_model", "missing field", "missing"
    if not isinstance(reward_model, dict):
        return "reward_model", "wrong type", "expected {ground_truth, style}"
    truth = reward_model.get("ground_truth")
    if truth is None:
        return "reward_model.ground_truth", "missing ground truth", "missing"
    if not isinstance(truth, str):
        return "reward_model.ground_truth", "wrong type", "expected a string"
    if not truth.strip():
        return "reward_model.ground_truth", "empty ground truth", "empty"
    return None


def row_demos(row: dict, fields: Sequence[str], demos_per_prompt: int) -> list[str]:
    """The demonstrations of ``row`` that enter its group (the agent loop's reading, at most m)."""
    return extract_demos(row, tuple(fields))[:demos_per_prompt] if demos_per_prompt > 0 else []


def token_counts(tokenizer, texts: list[str], progress: str | None = None) -> list[int]:
    """Token counts of ``texts`` without special tokens (batched; a progress bar on many)."""
    counts: list[int] = []
    starts = range(0, len(texts), TOKENIZE_CHUNK)
    for start in _progress(starts, len(texts), progress, scale=TOKENIZE_CHUNK) if progress else starts:
        encoded = tokenizer(texts[start : start + TOKENIZE_CHUNK], add_special_tokens=False)["input_ids"]
        counts.extend(len(ids) for ids in encoded)
    return counts


def render_prompt(tokenizer, prompt) -> str:
    """The prompt as the rollout sees it: the chat template with the generation prompt."""
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)


def demo_token_lengths(tokenizer, texts: list[str], prompt_texts: list[Optional[str]],
                       progress: str | None = None) -> tuple[list[int], list[bool]]:
    """Response tokens of each demonstration as the agent loop builds them (``demos.tokenize_demo``: a leading
    ``<think>\\n`` dropped when its generation prompt ends with it, + EOS); and whether it was dropped."""
    pairs = [strip_think_prefix(text, prompt) for text, prompt in zip(texts, prompt_texts)]
    counts = token_counts(tokenizer, [text for text, _ in pairs], progress)
    eos = eos_tokens(tokenizer)
    return [count + eos for count in counts], [stripped for _, stripped in pairs]


def _verdict(result) -> tuple[float, str]:
    if isinstance(result, dict):
        return float(result.get("score", 0.0)), str(result.get("pred") or "")
    return float(result), ""


def demo_rejected(score: float) -> bool:
    """The reward's verdict on a demonstration: anything below full marks makes it a negative example."""
    return score < 1.0


def grade_demos(items: list[tuple[Any, str, Any, Any]], score_fn: Callable, workers: int = 8,
                progress: str | None = "reward check") -> list[tuple[Optional[float], str, Optional[str]]]:
    """Grades ``(data_source, demonstration, ground_truth, extra_info)`` items with ``score_fn`` (verl's custom
    reward signature); returns ``(score, what it read, None)`` or ``(None, "", why it could not grade)`` per item.

    One thread per grading worker keeps the reward's process pool busy (~50k demonstrations take minutes)."""

    def one(item):
        source, demo, truth, extra_info = item
        try:
            score, pred = _verdict(score_fn(source, demo, truth, extra_info=extra_info))
            return score, pred, None
        except Exception as exc:  # noqa: BLE001 - unknown data_source, unusable ground truth, a reward bug
            return None, "", _clip(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", 160)

    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        verdicts = pool.map(one, items)
        return list(_progress(verdicts, len(items), progress) if progress else verdicts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _progress(iterable: Iterable, total: int, desc: Optional[str], scale: int = 1):
    """``iterable`` wrapped in a tqdm bar on stderr when the set is large and tqdm is installed."""
    if desc is None or total < PROGRESS_MIN_ROWS:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=-(-total // scale), desc=desc, unit="batch" if scale > 1 else "demo", file=sys.stderr)


# ------------------------------------------------------------------------------------------------ the scan
@dataclass
class DataReport:
    """Findings of one training file: row indices (0-based positions in the file) per kind."""

    path: str
    n_rows: int
    rows: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in KINDS})
    messages: dict[tuple[str, int], str] = field(default_factory=dict)
    graded: int = 0  #: demonstrations (rows) the reward graded
    gradable: int = 0  #: rows with a ground truth and a demonstration (what could have been graded)
    lengths_checked: bool = False
    seconds: float = 0.0

    def add(self, kind: str, row: int, message: Optional[str] = None) -> None:
        self.rows[kind].append(row)
        if message:
            self.messages.setdefault((kind, row), message)

    def bad_rows(self) -> list[int]:
        return sorted({i for ids in self.rows.values() for i in ids})


def scan_rows(rows: list[dict], *, path: str = "", demo_fields: Sequence[str] = ("target", "demo"),
              demos_per_prompt: int = 1, tokenizer=None, max_response_length: Optional[int] = None,
              score_fn: Optional[Callable] = None, reward_rows: Optional[int] = None, seed: int = 0,
              workers: int = 8) -> DataReport:
    """Runs the rules on ``rows`` (dicts as read from a training parquet file).

    Lengths are checked when ``tokenizer`` and ``max_response_length`` are given; only demonstrations whose UTF-8
    size could exceed the limit are tokenised (a token holds at least one byte). The reward grades a seeded sample
    of ``reward_rows`` rows with a ground truth and a demonstration (None: all; 0: none) when ``score_fn`` is given.
    """
    start = time.monotonic()
    report = DataReport(path=path, n_rows=len(rows))
    usable: list[int] = []
    demos: dict[int, list[str]] = {}
    for i, row in enumerate(rows):
        problem = ground_truth_problem(row)
        if problem is not None:
            report.add(NO_GROUND_TRUTH, i, f"field '{problem[0]}': {problem[2]}")
        if demos_per_prompt <= 0:
            continue
        found = row_demos(row, demo_fields, demos_per_prompt)
        if not found:
            report.add(NO_DEMO, i, f"no non-empty demonstration in {', '.join(demo_fields)}")
            continue
        demos[i] = found
        if problem is None:
            usable.append(i)

    if tokenizer is not None and max_response_length is not None and demos:
        eos = eos_tokens(tokenizer)
        # a token holds >= 1 byte (+1: a tokenizer that prepends a space): only these can be too long
        suspects = [(i, k) for i, texts in demos.items() for k, text in enumerate(texts)
                    if len(text.encode("utf-8")) + 1 + eos > max_response_length]
        rendered: dict[int, Optional[str]] = {}
        for i, _ in suspects:
            if i not in rendered:
                try:
                    rendered[i] = render_prompt(tokenizer, rows[i]["prompt"])
                except Exception:  # noqa: BLE001 - no template or a malformed prompt: no <think> de-duplication
                    rendered[i] = None
        lengths, _ = demo_token_lengths(tokenizer, [demos[i][k] for i, k in suspects],
                                        [rendered[i] for i, _ in suspects], progress="demonstration lengths")
        for (i, k), length in zip(suspects, lengths):
            if length > max_response_length and i not in report.rows[DEMO_TOO_LONG]:
                report.add(DEMO_TOO_LONG, i,
                           f"demonstration {k} has {length} tokens (with EOS) > {max_response_length}")
        report.lengths_checked = True

    report.gradable = len(usable)
    if score_fn is not None and usable and reward_rows != 0:
        sample = usable if reward_rows is None or reward_rows >= len(usable) else \
            sorted(random.Random(seed).sample(usable, int(reward_rows)))
        items, owners = [], []
        for i in sample:
            for text in demos[i]:
                items.append((rows[i].get("data_source"), text, rows[i]["reward_model"]["ground_truth"],
                              rows[i].get("extra_info")))
                owners.append(i)
        for i, (score, pred, why) in zip(owners, grade_demos(items, score_fn, workers)):
            if i in report.rows[DEMO_REJECTED]:
                continue
            if score is None:
                report.add(DEMO_REJECTED, i, f"the reward cannot grade it: {why}")
            elif demo_rejected(score):
                truth = rows[i]["reward_model"]["ground_truth"]
                read = f"reads {_clip(pred, 60)!r}" if pred else "reads no answer"
                report.add(DEMO_REJECTED, i,
                           f"score {score:g}: the reward {read}; ground truth {_clip(str(truth), 60)!r}")
        report.graded = len(sample)
    for ids in report.rows.values():
        ids.sort()
    report.seconds = time.monotonic() - start
    return report


def read_rows(path: str, demo_fields: Sequence[str]) -> list[dict]:
    """The columns the rules read, as dicts (one per row, in file order)."""
    import pyarrow.parquet as pq

    names = set(pq.ParquetFile(path).schema_arrow.names)
    wanted = ["data_source", "prompt", "reward_model", "extra_info", *demo_fields]
    return pq.read_table(path, columns=[c for c in dict.fromkeys(wanted) if c in names]).to_pylist()


# ------------------------------------------------------------------------------------------------ start-up
def training_files(config, srft) -> list[str]:
    """The training parquet files of the run: ``srft.data.sources``' paths when set, else ``data.train_files``."""
    from omegaconf import OmegaConf

    if srft.data_sources:
        from .integration.mixed_data import _normalise_sources

        return [p for source in _normalise_sources(srft.data_sources) for p in source["path"]]
    files = OmegaConf.select(config, "data.train_files")
    files = OmegaConf.to_container(files) if OmegaConf.is_list(files) else [files]
    return [str(f) for f in files if f]


def reward_fn(config) -> Callable:
    """The training reward as verl's reward workers load it (the custom function with its reward_kwargs, else
    verl's ``default_compute_score``)."""
    from verl.trainer.ppo.reward import get_custom_reward_fn

    fn = get_custom_reward_fn(config)
    if fn is None:
        from verl.utils.reward_score import default_compute_score

        fn = default_compute_score
    return fn


def scan_training_files(config, srft, tokenizer=None, *, log: Callable[[str], None] = print) -> list[DataReport]:
    """Scans every local training file of the run (see :func:`scan_rows`); files that are not on this machine (hdfs,
    or absent in a dry run) are left to verl."""
    from omegaconf import OmegaConf

    max_response_length = OmegaConf.select(config, "data.max_response_length")
    score = reward_fn(config) if srft.demos_per_prompt > 0 and srft.data_check_reward_rows != 0 else None
    reports = []
    for path in training_files(config, srft):
        local = Path(os.path.expanduser(path))
        if not local.is_file():
            log(f"SRFT data check: {path} is not a local file here, not checked")
            continue
        rows = read_rows(str(local), srft.demo_fields)
        report = scan_rows(rows, path=path, demo_fields=srft.demo_fields, demos_per_prompt=srft.demos_per_prompt,
                           tokenizer=tokenizer, max_response_length=max_response_length, score_fn=score,
                           reward_rows=srft.data_check_reward_rows, seed=int(srft.data_seed))
        reports.append(report)
    return reports


def _ids(ids: list[int], limit: int = LIST_ROWS) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def describe(report: DataReport, srft) -> list[str]:
    """One line per finding of ``report`` (counts, first rows, an example), and what was not checked."""
    lines = []
    for kind in KINDS:
        ids = report.rows[kind]
        if kind == DEMO_REJECTED and srft.demos_per_prompt > 0 and report.gradable:
            scope = ("all" if report.graded >= report.gradable else
                     f"a seeded sample of {report.graded}; srft.data_check_reward_rows=null grades all")
            kind_text = f"{kind}, of {report.graded} graded ({scope})"
        else:
            kind_text = kind
        if ids:
            example = report.messages.get((kind, ids[0]))
            lines.append(f"{len(ids)} row(s) {kind_text}: rows {_ids(ids)}"
                         + (f" (row {ids[0]}: {example})" if example else ""))
    if srft.demos_per_prompt > 0 and not report.lengths_checked:
        lines.append("demonstration lengths not checked (no tokenizer here)")
    return lines


def validate_command(report: DataReport, config, srft) -> str:
    """``python -m data_prep.validate ... --fix drop`` for the file of ``report``, with the run's settings."""
    from omegaconf import OmegaConf

    model = str(OmegaConf.select(config, "actor_rollout_ref.model.path"))
    out = report.path[: -len(".parquet")] if report.path.endswith(".parquet") else report.path
    parts = ["python -m data_prep.validate", report.path]
    if Path(os.path.expanduser(model)).is_dir():
        parts += ["--tokenizer", model]
    parts += ["--max-response-length", str(OmegaConf.select(config, "data.max_response_length")),
              "--demo-fields", ",".join(srft.demo_fields)]
    kwargs = OmegaConf.select(config, "reward.custom_reward_function.reward_kwargs") or {}
    if kwargs.get("answer_extraction"):
        parts += ["--answer-extraction", str(kwargs["answer_extraction"])]
    parts += ["--fix", "drop", "--output", f"{out}.clean.parquet"]
    return " ".join(parts)


def error_message(reports: list[DataReport], config, srft) -> str:
    """The ``srft.data_check=error`` message: what is wrong where, the command that fixes it, the settings."""
    lines = ["srft.data_check=error: the training data has rows SRFT would train on wrongly:"]
    for report in reports:
        if report.bad_rows():
            lines.append(f"  {report.path} ({len(report.bad_rows())} of {report.n_rows} rows; row indices are "
                         "0-based positions in the file):")
            lines += [f"    - {line}" for line in describe(report, srft)]
            lines.append(f"    fix the file: {validate_command(report, config, srft)}")
            lines.append("      and train on the .clean.parquet it writes")
    lines.append("  or set srft.data_check=skip (drop these rows at start-up, counts logged) or srft.data_check=keep "
                 "(train on them as they are)")
    return "\n".join(lines)


def write_without(path: str, drop: list[int], directory: Optional[str] = None) -> str:
    """A copy of parquet ``path`` without rows ``drop``; named by the file's identity and the rows dropped, so the
    same input gives the same file (a resumed run reads the same rows in the same order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    local = Path(os.path.expanduser(path)).resolve()
    stat = local.stat()
    key = f"{local}|{stat.st_size}|{stat.st_mtime_ns}|{','.join(map(str, drop))}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    folder = Path(directory or os.path.join(tempfile.gettempdir(), "srft_data_check"))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{local.stem}.{digest}.parquet"
    if not target.is_file():
        table = pq.read_table(local)
        dropped = set(drop)
        keep = [i for i in range(table.num_rows) if i not in dropped]
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        pq.write_table(table.take(pa.array(keep, type=pa.int64())), partial)
        os.replace(partial, target)
    return str(target)


#: Top-level key where ``main_srft`` records the training files it checked before Ray started and found clean (not a
#: user key): the trainer does not scan them again.
CHECKED_KEY = "srft_data_checked"


def preflight_data_check(config, srft, *, log: Callable[[str], None] = print) -> None:
    """``main_srft``, before Ray starts: the same check when every training file and the model's tokenizer are on
    this machine, so that ``error`` stops the run before anything is launched. Clean files are recorded in
    ``config[CHECKED_KEY]``; findings under ``skip``/``keep`` are left to the trainer, which acts where verl reads."""
    from omegaconf import open_dict

    if srft.data_check not in DATA_CHECK_MODES:
        raise ValueError(f"srft.data_check={srft.data_check!r}: expected one of {list(DATA_CHECK_MODES)}")
    files = training_files(config, srft)
    if not files or not all(Path(os.path.expanduser(f)).is_file() for f in files):
        return
    tokenizer = local_tokenizer(config)
    if tokenizer is None and srft.demos_per_prompt > 0:
        return  # the trainer checks the lengths with the tokenizer it loads
    reports = scan_training_files(config, srft, tokenizer, log=log)
    if any(r.bad_rows() for r in reports):
        if srft.data_check == "error":
            raise ValueError(error_message(reports, config, srft))
        return
    with open_dict(config):
        config[CHECKED_KEY] = list(files)
    log(f"SRFT data check: {', '.join(files)}: no row flagged ({sum(r.n_rows for r in reports)} rows)")


def check_training_data(config, srft, tokenizer=None, *, log: Callable[[str], None] = print) -> list[DataReport]:
    """The start-up data check (see the module docstring): ``error`` raises ``ValueError``; ``skip`` rewrites
    ``data.train_files`` (or ``srft.data_sources``' paths) to copies without the rows found; ``keep`` logs them."""
    from omegaconf import OmegaConf, open_dict

    mode = srft.data_check
    if mode not in DATA_CHECK_MODES:
        raise ValueError(f"srft.data_check={mode!r}: expected one of {list(DATA_CHECK_MODES)}")
    checked = OmegaConf.select(config, CHECKED_KEY, default=None)
    if checked is not None and list(checked) == training_files(config, srft):
        log(f"SRFT data check: {', '.join(checked)} checked before start-up, no row flagged")
        return []
    reports = scan_training_files(config, srft, tokenizer, log=log)
    bad = [r for r in reports if r.bad_rows()]
    for report in reports:
        log(f"SRFT data check ({mode}): {report.path}: {report.n_rows} rows, {len(report.bad_rows())} flagged, "
            f"{report.graded} demonstrations graded, {report.seconds:.1f} s")
    if not bad:
        return reports
    if mode == "error":
        raise ValueError(error_message(reports, config, srft))
    for report in bad:
        for line in describe(report, srft):
            log(f"SRFT data check ({mode}): {report.path}: {line}")
    if mode == "keep":
        log("SRFT data check (keep): training on these rows as they are (srft.data_check=keep)")
        return reports
    mapping = {}
    for report in bad:
        if len(report.bad_rows()) >= report.n_rows:
            raise ValueError(f"srft.data_check=skip: every row of {report.path} is flagged; nothing would be left "
                             "to train on:\n" + error_message([report], config, srft))
        mapping[report.path] = write_without(report.path, report.bad_rows())
        log(f"SRFT data check (skip): dropped {len(report.bad_rows())} of {report.n_rows} rows of {report.path}; "
            f"training on {mapping[report.path]} ({report.n_rows - len(report.bad_rows())} rows)")
    if srft.data_sources:
        from .integration.mixed_data import _normalise_sources

        sources = _normalise_sources(srft.data_sources)  # names fixed before the paths change
        for source in sources:
            source["path"] = [mapping.get(p, p) for p in source["path"]]
        srft.data_sources = sources
    else:
        files = OmegaConf.select(config, "data.train_files")
        with open_dict(config):
            if OmegaConf.is_list(files):
                config.data.train_files = [mapping.get(str(f), str(f)) for f in files]
            else:
                config.data.train_files = mapping.get(str(files), str(files))
    return reports


def local_tokenizer(config):
    """The run's tokenizer when the model is a local folder (no download), else None."""
    from omegaconf import OmegaConf

    path = Path(os.path.expanduser(str(OmegaConf.select(config, "actor_rollout_ref.model.path"))))
    if not path.is_dir():
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception:  # noqa: BLE001 - a folder without a tokenizer: lengths are then not checked
        return None


def dry_run_data_check(config, srft) -> tuple[list[str], list[str]]:
    """(problems, notes) of the start-up data check as ``DRY_RUN`` reports it: the same scan when every training
    file is on this machine (the tokenizer when the model is a local folder); ``error`` findings are problems."""
    if srft.data_check not in DATA_CHECK_MODES:
        return [f"srft.data_check={srft.data_check!r}: expected one of {list(DATA_CHECK_MODES)}"], []
    files = training_files(config, srft)
    if not files or not all(Path(os.path.expanduser(f)).is_file() for f in files):
        return [], ["data check: not run (the training files are not all here); the trainer runs it at start-up"]
    notes: list[str] = []
    reports = scan_training_files(config, srft, local_tokenizer(config), log=notes.append)
    if srft.data_check == "error" and any(r.bad_rows() for r in reports):
        return [error_message(reports, config, srft)], notes
    for report in reports:
        what = {"error": "no row flagged", "skip": "the trainer would drop", "keep": "the trainer would train on"}
        lines = describe(report, srft)
        notes.append(f"data check ({srft.data_check}): {report.path}: {report.n_rows} rows, "
                     + (f"{what[srft.data_check]} {len(report.bad_rows())} flagged row(s)" if report.bad_rows()
                        else "no row flagged")
                     + f", {report.graded} demonstrations graded ({report.seconds:.1f} s)")
        notes += [f"  {line}" for line in lines]
    return [], notes


# ------------------------------------------------------------------------------------------------ per step
def batch_data_metrics(scores, uids: list, is_demo, valid) -> dict:
    """What reached the step's batch (logged under ``srft/``): prompts whose group has no demonstration, and
    demonstrations the verifier scored 0 or less (before ``srft.demo_reward``)."""
    groups_with_demo: dict = {}
    for i, uid in enumerate(uids):
        if bool(valid[i]):
            groups_with_demo[uid] = groups_with_demo.get(uid, False) or bool(is_demo[i])
    zero = (is_demo.bool() & valid.bool() & (scores <= 0)).sum()
    return {"srft/prompts_without_demo": float(sum(not has for has in groups_with_demo.values())),
            "srft/demos_scored_zero": float(zero)}
