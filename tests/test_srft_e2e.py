"""End to end: SRFT through verl's real V1 trainer on the CPU runtime (tiny model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipe_srft.tools.console_metrics import read_console_metrics
from recipe_srft.cpu.smoke import run_trainer
from recipe_srft.experiments.smoke_data import write_smoke_data

pytestmark = pytest.mark.ray

N_PROMPTS, N_ROLLOUTS = 4, 3


def srft_overrides(model, train, val, out, steps=2, micro=4, extra=()):
    return [
        "+runtime=cpu",
        "actor_rollout_ref.rollout.name=hf",  # the HF fallback engine; verl's vLLM rollout: tests/test_vllm_e2e.py
        f"data.train_files={train}", f"data.val_files={val}",
        f"data.train_batch_size={N_PROMPTS}", "data.max_prompt_length=64", "data.max_response_length=16",
        f"actor_rollout_ref.model.path={model}",
        "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro}",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
        f"actor_rollout_ref.rollout.n={N_ROLLOUTS}", "actor_rollout_ref.actor.optim.lr=1e-3",
        f"trainer.total_training_steps={steps}", f"trainer.save_freq={steps}", f"trainer.test_freq={steps}",
        f"trainer.default_local_dir={out}/ckpt", "trainer.val_before_train=false",
        "trainer.project_name=srft_test", "trainer.experiment_name=e2e",
        *extra,
    ]


def _steps(out: Path) -> dict:
    steps = {}
    for row in read_console_metrics(out / "train.log"):
        steps.setdefault(row["step"], {}).update(row)
    return steps


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_smoke_data(tmp_path_factory.mktemp("srft_data"), n_train=8, n_val=4)


def test_preset_conflict_fails_before_training(tiny_model_dir, data, tmp_path):
    out = tmp_path / "run"
    result = run_trainer(srft_overrides(tiny_model_dir, *data, out, steps=1,
                                        extra=["srft.preset=grpo", "srft.demos_per_prompt=1"]),
                         out, entry="recipe_srft.main_srft", config_name="srft_trainer", timeout=120, echo=False)
    log = (out / "train.log").read_text()
    assert result.returncode != 0
    assert "srft.demos_per_prompt=1 contradicts srft.preset=grpo" in log
    assert "srft.preset=custom" in log  # the message names the fix
    assert "ray init kwargs" not in log  # failed at start-up, before Ray


def test_gradient_invariant_to_micro_batch_size(tiny_model_dir, data, tmp_path):
    """One optimizer mini-batch in one micro-batch, or split into token-budget micro-batches of uneven sizes
    (verl's dynamic batch size, what the GPU scripts use), gives the same gradient (greedy rollouts). (Fixed-size
    micro-batches: tests/test_parallel_e2e.py, 4 per mini-batch on one rank against 1 per rank on two.)"""
    variants = {
        "micro16": (16, []),
        # 16 trajectories of <= 80 tokens under a 160-token budget: at least 8 micro-batches of uneven sizes
        "dynamic": (4, ["actor_rollout_ref.actor.use_dynamic_bsz=true",
                        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=160",
                        "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",
                        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=160"]),
    }
    norms = {}
    for name, (micro, dyn) in variants.items():
        out = tmp_path / name
        extra = ["actor_rollout_ref.rollout.temperature=0", "trainer.save_freq=-1", "trainer.test_freq=-1",
                 "actor_rollout_ref.actor.ppo_mini_batch_size=4", *dyn]
        result = run_trainer(srft_overrides(tiny_model_dir, *data, out, steps=1, micro=micro, extra=extra), out,
                             entry="recipe_srft.main_srft", config_name="srft_trainer", echo=False)
        assert result.returncode == 0, (out / "train.log").read_text()[-6000:]
        m = _steps(out)[1]
        norms[name] = (m["actor/grad_norm"], m["srft/num_demos"], m["actor/srft/sft_loss"])
    g16, d16, sft16 = norms["micro16"]
    assert g16 > 0 and sft16 > 0
    for name, (g, d, sft) in norms.items():
        assert d == N_PROMPTS, norms
        assert abs(g - g16) <= 1e-5 * max(1.0, g16), norms
        assert abs(sft - sft16) <= 1e-5 * max(1.0, sft16), norms


def test_startup_hang_fails_naming_the_phase_and_ray_resources(tiny_model_dir, data, tmp_path):
    """The 2-rank hang of a fixed num_cpus=8 (the HF rollout servers never get a CPU) is now a failure whose
    message names the phase and Ray's resources, instead of a silent wait."""
    out = tmp_path / "run"
    extra = ["trainer.n_gpus_per_node=2", "ray_kwargs.ray_init.num_cpus=8", "srft.startup_timeout_s=45",
             "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
             "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2"]
    result = run_trainer(srft_overrides(tiny_model_dir, *data, out, steps=1, extra=extra), out,
                         entry="recipe_srft.main_srft", config_name="srft_trainer", echo=False, timeout=400)
    log = (out / "train.log").read_text()
    assert result.returncode != 0
    assert "SRFT watchdog: phase 'set-up: worker groups, rollout servers, reward workers, checkpoint' did not finish" in log
    assert "available resources" in log and "PENDING_CREATION HFRolloutServer" in log, log[-4000:]
