"""GSM8K JSON lines ``{question, answer}`` -> verl training parquet.

The ``answer`` field is a human-written solution ending in ``#### <number>``.
It becomes the demonstration with the ``<<...>>`` calculator annotations
removed and the final ``#### N`` line replaced by ``The answer is \\boxed{N}.``
(so that demonstrations satisfy the boxed reward rule); the ground truth is N
with thousands commas removed.  data_source is ``gsm8k``.

Usage::

    python -m data_prep.gsm8k --input gsm8k/train.jsonl --output gsm8k_train.parquet [--template boxed]
"""

from __future__ import annotations

import sys

from data_prep import answers
from data_prep.common import Converter, Record
from data_prep.schema import Example
from data_prep.templates import BOXED, render

DATA_SOURCE = "gsm8k"


def gsm8k_solution(record: Record, field: str = "answer") -> tuple[str, str]:
    """``(demonstration, ground_truth)`` of a GSM8K row (shared with the eval-set converter)."""
    try:
        return answers.parse_gsm8k_answer(record.text(field))
    except ValueError as exc:
        raise record.error(field, str(exc), "no answer") from None


class Gsm8kConverter(Converter):
    """GSM8K training converter."""

    name = "gsm8k"
    description = (
        "Convert GSM8K JSON lines {question, answer} to a verl training parquet: the solution "
        "(calculator annotations removed, '#### N' turned into 'The answer is \\boxed{N}.') is the "
        "demonstration, N (commas stripped) the ground truth; data_source 'gsm8k'."
    )
    epilog = "Input fields: question (str), answer (str, ends with a '#### <number>' line)."
    default_template = BOXED

    def convert(self, record: Record) -> Example:
        question = record.text("question")
        demonstration, truth = gsm8k_solution(record)
        return Example(
            data_source=DATA_SOURCE,
            prompt=render(self.template, question.strip()),
            ground_truth=truth,
            demonstration=demonstration,
        )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    return Gsm8kConverter().main(argv)


if __name__ == "__main__":
    sys.exit(main())
