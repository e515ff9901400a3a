"""`run_scripts/qwen_math.sh` on the CPU (recipe_srft.cpu.gpu_script): the config is the script's own, and every key
that differs from the cluster config is listed with its reason. No Ray (the runs are in tests/test_vllm_e2e.py)."""

from __future__ import annotations

import pytest

from recipe_srft.cpu.gpu_script import CUDA_ONLY_OVERRIDES, config_changes, cpu_overrides, script_env, script_overrides

#: Keys that define the algorithm and the engine a GPU user runs: the CPU run must not touch them.
ALGORITHM_KEYS = (
    "srft.", "algorithm.", "actor_rollout_ref.actor.optim.", "actor_rollout_ref.actor.clip_ratio",
    "actor_rollout_ref.actor.entropy_coeff", "actor_rollout_ref.actor.loss_agg_mode",
    "actor_rollout_ref.actor.ppo_epochs", "actor_rollout_ref.actor.use_dynamic_bsz", "actor_rollout_ref.actor.use_kl_loss",
    "actor_rollout_ref.actor.entropy_from_logits_with_chunking", "actor_rollout_ref.rollout.temperature",
    "actor_rollout_ref.rollout.val_kwargs.", "actor_rollout_ref.rollout.name", "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz",
    "reward.custom_reward_function.path", "reward.custom_reward_function.name", "data.truncation",
    "data.filter_overlong_prompts", "trainer.val_before_train", "trainer.v1.",
)


@pytest.mark.parametrize("preset", ["srft", "luffy", "sft_rl"])
def test_every_changed_key_has_a_reason_and_the_algorithm_is_untouched(preset, tiny_model_dir, tmp_path):
    env = script_env(preset, tiny_model_dir, tmp_path / "train.parquet", tmp_path / "val.parquet", tmp_path / "out")
    gpu = script_overrides("qwen_math.sh", env)
    assert "actor_rollout_ref.rollout.name=vllm" in gpu
    changes = config_changes(gpu, cpu_overrides(gpu))
    unexplained = [c["key"] for c in changes if c["kind"] is None]
    assert not unexplained, f"keys changed on the CPU without a reason (docs/config.md 'CPU runtime keys'): {unexplained}"
    touched = [c["key"] for c in changes if c["key"].startswith(ALGORITHM_KEYS)]
    assert not touched, touched
    # the short list of script keys re-set after the script: exactly the CUDA-only ones
    assert sorted(c["key"] for c in changes if c["kind"] == "CUDA-only") == sorted(CUDA_ONLY_OVERRIDES)
    if preset == "luffy":  # the preset's own verl settings survive
        assert "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm" in gpu


def test_an_unexplained_change_is_reported(tiny_model_dir, tmp_path):
    """Negative control: a key changed on top of the CPU runtime, with no reason anywhere, is flagged."""
    env = script_env("srft", tiny_model_dir, tmp_path / "t.parquet", tmp_path / "v.parquet", tmp_path / "out")
    gpu = script_overrides("qwen_math.sh", env)
    changes = config_changes(gpu, cpu_overrides(gpu, ["actor_rollout_ref.actor.clip_ratio_high=0.5"]))
    flagged = {c["key"]: c["kind"] for c in changes}
    assert flagged["actor_rollout_ref.actor.clip_ratio_high"] is None
