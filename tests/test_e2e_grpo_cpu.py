"""End to end: verl's own ``python -m verl.trainer.main_ppo`` runs GRPO on the CPU runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipe_srft.tools.console_metrics import read_console_metrics
from recipe_srft.cpu.smoke import run_trainer, smoke_overrides
from recipe_srft.experiments.smoke_data import write_smoke_data

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.ray
def test_main_ppo_grpo_two_steps_on_cpu(tiny_model_dir, tmp_path):
    train, val = write_smoke_data(tmp_path / "data", n_train=8, n_val=4)
    out = tmp_path / "run"
    # verl's stock GRPO on the HF fallback engine (stock GRPO on verl's vLLM rollout: the sft_rl stage 2 of
    # tests/test_sft_rl_cpu.py)
    overrides = smoke_overrides(str(tiny_model_dir), str(train), str(val), str(out), steps=2, rollout="hf") + [
        # a reward that varies between responses, so advantages and gradients are non-zero
        f"reward.custom_reward_function.path={FIXTURES / 'hash_reward.py'}",
        "reward.custom_reward_function.name=compute_score",
        "trainer.val_before_train=true",
    ]
    result = run_trainer(overrides, out, timeout=600, echo=False)
    log = (out / "train.log").read_text()
    assert result.returncode == 0, log[-6000:]

    steps = {}
    for row in read_console_metrics(out / "train.log"):
        steps.setdefault(row["step"], {}).update(row)
    assert {1, 2} <= set(steps), f"steps seen: {sorted(steps)}"
    for step in (1, 2):
        m = steps[step]
        # rollout (HF server) and actor (FSDP2) log-probs agree, also after the weight update of step 1
        assert m["training/rollout_probs_diff_max"] < 1e-6
        assert m["rollout_corr/log_ppl_abs_diff"] < 1e-6
        assert m["actor/grad_norm"] > 0
        assert m["response_length/mean"] > 0
    assert any(k.startswith("val-core/") for k in steps[2]), "no validation metrics at the last step"
    assert any(k.startswith("val-core/") for k in steps[0]), "no validation before training"

    ckpt = out / "ckpt"
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    actor_files = list((ckpt / "global_step_2" / "actor").rglob("*"))
    assert any(f.suffix == ".pt" and "model" in f.name for f in actor_files), actor_files
    assert any("optim" in f.name for f in actor_files), actor_files
    assert (ckpt / "global_step_2" / "data.pt").exists()
