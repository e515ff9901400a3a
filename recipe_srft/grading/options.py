"""The reward's options: ``reward_kwargs`` of the run, else ``SRFT_REWARD_*`` environment variables.

* ``timeout_s`` (``SRFT_REWARD_TIMEOUT_S``): seconds one math-verify call may take (default 5); then
  the answer scores 0 (:mod:`.pool`);
* ``timeout_mode`` (``SRFT_REWARD_TIMEOUT_MODE``): ``process`` (default: worker subprocesses, a hard
  bound) or ``inline`` (:mod:`.pool`);
* ``max_workers`` (``SRFT_REWARD_MAX_WORKERS``): worker subprocesses per process (default
  ``min(cpu_count, 8)``);
* ``answer_extraction`` (``SRFT_REWARD_ANSWER_EXTRACTION``): ``luffy`` (default) or ``boxed``, below;
* ``shortcuts`` (kwarg only): ``False`` forces math-verify even for identical strings and for two
  plain integers (used by the tests and the benchmark);
* ``think_format`` (kwarg only): the run-level think switch, decided in :mod:`.score`.

A kwarg that is None counts as unset.  Unknown kwargs (e.g. verl's ``reward_router_address``) are
ignored; a bad value raises ``ValueError``.

``answer_extraction`` (math sources only; GSM8K and multiple choice have their own rules, see
:mod:`.graders`):

* ``"luffy"`` (default): the last non-empty ``\\boxed{}`` of the answer region, else math-verify's
  default extraction of the answer region (LUFFY's ``reward_impl_version=3``,
  ``luffy/verl/verl/mix_src/math_verify_reward.py``).  The fallback parse runs in the worker
  processes like every math-verify call (same ``timeout_s``); answer regions without a digit, ``$``,
  ``\\`` or ``[`` skip it (math-verify cannot extract anything from them).
* ``"boxed"``: the last non-empty ``\\boxed{}`` only (the behaviour before the fallback existed).

Any other value raises ``ValueError``.  Standard library only.
"""

from __future__ import annotations

import math
import os
from typing import Any

from . import extract as _ex

__all__ = ["ANSWER_EXTRACTIONS", "DEFAULT_ANSWER_EXTRACTION", "DEFAULT_MAX_WORKERS", "DEFAULT_TIMEOUT_MODE",
           "DEFAULT_TIMEOUT_S", "TIMEOUT_MODES", "parse_options"]

ANSWER_EXTRACTIONS = _ex.ANSWER_EXTRACTIONS
DEFAULT_ANSWER_EXTRACTION = _ex.DEFAULT_ANSWER_EXTRACTION

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_TIMEOUT_MODE = "process"
DEFAULT_MAX_WORKERS = max(1, min(os.cpu_count() or 1, 8))
TIMEOUT_MODES = ("process", "inline")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"recipe_srft.reward: environment {name}={raw!r} is not a number") from None


def parse_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The grading options of one call: ``{"timeout_s", "mode", "max_workers", "extraction", "shortcuts"}``.

    ``ValueError`` on a bad value; ``think_format`` is decided per row by :mod:`.score`.
    """
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
    if mode not in TIMEOUT_MODES:
        raise ValueError(f"recipe_srft.reward: timeout_mode must be one of {TIMEOUT_MODES}, got {mode!r}")
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
    return {
        "timeout_s": timeout_s,
        "mode": mode,
        "max_workers": workers_i,
        "extraction": extraction,
        "shortcuts": kwargs.get("shortcuts", True) is not False,
    }
