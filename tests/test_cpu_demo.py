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


def test_seed_interval_uses_student_t_quantiles():
    """The 95% interval over seeds: T975 are the 0.975 quantiles of Student's t (checked by integrating its
    density), and the interval is mean +- t * sd / sqrt(K)."""
    import math

    from recipe_srft.experiments.compare import T975, seed_interval

    def t_cdf(x: float, df: int, steps: int = 20000) -> float:
        c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
        pdf = lambda u: c * (1 + u * u / df) ** (-(df + 1) / 2)  # noqa: E731
        h = x / steps
        simpson = pdf(0) + pdf(x) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, steps))
        return 0.5 + simpson * h / 3

    for df, q in T975.items():
        assert t_cdf(q, df) == pytest.approx(0.975, abs=2e-4), df
    values = [0.30, 0.40, 0.35]
    s = seed_interval(values)
    mean = sum(values) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    assert s["mean"] == pytest.approx(mean)
    assert (s["low"], s["high"]) == pytest.approx((mean - 4.303 * sd / math.sqrt(3), mean + 4.303 * sd / math.sqrt(3)))
    assert seed_interval([0.5])["low"] is None  # one seed: no interval


def test_compare_report_and_settings_key():
    """results.md lists every method with its seeds; records made with other budget settings are not mixed in."""
    from types import SimpleNamespace

    from recipe_srft.experiments.compare import report, settings_key

    base = dict(steps=6, prompts=8, n=4, lr=5e-5, train_rows=256, val_rows=64, max_prompt_length=128,
                max_new_tokens=48, sft_rl_split=0.5, sft_nproc=2, rollout_engine="vllm", precision="bf16")
    assert settings_key(SimpleNamespace(**base)) == settings_key(SimpleNamespace(**base))
    for changed in (dict(steps=8), dict(rollout_engine="hf"), dict(precision="fp32")):
        assert settings_key(SimpleNamespace(**base)) != settings_key(SimpleNamespace(**dict(base, **changed))), changed
    rec = lambda m, s, acc, ent: dict(method=m, seed=s, heldout_acc=acc, heldout_ci95=[acc - 0.1, acc + 0.1],  # noqa: E731
                                      base_acc=0.078, mean_entropy=ent)
    table = report([rec("srft", 0, 0.30, 0.9), rec("srft", 1, 0.40, 1.1), rec("sft", 0, 0.35, None)],
                   ["srft", "grpo", "sft"])
    lines = table.splitlines()
    assert lines[2].startswith("| base | | 7.8%")
    assert lines[3].startswith("| `srft` | 2 | 35.0% | [") and "s0: 30.0 [20.0, 40.0]; s1: 40.0" in lines[3]
    assert lines[3].endswith("| 1.000 |")
    assert lines[4].startswith("| `sft` | 1 | 35.0% |  |") and "n/a (no rollouts)" in lines[4]
    assert "grpo" not in table  # no record, no row


def test_entropy_curves_average_seeds_per_update_and_shift_sft_rl_past_its_sft_updates(tmp_path):
    """The rollout-entropy figure reads srft/onpolicy/entropy from each run's console log (not verl's actor/entropy,
    which mixes in the demonstrations); sft_rl's GRPO steps 1..2 are updates 3..4 after its 2 SFT updates."""
    from recipe_srft.experiments.compare import entropy_curves, plot_entropy_curves

    def log(path, values):
        path.parent.mkdir(parents=True)
        path.write_text("".join(f"(TaskRunnerV1 pid=1) step:{i} - actor/entropy:9.0 - srft/onpolicy/entropy:{v}\n"
                                for i, v in enumerate(values, start=1)))

    log(tmp_path / "srft" / "seed0" / "train.log", [1.0, 0.5])
    log(tmp_path / "srft" / "seed1" / "train.log", [2.0, 0.25])
    log(tmp_path / "sft_rl" / "seed0" / "stage2_grpo" / "train.log", [0.75, 0.5])
    records = [dict(method="srft", seed=0), dict(method="srft", seed=1),
               dict(method="sft_rl", seed=0, stages={"sft": 2, "grpo": 2}), dict(method="sft", seed=0)]
    curves = entropy_curves(records, tmp_path)
    assert curves == {"srft": [(1, 1.5, 1.0, 2.0, 2), (2, 0.375, 0.25, 0.5, 2)],
                      "sft_rl": [(3, 0.75, 0.75, 0.75, 1), (4, 0.5, 0.5, 0.5, 1)]}
    assert plot_entropy_curves(curves, tmp_path / "entropy.png", "t").stat().st_size > 1000


def test_compare_two_counts_per_seed_differences_and_identical_responses(tmp_path):
    from recipe_srft.experiments.compare import compare_two, pair_report

    def samples(method, seed, rows):
        d = tmp_path / method / f"seed{seed}" / "eval"
        d.mkdir(parents=True)
        d.joinpath("samples.jsonl").write_text("".join(
            json.dumps({"source": "gsm8k", "prompt_index": i, "score": sc, "response": r}) + "\n"
            for i, (sc, r) in enumerate(rows)))

    samples("srft", 0, [(1, "x"), (0, "y"), (1, "z"), (0, "w")])
    samples("srft_code", 0, [(1, "x"), (1, "q"), (0, "r"), (1, "s")])  # +2 -1 of 4: diff 0.25, 1 identical
    samples("srft", 1, [(1, "x"), (0, "y")])
    samples("srft_code", 1, [(1, "x"), (0, "y")])  # the same greedy outputs
    result = compare_two(tmp_path, "srft", "srft_code", [0, 1])
    assert result["per_seed"] == [
        dict(seed=0, problems=4, diff=0.25, only_a=1, only_b=2, identical_responses=1),
        dict(seed=1, problems=2, diff=0.0, only_a=0, only_b=0, identical_responses=2)]
    over = result["over_seeds"]
    assert over["mean"] == 0.125 and over["seeds"] == 2
    # t(1) = 12.706, sd of (0.25, 0) = 0.1768, half = 12.706 * 0.1768 / sqrt(2) = 1.588
    assert abs(over["high"] - (0.125 + 12.706 * 0.25 / 2)) < 1e-9
    text = pair_report(result)
    assert "| 0 | 4 | +25.0 | 1 | 2 | 1 |" in text and "| 1 | 2 | +0.0 | 0 | 0 | 2 |" in text
    assert "Mean difference +12.5 points over 2 seeds, 95% interval over seeds [-146.3, +171.3]" in text
