"""The README's main job, end to end: SmolLM2-135M gets better at the demo task with SRFT on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.ray
def test_cpu_demo_shows_a_gain(tmp_path):
    from recipe_srft.experiments.smollm2 import SmolLM2Unavailable, ensure_smollm2

    cache = os.environ.get("SRFT_CACHE", str(REPO / ".cache"))
    try:
        ensure_smollm2(cache)
    except SmolLM2Unavailable as exc:
        pytest.skip(f"SmolLM2 not obtainable (no network and nothing cached): {exc}")
    out = tmp_path / "demo"
    # the README's command with a shorter schedule (8 steps instead of 10) to keep CI short
    cmd = ["bash", str(REPO / "run_scripts" / "cpu_demo.sh"), "--steps", "8", "--cache", cache]
    env = dict(os.environ, OUT=str(out), PY=sys.executable)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prompts"] == 64
    # base SmolLM2 solves ~8% of these; 10 steps gave +28 pts [+15, +41] (README); 8 steps must still help
    assert summary["trained_acc"] > summary["base_acc"], summary
    assert summary["diff_ci95"][1] > 0
    assert (out / "summary.md").read_text().count("|") > 10
    assert (out / "train" / "ckpt" / "global_step_8" / "actor" / "huggingface" / "config.json").exists()


def test_compare_reuses_only_a_finished_run_with_the_same_overrides(tmp_path):
    """An interrupted comparison resumes: a preset is skipped only if it finished with identical overrides."""
    from recipe_srft.experiments.compare import RUN_STAMP, finished_run

    overrides = ["+runtime=cpu", "srft.preset=grpo", "trainer.total_training_steps=3"]
    assert not finished_run(tmp_path, 3, overrides)                    # nothing there
    (tmp_path / "ckpt" / "global_step_3").mkdir(parents=True)
    assert not finished_run(tmp_path, 3, overrides)                    # checkpoint of a run that never stamped
    (tmp_path / RUN_STAMP).write_text(json.dumps(overrides))
    assert finished_run(tmp_path, 3, overrides)
    assert not finished_run(tmp_path, 4, overrides)                    # a longer budget needs its own run
    assert not finished_run(tmp_path, 3, overrides[:-1] + ["trainer.total_training_steps=4"])
