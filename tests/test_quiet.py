"""recipe_srft.tools.quiet: verl's optional-engine import warnings are hidden by default and shown with
SRFT_VERL_WARNINGS=1 (the real import in a fresh interpreter, no Ray)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from recipe_srft.tools.quiet import ENGINE_WARNINGS_FILTER, SHOW_WARNINGS_ENV, quiet_verl_imports


def _import_cpu_runtime(**env) -> str:
    child = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", SHOW_WARNINGS_ENV)}
    child.update(env, VERL_PLATFORM="cpu")
    out = subprocess.run([sys.executable, "-c", "import recipe_srft.cpu, verl.workers.engine"], env=child, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stderr


def test_engine_warnings_hidden_by_default_and_shown_with_the_switch():
    assert "engine is not available" not in _import_cpu_runtime()
    shown = _import_cpu_runtime(**{SHOW_WARNINGS_ENV: "1"})
    assert "torchtitan engine is not available" in shown and "megatron engine is not available" in shown


@pytest.mark.parametrize("before, after", [
    ("", ENGINE_WARNINGS_FILTER),
    ("error::DeprecationWarning", "error::DeprecationWarning," + ENGINE_WARNINGS_FILTER),
    (ENGINE_WARNINGS_FILTER, ENGINE_WARNINGS_FILTER),
])
def test_filter_reaches_the_environment_of_child_processes(before, after):
    environ = {"PYTHONWARNINGS": before} if before else {}
    assert quiet_verl_imports(environ) is True
    assert environ["PYTHONWARNINGS"] == after


def test_switch_leaves_the_environment_alone():
    environ = {SHOW_WARNINGS_ENV: "1"}
    assert quiet_verl_imports(environ) is False
    assert "PYTHONWARNINGS" not in environ
