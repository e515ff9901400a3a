"""Rule-based reward for SRFT / LUFFY style training and evaluation.

Usable as verl's ``reward.custom_reward_function``::

    reward.custom_reward_function.path=recipe_srft/reward.py
    reward.custom_reward_function.name=compute_score
    # optional, run-level overrides (see "Configuration" below):
    +reward.custom_reward_function.reward_kwargs.think_format=true
    +reward.custom_reward_function.reward_kwargs.answer_extraction=boxed

verl (``experimental/reward_loop/reward_manager/naive.py``) calls
``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...,
**reward_kwargs)`` from a thread of the event loop's default executor, i.e. from a
NON-main thread of a Ray actor, and loads this file by path (it is not importable
as ``recipe_srft.reward`` there), so this module only imports the standard library
at import time and never relies on its own package name: the answer-extraction layer
it shares with ``data_prep`` (``recipe_srft/grading/extract.py``, also stdlib-only) is
imported as ``recipe_srft.grading.extract`` when this file is ``recipe_srft.reward``
and loaded from the sibling file by path otherwise (keep the two files together).
A ``dict`` return value
must always carry the same keys (verl stacks them over the batch); ``pred`` (a
string) is used by verl's majority-vote metrics.

API
---
``compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)``
returns ``{"score": float, "acc": float, "pred": str}``: ``score`` and ``acc`` are
both 1.0 for a correct answer and 0.0 otherwise (format failures score 0, there is
no negative format penalty, as in LUFFY); ``pred`` is the extracted answer or ""
when none could be extracted.  It never raises on model output; it raises
``ValueError`` for an unknown ``data_source``, a missing ground truth or a bad
configuration value.

Dispatch (``data_source``, case-insensitive; exact name first, then the last
path component, then substring rules; ``-`` and spaces count as ``_``)
------------------------------------------------------------------------------------
========================  =========================================  ======
grader                    names (substring rules in this order)      think
========================  =========================================  ======
gsm8k (numeric)           gsm8k, demo_gsm8k ("openai/gsm8k")          off
multiple choice letter    gpqa, mmlu_pro, arc_c / arc_challenge /     off
                          ai2_arc
math (math-verify)        aime, aime24, amc, amc23, minerva,          off
                          olympiad_bench (olympiad), openr1
                          (open_r1), numina, math500 (math_500),
                          math ("lighteval/MATH",
                          "HuggingFaceH4/MATH-500")
========================  =========================================  ======

* math: the answer is the content of the LAST non-empty ``\\boxed{...}`` /
  ``\\fbox{...}`` (balanced braces, escaped braces ignored, empty and unbalanced
  boxes skipped; ``\\boxed 5.`` also accepted, as "5"; the rules are those of
  ``recipe_srft/grading/extract.py``, shared with data_prep).  No such box: with
  ``answer_extraction="luffy"`` (default) math-verify's own default extraction of the
  whole answer region is graded (what LUFFY grades: "final answer is" / "answer:"
  anchors, else the rightmost LaTeX expression or number; ``pred`` is the matched
  text); with ``answer_extraction="boxed"`` -> 0 (no fallback).  The ground truth is
  used as is when it already holds a ``\\boxed{}`` (its last one is taken);
  ``$``/``\\(``/``\\[`` delimiters are removed from both sides and each side is
  wrapped as ``$...$`` and compared with ``math_verify.parse`` + ``math_verify.verify``.
  Exact shortcuts skip math-verify: identical strings (up to whitespace) score 1, and
  two plain integers of at most 15 digits (``12``, ``-3``, ``142.0``) are compared as
  integers.  A ground truth that is a single option letter (``C``, ``(C)``,
  ``\\text{(C)}``) is compared as a letter (not in the fallback: math-verify only).
  A ground truth is parsed once per worker (memo), as it is graded against many rollouts.
* multiple choice: the last occurrence (by position) of a letter A-J given as
  ``\\boxed{X}`` (also ``\\boxed{(X)}``, ``\\boxed{\\text{X}}``, ``\\boxed{X) text}``),
  ``ANSWER: X`` or ``answer is (X)`` / ``answer is X``; case-insensitive (a
  lower-case letter outside ``\\boxed`` only counts when parenthesised or followed
  by punctuation / end of text, so "the answer is a bit" is not "A").
* gsm8k: the number after the last ``####``, else the last number in the last
  ``\\boxed{}``, else the last number of the text; compared exactly as decimals
  after removing thousands commas and ``$`` ("18.00" == "18" == "$18").

Think format (LUFFY rule)
-------------------------
When on: prepend ``<think>\\n`` to the response unless it starts with ``<think>``,
require ``</think>`` and grade only the text after the LAST ``</think>``; no
``</think>`` -> score 0, pred "".  Decision, first one that applies:

1. ``kwargs["think_format"]`` (``reward_kwargs`` of the run) when not None -- an
   explicit run-level switch, both ways;
2. ``extra_info["think_format"]`` when present and not None;
3. ``extra_info["template"]``: ``"luffy_think"`` -> on, any other value -> off
   (the data_prep converters record the template of every row);
4. ``THINK_FORMAT_DEFAULT[source]`` -- False for every source.

Default OFF because LUFFY's own parquet files (e.g. ``valid.parquet``) carry no
template marker and the same files are graded with and without a think chat
template; turning it on silently would score 0 everything generated by a model
whose chat template does not open ``<think>``.  Set it per row (converter
``--template luffy_think``) or per run (``reward_kwargs.think_format=true``).

Time bound (design)
-------------------
math-verify (sympy) can hang on short inputs: ``\\boxed{10^{10^{10}}}`` never
returns (a C-level big-integer power that no Python signal can interrupt), and
its own ``parsing_timeout``/``timeout_seconds`` use ``signal.alarm``, which raises
``ValueError`` outside the main thread (where verl calls us).  Therefore:

* Cheap guards in-process, before any sympy work: extracted answers longer than
  ``MAX_ANSWER_CHARS`` or with bracket nesting deeper than ``MAX_NESTING`` score 0
  immediately; extraction is linear-time (no nested quantifiers; the multiple-choice
  box scan is capped at 400 chars per box); GSM8K and multiple-choice grading never
  touch sympy and need no time bound.
* ``timeout_mode="process"`` (default): every math-verify comparison runs in a
  small pool of long-lived worker subprocesses (``python <this file>`` speaking
  JSON lines over pipes; started lazily, 0.5-1 s each, at most ``max_workers`` per
  process, shared by all threads).  The caller waits with ``poll`` (works in any
  thread) for at most ``timeout_s`` (default 5 s); on expiry the worker is
  SIGKILLed, the answer scores 0 and a fresh worker is started on the next call.
  Inside the worker, math-verify's signal timeouts are disabled and an
  ``RLIMIT_CPU`` budget per request makes the kernel kill a worker whose parent
  died mid-request.  Results (including timeouts) are memoised per process
  (``_CACHE_SIZE`` entries), so repeated identical rollouts cost one call.
  Bound per call: ``timeout_s`` + queueing when more threads than workers
  grade at once (+ up to ``STARTUP_TIMEOUT_S`` the first time a worker starts).
* ``timeout_mode="inline"``: math-verify in the calling process (no IPC, no
  extra processes).  In the main thread math-verify's own signal timeouts are
  used; in other threads they are disabled (they would raise), so only the
  guards protect.  NOT a hard bound -- for debugging / trusted input only.
* If worker processes cannot be started, the call falls back to ``inline``
  (a warning is logged; starting workers is retried after 60 s).

Configuration: kwargs ``timeout_s``, ``timeout_mode``, ``max_workers``,
``answer_extraction`` (or environment ``SRFT_REWARD_TIMEOUT_S``,
``SRFT_REWARD_TIMEOUT_MODE``, ``SRFT_REWARD_MAX_WORKERS``,
``SRFT_REWARD_ANSWER_EXTRACTION``); ``shortcuts=False`` forces math-verify even for
identical strings and for two plain integers (used by the tests and the benchmark).
Unknown kwargs (e.g. verl's ``reward_router_address``) are ignored.

``answer_extraction`` (math sources only; GSM8K and multiple choice have their own
rules above):

* ``"luffy"`` (default): the last non-empty ``\\boxed{}`` of the answer region, else
  math-verify's default extraction of the answer region (LUFFY's
  ``reward_impl_version=3``, ``luffy/verl/verl/mix_src/math_verify_reward.py``).  The
  fallback parse runs in the worker processes like every math-verify call (same
  ``timeout_s``); answer regions without a digit, ``$``, ``\\`` or ``[`` skip it
  (math-verify cannot extract anything from them).
* ``"boxed"``: the last non-empty ``\\boxed{}`` only (the behaviour before the
  fallback existed).

Any other value raises ``ValueError``.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from decimal import Decimal, InvalidOperation
from typing import Any

logger = logging.getLogger(__name__)


def _load_extract():
    """The shared answer-extraction layer, ``recipe_srft/grading/extract.py``.

    Imported normally when this file is ``recipe_srft.reward``; loaded from the sibling file by
    path otherwise (verl loads this file by path, the grading workers run it as a script), so the
    reward and its extraction always come from the same checkout.
    """
    if __name__ == "recipe_srft.reward":
        from recipe_srft.grading import extract

        return extract
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grading", "extract.py")
    name = f"_srft_grading_extract_{hashlib.sha1(path.encode()).hexdigest()[:12]}"
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not os.path.isfile(path):
        raise ImportError(f"recipe_srft.reward: the answer-extraction layer {path} is missing (keep "
                          "reward.py next to its grading/ folder)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


_ex = _load_extract()

__all__ = [
    "compute_score",
    "extract_last_boxed",
    "extract_choice_letter",
    "extract_gsm8k_number",
    "resolve_source",
    "KNOWN_SOURCES",
    "THINK_FORMAT_DEFAULT",
]

# --------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------

MATH, MULTIPLE_CHOICE, GSM8K = "math", "multiple_choice", "gsm8k"

#: canonical source name -> grader family
SOURCE_FAMILY: dict[str, str] = {
    "aime": MATH,
    "aime24": MATH,
    "amc": MATH,
    "amc23": MATH,
    "math": MATH,
    "math500": MATH,
    "minerva": MATH,
    "olympiad_bench": MATH,
    "openr1": MATH,
    "numina": MATH,
    "gsm8k": GSM8K,
    "demo_gsm8k": GSM8K,
    "gpqa": MULTIPLE_CHOICE,
    "arc_c": MULTIPLE_CHOICE,
    "mmlu_pro": MULTIPLE_CHOICE,
}
KNOWN_SOURCES: tuple[str, ...] = tuple(SOURCE_FAMILY)

#: Whether the LUFFY think-format rule applies when neither kwargs nor extra_info decide.
THINK_FORMAT_DEFAULT: dict[str, bool] = {name: False for name in SOURCE_FAMILY}

# (substring, canonical) tried in order on the normalised name when no exact match.
_SUBSTRING_RULES: tuple[tuple[str, str], ...] = (
    ("demo_gsm8k", "demo_gsm8k"),
    ("gsm8k", "gsm8k"),
    ("gpqa", "gpqa"),
    ("mmlu_pro", "mmlu_pro"),
    ("mmlupro", "mmlu_pro"),
    ("arc_c", "arc_c"),
    ("arc_challenge", "arc_c"),
    ("ai2_arc", "arc_c"),
    ("aime24", "aime24"),
    ("aime", "aime"),
    ("amc23", "amc23"),
    ("amc", "amc"),
    ("minerva", "minerva"),
    ("olympiad", "olympiad_bench"),
    ("openr1", "openr1"),
    ("open_r1", "openr1"),
    ("numina", "numina"),
    ("math500", "math500"),
    ("math_500", "math500"),
    ("math", "math"),
)

_resolve_cache: dict[str, str] = {}


def _norm_name(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def resolve_source(data_source: Any) -> str:
    """Canonical source name for ``data_source``; ``ValueError`` when unknown."""
    key = data_source if isinstance(data_source, str) else str(data_source)
    hit = _resolve_cache.get(key)
    if hit is not None:
        return hit
    full = _norm_name(key)
    base = full.rsplit("/", 1)[-1]
    found = None
    for cand in (full, base):
        if cand in SOURCE_FAMILY:
            found = cand
            break
    if found is None:
        for sub, canonical in _SUBSTRING_RULES:
            if sub in full:
                found = canonical
                break
    if found is None:
        raise ValueError(
            f"recipe_srft.reward: unknown data_source {data_source!r}; known sources: "
            f"{', '.join(KNOWN_SOURCES)} (matched case-insensitively, also as a substring, "
            "e.g. 'openai/gsm8k' -> gsm8k, 'HuggingFaceH4/MATH-500' -> math500)"
        )
    if len(_resolve_cache) < 4096:
        _resolve_cache[key] = found
    return found


# --------------------------------------------------------------------------------------
# guards and configuration
# --------------------------------------------------------------------------------------

ANSWER_EXTRACTIONS = _ex.ANSWER_EXTRACTIONS
DEFAULT_ANSWER_EXTRACTION = _ex.DEFAULT_ANSWER_EXTRACTION

#: Extracted answers longer than this score 0 without being parsed.
MAX_ANSWER_CHARS = 1500
#: Extracted answers with a deeper ``{([`` nesting score 0 without being parsed.
MAX_NESTING = 40
#: Longest digit string accepted as a GSM8K number.
MAX_NUMBER_DIGITS = 60

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_TIMEOUT_MODE = "process"
DEFAULT_MAX_WORKERS = max(1, min(os.cpu_count() or 1, 8))
#: How long a newly started worker may take to import math-verify.
STARTUP_TIMEOUT_S = 60.0
_CACHE_SIZE = 100_000
_TIMEOUT_MODES = ("process", "inline")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"recipe_srft.reward: environment {name}={raw!r} is not a number") from None


def _config(kwargs: dict[str, Any]) -> tuple[float, str, int, str]:
    timeout_s = kwargs.get("timeout_s")
    if timeout_s is None:
        timeout_s = _env_float("SRFT_REWARD_TIMEOUT_S", DEFAULT_TIMEOUT_S)
    try:
        timeout_s = float(timeout_s)
    except (TypeError, ValueError):
        raise ValueError(f"recipe_srft.reward: timeout_s must be a number, got {timeout_s!r}") from None
    if not timeout_s > 0 or math.isinf(timeout_s):
        raise ValueError(f"recipe_srft.reward: timeout_s must be positive and finite, got {timeout_s!r}")
    mode = kwargs.get("timeout_mode") or os.environ.get("SRFT_REWARD_TIMEOUT_MODE") or DEFAULT_TIMEOUT_MODE
    if mode not in _TIMEOUT_MODES:
        raise ValueError(f"recipe_srft.reward: timeout_mode must be one of {_TIMEOUT_MODES}, got {mode!r}")
    workers = kwargs.get("max_workers")
    if workers is None:
        workers = _env_float("SRFT_REWARD_MAX_WORKERS", DEFAULT_MAX_WORKERS)
    try:
        workers_i = int(workers)
    except (TypeError, ValueError):
        raise ValueError(f"recipe_srft.reward: max_workers must be an integer, got {workers!r}") from None
    if workers_i < 1:
        raise ValueError(f"recipe_srft.reward: max_workers must be >= 1, got {workers!r}")
    extraction = (kwargs.get("answer_extraction") or os.environ.get("SRFT_REWARD_ANSWER_EXTRACTION")
                  or DEFAULT_ANSWER_EXTRACTION)
    if extraction not in ANSWER_EXTRACTIONS:
        raise ValueError(f"recipe_srft.reward: answer_extraction must be one of {ANSWER_EXTRACTIONS}, "
                         f"got {extraction!r}")
    return timeout_s, mode, workers_i, extraction


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
# math-verify comparison (runs in a worker process or inline)
# --------------------------------------------------------------------------------------

_MV = None  # (parse, verify, extraction configs), imported lazily: sympy is slow to import


def _mv():
    global _MV
    if _MV is None:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        _MV = (parse, verify, (LatexExtractionConfig(), ExprExtractionConfig()))
    return _MV


_gold_parsed: dict[str, list] = {}  # a ground truth is graded against many rollouts: parse it once


def _parse_gold(gold: str, signal_timeout: int | None) -> list:
    """math-verify parse of a cleaned ground truth wrapped as ``$...$`` (memoised; [] when unparsable)."""
    parse, _, cfg = _mv()
    g = _gold_parsed.get(gold)
    if g is None:
        g = parse(f"${gold}$", extraction_config=cfg, parsing_timeout=signal_timeout)
        if not g:
            return g
        if len(_gold_parsed) >= 4096:
            _gold_parsed.clear()
        _gold_parsed[gold] = g
    return g


def _mv_equal(gold: str, pred: str, signal_timeout: int | None) -> bool:
    """math-verify equivalence of two cleaned answers (each wrapped as ``$...$``)."""
    parse, verify, cfg = _mv()
    g = _parse_gold(gold, signal_timeout)
    if not g:
        return False
    p = parse(f"${pred}$", extraction_config=cfg, parsing_timeout=signal_timeout)
    if not p:
        return False
    return bool(verify(g, p, timeout_seconds=signal_timeout))


def _mv_equal_text(gold: str, text: str, signal_timeout: int | None) -> tuple[bool, str]:
    """LUFFY's comparison: math-verify's default extraction of ``text`` (unwrapped) against the gold.

    Returns ``(equal, extracted string)``.
    """
    _, verify, _ = _mv()
    p, extracted = _ex.math_verify_extract(text, signal_timeout)
    if not p:
        return False, extracted
    g = _parse_gold(gold, signal_timeout)
    if not g:
        return False, extracted
    return bool(verify(g, p, timeout_seconds=signal_timeout)), extracted


def _mv_call(gold: str, pred: str, text_mode: bool, signal_timeout: int | None) -> tuple[bool, str]:
    """One comparison as the worker protocol names it: ``text_mode`` = ``pred`` is a whole answer region."""
    if text_mode:
        return _mv_equal_text(gold, pred, signal_timeout)
    return _mv_equal(gold, pred, signal_timeout), ""


# --------------------------------------------------------------------------------------
# worker processes
# --------------------------------------------------------------------------------------

_THIS_FILE = os.path.abspath(__file__)
_WORKER_RUN_NAME = "__srft_reward_worker__"
_WORKER_BOOT = (
    "import sys, runpy; sys.path = [p for p in sys.path if p not in ('', '.')]; "
    f"runpy.run_path(sys.argv[1], run_name={_WORKER_RUN_NAME!r})"
)


class _WorkerDied(Exception):
    pass


class _Worker:
    """One ``python reward.py`` subprocess answering JSON-line requests."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_BOOT, _THIS_FILE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            close_fds=True,
            bufsize=0,
        )
        self.fd = self.proc.stdout.fileno()
        # poll, not select: select() fails for descriptors >= 1024 (common in Ray workers)
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.buf = b""
        self.next_id = 0
        try:
            ready = self._read_line(STARTUP_TIMEOUT_S)
        except BaseException:
            self.kill()
            raise
        if ready is None or json.loads(ready).get("ready") is not True:
            self.kill()
            raise _WorkerDied("worker did not start")

    def _read_line(self, timeout: float) -> bytes | None:
        """One line, or None on timeout; ``_WorkerDied`` on EOF."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not self.poller.poll(max(1, int(math.ceil(left * 1000)))):
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise _WorkerDied("worker exited")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def request(self, gold: str, pred: str, timeout: float, text_mode: bool = False) -> tuple[bool, str] | None:
        """``(equal, extracted string)``, or None when the worker timed out (it is killed then)."""
        self.next_id += 1
        rid = self.next_id
        req = {"id": rid, "g": gold, "p": pred, "cpu": timeout + 2.0}
        if text_mode:
            req["t"] = True
        msg = json.dumps(req) + "\n"
        try:
            self.proc.stdin.write(msg.encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise _WorkerDied(str(exc)) from exc
        line = self._read_line(timeout)
        if line is None:
            self.kill()
            return None
        reply = json.loads(line)
        if reply.get("id") != rid:
            raise _WorkerDied("out-of-sync reply")
        return bool(reply.get("ok")), str(reply.get("x") or "")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except Exception:
            pass
        self.close_pipes()

    def close_pipes(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:
                pass


class _Pool:
    """Worker subprocesses shared by the threads of one process."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.idle: list[_Worker] = []
        self.count = 0  # started or starting workers
        self.spawn_failed_at = -math.inf

    def acquire(self, max_workers: int) -> _Worker | None:
        """A worker, or None when workers cannot be started (caller goes inline)."""
        with self.cond:
            while True:
                while self.idle:
                    w = self.idle.pop()
                    if w.alive():
                        return w
                    w.kill()
                    self.count -= 1
                if time.monotonic() - self.spawn_failed_at < 60.0:
                    return None
                if self.count < max_workers:
                    self.count += 1
                    break
                self.cond.wait()
        try:
            return _Worker()
        except Exception as exc:
            with self.cond:
                self.count -= 1
                self.spawn_failed_at = time.monotonic()
                self.cond.notify()
            logger.warning("recipe_srft.reward: cannot start a grading worker (%s); grading inline", exc)
            return None

    def release(self, w: _Worker, healthy: bool) -> None:
        with self.cond:
            if healthy:
                self.idle.append(w)
            else:
                self.count -= 1
            self.cond.notify()

    def shutdown(self) -> None:
        with self.cond:
            workers, self.idle = self.idle, []
            self.count -= len(workers)
        for w in workers:
            w.close_pipes()  # EOF on stdin: the worker exits by itself
            try:
                w.proc.wait(timeout=2)
            except Exception:
                w.kill()

    def forget_after_fork(self) -> None:
        """In a forked child: the workers belong to the parent; drop our copies of their pipes."""
        for w in self.idle:
            try:
                os.close(w.proc.stdin.fileno())
            except Exception:
                pass
            try:
                os.close(w.fd)
            except Exception:
                pass
        self.__init__()


_POOL = _Pool()
atexit.register(_POOL.shutdown)


def _serve() -> None:  # pragma: no cover - runs in the worker subprocess
    """Worker main loop: one JSON request per stdin line, one JSON reply per stdout line."""
    import resource

    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # stray prints of libraries go to stderr, never into the protocol
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    try:
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    except (OSError, ValueError):
        hard = None
    _mv_equal("1", "1", None)  # warm up imports and caches
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if hard is not None:
            used = resource.getrusage(resource.RUSAGE_SELF)
            soft = int(used.ru_utime + used.ru_stime + float(req.get("cpu", 10.0))) + 1
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            try:
                resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
            except (OSError, ValueError):
                pass
        try:
            ok, extracted = _mv_call(req["g"], req["p"], bool(req.get("t")), None)
        except Exception:
            ok, extracted = False, ""
        reply = {"id": req.get("id"), "ok": bool(ok)}
        if extracted:
            reply["x"] = extracted
        out.write(json.dumps(reply) + "\n")
        out.flush()


# --------------------------------------------------------------------------------------
# memo of math-verify results
# --------------------------------------------------------------------------------------

# (gold, pred, text mode) -> (equal, extracted string); a whole answer region is keyed by its digest
_cache: OrderedDict[tuple[str, str, bool], tuple[bool, str]] = OrderedDict()
_cache_lock = threading.Lock()


def _clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _after_fork_in_child() -> None:
    global _cache_lock
    _cache_lock = threading.Lock()  # another thread may have held it at fork time
    _POOL.forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _math_equal(gold: str, pred: str, timeout_s: float, mode: str, max_workers: int) -> bool:
    """math-verify equivalence of two cleaned answers, time-bounded and memoised."""
    return _bounded_mv(gold, pred, False, timeout_s, mode, max_workers)[0]


def _math_equal_text(gold: str, text: str, timeout_s: float, mode: str, max_workers: int) -> tuple[bool, str]:
    """LUFFY's fallback: math-verify extracts the answer from ``text`` itself; ``(equal, extracted)``."""
    return _bounded_mv(gold, text, True, timeout_s, mode, max_workers)


def _bounded_mv(gold: str, pred: str, text_mode: bool, timeout_s: float, mode: str,
                max_workers: int) -> tuple[bool, str]:
    # answer regions can be long: memoise them by digest, not by value
    key = (gold, hashlib.blake2b(pred.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
           if text_mode else pred, text_mode)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    result: tuple[bool, str] | None = None
    if mode == "process":
        w = _POOL.acquire(max_workers)
        if w is not None:
            healthy = False
            try:
                result = w.request(gold, pred, timeout_s, text_mode)
                healthy = result is not None
                if result is None:
                    logger.warning("recipe_srft.reward: math-verify exceeded %.1fs; scored 0", timeout_s)
                    result = (False, "")
            except Exception:  # worker died (e.g. killed by its CPU limit) or garbled reply
                w.kill()
                result = (False, "")
            finally:
                _POOL.release(w, healthy)
    if result is None:  # inline mode, or no worker could be started
        in_main = threading.current_thread() is threading.main_thread()
        try:
            result = _mv_call(gold, pred, text_mode, max(1, int(math.ceil(timeout_s))) if in_main else None)
        except Exception:
            result = (False, "")
    with _cache_lock:
        _cache[key] = result
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


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


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------


def _gt_list(ground_truth: Any) -> list[str]:
    if ground_truth is None:
        raise ValueError("recipe_srft.reward: ground_truth is None")
    if isinstance(ground_truth, bytes):
        ground_truth = ground_truth.decode("utf-8", "replace")
    if isinstance(ground_truth, str):
        return [ground_truth]
    if isinstance(ground_truth, bool):
        raise ValueError(f"recipe_srft.reward: unsupported ground_truth {ground_truth!r}")
    if isinstance(ground_truth, int):
        return [str(ground_truth)]
    if isinstance(ground_truth, float):
        if not math.isfinite(ground_truth):
            raise ValueError(f"recipe_srft.reward: unsupported ground_truth {ground_truth!r}")
        return [str(int(ground_truth))] if ground_truth.is_integer() else [repr(ground_truth)]
    if hasattr(ground_truth, "tolist"):  # numpy scalar / array from a parquet column
        ground_truth = ground_truth.tolist()
        if not isinstance(ground_truth, (list, tuple)):
            return _gt_list(ground_truth)
    if isinstance(ground_truth, (list, tuple)) and ground_truth:
        out: list[str] = []
        for g in ground_truth:
            out.extend(_gt_list(g))
        return out
    raise ValueError(f"recipe_srft.reward: unsupported ground_truth {ground_truth!r}")


def _think_format(source: str, extra_info: Any, kwargs: dict[str, Any]) -> bool:
    explicit = kwargs.get("think_format")
    if explicit is not None:
        return bool(explicit)
    if isinstance(extra_info, dict):
        row = extra_info.get("think_format")
        if row is not None:
            return bool(row)
        template = extra_info.get("template")
        if template is not None:
            return template == "luffy_think"
    return THINK_FORMAT_DEFAULT.get(source, False)


def compute_score(
    data_source: Any,
    solution_str: Any,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Grade one response; see the module docstring.  Returns ``{"score", "acc", "pred"}``."""
    source = resolve_source(data_source)
    family = SOURCE_FAMILY[source]
    gts = _gt_list(ground_truth)
    timeout_s, mode, max_workers, extraction = _config(kwargs)
    opts = {
        "timeout_s": timeout_s,
        "mode": mode,
        "max_workers": max_workers,
        "extraction": extraction,
        "shortcuts": kwargs.get("shortcuts", True) is not False,
    }
    think = _think_format(source, extra_info if isinstance(extra_info, dict) else None, kwargs)
    try:
        if isinstance(solution_str, bytes):
            solution_str = solution_str.decode("utf-8", "replace")
        elif not isinstance(solution_str, str):
            solution_str = "" if solution_str is None else str(solution_str)
        region = _ex.answer_region(solution_str, think)
        if region is None:
            score, pred = 0.0, ""
        else:
            score, pred = _GRADERS[family](region, gts, opts)
    except Exception:  # never fail a training step on model output
        logger.warning("recipe_srft.reward: grading error; scored 0", exc_info=True)
        score, pred = 0.0, ""
    return {"score": float(score), "acc": float(score), "pred": pred}


if __name__ == _WORKER_RUN_NAME:  # started by _Worker
    _serve()
