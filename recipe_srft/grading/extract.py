"""The one answer-extraction layer of the recipe.

The reward (``recipe_srft/reward.py``, i.e. :mod:`.graders`), the data preparation (``data_prep``:
ground truths read from MATH solutions, the validator's demonstration checks) and therefore the
evaluation all read answers with the functions below, so one string yields one answer everywhere.
(There used to be two ``\\boxed{}`` readers that disagreed: ``x \\boxed{3} \\boxed{}`` was "3" for
data_prep and "" for the reward, ``\\boxed 5.`` was "5" and "5.".)

Standard library only at import time: ``reward.py`` loads the grading package, this file included,
by path inside verl's reward workers and its grading subprocesses (:mod:`.loader`), where
``recipe_srft`` may not be importable; math-verify (slow to import, sympy) is imported by
:func:`math_verify_extract` only.

Rules
-----
* boxed (:func:`last_boxed`): the content of the LAST well-formed, NON-EMPTY ``\\boxed{...}`` /
  ``\\fbox{...}``.  Braces are balanced (``\\{`` and ``\\}`` do not count), so
  ``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``; the content is stripped, otherwise verbatim.
  Empty boxes (``\\boxed{}``: a model echoing the instruction "put your answer in \\boxed{}") and
  unbalanced ones (a response cut off inside its box) are skipped, i.e. the box before them counts:
  ``x \\boxed{3} \\boxed{}`` -> "3".  The unbraced form ``\\boxed 5`` (at least one space after the
  command) takes the token up to whitespace or ``$`` without trailing ``.,;`` (sentence punctuation is
  not part of the answer): ``\\boxed 5.`` -> "5".  ``\\boxedfoo`` is not a box.
* think region (:func:`answer_region`, LUFFY's think format): prepend ``<think>\\n`` unless the
  response starts with ``<think>`` (the generation prompt ended with it), require ``</think>`` and
  keep only the text after the LAST ``</think>``; no ``</think>`` -> None (the caller scores 0).
* answer extraction mode (``ANSWER_EXTRACTIONS``), for math answers:
  ``luffy`` (default): the last non-empty box of the answer region; when there is none, math-verify's
  own default extraction of the whole answer region (:func:`math_verify_extract`: its anchors
  "final answer is", "answer:", then the rightmost LaTeX environment / number that parses).
  ``boxed``: the last non-empty box only; no box -> no answer (score 0).

What LUFFY does (ElliottYan/LUFFY, ``data.reward_impl_version=3`` in its training scripts):
``luffy/verl/verl/mix_src/main_mix_ppo.py`` ``RewardManager.__call__`` decodes the response and
prepends ``"<think>\n"``; ``math_verify_reward.py`` ``reward_fn_math_verify`` ->
``RewardMathFn.__call__`` (``RewardConfig.think_format=True``) grades
``response.split("</think>")[1]`` when both ``<think>`` and ``</think>`` occur and returns
``is_correct=False`` otherwise; ``labeling_responses`` runs ``math_verify.parse(solution)`` with
math-verify's default extraction (boxed, "final answer"/"answer" anchors, else the rightmost
LaTeX/number) against ``parse("$" + ground_truth + "$")`` and ``math_verify.verify``.  Here, on
purpose: the box is read by :func:`last_boxed` first (math-verify's own boxed reader fails on
``x \boxed{3} \boxed{}``), the region is the text after the LAST ``</think>`` (LUFFY's ``[1]`` is the
text between the first and a second one), and every math-verify call is time-bounded by the reward.
"""

from __future__ import annotations

import re
from typing import Iterator

__all__ = [
    "ANSWER_EXTRACTIONS",
    "BOXED_ONLY",
    "DEFAULT_ANSWER_EXTRACTION",
    "LUFFY",
    "THINK_CLOSE",
    "THINK_OPEN",
    "THINK_PREFIX",
    "answer_region",
    "boxed_content_at",
    "iter_boxes_reversed",
    "last_boxed",
    "math_verify_extract",
    "may_hold_expression",
]

# --------------------------------------------------------------------------------------
# boxed answers (linear time)
# --------------------------------------------------------------------------------------

BOXED_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BRACE_TOKEN_RE = re.compile(r"\\.|[{}]", re.DOTALL)
_SPACED_TOKEN_RE = re.compile(r"[^\s$]+")
#: Stripped from the end of the unbraced ``\boxed 5.`` form: sentence punctuation, not answer.
_SENTENCE_PUNCTUATION = ".,;"


def boxed_content_at(text: str, end_of_cmd: int, max_len: int | None = None, stop: int | None = None) -> str | None:
    """Content (unstripped) of the box whose command ends at ``end_of_cmd``.

    None when the box is malformed: no argument, unbalanced braces up to ``stop`` (default: the end
    of ``text``), or a braced content longer than ``max_len`` characters.
    """
    n = len(text) if stop is None else stop
    i = end_of_cmd
    while i < n and text[i] in " \t":
        i += 1
    if i >= n:
        return None
    if text[i] != "{":
        # ``\boxed 5`` form: one token up to whitespace or a math delimiter
        m = _SPACED_TOKEN_RE.match(text, i)
        if m is None or end_of_cmd == i:  # ``\boxed5`` is not the spaced form
            return None
        return m.group(0).rstrip(_SENTENCE_PUNCTUATION)
    end = _closing_brace(text, i, n if max_len is None else min(n, i + max_len + 2))
    return None if end is None else text[i + 1 : end]


def _closing_brace(text: str, start: int, stop: int) -> int | None:
    """Position of the brace closing the ``{`` at ``start``, looking before ``stop``; None if none."""
    depth = 0
    for tok in _BRACE_TOKEN_RE.finditer(text, start, stop):
        t = tok.group(0)
        if t == "{":
            depth += 1
        elif t == "}":
            depth -= 1
            if depth == 0:
                return tok.start()
    return None


def iter_boxes_reversed(text: str, max_len: int | None = None) -> Iterator[tuple[int, str]]:
    """``(position, content)`` of every well-formed box, last first (contents unstripped, may be empty).

    Linear in ``len(text)`` plus the box contents scanned: once a box is found unbalanced up to the
    end of the text, every earlier box whose scan reaches it is unbalanced too (its depth never
    drops below the depth it had there), so earlier scans stop at that brace (``frontier``).
    ``max_len`` additionally caps each braced scan (boxes with longer contents are skipped).
    """
    frontier = len(text)
    for m in reversed(list(BOXED_RE.finditer(text))):
        i = m.end()
        while i < frontier and text[i] in " \t":
            i += 1
        capped = max_len is not None and i + max_len + 2 < frontier
        content = boxed_content_at(text, m.end(), max_len, frontier)
        if content is not None:
            yield m.start(), content
        elif i < frontier and text[i] == "{" and not capped:
            frontier = i  # unbalanced up to the end of the text


def last_boxed(text: str) -> str | None:
    """Content of the last well-formed, non-empty ``\\boxed{...}`` / ``\\fbox{...}`` of ``text``, stripped.

    None when there is none (no box, only empty or unbalanced ones).  See the module docstring.
    """
    for _, content in iter_boxes_reversed(text):
        content = content.strip()
        if content:
            return content
    return None


# --------------------------------------------------------------------------------------
# think region (LUFFY's think format)
# --------------------------------------------------------------------------------------

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
#: What a think-format generation prompt ends with (and what LUFFY's reward prepends to every response); the one
#: home of this string (recipe_srft.demos and data_prep.templates import it).
THINK_PREFIX = THINK_OPEN + "\n"


def answer_region(response: str, think: bool) -> str | None:
    """The text to grade; None when the think format is required and violated (no ``</think>``)."""
    if not think:
        return response
    if not response.startswith(THINK_OPEN):
        response = THINK_PREFIX + response
    pos = response.rfind(THINK_CLOSE)
    if pos < 0:
        return None
    return response[pos + len(THINK_CLOSE) :]


# --------------------------------------------------------------------------------------
# answer extraction mode and LUFFY's fallback (math-verify's own extraction)
# --------------------------------------------------------------------------------------

LUFFY = "luffy"
BOXED_ONLY = "boxed"
#: Values of the reward option ``answer_extraction``.
ANSWER_EXTRACTIONS: tuple[str, ...] = (LUFFY, BOXED_ONLY)
DEFAULT_ANSWER_EXTRACTION = LUFFY

# math-verify's default extraction only matches digits, ``$``, ``\(``/``\[``/``\frac`` or `` [x] ``:
_MAY_HOLD_EXPRESSION_RE = re.compile(r"[\d$\\\[]")


def may_hold_expression(text: str) -> bool:
    """False when math-verify's default extraction cannot find anything in ``text`` (saves a parse).

    Every pattern of its ``LatexExtractionConfig``/``ExprExtractionConfig`` needs a digit, a ``$``,
    a backslash or a ``[``; prose without any of them ("no final answer here") has no expression.
    """
    return _MAY_HOLD_EXPRESSION_RE.search(text) is not None


_MV_CONFIG = None


def math_verify_extract(text: str, parsing_timeout: int | None = None) -> tuple[list, str]:
    """math-verify's default extraction of ``text``: ``(parsed, extracted_string)``.

    ``parsed`` is what ``math_verify.parse(text)`` returns with its default configuration
    (``LatexExtractionConfig()``, ``ExprExtractionConfig()``; ``[]`` when nothing was found), i.e.
    what LUFFY feeds to ``math_verify.verify``; ``extracted_string`` is the matched text ("" if
    none).  It can run for a long time on hostile input (sympy): callers bound it (the reward runs
    it in its worker processes).  ``parsing_timeout`` is math-verify's own ``signal.alarm`` timeout,
    usable in the main thread only (None: off).
    """
    global _MV_CONFIG
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    if _MV_CONFIG is None:
        _MV_CONFIG = (LatexExtractionConfig(), ExprExtractionConfig())
    parsed = parse(text, extraction_config=_MV_CONFIG, parsing_timeout=parsing_timeout)
    extracted = next((p for p in reversed(parsed) if isinstance(p, str)), "")
    return parsed, extracted
