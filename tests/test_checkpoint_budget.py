"""The dry run's checkpoint disk estimate (recipe_srft.tools.dry_run.checkpoint_budget), against numbers computed
here independently: Qwen2 parameter arithmetic from the published configs, the tiny model's safetensors, and the
save/keep rules of verl 0.9.1 (trainer_base.py:481-482, checkpoint_manager.py:166-194). No Ray, no model download.
The estimate against a real 2-shard checkpoint on disk: tests/test_parallel_e2e.py (Ray)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from recipe_srft.tools import dry_run as dr

REPO = Path(__file__).resolve().parents[1]
#: published config.json shapes of the scripts' models (Qwen2.5-Math-7B; the 16k-think model only changes RoPE)
QWEN_7B = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
               num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False)
QWEN_1P5B = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True)


def qwen2_parameters(c: dict) -> int:
    """Closed form for a Qwen2 decoder: q/k/v with biases, o without, SwiGLU MLP, two RMSNorms per layer, final
    norm, embeddings (+ an untied lm_head)."""
    h, kv = c["hidden_size"], c["num_key_value_heads"] * (c["hidden_size"] // c["num_attention_heads"])
    attention = (h * h + h) + 2 * (h * kv + kv) + h * h
    layer = attention + 3 * h * c["intermediate_size"] + 2 * h
    embeddings = c["vocab_size"] * h * (1 if c["tie_word_embeddings"] else 2)
    return c["num_hidden_layers"] * layer + embeddings + h


def overrides(script: str, tmp: Path, **env) -> list[str]:
    """The hydra overrides ``run_scripts/<script>`` passes (DRY_RUN=overrides: bash only)."""
    scrub = ("MODEL_PATH", "MAX_CKPT_TO_KEEP", "SAVE_FREQ", "TOTAL_STEPS", "CKPT_DIR", "DRY_RUN", "PRESET")
    run_env = {k: v for k, v in os.environ.items() if k not in scrub}
    run_env.update(PYTHON=sys.executable, DRY_RUN="overrides", CKPT_DIR=str(tmp / "ckpt"),
                   TRAIN_FILE=str(tmp / "train.parquet"), VAL_FILE=str(tmp / "val.parquet"))
    run_env.update({k: str(v) for k, v in env.items()})
    out = subprocess.run(["bash", str(REPO / "run_scripts" / script)], env=run_env, capture_output=True, check=True)
    return [item.decode() for item in out.stdout.split(b"\0") if item]


def budget(script: str, tmp: Path, *extra: str, **env) -> dict:
    config = dr.compose_config(overrides(script, tmp, **env) + list(extra))
    OmegaConf.resolve(config)
    return dr.checkpoint_budget(config)


@pytest.mark.parametrize("shape, names", [(QWEN_7B, ("Qwen/Qwen2.5-Math-7B", "Elliott/Qwen2.5-Math-7B-16k-think")),
                                          (QWEN_1P5B, ("Qwen/Qwen2.5-Math-1.5B",))])
def test_known_counts_match_the_arithmetic_and_a_local_config(tmp_path, shape, names):
    expected = qwen2_parameters(shape)
    for name in names:
        assert dr.KNOWN_PARAMETER_COUNTS[name] == expected, name
    # the same shape as a local config.json: counted by building the model on the meta device
    (tmp_path / "config.json").write_text(json.dumps(dict(shape, architectures=["Qwen2ForCausalLM"],
                                                          model_type="qwen2")))
    count, source = dr.model_parameter_count(str(tmp_path))
    assert (count, source) == (expected, f"counted from {tmp_path / 'config.json'}")


def test_local_count_equals_the_tiny_models_weights(tiny_model_dir):
    from safetensors import safe_open

    with safe_open(str(Path(tiny_model_dir) / "model.safetensors"), "pt") as f:
        stored = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    count, _ = dr.model_parameter_count(str(tiny_model_dir))
    assert count == stored > 0


def test_unknown_model_is_not_guessed(tmp_path):
    assert dr.model_parameter_count(str(tmp_path / "nothing"))[0] is None
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 4096}')  # no model_type: cannot be built
    count, why = dr.model_parameter_count(str(tmp_path))
    assert count is None and "does not build a model" in why


def test_qwen_math_7b_budget(tmp_path):
    """qwen_math.sh: 7.6e9 parameters x (4 B fp32 weights + 2 x 4 B Adam moments) per checkpoint; 500 steps with a
    save every 50 = 10 saves, the last 3 kept."""
    params = qwen2_parameters(QWEN_7B)
    b = budget("qwen_math.sh", tmp_path)
    assert b["parameters"] == params and b["save_contents"] == ["model", "optimizer", "extra"]
    assert b["parts_bytes"] == {"model": 4 * params, "optimizer": 8 * params}
    assert b["per_checkpoint_bytes"] == 12 * params  # 91.4 GB
    assert (b["saves"], b["kept"], b["peak"]) == (10, 3, 3)
    assert b["kept_bytes"] == 3 * 12 * params  # 274.2 GB
    lines = dr.format_checkpoint_budget(b)
    assert lines[0].startswith("~91.4 GB each: 7,615,616,512 parameters") and "x 12 B" in lines[0]
    assert lines[1] == "10 saves, the last 3 kept -> 3 on disk = ~274.2 GB"


def test_keep_rules_and_contents(tmp_path):
    params = qwen2_parameters(QWEN_1P5B)
    # unbounded: every save stays (500 steps, every 30 + the last step = 17 saves)
    b = budget("qwen_math_1p5b.sh", tmp_path, MAX_CKPT_TO_KEEP=0, SAVE_FREQ=30)
    assert (b["saves"], b["kept"], b["max_kept"]) == (17, 17, None) and b["kept_bytes"] == 17 * 12 * params
    # k = 1: verl deletes the old checkpoint only after the new one is complete -> 2 on disk while saving
    b = budget("qwen_math_1p5b.sh", tmp_path, MAX_CKPT_TO_KEEP=1)
    assert (b["kept"], b["peak"], b["peak_bytes"]) == (1, 2, 2 * 12 * params)
    assert "2 while a save is written" in dr.format_checkpoint_budget(b)[1]
    # hf_model adds a full copy of the weights; bf16 master weights halve every part
    b = budget("qwen_math_1p5b.sh", tmp_path, "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,"
               "extra,hf_model]", "actor_rollout_ref.actor.fsdp_config.model_dtype=bf16")
    assert b["parts_bytes"] == {"model": 2 * params, "optimizer": 4 * params, "hf_model": 2 * params}
    # no saves at all
    b = budget("qwen_math_1p5b.sh", tmp_path, SAVE_FREQ=-1)
    assert b["saves"] == 0 and dr.format_checkpoint_budget(b) == ["no checkpoints (trainer.save_freq <= 0)"]


def test_bash_dry_run_prints_the_budget(tmp_path):
    """DRY_RUN=1 bash run_scripts/qwen_math.sh (the script's own model id: the known count)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_PATH", "MAX_CKPT_TO_KEEP", "SAVE_FREQ")}
    env.update(PYTHON=sys.executable, DRY_RUN="1", CUDA_VISIBLE_DEVICES="", CKPT_DIR=str(tmp_path / "ckpt"),
               TRAIN_FILE=str(tmp_path / "train.parquet"), VAL_FILE=str(tmp_path / "val.parquet"))
    proc = subprocess.run(["bash", str(REPO / "run_scripts" / "qwen_math.sh")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "  checkpoint size   ~91.4 GB each: 7,615,616,512 parameters (known count of " in proc.stdout
    assert "  checkpoint disk   10 saves, the last 3 kept -> 3 on disk = ~274.2 GB" in proc.stdout


def test_keep_rule_holds_across_restarts_and_leftovers_go(tmp_path):
    """max_actor_ckpt_to_keep on the folder: saves made before a restart (which verl's manager forgot) beyond the
    newest ``keep`` with a model go, and so do saves verl emptied (data.pt and transfer_queue/ left, no actor/); the
    step just saved, the tracked step, later steps and unrelated files stay."""
    from recipe_srft.integration.checkpoints import prune_saves, saves_to_prune

    def save(step, *parts):
        folder = tmp_path / f"global_step_{step}"
        (folder / "transfer_queue").mkdir(parents=True)
        (folder / "data.pt").write_bytes(b"x")
        for part in parts:
            (folder / part).mkdir()
            (folder / part / "model_world_size_1_rank_0.pt").write_bytes(b"w")
        return folder

    # run 1 saved 25..100 with keep 2 (verl emptied 25 and 50); run 2 resumed from 100 and saved 125 and 150
    emptied = [save(25), save(50)]
    before_restart = [save(75, "actor"), save(100, "actor")]
    after_restart = [save(125, "actor"), save(150, "actor")]
    later = save(300, "actor")                               # not this run's: never touched
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("150")
    (tmp_path / "global_step_notes").mkdir()                 # not a step folder
    assert saves_to_prune(tmp_path, 150, keep=2) == emptied + before_restart
    assert saves_to_prune(tmp_path, 150, keep=3) == emptied + before_restart[:1]
    assert saves_to_prune(tmp_path, 150, keep=0) == []       # 0 / unset: verl's "keep all"
    assert prune_saves(tmp_path, 150, keep=2) == emptied + before_restart
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f.name for f in after_restart + [later]] + ["global_step_notes", "latest_checkpointed_iteration.txt"])
    assert prune_saves(tmp_path, 150, keep=2) == []          # idempotent

    # the step just saved and the tracked one stay even without a model folder (e.g. an async save in flight)
    save(175)
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("175")
    assert saves_to_prune(tmp_path, 175, keep=1) == [after_restart[0]]
    (tmp_path / "global_step_160").mkdir()                   # a critic-only save counts as resumable
    (tmp_path / "global_step_160" / "critic").mkdir()
    assert saves_to_prune(tmp_path, 175, keep=2) == [after_restart[0]]
