"""Rule-based reward for SRFT / LUFFY style training and evaluation: verl's custom reward function::

    reward.custom_reward_function.path=recipe_srft/reward.py
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.answer_extraction=boxed   # optional run-level options

A thin entry point: the grading is the package ``recipe_srft/grading/`` (``score.compute_score``, the
dispatch in ``sources.py``, the options in ``options.py``, the rules in ``graders.py`` and
``extract.py``, the time bound in ``pool.py``; see their docstrings).  verl calls ``compute_score``
from a non-main thread of a Ray actor and loads this file BY PATH, where ``recipe_srft`` may not be
importable: imported as ``recipe_srft.reward`` it uses ``recipe_srft.grading``; loaded otherwise it
loads the sibling ``grading/`` folder by path under a private module name (``grading/loader.py``),
so the reward always grades with the package of its own checkout.  Standard library only at import
time.  The names below are re-exported for the callers of this module (tests, data_prep, the
evaluation, the benchmark).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys


def _path_loader():
    """``grading/loader.py`` next to this file, loaded by path (once per process)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grading", "loader.py")
    name = f"_srft_grading_loader_{hashlib.sha1(path.encode()).hexdigest()[:12]}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None or not os.path.isfile(path):
            raise ImportError(f"recipe_srft.reward: the grading package loader {path} is missing (keep "
                              "reward.py next to its grading/ folder)")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules.setdefault(name, module)
    return sys.modules[name]


if __name__ == "recipe_srft.reward":
    from recipe_srft.grading import extract as _ex
    from recipe_srft.grading import graders as _graders
    from recipe_srft.grading import options as _options
    from recipe_srft.grading import pool as _pool
    from recipe_srft.grading import score as _score
    from recipe_srft.grading import sources as _sources
else:  # loaded by path (verl's reward workers, the tests)
    _ex, _graders, _options, _pool, _score, _sources = map(
        _path_loader().load, ("extract", "graders", "options", "pool", "score", "sources"))

compute_score = _score.compute_score
MATH, MULTIPLE_CHOICE, GSM8K = _sources.MATH, _sources.MULTIPLE_CHOICE, _sources.GSM8K
SOURCE_FAMILY, KNOWN_SOURCES, THINK_FORMAT_DEFAULT = (_sources.SOURCE_FAMILY, _sources.KNOWN_SOURCES,
                                                      _sources.THINK_FORMAT_DEFAULT)
resolve_source = _sources.resolve_source
ANSWER_EXTRACTIONS, DEFAULT_ANSWER_EXTRACTION = _options.ANSWER_EXTRACTIONS, _options.DEFAULT_ANSWER_EXTRACTION
DEFAULT_TIMEOUT_S, DEFAULT_TIMEOUT_MODE = _options.DEFAULT_TIMEOUT_S, _options.DEFAULT_TIMEOUT_MODE
DEFAULT_MAX_WORKERS = _options.DEFAULT_MAX_WORKERS
MAX_ANSWER_CHARS, MAX_NESTING = _graders.MAX_ANSWER_CHARS, _graders.MAX_NESTING
MAX_NUMBER_DIGITS = _graders.MAX_NUMBER_DIGITS
extract_last_boxed, extract_choice_letter = _graders.extract_last_boxed, _graders.extract_choice_letter
extract_gsm8k_number, _as_letter, _GRADERS = _graders.extract_gsm8k_number, _graders._as_letter, _graders._GRADERS
STARTUP_TIMEOUT_S, _POOL, _clear_cache, _serve = _pool.STARTUP_TIMEOUT_S, _pool._POOL, _pool._clear_cache, _pool._serve
# a grading worker runs ``python -c _WORKER_BOOT _THIS_FILE``; the file is now grading/loader.py
_WORKER_BOOT, _WORKER_RUN_NAME, _WORKER_FILE = _pool._WORKER_BOOT, _pool._WORKER_RUN_NAME, _pool._WORKER_FILE
_THIS_FILE = _WORKER_FILE

__all__ = ["compute_score", "extract_last_boxed", "extract_choice_letter", "extract_gsm8k_number",
           "resolve_source", "KNOWN_SOURCES", "THINK_FORMAT_DEFAULT"]

if __name__ == _WORKER_RUN_NAME:  # the older worker command line, run on this file: still serves
    _serve()
