"""Training parquet (LUFFY format) -> verl 0.9.1's SFT data (``messages``) for the SFT baseline.

The SFT baseline (``PRESET=sft bash run_scripts/qwen_math.sh``) trains with verl's own engine-based SFT trainer
(``python -m verl.trainer.sft_trainer``), whose only built-in dataset is ``MultiTurnSFTDataset``: it reads one
column of chat messages (``data.messages_key``, default ``messages``), renders every turn with the tokenizer's chat
template and trains on the assistant turns, each without its first ``len(generation prompt)`` tokens. There is no
prompt/response dataset in verl 0.9.1 (the old ``SFTDataset`` went with ``fsdp_sft_trainer``), so this converter
writes ``messages`` = the row's ``prompt`` chat list + one assistant turn holding the demonstration.

Same text as the RL run. The SRFT run tokenises a demonstration as a response to the prompt rendered with
``add_generation_prompt=True`` (``recipe_srft/demos.py``): the row's first demonstration (``srft.demo_fields``,
read with :func:`recipe_srft.demos.extract_demos`), a leading ``<think>\\n`` dropped when the generation prompt
already ends with it, then EOS. verl's SFT dataset instead renders the assistant turn itself and masks its first
``len(generation prompt)`` tokens. So the assistant content written here is

    content = G[len(A):] + D

where G is the template's generation prompt (what ``add_generation_prompt=True`` appends to the prompt), A the
opening the template writes before an assistant message's content, and D the demonstration as the RL run
trains it. For Qwen2.5-Math-7B-16k-think, G = ``<|im_start|>assistant\\n<think>\\n`` and A =
``<|im_start|>assistant\\n``: a demonstration starting with ``<think>\\n`` is written unchanged (``think:
in_prompt``: that ``<think>\\n`` falls in the masked span, as in the RL run, where it is part of the prompt), one
without it gets ``<think>\\n`` prepended (``added_to_prompt``). For a ChatML template without the think suffix
(Qwen2.5-Math-1.5B) G = A and the demonstration is written verbatim, any ``<think>\\n`` included and trained on,
as in the RL run (``none``). Every row is checked on the text: the full conversation rendered by the template
must begin with the RL run's prompt text followed by D (a template that rewrites assistant content, e.g. one that
drops the reasoning before ``</think>``, is refused).

What SFT trains on is then exactly the RL run's demonstration tokens, except at the end: the RL run appends the
tokenizer's EOS, SFT trains on whatever the template closes an assistant turn with (Qwen/ChatML:
``<|im_end|>\\n``, i.e. EOS ``<|im_end|>`` plus one separator token ``\\n``). The report states the difference.
``--check-tokens N`` (default 64) reads the first N rows back through verl's own ``MultiTurnSFTDataset`` and
compares its ``input_ids`` / ``loss_mask`` with the RL run's prompt and demonstration ids (catches a tokenizer
that merges tokens across the prompt/demonstration boundary); a mismatch fails the conversion.

Output columns: ``messages`` (list of ``{content, role}``), ``data_source`` (the input's, or null),
``extra_info {index, source_row, demo_index, think}``. verl's SFT dataset reads only ``messages``.

Usage::

    python -m data_prep.sft --input data/openr1.parquet --output data/openr1.sft.parquet --tokenizer MODEL_PATH
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_prep.common import (
    DEFAULT_LIST_SKIPPED,
    DataPrepError,
    Record,
    Report,
    _temporary_path,
    convert_sources,
    iter_rows,
    non_negative_int,
    parse_chat,
    positive_int,
)
from recipe_srft.demos import THINK_PREFIX, extract_demos, tokenize_demo

MESSAGES_KEY = "messages"
DEFAULT_DEMO_FIELDS = ("target", "demo")
DEFAULT_CHECK_TOKENS = 64

#: ``extra_info.think``: how the leading ``<think>\n`` is handled (see the module docstring)
THINK_IN_PROMPT = "in_prompt"
THINK_ADDED = "added_to_prompt"
THINK_NONE = "none"

_MESSAGE = pa.struct([("content", pa.string()), ("role", pa.string())])
SCHEMA = pa.schema([
    (MESSAGES_KEY, pa.list_(_MESSAGE)),
    ("data_source", pa.string()),
    ("extra_info", pa.struct([("index", pa.int64()), ("source_row", pa.int64()), ("demo_index", pa.int64()),
                              ("think", pa.string())])),
])

_SENTINEL = "\x00SRFT-SFT-CONTENT\x00"


# --------------------------------------------------------------------------- tokenizer and template


def load_tokenizer(path: str):
    """The model's tokenizer (a local folder, or a hub id as the run scripts pass it)."""
    from transformers import AutoTokenizer

    local = Path(os.path.expanduser(path)).is_dir()
    try:
        tokenizer = AutoTokenizer.from_pretrained(os.path.expanduser(path) if local else path,
                                                  local_files_only=local)
    except Exception as exc:  # noqa: BLE001 - any loading error is a usage problem of this file
        raise DataPrepError(f"cannot load tokenizer: {exc}", file=path) from None
    if not getattr(tokenizer, "chat_template", None):
        raise DataPrepError("the tokenizer has no chat template (the RL run renders prompts with it)", file=path)
    return tokenizer


def _render(tokenizer, messages: list[dict[str, str]], *, generation: bool) -> str:
    """The chat template's text, through verl's wrapper (the agent loop and the SFT dataset use it)."""
    from verl.utils.tokenizer.chat_template import apply_chat_template

    return apply_chat_template(tokenizer, messages, add_generation_prompt=generation, tokenize=False)


class TemplateError(Exception):
    """The chat template cannot give verl's SFT dataset the RL run's tokens for this prompt."""


def sft_content(tokenizer, prompt: list[dict[str, str]], demo: str) -> tuple[str, str, str]:
    """``(assistant content, think handling, end-of-turn text)`` for one prompt and demonstration.

    ``content`` makes the template's rendering of ``prompt + [assistant: content]`` equal the RL run's prompt text
    followed by the demonstration as the RL run trains it, followed by the template's end of turn.
    Raises :class:`TemplateError` when the template does not allow that.
    """
    prompt_text = _render(tokenizer, prompt, generation=True)
    bare = _render(tokenizer, prompt, generation=False)
    if not prompt_text.startswith(bare):
        raise TemplateError("the rendering with add_generation_prompt=True does not extend the one without it")
    generation_prompt = prompt_text[len(bare):]
    probe = _render(tokenizer, prompt + [{"role": "assistant", "content": _SENTINEL}], generation=False)
    at = probe.find(_SENTINEL)
    if not probe.startswith(bare) or at < len(bare):
        raise TemplateError("the template does not render an assistant message after the prompt verbatim")
    opening = probe[len(bare):at]
    if not generation_prompt.startswith(opening):
        raise TemplateError(
            f"the template opens an assistant message with {opening!r} but its generation prompt is "
            f"{generation_prompt!r}: verl's SFT dataset masks len(generation prompt) tokens of the assistant turn, "
            "which would not be the RL run's prompt")
    # the RL rule (recipe_srft.demos.tokenize_demo): drop a leading <think>\n when the prompt already ends with it
    in_prompt = prompt_text.endswith(THINK_PREFIX)
    trained = demo[len(THINK_PREFIX):] if in_prompt and demo.startswith(THINK_PREFIX) else demo
    content = generation_prompt[len(opening):] + trained
    think = (THINK_IN_PROMPT if demo.startswith(THINK_PREFIX) else THINK_ADDED) if in_prompt else THINK_NONE
    full = _render(tokenizer, prompt + [{"role": "assistant", "content": content}], generation=False)
    if not full.startswith(prompt_text + trained):
        raise TemplateError("the template rewrites the assistant message (e.g. drops the reasoning before "
                            "</think>): SFT would not train on the demonstration the RL run uses")
    return content, think, full[len(prompt_text) + len(trained):]


# --------------------------------------------------------------------------- rows


def _demo_field_error(record: Record, fields: tuple[str, ...]) -> DataPrepError:
    """Why a row yields no demonstration: a wrong type, or nothing there."""
    for name in fields:
        value = record.data.get(name)
        if value is None:
            continue
        if hasattr(value, "tolist") and not isinstance(value, (list, dict, str)):
            value = value.tolist()
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            where = f"{name}[{i}]" if isinstance(value, list) else name
            if isinstance(item, dict):
                if not isinstance(item.get("content"), str):
                    return record.error(f"{where}.content", f"expected a string, got {type(item.get('content')).__name__}",
                                        "wrong type")
            elif not isinstance(item, str):
                return record.error(where, f"expected a {{role: assistant, content}} message or a string, got "
                                    f"{type(item).__name__}", "wrong type")
    names = " or ".join(f"'{f}'" for f in fields)
    return record.error(" or ".join(fields), f"no demonstration: expected a non-empty assistant message in {names} "
                        "(LUFFY's target = [{role: assistant, content}], or a demo string)", "missing demonstration")


def _prompt(record: Record) -> list[dict[str, str]]:
    prompt = parse_chat(record.require("prompt"), record.ctx, "prompt")
    if not any(m["role"] == "user" for m in prompt):
        raise record.error("prompt", "the prompt has no user message", "invalid value")
    for i, message in enumerate(prompt):
        if message["role"] == "assistant":
            raise record.error(f"prompt[{i}].role", "the prompt holds an assistant turn: verl's SFT dataset would "
                               "train on it, the RL run does not", "invalid value")
    return prompt


def _index(record: Record) -> int:
    extra = record.data.get("extra_info")
    index = extra.get("index") if isinstance(extra, dict) else None
    return index if isinstance(index, int) and not isinstance(index, bool) else record.ctx.row


def convert_record(record: Record, tokenizer, *, fields: tuple[str, ...], demos_per_prompt: int
                   ) -> tuple[list[dict[str, Any]], str]:
    """The SFT rows of one input row (its first ``demos_per_prompt`` demonstrations) and its end-of-turn text."""
    prompt = _prompt(record)
    demos = extract_demos(record.data, fields)
    if not demos:
        raise _demo_field_error(record, fields)
    data_source = record.data.get("data_source")
    rows, closing = [], ""
    for k, demo in enumerate(demos[:demos_per_prompt]):
        try:
            content, think, closing = sft_content(tokenizer, prompt, demo)
        except TemplateError as exc:
            raise record.error("prompt", f"chat template: {exc}", "chat template") from None
        rows.append({
            MESSAGES_KEY: [{"content": m["content"], "role": m["role"]} for m in prompt]
            + [{"content": content, "role": "assistant"}],
            "data_source": data_source if isinstance(data_source, str) else None,
            "extra_info": {"index": _index(record), "source_row": record.ctx.row, "demo_index": k, "think": think},
        })
    return rows, closing


# --------------------------------------------------------------------------- verification with verl's dataset


def rl_tokens(tokenizer, prompt: list[dict[str, str]], demo: str) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of a demonstration in the RL run (agent loop + ``tokenize_demo``, EOS included)."""
    from verl.utils.tokenizer.chat_template import apply_chat_template
    from verl.utils.tokenizer.tokenizer import normalize_token_ids

    # what the agent loop's continuous-token builder does (build_initial_tokens)
    prompt_ids = normalize_token_ids(apply_chat_template(tokenizer, prompt, add_generation_prompt=True, tokenize=True))
    prompt_text = _render(tokenizer, prompt, generation=True)
    demo_ids = tokenize_demo(demo, tokenizer, max_response_length=10 ** 9, prompt_text=prompt_text).response_ids
    return prompt_ids, demo_ids


def check_with_verl(path: str | os.PathLike, tokenizer, originals: list[tuple[int, list, str]], *,
                    closing_ids: list[int]) -> list[str]:
    """Problems found when verl's ``MultiTurnSFTDataset`` reads ``path`` back (empty = every checked row matches).

    ``originals``: (source row, prompt, demonstration) of the first rows of ``path``. A row matches when its
    ``input_ids`` are the RL run's prompt ids + demonstration ids without EOS + ``closing_ids`` (the template's
    end of turn) and its ``loss_mask`` is 1 exactly on the demonstration and the end of turn.
    """
    from omegaconf import OmegaConf
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    config = OmegaConf.create({"messages_key": MESSAGES_KEY, "pad_mode": "no_padding", "truncation": "error",
                               "max_length": 10 ** 9, "max_samples": -1})
    with contextlib.redirect_stdout(io.StringIO()):  # verl prints the dataset length
        dataset = MultiTurnSFTDataset(parquet_files=[str(path)], tokenizer=tokenizer, config=config)
    eos = tokenizer.eos_token_id
    problems = []
    for i, (source_row, prompt, demo) in enumerate(originals):
        try:
            item = dataset[i]
        except Exception as exc:  # noqa: BLE001 - verl's own sanity check (per-turn vs whole rendering)
            problems.append(f"row {source_row}: verl's MultiTurnSFTDataset rejects it: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        input_ids = item["input_ids"].tolist()
        loss_mask = item["loss_mask"].tolist()
        prompt_ids, demo_ids = rl_tokens(tokenizer, prompt, demo)
        body = demo_ids[:-1] if eos is not None and demo_ids and demo_ids[-1] == eos else demo_ids
        expected = prompt_ids + body + closing_ids
        mask = [0] * len(prompt_ids) + [1] * (len(body) + len(closing_ids))
        if input_ids != expected:
            at = next((j for j, (a, b) in enumerate(zip(input_ids, expected)) if a != b),
                      min(len(input_ids), len(expected)))
            part = "prompt" if at < len(prompt_ids) else "demonstration"
            problems.append(f"row {source_row}: verl's input_ids differ from the RL run's prompt + demonstration at "
                            f"token {at} (in the {part}; RL prompt has {len(prompt_ids)} tokens): "
                            f"{tokenizer.decode(input_ids[max(0, at - 3):at + 3])!r} vs "
                            f"{tokenizer.decode(expected[max(0, at - 3):at + 3])!r}")
        elif loss_mask != mask:
            problems.append(f"row {source_row}: verl's loss_mask covers {sum(loss_mask)} tokens starting at "
                            f"{loss_mask.index(1) if 1 in loss_mask else None}; the RL run trains "
                            f"{len(body)} demonstration tokens starting at {len(prompt_ids)}")
    return problems


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.sft",
        description="Convert a training parquet (LUFFY format: prompt chat list + 'target' demonstration, or a "
                    "'demo' string) to verl 0.9.1's SFT data (a 'messages' column) for "
                    "`python -m verl.trainer.sft_trainer`, with the RL run's chat template and <think> handling.",
        epilog=__doc__.split("Usage::")[0].split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--input", required=True, metavar="PATH",
                        help="training file (.parquet, or .jsonl/.json/.ndjson JSON lines), e.g. data_prep.luffy's output")
    parser.add_argument("--output", required=True, metavar="PATH",
                        help="output parquet (folders are created; an existing file is replaced)")
    parser.add_argument("--tokenizer", required=True, metavar="PATH",
                        help="the model's tokenizer (local folder or hub id): its chat template decides the "
                             "<think> handling, as in the RL run")
    parser.add_argument("--demo-fields", default=",".join(DEFAULT_DEMO_FIELDS), metavar="A,B",
                        help="columns holding demonstrations, first non-empty wins (the RL run's srft.demo_fields; "
                             "default: target,demo)")
    parser.add_argument("--demos-per-prompt", type=positive_int, default=1, metavar="M",
                        help="SFT rows per input row: its first M demonstrations (the RL run's "
                             "srft.demos_per_prompt; default 1)")
    parser.add_argument("--check-tokens", type=non_negative_int, default=DEFAULT_CHECK_TOKENS, metavar="N",
                        help="read the first N written rows back with verl's MultiTurnSFTDataset and require its "
                             "input_ids/loss_mask to be the RL run's prompt + demonstration tokens "
                             f"(default {DEFAULT_CHECK_TOKENS}; 0 = no check)")
    parser.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                        help="bad input row: fail = stop with an error naming file, row and field (default); "
                             "skip = leave the row out, count it by reason and list it in the report")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help="read only the first N input rows (default: all)")
    parser.add_argument("--list-skipped", type=non_negative_int, default=DEFAULT_LIST_SKIPPED, metavar="N",
                        help=f"how many skipped rows the report lists (default: {DEFAULT_LIST_SKIPPED})")
    return parser


def _closing_note(tokenizer, closing: str) -> str:
    eos = tokenizer.eos_token
    if eos and closing.startswith(eos):
        rest = closing[len(eos):]
        extra = f" plus the template's separator {rest!r} ({len(tokenizer.encode(rest, add_special_tokens=False))} " \
                "token(s), trained by SFT only)" if rest else ""
        return f"end of a demonstration: the template closes the turn with {closing!r}: the RL run's EOS {eos!r}{extra}"
    return (f"end of a demonstration: the template closes the turn with {closing!r}, the RL run appends the EOS "
            f"{eos!r} instead: SFT never trains that EOS (stage-2 rollouts must stop on the template's end of turn)")


def run(argv: list[str] | None = None) -> Report:
    """Parse ``argv``, convert, verify and write; returns the report (raises :class:`DataPrepError`)."""
    options = build_parser().parse_args(argv)
    fields = tuple(f.strip() for f in options.demo_fields.split(",") if f.strip())
    if not fields:
        raise DataPrepError("--demo-fields names no column")
    if Path(options.input).resolve() == Path(options.output).resolve():
        raise DataPrepError("the output must not overwrite the input", file=options.input)
    report = Report("data_prep.sft", options.input, options.output, list_skipped=options.list_skipped)
    sources = iter_rows(options.input)  # raises for a missing or unreadable file before any output
    tokenizer = load_tokenizer(options.tokenizer)
    rows: list[dict[str, Any]] = []
    originals: list[tuple[int, list, str]] = []
    think = Counter()
    closings = Counter()
    more_demos = 0
    converted = convert_sources(
        sources,
        lambda record: convert_record(record, tokenizer, fields=fields, demos_per_prompt=options.demos_per_prompt),
        report, limit=options.limit, on_error=options.on_error)
    for source, (new, closing) in converted:
        demos = extract_demos(source.record.data, fields)
        more_demos += len(demos) > options.demos_per_prompt
        for k, row in enumerate(new):
            rows.append(row)
            think[row["extra_info"]["think"]] += 1
            if len(originals) < options.check_tokens:
                originals.append((source.ctx.row, _prompt(source.record), demos[k]))
        closings[closing] += 1
    report.written = len(rows)
    if not rows:
        print(report.render(), file=sys.stderr)
        raise DataPrepError(f"no rows to write (read {report.read}, skipped {report.skipped_total}); "
                            "refusing to write an empty file", file=options.output)
    report.note("<think> handling: " + ", ".join(f"{k} {v}" for k, v in sorted(think.items()))
                + " (in_prompt/added_to_prompt: the generation prompt ends with <think>\\n, which verl masks as "
                  "part of the prompt, as the RL run does; none: the demonstration is trained verbatim)")
    for closing in closings:
        report.note(_closing_note(tokenizer, closing))
    if more_demos:
        report.note(f"{more_demos} rows hold more than {options.demos_per_prompt} demonstration(s): only the first "
                    f"{options.demos_per_prompt} were used (--demos-per-prompt, like srft.demos_per_prompt)")
    data_sources = Counter(r["data_source"] for r in rows if r["data_source"])
    if data_sources:
        report.data_sources.update(data_sources)

    output = Path(options.output)
    tmp = _temporary_path(output)
    try:
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp)
        if originals:
            closing_text = next(iter(closings))
            closing_ids = list(tokenizer.encode(closing_text, add_special_tokens=False))
            problems = check_with_verl(tmp, tokenizer, originals, closing_ids=closing_ids)
            if problems:
                raise DataPrepError(
                    f"verl's MultiTurnSFTDataset does not reproduce the RL run's tokens for {len(problems)} of the "
                    f"first {len(originals)} rows (nothing written):\n  " + "\n  ".join(problems[:10]),
                    file=options.output, reason="token check")
            report.note(f"token check: verl's MultiTurnSFTDataset reads the first {len(originals)} rows back as the "
                        "RL run's prompt + demonstration tokens (loss on the demonstration and the end of turn only)")
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return report


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    try:
        report = run(argv)
    except DataPrepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
