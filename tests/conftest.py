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
