"""SFT->RL on the CPU: stage 1 is verl's own SFT trainer (torchrun, 2 gloo ranks), stage 2 a GRPO run through the
recipe's trainer that starts from stage 1's weights. Tiny random model, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from recipe_srft.cpu.sft import last_step
from recipe_srft.cpu.engines import vllm_unavailable_reason
from recipe_srft.cpu.gpu_script import script_config
from recipe_srft.cpu.smoke import run_trainer
from recipe_srft.experiments.demo_task import write_demo_task
from recipe_srft.experiments.sft_rl import run_sft_stage, sft_data, sft_overrides
from recipe_srft.integration.sft_stage import StageNotFinished, final_model
from recipe_srft.tools.console_metrics import read_console_metrics

FIXTURES = Path(__file__).parent / "fixtures"


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    assert out, f"no safetensors in {folder}"
    return out


def _sft_losses(log: Path) -> dict[int, float]:
    import re

    return {int(s): float(v) for s, v in re.findall(r"step:(\d+) - .*?train/loss:([0-9.eE+-]+)", log.read_text())}


@pytest.mark.ray
@pytest.mark.skipif(vllm_unavailable_reason() is not None, reason=f"vLLM cannot run here: {vllm_unavailable_reason()}")
def test_sft_then_grpo_starts_from_the_sft_weights(tiny_model_dir, tmp_path):
    train, val = write_demo_task(tmp_path / "data", n_train=32, n_val=4)
    sft_train = sft_data(train, tmp_path / "data" / "train.sft.parquet", tiny_model_dir)

    # ---- stage 1: verl's SFT trainer, 2 data-parallel ranks, 4 optimizer steps of 8 demonstrations
    stage1 = tmp_path / "stage1"
    overrides = sft_overrides(tiny_model_dir, sft_train, stage1, nproc=2, batch_size=8, steps=4, lr=1e-3,
                              max_length=256)
    with pytest.raises(StageNotFinished):
        final_model(overrides)
    model = run_sft_stage(overrides, stage1, nproc=2, timeout=600)
    log = stage1 / "sft.log"
    assert model == stage1 / "ckpt" / "global_step_4" / "huggingface"
    assert last_step(log) == 4, log.read_text()[-3000:]
    losses = _sft_losses(log)
    assert sorted(losses) == [1, 2, 3, 4] and losses[4] < losses[1], losses  # verl's SFT loss went down
    assert (stage1 / "ckpt" / "global_step_4" / "model_world_size_2_rank_1.pt").exists()  # two FSDP ranks
    base, sft = _weights(tiny_model_dir), _weights(model)
    assert base.keys() == sft.keys()
    assert any(not torch.equal(base[k], sft[k].to(base[k].dtype)) for k in base), "stage 1 changed no weight"

    # rerun = resume: the finished stage is found, not trained again
    stamp = log.stat().st_mtime_ns
    assert run_sft_stage(overrides, stage1, nproc=2, timeout=600) == model
    assert log.stat().st_mtime_ns == stamp

    # ---- stage 2: PRESET=sft_rl's stage-2 launch of run_scripts/qwen_math.sh itself (GRPO from stage 1's HF model)
    # on the CPU runtime with verl's vLLM rollout (recipe_srft.cpu.gpu_script); lr 0 (the script's LR) so its saved
    # weights must *be* stage 1's; a pseudo-random reward so that the gradient is not 0
    stage2 = tmp_path / "stage2"
    gpu, rl, _ = script_config("qwen_math.sh", "sft_rl", model, train, val, stage2, steps=1, LR="0",
                               MAX_PROMPT_LENGTH="256", extra=[
                                   "actor_rollout_ref.actor.checkpoint.save_contents=[model,hf_model]",
                                   f"reward.custom_reward_function.path={FIXTURES / 'hash_reward.py'}"])
    assert "srft.preset=grpo" in gpu and "actor_rollout_ref.rollout.name=vllm" in gpu  # the script's stage 2
    result = run_trainer(rl, stage2, entry="recipe_srft.main_srft", config_name="srft_trainer", timeout=600,
                         echo=False)
    assert result.returncode == 0, (stage2 / "train.log").read_text()[-6000:]
    rows = {r["step"]: r for r in read_console_metrics(stage2 / "train.log")}
    assert 1 in rows, sorted(rows)
    # vLLM and the FSDP actor both loaded model.path = stage 1's model, and agree on it
    assert rows[1]["training/rollout_probs_diff_max"] < 1e-5
    assert rows[1]["srft/num_demos"] == 0  # grpo: no demonstration in the groups
    rl_model = stage2 / "ckpt" / "stage2_grpo" / "global_step_1" / "actor" / "huggingface"
    after = _weights(rl_model)
    assert after.keys() == sft.keys()
    for k in sft:
        assert torch.equal(after[k].to(sft[k].dtype), sft[k]), k
    assert json.loads((rl_model / "config.json").read_text())["model_type"] == "qwen2"
