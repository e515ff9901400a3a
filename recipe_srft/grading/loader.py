"""Load the grading package from its folder by path, under a private name, and run a grading worker.

verl loads ``recipe_srft/reward.py`` by file path inside its reward workers, where ``recipe_srft`` may
not be importable (or may be another checkout), and the reward's grading worker subprocesses start
from a file, not a module name.  Both reach the package through this file:

* :func:`package` executes ``__init__.py`` of this folder as a package named
  ``_srft_grading_<sha1 of the folder>`` (``__path__`` = this folder) and registers it in
  ``sys.modules``; :func:`load` then imports a module of it (``load("score")``) with the ordinary
  import machinery.  The modules of the package import each other relatively (``from . import
  extract``), so the same files work as ``recipe_srft.grading.*`` and under the private name, and
  everything they define lives in ``sys.modules`` (pickling, the pool's fork handlers).  Nothing is
  added to ``sys.path``; the package always comes from this folder, i.e. from the checkout of the
  file that loaded it.
* Run as a script under ``WORKER_RUN_NAME`` (``runpy.run_path(<this file>, run_name=...)``, what
  :mod:`.pool` starts), it loads the package that way and serves grading requests
  (``pool._serve``) until its stdin closes.

Standard library only, no relative imports: ``reward.py`` loads this one file by path itself.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import threading
from types import ModuleType

__all__ = ["HERE", "WORKER_RUN_NAME", "load", "package", "private_name"]

#: This folder: the grading package.
HERE = os.path.dirname(os.path.abspath(__file__))
#: ``__name__`` of this file when it runs as a grading worker (see :mod:`.pool`).
WORKER_RUN_NAME = "__srft_reward_worker__"

_lock = threading.Lock()


def private_name(directory: str = HERE) -> str:
    """The module name the package of ``directory`` is loaded under."""
    return "_srft_grading_" + hashlib.sha1(os.path.abspath(directory).encode()).hexdigest()[:12]


def package(directory: str = HERE) -> ModuleType:
    """The grading package of ``directory`` under its private name (loaded once per process)."""
    name = private_name(directory)
    with _lock:
        pkg = sys.modules.get(name)
        if pkg is not None:
            return pkg
        init = os.path.join(os.path.abspath(directory), "__init__.py")
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[os.path.dirname(init)])
        if spec is None or spec.loader is None or not os.path.isfile(init):
            raise ImportError(f"recipe_srft.reward: the grading package {directory} is missing (keep reward.py "
                              "next to its grading/ folder)")
        pkg = importlib.util.module_from_spec(spec)
        sys.modules[name] = pkg
        try:
            spec.loader.exec_module(pkg)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return pkg


def load(module: str, directory: str = HERE) -> ModuleType:
    """``<private package>.<module>`` (``load("score").compute_score``)."""
    return importlib.import_module(f"{package(directory).__name__}.{module}")


if __name__ == WORKER_RUN_NAME:  # pragma: no cover - a grading worker subprocess (started by pool._Worker)
    load("pool")._serve()
