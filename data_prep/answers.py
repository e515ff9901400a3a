"""Answer extraction and normalisation helpers (pure functions, no I/O).

All functions raise ``ValueError`` with a short human-readable message when the
input cannot be used; converters turn that into a :class:`DataPrepError` that
names the file, row and field.
"""

from __future__ import annotations

import math
import re

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_CALCULATOR_ANNOTATION = re.compile(r"<<[^<>]*>>")


def _find_commands(text: str) -> list[int]:
    """Start offsets of every ``\\boxed``/``\\fbox`` command (not ``\\boxedfoo``)."""
    starts = []
    for command in _BOX_COMMANDS:
        for match in re.finditer(re.escape(command) + r"(?![A-Za-z])", text):
            starts.append(match.start())
    return sorted(starts)


def _argument(text: str, pos: int) -> str | None:
    """The argument starting at ``pos`` (after the command name), or None.

    ``{...}`` with balanced braces (``\\{`` and ``\\}`` do not count), optionally
    after spaces, or the ``\\boxed 5`` form: the token up to whitespace or ``$``.
    """
    after_command = pos
    while pos < len(text) and text[pos] == " ":
        pos += 1
    if pos >= len(text):
        return None
    if text[pos] != "{":
        match = re.match(r"[^\s$]+", text[pos:])
        if match is None or pos == after_command:
            return None
        return match.group(0).rstrip(".,;")
    depth = 0
    i = pos
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[pos + 1 : i]
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``.

    Braces are balanced, so ``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``.
    Returns None when there is no complete boxed expression or it is empty.
    """
    for start in reversed(_find_commands(text)):
        command = "\\boxed" if text.startswith("\\boxed", start) else "\\fbox"
        content = _argument(text, start + len(command))
        if content is not None and content.strip():
            return content.strip()
    return None


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
