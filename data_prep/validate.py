"""Check a verl parquet file before training or evaluation (and optionally fix it).

Checks, in one pass:

* schema: the columns and row layout of :mod:`data_prep.schema` (``target``
  demonstrations are checked when the file has that column);
* ground truths: missing or empty ``reward_model.ground_truth``;
* prompt length: tokens of the prompt rendered with the tokenizer's chat
  template and ``add_generation_prompt=True`` (what the rollout sees), against
  ``--max-prompt-length``;
* demonstration length: tokens of the demonstration + 1 for EOS, against
  ``--max-response-length`` (a leading ``<think>\\n`` is not counted when the
  generation prompt already ends with it, as the trainer drops it);
* demonstration answers: every demonstration is graded against its ground truth
  by the training reward itself (``recipe_srft.reward.compute_score`` with the
  row's ``data_source`` and ``extra_info``, so ``luffy_think`` rows get the
  think-format rule: ``<think>\\n`` prepended, only the text after ``</think>``
  graded); a demonstration it rejects would enter its group as a negative
  example, and a row it cannot grade (unknown ``data_source``) would stop
  training.  ``--answer-extraction`` picks the reward's ``answer_extraction``
  (default: the reward's default, ``luffy``; use the value of the training run);
* warnings: duplicate prompts (LUFFY's evaluation file repeats AIME/AMC on
  purpose), rows without a recorded template, ``luffy_think`` rows whose
  generation prompt does not end with ``<think>\\n`` or whose demonstration has
  no ``</think>`` (both score 0 under the think-format reward), ``boxed``
  demonstrations without ``\\boxed{}``.

``--demo-fields target,demo`` reads the demonstration as the trainer does
(``srft.demo_fields``) and makes a row without one an error.  The ground-truth,
demonstration, length and reward rules are those of the trainer's start-up check
(``recipe_srft/data_check.py``, ``srft.data_check``), which prints this command.

Errors (schema, ground truth, over-long prompt or demonstration, demonstration
rejected by or not gradable by the reward, no demonstration with ``--demo-fields``)
make the exit status 1.  ``--fix drop``
writes the rows without errors to ``--output``; ``--fix truncate`` cuts over-long
demonstrations to ``--max-response-length`` tokens (EOS included) and drops the
other broken rows (demonstrations are graded before the cut).  A truncated
demonstration has lost its final answer and usually scores 0, i.e. becomes a
negative example: prefer ``drop`` for training data.

Usage::

    python -m data_prep.validate train.parquet --tokenizer PATH --max-prompt-length 1024 \\
        --max-response-length 8192 [--fix drop|truncate --output clean.parquet]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa

from data_prep.common import DataPrepError, non_negative_int, positive_int, read_parquet_rows, write_table
from data_prep.schema import REQUIRED_COLUMNS, TARGET_COLUMN, check_row, demonstration_of, prompt_key
from data_prep.templates import BOXED, THINK_GENERATION_SUFFIX, uses_think_format
from recipe_srft.data_check import (PROGRESS_MIN_ROWS, demo_rejected, demo_token_lengths, grade_demos,  # noqa: F401
                                    render_prompt, row_demos, token_counts)
from recipe_srft.grading.extract import ANSWER_EXTRACTIONS, last_boxed

DEFAULT_LIST = 20

# error kinds
SCHEMA = "schema violation"
GROUND_TRUTH = "missing or empty ground truth"
PROMPT_TOO_LONG = "prompt too long"
DEMO_TOO_LONG = "demonstration too long"
CHAT_TEMPLATE_FAILED = "chat template failed"
NO_DEMO = "no usable demonstration (--demo-fields)"
DEMO_REJECTED = "demonstration rejected by the reward (scores 0: a negative in its group)"
NOT_GRADABLE = "row the reward cannot grade"
# warning kinds
DUPLICATE = "duplicate prompt (repeats an earlier row)"
NO_TEMPLATE = "no extra_info.template recorded (think-format reward off)"
THINK_PROMPT = "luffy_think row whose generation prompt does not end with '<think>\\n'"
THINK_DEMO = "luffy_think demonstration without '</think>' (scores 0)"
BOXED_DEMO = "boxed demonstration without \\boxed{} (no answer under answer_extraction=boxed)"


@dataclass
class Validation:
    """Findings of one file: row ids per error and warning kind, length statistics."""

    n_rows: int
    columns: list[str]
    errors: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    warnings: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    messages: dict[tuple[str, int], str] = field(default_factory=dict)
    global_errors: list[str] = field(default_factory=list)
    prompt_lengths: dict[int, int] = field(default_factory=dict)
    demo_lengths: dict[int, int] = field(default_factory=dict)
    think_prefix_rows: set[int] = field(default_factory=set)
    data_sources: Counter = field(default_factory=Counter)
    templates: Counter = field(default_factory=Counter)

    def error(self, kind: str, row: int, message: str | None = None) -> None:
        """Record an error of ``kind`` on ``row`` (with the first message for that pair)."""
        self.errors[kind].append(row)
        if message is not None:
            self.messages.setdefault((kind, row), message)

    def warn(self, kind: str, row: int) -> None:
        """Record a warning of ``kind`` on ``row``."""
        self.warnings[kind].append(row)

    def error_rows(self) -> dict[int, set[str]]:
        """Row id -> its error kinds."""
        rows: dict[int, set[str]] = defaultdict(set)
        for kind, ids in self.errors.items():
            for row in ids:
                rows[row].add(kind)
        return rows

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return not self.global_errors and not any(self.errors.values())


# --------------------------------------------------------------------------- tokenizer


def load_tokenizer(path: str):
    """Load a Hugging Face tokenizer from a local folder (no download)."""
    from transformers import AutoTokenizer  # slow import: only when a tokenizer is asked for

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, ...
        raise DataPrepError(f"cannot load tokenizer: {exc}", file=path) from None
    if not getattr(tokenizer, "chat_template", None):
        raise DataPrepError("the tokenizer has no chat template", file=path)
    return tokenizer


def truncate_to_tokens(tokenizer, text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` (on token boundaries) that has at most ``max_tokens`` tokens."""
    if max_tokens <= 0:
        return ""
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
        if len(offsets) <= max_tokens:
            return text
        keep = max_tokens
        while keep > 0:
            candidate = text[: offsets[keep - 1][1]]
            if token_counts(tokenizer, [candidate])[0] <= max_tokens:
                return candidate
            keep -= 1
        return ""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    keep = max_tokens
    while keep > 0:
        candidate = tokenizer.decode(ids[:keep])
        if token_counts(tokenizer, [candidate])[0] <= max_tokens:
            return candidate
        keep -= 1
    return ""


# --------------------------------------------------------------------------- checks


def _template(row: dict[str, Any]) -> str | None:
    extra_info = row.get("extra_info")
    return extra_info.get("template") if isinstance(extra_info, dict) else None


def check_rows(rows: list[dict[str, Any]], columns: list[str], *, tokenizer=None, max_prompt_length: int | None = None,
               max_response_length: int | None = None, answer_extraction: str | None = None,
               demo_fields: Sequence[str] | None = None) -> Validation:
    """Run every check on ``rows`` (as read from the parquet file).

    ``answer_extraction`` is passed to the reward (None: the reward's default). ``demo_fields``: read the
    demonstration as the trainer does (``srft.demo_fields``, first non-empty field wins) and flag rows without one;
    None: LUFFY's ``target`` column only (required when the file has it).
    """
    result = Validation(n_rows=len(rows), columns=columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        result.global_errors.append(f"missing columns: {', '.join(missing)}")
    training = TARGET_COLUMN in columns

    valid: list[int] = []
    graded: list[int] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        problems = check_row(row, training=training)
        for problem in problems:
            kind = GROUND_TRUTH if problem.field == "reward_model.ground_truth" else SCHEMA
            result.error(kind, i, str(problem))
        if isinstance(row.get("data_source"), str):
            result.data_sources[row["data_source"]] += 1
        template = _template(row)
        result.templates[template or "(none)"] += 1
        if problems:
            continue
        valid.append(i)
        if template is None:
            result.warn(NO_TEMPLATE, i)
        key = prompt_key(row["prompt"])
        if key in seen:
            result.warn(DUPLICATE, i)
        else:
            seen[key] = i
        demo = _demo_text(row, demo_fields)
        if demo is None and demo_fields is not None:
            result.error(NO_DEMO, i, f"no non-empty demonstration in {', '.join(demo_fields)}")
        if demo is not None:
            graded.append(i)
        if demo is not None and uses_think_format(template) and "</think>" not in demo:
            result.warn(THINK_DEMO, i)
        if demo is not None and template == BOXED and last_boxed(demo) is None:
            result.warn(BOXED_DEMO, i)

    _check_demo_answers(result, rows, graded, answer_extraction, demo_fields)
    if tokenizer is not None:
        _check_lengths(result, rows, valid, tokenizer, max_prompt_length, max_response_length, demo_fields)
    return result


def _demo_text(row: dict[str, Any], demo_fields: Sequence[str] | None) -> str | None:
    """The row's demonstration: ``target``'s (``schema.demonstration_of``), or the trainer's reading of
    ``demo_fields`` (``recipe_srft.data_check.row_demos``)."""
    if demo_fields is None:
        return demonstration_of(row)
    demos = row_demos(row, demo_fields, 1)
    return demos[0] if demos else None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _short(text: str, limit: int = 60) -> str:
    return repr(_clip(text, limit))


def _check_demo_answers(result: Validation, rows: list[dict[str, Any]], ids: list[int],
                        answer_extraction: str | None, demo_fields: Sequence[str] | None = None) -> None:
    """Grade each demonstration against its ground truth with the training reward (see the module docstring;
    the rule and the threads that keep the reward's process pool busy: ``recipe_srft.data_check.grade_demos``)."""
    if not ids:
        return
    from functools import partial

    from recipe_srft.reward import DEFAULT_MAX_WORKERS, compute_score

    kwargs: dict[str, Any] = {"max_workers": DEFAULT_MAX_WORKERS}
    if answer_extraction is not None:
        kwargs["answer_extraction"] = answer_extraction
    compute_score("math", "", "0", **kwargs)  # a bad configuration raises here, not once per row
    items = [(rows[i]["data_source"], _demo_text(rows[i], demo_fields), rows[i]["reward_model"]["ground_truth"],
              rows[i].get("extra_info")) for i in ids]
    verdicts = grade_demos(items, partial(compute_score, **kwargs), workers=DEFAULT_MAX_WORKERS)
    for i, (score, pred, why) in zip(ids, verdicts):
        if score is None:
            result.error(NOT_GRADABLE, i, why)
        elif demo_rejected(score):
            truth = rows[i]["reward_model"]["ground_truth"]
            read = f"reads {_short(pred)}" if pred else "reads no answer"
            result.error(DEMO_REJECTED, i, f"the reward {read}; ground truth {_short(str(truth))}")


def _check_lengths(result: Validation, rows: list[dict[str, Any]], valid: list[int], tokenizer,
                   max_prompt_length: int | None, max_response_length: int | None,
                   demo_fields: Sequence[str] | None = None) -> None:
    rendered: dict[int, str] = {}
    for i in valid:
        try:
            rendered[i] = render_prompt(tokenizer, rows[i]["prompt"])
        except Exception as exc:  # jinja errors of the model's own template (e.g. unsupported roles)
            result.error(CHAT_TEMPLATE_FAILED, i, f"chat template failed: {exc}")
    ids = list(rendered)
    for i, count in zip(ids, token_counts(tokenizer, [rendered[i] for i in ids])):
        result.prompt_lengths[i] = count
        if max_prompt_length is not None and count > max_prompt_length:
            result.error(PROMPT_TOO_LONG, i, f"prompt has {count} tokens > {max_prompt_length}")
        if uses_think_format(_template(rows[i])) and not rendered[i].endswith(THINK_GENERATION_SUFFIX):
            result.warn(THINK_PROMPT, i)

    demo_ids = [i for i in ids if _demo_text(rows[i], demo_fields) is not None]
    lengths, stripped = demo_token_lengths(tokenizer, [_demo_text(rows[i], demo_fields) for i in demo_ids],
                                           [rendered[i] for i in demo_ids], progress="demonstration lengths")
    for i, length, was_stripped in zip(demo_ids, lengths, stripped):  # the rule of the trainer's start-up check
        if was_stripped:
            result.think_prefix_rows.add(i)
        result.demo_lengths[i] = length
        if max_response_length is not None and length > max_response_length:
            result.error(DEMO_TOO_LONG, i, f"demonstration has {length} tokens (with EOS) > {max_response_length}")


# --------------------------------------------------------------------------- fixing


def apply_fix(table: pa.Table, rows: list[dict[str, Any]], result: Validation, mode: str, tokenizer,
              max_response_length: int | None) -> tuple[pa.Table, int, int]:
    """Drop (or truncate) the rows with errors; returns ``(table, dropped, truncated)``."""
    error_rows = result.error_rows()
    keep: list[int] = []
    replaced: dict[int, str] = {}
    for i in range(len(rows)):
        kinds = error_rows.get(i)
        if not kinds:
            keep.append(i)
        elif mode == "truncate" and kinds == {DEMO_TOO_LONG}:
            text = demonstration_of(rows[i])
            prefix = THINK_GENERATION_SUFFIX if i in result.think_prefix_rows else ""
            body = text[len(prefix):]
            cut = truncate_to_tokens(tokenizer, body, max_response_length - 1)  # one token left for EOS
            if cut.strip():
                replaced[i] = prefix + cut
                keep.append(i)
    fixed = table.take(pa.array(keep, type=pa.int64()))
    if replaced:
        targets = []
        for i in keep:
            target = rows[i][TARGET_COLUMN]
            if i in replaced:
                target = [dict(target[0], content=replaced[i])]
            targets.append(target)
        position = fixed.schema.get_field_index(TARGET_COLUMN)
        column_type = fixed.schema.field(TARGET_COLUMN).type
        fixed = fixed.set_column(position, TARGET_COLUMN, pa.array(targets, type=column_type))
    return fixed, len(rows) - len(keep), len(replaced)


# --------------------------------------------------------------------------- report


def _ids(ids: list[int], limit: int) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def _stats(lengths: dict[int, int], limit: int | None) -> str:
    values = sorted(lengths.values())
    if not values:
        return "none"
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    text = f"min {values[0]}, median {int(statistics.median(values))}, p95 {p95}, max {values[-1]}"
    return text + (f" (limit {limit})" if limit is not None else " (no limit given)")


def render_summary(path: str, result: Validation, options: argparse.Namespace) -> str:
    """The one-screen summary."""
    limit = options.list
    lines = [f"data_prep.validate: {path}"]
    fields = _fields(getattr(options, "demo_fields", None))
    training = TARGET_COLUMN in result.columns or fields is not None
    where = f"columns {', '.join(fields)}" if fields else "target column"
    lines.append(f"  rows: {result.n_rows}   demonstrations: {f'yes ({where})' if training else 'no'}")
    if result.data_sources:
        lines.append("  data_source: " + ", ".join(f"{k} {v}" for k, v in sorted(result.data_sources.items())))
    lines.append("  template:    " + ", ".join(f"{k} {v}" for k, v in sorted(result.templates.items())))
    if options.tokenizer:
        lines.append(f"  prompt tokens:        {_stats(result.prompt_lengths, options.max_prompt_length)}")
        if training:
            lines.append(f"  demonstration tokens: {_stats(result.demo_lengths, options.max_response_length)}"
                         " (+EOS)")
    else:
        lines.append("  token lengths: not checked (no --tokenizer)")
    if result.global_errors or any(result.errors.values()):
        lines.append("  ERRORS")
        lines.extend(f"    {message}" for message in result.global_errors)
        for kind, ids in result.errors.items():
            if ids:
                lines.append(f"    {len(ids):6d} rows  {kind}: rows {_ids(ids, limit)}")
                example = result.messages.get((kind, ids[0]))
                if example:
                    lines.append(f"                 e.g. row {ids[0]}: {example}")
    warnings = {kind: ids for kind, ids in result.warnings.items() if ids}
    if warnings:
        lines.append("  WARNINGS")
        for kind, ids in warnings.items():
            lines.append(f"    {len(ids):6d} rows  {kind}: rows {_ids(ids, limit)}")
    n_bad = len(result.error_rows())
    lines.append(f"  result: {'OK' if result.ok else f'FAILED ({n_bad} rows with errors)'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``--help`` documents every option)."""
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.validate",
        description="Check a verl parquet file: schema, prompt and demonstration token lengths, "
        "ground truths, demonstrations graded by the training reward, duplicate prompts, think-format "
        "consistency; optionally write a fixed copy.",
        epilog="Exit status: 0 when there is no error (or --fix wrote a clean file), 1 on errors, an "
        "unreadable file or a fix that would leave no row, 2 on a usage error.  Row ids are 0-based "
        "positions in FILE.",
    )
    parser.add_argument("file", metavar="FILE", help="the parquet file to check")
    parser.add_argument("--tokenizer", metavar="PATH",
                        help="local Hugging Face tokenizer folder (with a chat template); without it token "
                        "lengths are not checked")
    parser.add_argument("--max-prompt-length", type=positive_int, metavar="N",
                        help="maximum prompt tokens (chat template applied, generation prompt added); "
                        "needs --tokenizer")
    parser.add_argument("--max-response-length", type=positive_int, metavar="N",
                        help="maximum demonstration tokens including EOS; needs --tokenizer")
    parser.add_argument("--fix", choices=("drop", "truncate"),
                        help="write a cleaned copy to --output: drop = leave out every row with an error; "
                        "truncate = cut over-long demonstrations to --max-response-length tokens (they "
                        "usually score 0 afterwards) and leave out the other broken rows")
    parser.add_argument("--output", metavar="OUT", help="where --fix writes the cleaned parquet file")
    parser.add_argument("--list", type=non_negative_int, default=DEFAULT_LIST, metavar="N",
                        help=f"how many row ids to list per finding (default: {DEFAULT_LIST})")
    parser.add_argument("--demo-fields", metavar="F1,F2",
                        help="read the demonstration from these columns as the trainer does (srft.demo_fields, "
                        "e.g. target,demo: the first non-empty one wins) and make a row without one an error; "
                        "default: LUFFY's target column only")
    parser.add_argument("--answer-extraction", choices=ANSWER_EXTRACTIONS,
                        help="the reward's answer_extraction when grading demonstrations: luffy = the last "
                        "non-empty \\boxed{}, else math-verify's own extraction (LUFFY's rule); boxed = "
                        "\\boxed{} only; default: the reward's default (luffy, or "
                        "$SRFT_REWARD_ANSWER_EXTRACTION); give the training run's value")
    return parser


def _fields(text: str | None) -> tuple[str, ...] | None:
    return tuple(f.strip() for f in text.split(",") if f.strip()) if text else None


def run(options: argparse.Namespace) -> tuple[str, int]:
    """Validate (and fix) as ``options`` say; returns ``(summary text, exit status)``."""
    table, rows = read_parquet_rows(options.file)
    tokenizer = load_tokenizer(options.tokenizer) if options.tokenizer else None
    if tokenizer is not None and tokenizer.eos_token is None:
        print("warning: the tokenizer has no EOS token; demonstration lengths still count one", file=sys.stderr)
    result = check_rows(rows, table.column_names, tokenizer=tokenizer, max_prompt_length=options.max_prompt_length,
                        max_response_length=options.max_response_length,
                        answer_extraction=options.answer_extraction,
                        demo_fields=_fields(options.demo_fields))
    summary = render_summary(options.file, result, options)
    if not options.fix:
        return summary, 0 if result.ok else 1
    if result.global_errors:
        raise DataPrepError(f"cannot fix: {'; '.join(result.global_errors)}", file=options.file)
    fixed, dropped, truncated = apply_fix(table, rows, result, options.fix, tokenizer, options.max_response_length)
    if fixed.num_rows == 0:
        raise DataPrepError(f"--fix {options.fix} would leave no row; refusing to write an empty file",
                            file=options.output)
    write_table(fixed, options.output)
    summary += (f"\n  fix ({options.fix}): wrote {fixed.num_rows} rows to {options.output} "
                f"(dropped {dropped}, truncated {truncated})")
    if truncated:
        summary += "\n  note: truncated demonstrations have lost their final answer and usually score 0"
    return summary, 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.fix and not options.output:
        parser.error("--fix needs --output")
    if options.output and not options.fix:
        parser.error("--output is only used with --fix")
    if (options.max_prompt_length or options.max_response_length) and not options.tokenizer:
        parser.error("--max-prompt-length/--max-response-length need --tokenizer")
    if options.fix == "truncate" and _fields(options.demo_fields) not in (None, (TARGET_COLUMN,)):
        parser.error("--fix truncate rewrites the target column only; use --fix drop with --demo-fields")
    if options.fix == "truncate" and not options.max_response_length:
        parser.error("--fix truncate needs --max-response-length (and --tokenizer)")
    if options.output and Path(options.output).resolve() == Path(options.file).resolve():
        parser.error("--output must not overwrite FILE")
    try:
        summary, status = run(options)
    except DataPrepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(summary)
    return status


if __name__ == "__main__":
    sys.exit(main())
