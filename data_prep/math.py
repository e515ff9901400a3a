"""MATH (Hendrycks) JSON lines -> verl training parquet.

Accepts the MATH training format ``{problem, level, type, solution, ...}`` and
the MATH-500 format ``{problem, solution, answer, subject, level, ...}``.  The
worked ``solution`` is the demonstration; the ground truth is the ``answer``
field when present, else the last ``\\boxed{...}`` of the solution (balanced
braces).  data_source is ``math``; ``level``, ``type``/``subject`` and ids go
to ``extra_info.meta``.

Usage::

    python -m data_prep.math --input math_train/train.jsonl --output math_train.parquet [--template boxed]
"""

from __future__ import annotations

import sys

from data_prep import answers
from data_prep.common import Converter, Record
from data_prep.schema import Example
from data_prep.templates import BOXED, render

DATA_SOURCE = "math"
META_FIELDS = ("level", "type", "subject", "unique_id", "subject_dir", "source_file", "idx", "id")


def solution_answer(record: Record, solution_field: str = "solution", answer_field: str = "answer") -> str:
    """The ground truth: ``answer_field`` if present, else the last ``\\boxed{}`` of ``solution_field``.

    Shared with the evaluation-set converter (MATH-500, Minerva).
    """
    if record.has(answer_field):
        return record.answer(answer_field)
    boxed = answers.last_boxed(record.text(solution_field))
    if boxed is None:
        raise record.error(solution_field, "no \\boxed{...} answer in the solution (and no 'answer' field)",
                           "no answer")
    return boxed


class MathConverter(Converter):
    """MATH training converter."""

    name = "math"
    description = (
        "Convert MATH / MATH-500 JSON lines to a verl training parquet: the worked solution is the "
        "demonstration, the 'answer' field (or else the last \\boxed{} of the solution) the ground "
        "truth; data_source 'math'."
    )
    epilog = (
        "Input fields: problem (str), solution (str, the demonstration), optional answer (str or number);\n"
        f"kept in extra_info.meta when present: {', '.join(META_FIELDS)}."
    )
    default_template = BOXED

    def convert(self, record: Record) -> Example:
        problem = record.text("problem")
        solution = record.text("solution")
        return Example(
            data_source=DATA_SOURCE,
            prompt=render(self.template, problem.strip()),
            ground_truth=solution_answer(record),
            demonstration=solution.strip(),
            meta=record.meta(*META_FIELDS),
        )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    return MathConverter().main(argv)


if __name__ == "__main__":
    sys.exit(main())
