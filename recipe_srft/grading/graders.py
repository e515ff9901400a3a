"""The graders, one per source family (:mod:`.sources`): ``grader(answer_text, gts, opts) -> (score, pred)``.

``answer_text`` is the answer region of the response (:func:`.extract.answer_region`), ``gts`` the
ground truths (any one may match), ``opts`` the options of :func:`.options.parse_options`.

* math: the answer is the content of the LAST non-empty ``\\boxed{...}`` / ``\\fbox{...}`` (balanced
  braces, escaped braces ignored, empty and unbalanced boxes skipped; ``\\boxed 5.`` also accepted,
  as "5"; the rules are those of :mod:`.extract`, shared with data_prep).  No such box: with
  ``answer_extraction="luffy"`` (default) math-verify's own default extraction of the whole answer
  region is graded (what LUFFY grades: "final answer is" / "answer:" anchors, else the rightmost
  LaTeX expression or number; ``pred`` is the matched text); with ``answer_extraction="boxed"`` -> 0
  (no fallback).  The ground truth is used as is when it already holds a ``\\boxed{}`` (its last one
  is taken); ``$``/``\\(``/``\\[`` delimiters are removed from both sides and each side is wrapped as
  ``$...$`` and compared with ``math_verify.parse`` + ``math_verify.verify`` (:mod:`.verify`, under
  the time bound of :mod:`.pool`).  Exact shortcuts skip math-verify: identical strings (up to
  whitespace) score 1, and two plain integers of at most 15 digits (``12``, ``-3``, ``142.0``) are
  compared as integers.  A ground truth that is a single option letter (``C``, ``(C)``,
  ``\\text{(C)}``) is compared as a letter (not in the fallback: math-verify only).  A ground truth
  is parsed once per worker (memo), as it is graded against many rollouts.
* multiple choice: the last occurrence (by position) of a letter A-J given as ``\\boxed{X}`` (also
  ``\\boxed{(X)}``, ``\\boxed{\\text{X}}``, ``\\boxed{X) text}``), ``ANSWER: X`` or ``answer is (X)`` /
  ``answer is X``; case-insensitive (a lower-case letter outside ``\\boxed`` only counts when
  parenthesised or followed by punctuation / end of text, so "the answer is a bit" is not "A").
* gsm8k: the number after the last ``####``, else the last number in the last ``\\boxed{}``, else the
  last number of the text; compared exactly as decimals after removing thousands commas and ``$``
  ("18.00" == "18" == "$18").

Guards (before any sympy work): extracted answers longer than ``MAX_ANSWER_CHARS`` or with a bracket
nesting deeper than ``MAX_NESTING`` score 0; all extraction here is linear-time.  Standard library
only at import time.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from . import extract as _ex
from .pool import _math_equal, _math_equal_text
from .sources import GSM8K, MATH, MULTIPLE_CHOICE

__all__ = ["MAX_ANSWER_CHARS", "MAX_NESTING", "MAX_NUMBER_DIGITS", "extract_choice_letter", "extract_gsm8k_number",
           "extract_last_boxed"]

# --------------------------------------------------------------------------------------
# guards
# --------------------------------------------------------------------------------------

#: Extracted answers longer than this score 0 without being parsed.
MAX_ANSWER_CHARS = 1500
#: Extracted answers with a deeper ``{([`` nesting score 0 without being parsed.
MAX_NESTING = 40
#: Longest digit string accepted as a GSM8K number.
MAX_NUMBER_DIGITS = 60


def _max_nesting(s: str) -> int:
    depth = best = 0
    for ch in re.findall(r"[{}()\[\]]", s):
        if ch in "{([":
            depth += 1
            if depth > best:
                best = depth
        elif depth > 0:
            depth -= 1
    return best


def _answer_ok(s: str) -> bool:
    return 0 < len(s) <= MAX_ANSWER_CHARS and _max_nesting(s) <= MAX_NESTING


# --------------------------------------------------------------------------------------
# extraction (all linear time)
# --------------------------------------------------------------------------------------

# The box and think-region rules live in recipe_srft/grading/extract.py (shared with data_prep).
_BOXED_RE = _ex.BOXED_RE


def extract_last_boxed(text: str) -> str | None:
    """Content of the last non-empty, well-formed ``\\boxed{...}`` / ``\\fbox{...}`` (None if none).

    Alias of :func:`recipe_srft.grading.extract.last_boxed`, kept for callers of the reward module.
    """
    return _ex.last_boxed(text)


_DOLLAR_RE = re.compile(r"(?<!\\)\$")
_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|bf)\s*\{([^{}]*)\}")


def _strip_math_delims(s: str) -> str:
    s = s.strip()
    for left, right in (("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right) and len(s) >= 4:
            s = s[2:-2].strip()
    s = _DOLLAR_RE.sub("", s).strip()
    if s.endswith(".") and not s.endswith("\\."):
        s = s[:-1].rstrip()
    return s


def _as_letter(s: str, lenient: bool = False, upper_only: bool = False, digits: bool = False) -> str | None:
    """``C``, ``(C)``, ``\\text{(C)}``, ``**C**``, ``C.`` -> "C"; with ``lenient`` also ``C) text``.

    ``upper_only`` rejects lower-case letters (a math answer ``e`` or ``b`` is not an option);
    ``digits`` reads option numbers 1-9 instead of letters (ARC-C has a few questions numbered 1-4).
    """
    t = _DOLLAR_RE.sub("", s)
    for _ in range(3):
        t2 = _TEXT_WRAP_RE.sub(r"\1", t)
        if t2 == t:
            break
        t = t2
    t = t.strip().strip("*_").strip()
    if digits:
        label, first = r"[1-9]", r"[1-9]"
    else:
        label, first = (r"[A-J]" if upper_only else r"[A-Ja-j]"), r"[A-J]"
    m = re.fullmatch(r"\(?\s*(" + label + r")\s*\)?\s*\.?", t)
    if m:
        return m.group(1).upper()
    if lenient:
        m = re.match(r"\(?(" + first + r")(?:\)|\.|:)\s", t + " ")
        if m:
            return m.group(1)
    return None


def _choice_res(label: str, tail: str) -> tuple[re.Pattern[str], ...]:
    # one character class between the keyword and the label, never two adjacent overlapping
    # quantifiers: backtracking stays linear in the length of a whitespace run
    return (
        re.compile(r"answer\s*[:\uff1a][\s*_$]*(\(\s*)?(" + label + ")" + tail, re.IGNORECASE),
        re.compile(r"answer\s+is[\s*_$:\uff1a]*(\(\s*)?(" + label + ")" + tail, re.IGNORECASE),
    )


_CHOICE_RES = {
    False: _choice_res(r"[A-Ja-j]", r"(?![A-Za-z0-9])"),
    True: _choice_res(r"[1-9]", r"(?![0-9]|[.,][0-9])"),
}


def extract_choice_letter(text: str, digits: bool = False) -> str | None:
    """Last option letter A-J (``digits``: number 1-9) stated in ``text``.

    Forms: ``\\boxed{X}`` (also ``\\boxed{(X)}``, ``\\boxed{\\text{X}}``, ``\\boxed{X) text}``),
    ``ANSWER: X``, ``answer is (X)`` / ``answer is X``; the last occurrence by position wins.
    """
    best_pos, best = -1, None
    for pos, content in _ex.iter_boxes_reversed(text, 400):
        letter = _as_letter(content, lenient=True, digits=digits)
        if letter is not None:
            best_pos, best = pos, letter
            break
    for rx in _CHOICE_RES[digits]:
        for m in rx.finditer(text):
            letter = m.group(2)
            if letter.islower():
                after = text[m.end() : m.end() + 3]
                if m.group(1) is None and not re.match(r"\s*(?:[.,;:!)*]|$)", after):
                    continue
            if m.start() > best_pos:
                best_pos, best = m.start(), letter.upper()
    return best


_NUMBER_RE = re.compile(r"(?<![\w.])(-)?\$?\s?(\d{1,3}(?:,\d{3})+(?!\d)|\d+)(\.\d+)?")


def _numbers(text: str) -> list[str]:
    out = []
    for m in _NUMBER_RE.finditer(text):
        digits = m.group(2).replace(",", "")
        if len(digits) > MAX_NUMBER_DIGITS:
            continue
        out.append((m.group(1) or "") + digits + (m.group(3) or ""))
    return out


def _canon_number(s: str) -> str | None:
    try:
        d = Decimal(s)
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite():
        return None
    d = d.normalize()
    if d == 0:
        return "0"
    return format(d, "f")


def extract_gsm8k_number(text: str) -> str | None:
    """Canonical number: after the last ``####``, else in the last ``\\boxed{}``, else the last number."""
    pos = text.rfind("####")
    if pos >= 0:
        nums = _numbers(text[pos + 4 : pos + 4 + 200].split("\n", 1)[0])
        if nums:
            return _canon_number(nums[0])
    boxed = extract_last_boxed(text)
    if boxed is not None:
        nums = _numbers(boxed)
        if nums:
            return _canon_number(nums[-1])
    nums = _numbers(text)
    if nums:
        return _canon_number(nums[-1])
    return None


# --------------------------------------------------------------------------------------
# graders
# --------------------------------------------------------------------------------------


_INT_RE = re.compile(r"([+-]?\d{1,15})(?:\.0+)?")  # <= 15 digits: exact in math-verify too


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def _clean_math(s: str) -> str:
    boxed = extract_last_boxed(s) if _BOXED_RE.search(s) else None
    return _strip_math_delims(boxed if boxed is not None else s)


def _grade_math(answer_text: str, gts: list[str], opts: dict[str, Any]) -> tuple[float, str]:
    content = _ex.last_boxed(answer_text)
    if content is None:
        if opts["extraction"] == _ex.LUFFY:
            return _grade_math_expression(answer_text, gts, opts)
        return 0.0, ""
    pred = _strip_math_delims(content)
    if not pred or not _answer_ok(pred):
        return 0.0, pred[:200]
    for gt in gts:
        gold = _clean_math(gt)
        if not gold:
            continue
        if opts["shortcuts"]:
            # exact shortcuts that cannot disagree with math-verify: identical strings, and two
            # plain integers (math-verify compares those exactly as well)
            g_sq, p_sq = _squash(gold), _squash(pred)
            if g_sq == p_sq:
                return 1.0, pred
            g_int, p_int = _INT_RE.fullmatch(g_sq), _INT_RE.fullmatch(p_sq)
            if g_int and p_int:
                if int(g_int.group(1)) == int(p_int.group(1)):
                    return 1.0, pred
                continue
        gold_letter = _as_letter(gold, upper_only=True)
        if gold_letter is not None:
            pred_letter = _as_letter(pred, lenient=True)
            if pred_letter is not None:
                if pred_letter == gold_letter:
                    return 1.0, pred
                continue
        if _answer_ok(gold) and _math_equal(gold, pred, opts["timeout_s"], opts["mode"], opts["max_workers"]):
            return 1.0, pred
    return 0.0, pred


def _grade_math_expression(answer_text: str, gts: list[str], opts: dict[str, Any]) -> tuple[float, str]:
    """LUFFY's fallback for a region without a box: math-verify extracts and compares (in a worker).

    No shortcuts and no letter rule: there is no extracted string before math-verify has run.
    """
    if not _ex.may_hold_expression(answer_text):
        return 0.0, ""
    pred = ""
    for gt in gts:
        gold = _clean_math(gt)
        if not gold or not _answer_ok(gold):
            continue
        ok, extracted = _math_equal_text(gold, answer_text, opts["timeout_s"], opts["mode"], opts["max_workers"])
        pred = _strip_math_delims(extracted) if len(extracted) <= MAX_ANSWER_CHARS else extracted[:200]
        if ok:
            return 1.0, pred
    return 0.0, pred


def _grade_choice(answer_text: str, gts: list[str], opts: dict[str, Any]) -> tuple[float, str]:
    preds: dict[bool, str | None] = {}
    for gt in gts:
        gold = _as_letter(gt, lenient=True)
        digits = gold is None and _as_letter(gt, lenient=True, digits=True) is not None
        if digits:
            gold = _as_letter(gt, lenient=True, digits=True)
        if digits not in preds:
            preds[digits] = extract_choice_letter(answer_text, digits=digits)
        if gold is not None and preds[digits] == gold:
            return 1.0, gold
    # report what was read in the mode of the first ground truth
    return 0.0, next(iter(preds.values()), None) or ""


def _grade_gsm8k(answer_text: str, gts: list[str], opts: dict[str, Any]) -> tuple[float, str]:
    pred = extract_gsm8k_number(answer_text)
    if pred is None:
        return 0.0, ""
    for gt in gts:
        gold = extract_gsm8k_number(gt)
        if gold is None:
            if _squash(gt) == pred:
                return 1.0, pred
        elif gold == pred:
            return 1.0, pred
    return 0.0, pred


_GRADERS = {MATH: _grade_math, MULTIPLE_CHOICE: _grade_choice, GSM8K: _grade_gsm8k}

