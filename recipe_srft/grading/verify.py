"""The math-verify comparisons themselves, unbounded: :mod:`.pool` runs them in a worker or inline.

* :func:`_mv_equal`: two cleaned answers, each wrapped as ``$...$``, ``math_verify.parse`` +
  ``math_verify.verify``;
* :func:`_mv_equal_text`: LUFFY's fallback, math-verify's own default extraction of a whole answer
  region (:func:`.extract.math_verify_extract`) against the ground truth;
* :func:`_mv_call`: one request as the worker protocol names it.

A ground truth is parsed once per process (memo): it is graded against many rollouts.
``signal_timeout`` is math-verify's own ``signal.alarm`` timeout, usable in the main thread only
(None: off).  math-verify (sympy, slow to import) is imported on the first call.
"""

from __future__ import annotations

from . import extract as _ex

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
