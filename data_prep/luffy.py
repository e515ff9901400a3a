"""LUFFY / OpenR1 parquet (``target`` column) -> normalised verl training parquet.

Input rows have LUFFY's layout: ``data_source``, ``prompt`` (chat list: the
reasoning system prompt + the user problem), ``target`` (a list with one
``{role: assistant, content: <R1 trace>}``), ``ability``, ``reward_model
{ground_truth, style}``, ``extra_info {index, split}``.  Every row is
validated; the demonstration is kept unchanged (a leading ``<think>\\n`` stays:
the trainer drops it when the generation prompt already ends with it).

``--template`` (default ``as_is``): ``as_is`` keeps each prompt unchanged and
records ``extra_info.template = "as_is"`` (or the template the row already
records, for files written by data_prep); ``luffy_think``/``boxed`` rebuild the
prompt from the last user message.  LUFFY's files already use the
``luffy_think`` prompt, so ``--template luffy_think`` leaves their prompts
identical and records ``luffy_think``, which turns the think-format reward on.

Usage::

    python -m data_prep.luffy --input openr1.parquet --output openr1_train.parquet [--template luffy_think]
"""

from __future__ import annotations

import json
import sys
from typing import Any

from data_prep.common import Converter, Record, Report, parse_chat, to_answer
from data_prep.schema import EXTRA_INFO_KEYS, REQUIRED_COLUMNS, TARGET_COLUMN, Example
from data_prep.templates import AS_IS, LUFFY_SYSTEM_PROMPT, RECORDED_TEMPLATE_NAMES, TEMPLATE_NAMES, render

def _extra_info(record: Record) -> dict[str, Any]:
    extra_info = record.get("extra_info", {})
    if not isinstance(extra_info, dict):
        raise record.error("extra_info", f"expected a dict, got {type(extra_info).__name__}", "wrong type")
    return extra_info


def _meta(extra_info: dict[str, Any]) -> dict[str, Any]:
    """Keys of a LUFFY ``extra_info`` other than ours, plus a previous ``meta`` (JSON string)."""
    meta: dict[str, Any] = {}
    previous = extra_info.get("meta")
    if isinstance(previous, str):
        try:
            loaded = json.loads(previous)
        except json.JSONDecodeError:
            loaded = {"meta": previous}
        if isinstance(loaded, dict):
            meta.update(loaded)
    meta.update({k: v for k, v in extra_info.items() if k not in EXTRA_INFO_KEYS and v is not None})
    return meta


def luffy_example(record: Record, template: str, *, training: bool) -> Example:
    """Validate a LUFFY-format row and turn it into an :class:`Example`.

    ``template`` is ``as_is`` or a template name (the prompt is then rebuilt
    from the last user message).  With ``training`` the ``target`` column must
    hold exactly one non-empty assistant message.  Shared with
    ``data_prep.eval_sets --format luffy``.
    """
    data_source = record.text("data_source").strip()
    prompt = record.chat("prompt")
    user_turns = [m["content"] for m in prompt if m["role"] == "user"]
    if not user_turns:
        raise record.error("prompt", "the prompt has no user message", "invalid value")
    reward_model = record.require("reward_model")
    if not isinstance(reward_model, dict):
        raise record.error("reward_model", f"expected a dict, got {type(reward_model).__name__}", "wrong type")
    ground_truth = to_answer(reward_model.get("ground_truth"), record.ctx, "reward_model.ground_truth")
    ability = record.get("ability", "math")
    if not isinstance(ability, str) or not ability.strip():
        raise record.error("ability", f"expected a non-empty string, got {ability!r}", "wrong type")
    extra_info = _extra_info(record)
    index = extra_info.get("index")
    split = extra_info.get("split")
    recorded = extra_info.get("template")

    if template == AS_IS:
        used_template = recorded if recorded in RECORDED_TEMPLATE_NAMES else AS_IS
    else:
        prompt = render(template, user_turns[-1])
        used_template = template

    demonstration = None
    if training:
        target = parse_chat(record.require(TARGET_COLUMN), record.ctx, TARGET_COLUMN)
        if len(target) != 1 or target[0]["role"] != "assistant":
            raise record.error(TARGET_COLUMN, f"expected one assistant message, got roles "
                               f"{[m['role'] for m in target]}", "invalid value")
        demonstration = target[0]["content"]
        if not demonstration.strip():
            raise record.error(f"{TARGET_COLUMN}[0].content", "empty demonstration", "empty value")
    return Example(
        data_source=data_source,
        prompt=prompt,
        ground_truth=ground_truth,
        ability=ability,
        demonstration=demonstration,
        index=index if isinstance(index, int) and not isinstance(index, bool) else None,
        split=split if isinstance(split, str) and split.strip() else None,
        template=used_template,
        meta=_meta(extra_info),
    )


class LuffyState:
    """Bookkeeping shared by the LUFFY converters: dropped columns, prompts already in LUFFY format."""

    def __init__(self, *, training: bool) -> None:
        self.kept_columns = frozenset(REQUIRED_COLUMNS + ((TARGET_COLUMN,) if training else ()))
        self.dropped_columns: set[str] = set()
        self.luffy_prompts = 0

    def observe(self, record: Record, example: Example) -> None:
        """Remember dropped columns and whether an as_is prompt is LUFFY's think prompt."""
        self.dropped_columns.update(
            c for c in record.data if c not in self.kept_columns and not c.startswith("__index_level_")
        )
        if example.template == AS_IS and example.prompt[0].get("content") == LUFFY_SYSTEM_PROMPT:
            self.luffy_prompts += 1

    def notes(self, report: Report) -> None:
        """Add the notes about dropped columns and the as_is/luffy_think choice."""
        if self.dropped_columns:
            report.note(f"columns not carried over: {', '.join(sorted(self.dropped_columns))}")
        if self.luffy_prompts:
            report.note(
                f"{self.luffy_prompts} rows recorded as as_is already use LUFFY's reasoning system prompt; "
                "--template luffy_think keeps them identical and turns the think-format reward on"
            )


class LuffyConverter(Converter):
    """LUFFY training-file converter."""

    name = "luffy"
    description = (
        "Validate and normalise a LUFFY/OpenR1 training parquet (prompt + 'target' demonstration) "
        "into the data_prep schema; the demonstration is kept, the template recorded."
    )
    epilog = (
        "Input columns: data_source, prompt (chat list), target (list with one assistant message),\n"
        "ability, reward_model {ground_truth, style}, extra_info {index, split, ...}. Other extra_info\n"
        "keys go to extra_info.meta; other columns are dropped (the report lists them).\n"
        "--template as_is keeps the prompts; luffy_think/boxed rebuild them from the last user message."
    )
    template_choices = (AS_IS,) + TEMPLATE_NAMES
    default_template = AS_IS

    def prepare(self, options) -> None:
        self.state = LuffyState(training=True)

    def convert(self, record: Record) -> Example:
        example = luffy_example(record, self.template, training=True)
        self.state.observe(record, example)
        return example

    def finish(self, report: Report) -> None:
        self.state.notes(report)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    return LuffyConverter().main(argv)


if __name__ == "__main__":
    sys.exit(main())
