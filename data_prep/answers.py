"""Answer extraction and normalisation helpers (pure functions, no I/O).

All functions raise ``ValueError`` with a short human-readable message when the
input cannot be used; converters turn that into a :class:`DataPrepError` that
names the file, row and field.

``\\boxed{}`` answers are read by :func:`recipe_srft.grading.extract.last_boxed`, the
extraction layer the reward grades with: a ground truth taken from a solution is
then exactly the answer the reward reads from that solution as a demonstration.
"""

from __future__ import annotations

import math
import re

from recipe_srft.grading.extract import last_boxed

__all__ = ["answer_to_str", "format_number", "last_boxed", "parse_gsm8k_answer", "strip_calculator_annotations"]

_CALCULATOR_ANNOTATION = re.compile(r"<<[^<>]*>>")


def format_number(value: float | int) -> str:
    """Render a number as a ground-truth string: ``27.0 -> "27"``, ``0.5 -> "0.5"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {value}")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def answer_to_str(value: object) -> str:
    """A ground truth as a non-empty string (strings are stripped, numbers rendered).

    Raises ``ValueError`` for other types or an empty result.
    """
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = format_number(value)
    else:
        raise ValueError(f"expected a string or a number, got {type(value).__name__}")
    if not text:
        raise ValueError("the answer is empty")
    return text


def strip_calculator_annotations(text: str) -> str:
    """Remove GSM8K calculator annotations: ``"= <<2*3=6>>6"`` -> ``"= 6"``."""
    return _CALCULATOR_ANNOTATION.sub("", text)


def parse_gsm8k_answer(text: str) -> tuple[str, str]:
    """Split a GSM8K ``answer`` into ``(demonstration, ground_truth)``.

    The ground truth is the text after the last ``####`` with commas removed.
    The demonstration is the solution without calculator annotations, whose
    final ``#### N`` line is replaced by ``The answer is \\boxed{N}.`` so that
    it satisfies the boxed reward rule.
    """
    lines = text.rstrip().split("\n")
    final = lines[-1].strip()
    if not final.startswith("####"):
        raise ValueError("the solution does not end with a '#### <answer>' line")
    answer = final[4:].strip().replace(",", "")
    if not answer:
        raise ValueError("the '####' line has no answer")
    steps = strip_calculator_annotations("\n".join(lines[:-1])).rstrip()
    if not steps.strip():
        raise ValueError("the solution has no steps before the '####' line")
    return f"{steps}\nThe answer is \\boxed{{{answer}}}.", answer
