"""Generic chat JSON lines -> verl training parquet.

Two row shapes are accepted (they may be mixed in one file):

* ``{"messages": [{role, content}, ...], "answer": ...}``: the final message
  must be an assistant turn, the demonstration; the turns before it (ending
  with a user turn) are the prompt.  ``messages`` may also be a JSON string.
* ``{"prompt": ..., "response": ..., "answer": ...}``: ``prompt`` is a string
  (one user turn) or a chat list, ``response`` the demonstration.

The ground truth is ``answer`` (or ``ground_truth``), a string or a number.
``--data-source`` names the reward family (e.g. ``math``).  ``--template``
(default ``as_is``) keeps the prompt turns; ``luffy_think``/``boxed`` rebuild
the prompt from the last user turn (earlier turns and system prompts are
replaced).

Usage::

    python -m data_prep.chat --input sft.jsonl --output sft.parquet --data-source math [--template boxed]
"""

from __future__ import annotations

import sys

from data_prep.common import Converter, DataPrepError, Record, parse_chat
from data_prep.schema import Example
from data_prep.templates import AS_IS, TEMPLATE_NAMES, render

ANSWER_FIELDS = ("answer", "ground_truth")


def _split_messages(record: Record) -> tuple[list[dict[str, str]], str]:
    messages = record.chat("messages")
    last = messages[-1]
    if last["role"] != "assistant":
        raise record.error(f"messages[{len(messages) - 1}]", "the final turn must be the assistant's demonstration",
                           "invalid value")
    if not last["content"].strip():
        raise record.error(f"messages[{len(messages) - 1}].content", "empty demonstration", "empty value")
    prompt = messages[:-1]
    if not prompt or prompt[-1]["role"] != "user":
        raise record.error("messages", "the turn before the demonstration must be a user message", "invalid value")
    return prompt, last["content"]


def _split_pair(record: Record) -> tuple[list[dict[str, str]], str]:
    value = record.require("prompt")
    if isinstance(value, str):
        if not value.strip():
            raise record.error("prompt", "empty value", "empty value")
        prompt = [{"role": "user", "content": value}]
    else:
        prompt = parse_chat(value, record.ctx, "prompt")
        if prompt[-1]["role"] != "user":
            raise record.error("prompt", "the last prompt turn must be a user message", "invalid value")
    return prompt, record.text("response")


class ChatConverter(Converter):
    """Generic chat-data converter."""

    name = "chat"
    description = (
        "Convert chat JSON lines ({messages, answer} or {prompt, response, answer}) to a verl "
        "training parquet: the final assistant turn / response is the demonstration."
    )
    epilog = (
        "Input rows: {\"messages\": [...], \"answer\": ...} (final assistant turn = demonstration, the\n"
        "turns before it = prompt) or {\"prompt\": str | chat list, \"response\": str, \"answer\": ...}.\n"
        "The ground truth field is 'answer' or 'ground_truth' (string or number)."
    )
    template_choices = (AS_IS,) + TEMPLATE_NAMES
    default_template = AS_IS

    def add_arguments(self, parser) -> None:
        parser.add_argument("--data-source", required=True, metavar="NAME",
                            help="data_source written on every row (selects the reward, e.g. math)")
        parser.add_argument("--ability", default="math", metavar="NAME",
                            help="ability written on every row (default: math)")

    def prepare(self, options) -> None:
        if not options.data_source.strip() or not options.ability.strip():
            raise DataPrepError("--data-source and --ability must not be empty")

    def convert(self, record: Record) -> Example:
        if record.has("messages"):
            prompt, demonstration = _split_messages(record)
        elif record.has("prompt") or record.has("response"):
            prompt, demonstration = _split_pair(record)
        else:
            raise record.error("messages", "missing field (expected 'messages', or 'prompt' and 'response')",
                               "missing field")
        field = next((f for f in ANSWER_FIELDS if record.has(f)), ANSWER_FIELDS[0])
        ground_truth = record.answer(field)
        if self.template != AS_IS:
            problem = next(m["content"] for m in reversed(prompt) if m["role"] == "user")
            prompt = render(self.template, problem)
        return Example(
            data_source=self.options.data_source,
            prompt=prompt,
            ground_truth=ground_truth,
            ability=self.options.ability,
            demonstration=demonstration,
        )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    return ChatConverter().main(argv)


if __name__ == "__main__":
    sys.exit(main())
