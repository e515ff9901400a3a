"""run_scripts/qwen_math*.sh in DRY_RUN mode: the full verl config composes, resolves and validates for every
preset, and bad settings fail before anything is launched (no GPU, no Ray, no model or data files).

The real ``bash`` invocations (one per script at least) run concurrently in a module fixture; the preset
matrix calls :func:`recipe_srft.tools.dry_run.dry_run` in this process with the exact overrides the scripts
build (``DRY_RUN=overrides`` prints them), so the file stays well under a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {"qwen_math.sh": "7b", "qwen_math_1p5b.sh": "1p5b"}
PRESETS = ["srft", "grpo", "luffy", "sft_plus_rl", "no_w_sft", "no_w_rl", "no_demo_sft", "no_demo_rl", "sft_only",
           "srft_code", "hpt", "chord"]
#: presets whose scripts use LUFFY's mix_src groups of 7 rollouts + 1 demonstration
SEVEN_PLUS_ONE = ("luffy", "srft_code")
#: every variable the scripts read: scrubbed so that a developer's shell cannot change the tests
SCRIPT_VARS = (
    "MODEL_PATH TRAIN_FILE RAW_TRAIN_FILE PREP_FIX PREP_FORCE VAL_FILE PRESET NNODES GPUS_PER_NODE ROLLOUT_TP "
    "GPU_MEMORY_UTILIZATION MAX_PROMPT_LENGTH MAX_RESPONSE_LENGTH TOKENS_PER_GPU LOGPROB_TOKENS_PER_GPU "
    "TRAIN_BATCH_SIZE PPO_MINI_BATCH_SIZE PPO_EPOCHS N_ROLLOUTS TEMPERATURE LR ENTROPY_COEFF TOTAL_STEPS TEST_FREQ "
    "SAVE_FREQ LOGGER PROJECT_NAME EXPERIMENT_PREFIX EXPERIMENT_NAME CKPT_DIR TENSORBOARD_DIR STRATEGY THINK_FORMAT "
    "PYTHON DRY_RUN RAY_ADDRESS MAX_CKPT_TO_KEEP SFT_TRAIN_FILE SFT_BATCH_SIZE SFT_EPOCHS SFT_LR SFT_WARMUP_RATIO SFT_MIN_LR_RATIO "
    "SFT_MAX_LENGTH SFT_TOKENS_PER_GPU SFT_SAVE_FREQ NODE_RANK MASTER_ADDR MASTER_PORT"
).split()


def _env(tmp: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARS}
    env.update(
        MODEL_PATH=str(tmp / "no_such_model"),           # placeholders: nothing may need them to exist
        TRAIN_FILE=str(tmp / "no_such_train.parquet"),
        VAL_FILE=str(tmp / "no_such_valid.parquet"),
        CKPT_DIR=str(tmp / "ckpt"),
        TENSORBOARD_DIR=str(tmp / "tb"),
        PYTHON=sys.executable,
        CUDA_VISIBLE_DEVICES="",
        DRY_RUN="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _popen(script: str, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(REPO / "run_scripts" / script), *args], cwd=str(REPO),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def script_overrides(script: str, tmp: Path, *args: str, mode: str = "overrides", **env) -> list[str]:
    """The hydra overrides ``script`` passes to main_srft / dry_run (bash only, no Python); ``mode``
    ``overrides_stage1``: those of PRESET=sft_rl's stage 1."""
    out = subprocess.run(["bash", str(REPO / "run_scripts" / script), *args],
                         env=_env(tmp, **dict(env, DRY_RUN=mode)), capture_output=True, check=True)
    return [item.decode() for item in out.stdout.split(b"\0") if item]


# ------------------------------------------------------------------------------------------ real bash runs
@pytest.fixture(scope="module")
def bash_runs(tmp_path_factory):
    """Real ``DRY_RUN=1 bash run_scripts/...`` invocations, started together; name -> (rc, output)."""
    tmp = tmp_path_factory.mktemp("dry_run")
    raw = tmp / "openr1.parquet"
    procs = {
        # the published 4 x 8 GPU layout; a raw file to convert (printed, not run, in a dry run)
        "7b_multinode": _popen("qwen_math.sh", _env(tmp, NNODES=4, RAW_TRAIN_FILE=raw)),
        "1p5b": _popen("qwen_math_1p5b.sh", _env(tmp, PRESET="no_w_rl")),
        "unknown_key": _popen("qwen_math.sh", _env(tmp), "actor_rollout_ref.actor.ppo_mini_batch=64"),
        # the SFT baseline: verl's own SFT trainer config
        "7b_sft": _popen("qwen_math.sh", _env(tmp, PRESET="sft")),
        "1p5b_sft": _popen("qwen_math_1p5b.sh", _env(tmp, PRESET="sft")),
        "sft_bad_batch": _popen("qwen_math.sh", _env(tmp, PRESET="sft", SFT_BATCH_SIZE=60)),
        # SFT->RL: both stages checked
        "7b_sft_rl": _popen("qwen_math.sh", _env(tmp, PRESET="sft_rl")),
        "1p5b_sft_rl": _popen("qwen_math_1p5b.sh", _env(tmp, PRESET="sft_rl")),
        "sft_rl_bad_stage1": _popen("qwen_math.sh", _env(tmp, PRESET="sft_rl"), "stage1.data.pad_mode=left"),
    }
    results = {}
    for name, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        results[name] = (proc.returncode, out)
    results["tmp"] = tmp
    return results


def test_bash_dry_run_7b_multinode(bash_runs):
    rc, out = bash_runs["7b_multinode"]
    assert rc == 0, out
    assert "SRFT dry run: OK" in out
    assert "verl validate_config: passed" in out
    assert "n=8 rollouts + m=1 demos = 9 trajectories per prompt" in out
    assert "128 prompts -> 1152 trajectories per step" in out
    assert "-> 2 optimizer steps per rollout batch" in out
    assert "entropy (weights) fp32 (actor.entropy_from_logits_with_chunking=true)" in out
    assert "4 node(s) x 8 = 32; rollout vllm TP 2 -> 16 replicas" in out
    assert "checkpoint every 50" in out and "(keeps the last 3)" in out  # MAX_CKPT_TO_KEEP
    assert "'address': 'auto'" in out
    assert "actor_rollout_ref.actor -> FSDPActorConfig" in out
    assert "actor_rollout_ref.rollout -> RolloutConfig" in out
    assert "algorithm -> AlgoConfig" in out
    assert "reward_kwargs {'think_format': True} accepted" in out
    # the launch command is shown, the raw data would be converted, and nothing was written
    assert "would run: " in out and "-m recipe_srft.main_srft" in out
    assert "would prepare the data: " in out and "-m data_prep.luffy" in out and "--template luffy_think" in out
    assert not (bash_runs["tmp"] / "no_such_train.parquet").exists()


@pytest.mark.parametrize("preset, n, scale", [("srft_code", 7, "loss_scale_factor=512"),
                                              ("hpt", 8, "loss_scale_factor=128"),
                                              ("chord", 8, "loss_agg_mode=token-mean")])
def test_bash_dry_run_published_code_presets(tmp_path, preset, n, scale):
    """DRY_RUN=1 PRESET=srft_code|hpt|chord bash run_scripts/qwen_math.sh: the real script passes, with the
    preset's verl settings (srft_config.PRESET_VERL) on the command line."""
    proc = subprocess.run(["bash", str(REPO / "run_scripts" / "qwen_math.sh")], env=_env(tmp_path, PRESET=preset),
                          cwd=str(REPO), capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "SRFT dry run: OK" in out and f"preset            {preset}" in out
    assert f"n={n} rollouts + m=1 demos" in out
    assert f"actor_rollout_ref.actor.{scale}" in out


def test_bash_dry_run_1p5b(bash_runs):
    rc, out = bash_runs["1p5b"]
    assert rc == 0, out
    assert "preset            no_w_rl" in out
    assert "1 node(s) x 4 = 4; rollout vllm TP 1 -> 4 replicas" in out
    assert "up to 4096 tokens" in out
    assert "ray.init" in out and "'address'" not in out


def test_bash_unknown_verl_key_fails(bash_runs):
    rc, out = bash_runs["unknown_key"]
    assert rc != 0, out
    assert "SRFT dry run: FAILED" in out
    assert "ppo_mini_batch" in out and "does not exist in verl" in out


@pytest.mark.parametrize("name, gpus, per_rank, length, budget", [
    ("7b_sft", 8, 8, 9216, 32768),
    ("1p5b_sft", 4, 16, 4096, 16384),
])
def test_bash_dry_run_sft(bash_runs, name, gpus, per_rank, length, budget):
    """DRY_RUN=1 PRESET=sft composes verl's sft_trainer_engine config with LUFFY's SFT settings and validates it."""
    rc, out = bash_runs[name]
    assert rc == 0, out
    assert "SRFT dry run (PRESET=sft): OK" in out
    assert f"would run: {sys.executable} -m torch.distributed.run --nnodes=1 --nproc_per_node={gpus} --standalone " \
           "-m verl.trainer.sft_trainer model.path=" in out
    model = bash_runs["tmp"] / "no_such_model"
    assert "would prepare the SFT data: " in out and "-m data_prep.sft --input" in out and f"--tokenizer {model}" in out
    assert f"64 sequences per step = {gpus} data-parallel ranks x {per_rank}; dynamic batches, {budget} tokens" in out
    assert f"sequences up to {length} tokens" in out and "(column 'messages')" in out
    assert "AdamW lr 5e-05, betas [0.9, 0.95], weight decay 0.0, clip 1.0; cosine schedule, warmup ratio 0.1, " \
           "min lr ratio 0.1" in out
    assert "3 epochs" in out and "hf_model" in out
    for line in ("engine -> FSDPEngineConfig", "optim -> FSDPOptimizerConfig", "checkpoint -> CheckpointConfig",
                 "model -> HFModelConfig fields type-checked"):
        assert line in out
    assert "-m recipe_srft.main_srft" not in out and "actor_rollout_ref" not in out


def test_bash_dry_run_sft_bad_batch(bash_runs):
    rc, out = bash_runs["sft_bad_batch"]
    assert rc != 0 and "SRFT dry run (PRESET=sft): FAILED" in out
    assert "data.train_batch_size=60 (global, sequences) is not divisible by the 8 data-parallel ranks" in out


def test_bad_preset_rejected_by_the_script(tmp_path):
    proc = subprocess.run(["bash", str(REPO / "run_scripts" / "qwen_math.sh")], env=_env(tmp_path, PRESET="srtf"),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "PRESET=srtf is not one of" in proc.stderr


def test_overrides_mode_lists_the_paper_settings(tmp_path):
    ov = script_overrides("qwen_math.sh", tmp_path, "trainer.total_training_steps=3", PRESET="luffy")
    for item in ["srft.preset=luffy", "data.train_batch_size=128", "actor_rollout_ref.actor.ppo_mini_batch_size=64",
                 "actor_rollout_ref.actor.ppo_epochs=1", "actor_rollout_ref.actor.optim.lr=1e-6",
                 "actor_rollout_ref.actor.optim.lr_scheduler_type=constant", "actor_rollout_ref.rollout.n=7",
                 "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm",
                 "actor_rollout_ref.actor.loss_scale_factor=128",
                 "actor_rollout_ref.rollout.temperature=1.0", "data.max_prompt_length=1024",
                 "data.max_response_length=8192", "actor_rollout_ref.actor.use_kl_loss=false",
                 "algorithm.use_kl_in_reward=false", "actor_rollout_ref.actor.entropy_coeff=0.001",
                 "actor_rollout_ref.actor.entropy_from_logits_with_chunking=true",
                 "actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.rollout.tensor_model_parallel_size=2",
                 "actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=32768",
                 "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=32768",
                 f"reward.custom_reward_function.path={REPO}/recipe_srft/reward.py",
                 "reward.custom_reward_function.name=compute_score",
                 "+reward.custom_reward_function.reward_kwargs.think_format=true",
                 "trainer.test_freq=25", "trainer.save_freq=50", "trainer.total_training_steps=500",
                 "trainer.logger=[console,tensorboard]", "trainer.nnodes=1", "trainer.n_gpus_per_node=8",
                 "trainer.experiment_name=qwen2.5-math-7b-16k_luffy"]:
        assert item in ov, item
    assert ov[-1] == "trainer.total_training_steps=3"  # extra arguments come last and win
    assert "actor_rollout_ref.rollout.n=8" in script_overrides("qwen_math.sh", tmp_path, PRESET="srft")
    assert not any(o.startswith("+ray_kwargs.ray_init.address") for o in ov)
    multi = script_overrides("qwen_math.sh", tmp_path, NNODES=2, LOGGER="console")
    assert "+ray_kwargs.ray_init.address=auto" in multi and "trainer.logger=console" in multi


# ------------------------------------------------------------------------------------------ in-process matrix
@pytest.fixture(scope="module")
def dry_run_mod():
    from recipe_srft.tools import dry_run

    return dry_run


@pytest.mark.parametrize("script", sorted(SCRIPTS))
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_dry_runs(dry_run_mod, tmp_path, script, preset):
    summary = dry_run_mod.dry_run(script_overrides(script, tmp_path, PRESET=preset))
    m = 0 if preset == "grpo" else 1
    n = 7 if preset in SEVEN_PLUS_ONE else 8  # LUFFY's mix_src script: 7 rollouts + 1 demonstration per group
    assert summary["preset"] == preset
    assert summary["srft"]["demos_per_prompt"] == m
    assert summary["group_size"] == n + m
    assert summary["trajectories_per_step"] == 128 * (n + m)
    assert summary["optimizer_steps_per_rollout_batch"] == 2
    assert summary["verl_validate_config"] == "passed"
    assert summary["experiment_name"].endswith(f"_{preset}")
    assert summary["total_training_steps"] == 500 and summary["test_freq"] == 25 and summary["save_freq"] == 50
    if SCRIPTS[script] == "7b":
        assert (summary["total_gpus"], summary["rollout_tp"], summary["max_sequence_length"]) == (8, 2, 9216)
        assert set(summary["token_budgets"].values()) == {32768}
    else:
        assert (summary["total_gpus"], summary["rollout_tp"], summary["max_sequence_length"]) == (4, 1, 4096)
        assert set(summary["token_budgets"].values()) == {16384}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
@pytest.mark.parametrize("preset", PRESETS)
def test_scripts_write_the_verl_settings_of_each_preset(tmp_path, script, preset):
    """The bash scripts and srft_config.preset_verl_overrides agree on every verl setting a preset ties
    (PRESET_VERL): the composed config holds exactly the values the Python side writes."""
    from omegaconf import OmegaConf
    from recipe_srft.tools.dry_run import compose_config
    from recipe_srft.srft_config import PRESET_VERL, preset_verl_overrides

    config = compose_config(script_overrides(script, tmp_path, PRESET=preset))
    expected = preset_verl_overrides(preset, config.data.max_response_length)
    assert len(expected) == len(PRESET_VERL.get(preset, {}))
    for item in expected:
        key, value = item.split("=", 1)
        actual = OmegaConf.select(config, key)
        if isinstance(actual, (int, float)):
            assert float(actual) == float(value), (item, actual)
        else:
            assert str(actual) == value, (item, actual)
    if preset not in PRESET_VERL:
        assert config.actor_rollout_ref.actor.loss_agg_mode == "seq-mean-token-mean"  # the paper's 1/|y|


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_luffy_preset_gets_luffys_aggregation(dry_run_mod, tmp_path, script):
    """PRESET=luffy sets seq-mean-token-sum-norm with loss_scale_factor = T / MIX_SRC_ROWS_PER_GPU["luffy"] = T / 64
    (the script's arithmetic and the constant in srft_config must agree); the other presets keep the paper's mode."""
    from omegaconf import OmegaConf
    from recipe_srft.tools.dry_run import compose_config
    from recipe_srft.srft_config import MIX_SRC_ROWS_PER_GPU

    config = compose_config(script_overrides(script, tmp_path, PRESET="luffy"))
    actor = config.actor_rollout_ref.actor
    assert actor.loss_agg_mode == "seq-mean-token-sum-norm"
    assert MIX_SRC_ROWS_PER_GPU["luffy"] == 64 * 8 // 8  # LUFFY's train.sh: 64 prompts x rollout.n 8 / 8 GPUs
    assert actor.loss_scale_factor == config.data.max_response_length // MIX_SRC_ROWS_PER_GPU["luffy"]
    summary = dry_run_mod.dry_run(script_overrides(script, tmp_path, PRESET="luffy"))
    assert summary["rl_aggregation"].startswith("seq-mean-token-sum-norm: sum over tokens / (sequences x ")
    srft = OmegaConf.select(compose_config(script_overrides(script, tmp_path, PRESET="srft")),
                            "actor_rollout_ref.actor.loss_agg_mode")
    assert srft == "seq-mean-token-mean"


def test_luffy_preset_refuses_another_aggregation(dry_run_mod, tmp_path, capsys):
    ov = script_overrides("qwen_math.sh", tmp_path, "actor_rollout_ref.actor.loss_agg_mode=token-mean",
                          "actor_rollout_ref.actor.loss_scale_factor=null", PRESET="luffy")
    _fails(dry_run_mod, ov, capsys, "actor_rollout_ref.actor.loss_agg_mode=token-mean contradicts srft.preset=luffy",
           "actor_rollout_ref.actor.loss_scale_factor=null contradicts srft.preset=luffy",
           "actor_rollout_ref.actor.loss_scale_factor=128", "srft.preset=custom")


@pytest.mark.parametrize("preset, args, expected", [
    ("srft_code", ("actor_rollout_ref.actor.loss_agg_mode=token-mean",),
     ("actor_rollout_ref.actor.loss_agg_mode=token-mean contradicts srft.preset=srft_code",
      "fix: add actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm "
      "actor_rollout_ref.actor.loss_scale_factor=512")),
    ("hpt", ("actor_rollout_ref.actor.loss_scale_factor=null",),
     ("actor_rollout_ref.actor.loss_scale_factor=null contradicts srft.preset=hpt",
      "actor_rollout_ref.actor.loss_scale_factor=128")),
    ("chord", ("actor_rollout_ref.actor.entropy_coeff=0.001",),
     ("actor_rollout_ref.actor.entropy_coeff=0.001 contradicts srft.preset=chord, which needs 0.0",
      "fix: add actor_rollout_ref.actor.loss_agg_mode=token-mean actor_rollout_ref.actor.entropy_coeff=0.0")),
    ("chord", ("srft.sft_weighting=entropy",), ("srft.sft_weighting='entropy' contradicts srft.preset=chord",)),
    ("srft_code", ("srft.entropy_scope=sequence",), ("srft.entropy_scope='sequence' contradicts srft.preset=srft_code",)),
    ("hpt", ("srft.gate_max_solved=2",), ("srft.gate_max_solved=2 contradicts srft.preset=hpt",
                                           "srft.preset=custom")),
])
def test_published_code_presets_refuse_conflicting_overrides(dry_run_mod, tmp_path, capsys, preset, args, expected):
    _fails(dry_run_mod, script_overrides("qwen_math.sh", tmp_path, *args, PRESET=preset), capsys, *expected)


def _fails(dry_run_mod, overrides, capsys, *expected):
    assert dry_run_mod.main(overrides) == 1
    err = capsys.readouterr().err
    assert "SRFT dry run: FAILED" in err
    for text in expected:
        assert text in err, err
    return err


def test_preset_conflict_fails(dry_run_mod, tmp_path, capsys):
    ov = script_overrides("qwen_math.sh", tmp_path, "srft.demos_per_prompt=1", PRESET="grpo")
    _fails(dry_run_mod, ov, capsys, "srft.demos_per_prompt=1 contradicts srft.preset=grpo")


def test_bad_batch_arithmetic_fails(dry_run_mod, tmp_path, capsys):
    ov = script_overrides("qwen_math.sh", tmp_path, "data.train_batch_size=100",
                          "actor_rollout_ref.actor.ppo_mini_batch_size=64")
    _fails(dry_run_mod, ov, capsys, "data.train_batch_size=100 is not a multiple of")


def test_unknown_key_fails_in_process(dry_run_mod, tmp_path, capsys):
    ov = script_overrides("qwen_math_1p5b.sh", tmp_path, "actor_rollout_ref.rollout.tensor_parallel_size=2")
    _fails(dry_run_mod, ov, capsys, "tensor_parallel_size", "does not exist in verl")


@pytest.mark.parametrize(
    "env, args, expected",
    [
        # 6 GPUs cannot hold TP-4 vLLM replicas
        ({"GPUS_PER_NODE": 6, "ROLLOUT_TP": 4}, (), "not divisible by the rollout's model-parallel size 4"),
        # 24 GPUs: a mini-batch of 32 prompts x group 8 = 256 trajectories does not split over 24 ranks
        ({"NNODES": 3, "PPO_MINI_BATCH_SIZE": 32, "TRAIN_BATCH_SIZE": 96}, ("actor_rollout_ref.rollout.n=7",),
         "does not split over the actor's 24 data-parallel ranks"),
        # the dynamic-batch budget must hold one prompt + response
        ({"TOKENS_PER_GPU": 8192}, (), "ppo_max_token_len_per_gpu=8192"),
        # pitfall 4: the 4k-position base cannot take 8192-token responses
        ({"MODEL_PATH": "Qwen/Qwen2.5-Math-7B"}, (), "exceeds the model's 4096 positions"),
        # mandatory value left unset in verl's config
        ({}, ("actor_rollout_ref.rollout.name=???",), "actor_rollout_ref.rollout.name: set it"),
        # a wrong type is caught by verl's dataclasses / hydra
        ({}, ("actor_rollout_ref.actor.ppo_epochs=two",), "ppo_epochs"),
    ],
)
def test_other_bad_settings_fail(dry_run_mod, tmp_path, capsys, env, args, expected):
    _fails(dry_run_mod, script_overrides("qwen_math.sh", tmp_path, *args, **env), capsys, expected)


def test_checkpoints_are_bounded(tmp_path):
    """qwen_math.sh keeps the last MAX_CKPT_TO_KEEP=3 checkpoints (verl's trainer.max_actor_ckpt_to_keep; ~90 GB
    each for the 7B actor); another value reaches verl's key, 0 keeps all (null), a non-number is refused."""
    from recipe_srft.tools.dry_run import compose_config

    def kept(**env):
        found = [o for o in script_overrides("qwen_math.sh", tmp_path, **env)
                 if o.startswith("trainer.max_actor_ckpt_to_keep=")]
        assert len(found) == 1, found
        return found[0].split("=", 1)[1]

    assert kept() == "3"
    assert kept(MAX_CKPT_TO_KEEP=5) == "5" and kept(MAX_CKPT_TO_KEEP=0) == "null"
    config = compose_config(script_overrides("qwen_math.sh", tmp_path))
    assert config.trainer.max_actor_ckpt_to_keep == 3  # a key of verl's config (composition would refuse another)
    assert "MAX_CKPT_TO_KEEP [3]" in (REPO / "run_scripts" / "qwen_math.sh").read_text()
    proc = subprocess.run(["bash", str(REPO / "run_scripts" / "qwen_math.sh")], capture_output=True, text=True,
                          env=_env(tmp_path, MAX_CKPT_TO_KEEP="three", DRY_RUN="overrides"), timeout=60)
    assert proc.returncode == 2 and "MAX_CKPT_TO_KEEP=three must be a non-negative integer" in proc.stderr


def test_local_model_position_limit(dry_run_mod, tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"max_position_embeddings": 4096}')
    ok = dry_run_mod.dry_run(script_overrides("qwen_math_1p5b.sh", tmp_path, MODEL_PATH=model))
    assert ok["model_positions"].startswith("4096 (max_position_embeddings of")
    _fails(dry_run_mod, script_overrides("qwen_math_1p5b.sh", tmp_path, MODEL_PATH=model, MAX_RESPONSE_LENGTH=4096),
           capsys, "exceeds the model's 4096 positions")


# ------------------------------------------------------------------------------------------ shell helpers
def test_raw_train_file_is_converted_once(tmp_path):
    """RAW_TRAIN_FILE -> python -m data_prep.luffy --template luffy_think, skipped when TRAIN_FILE exists."""
    raw = REPO / "tests" / "fixtures" / "data_prep" / "luffy_train.jsonl"
    train = tmp_path / "train.parquet"
    script = (f'set -euo pipefail; source "{REPO}/run_scripts/_common.sh"; SRFT_CALLER_PWD="$PWD"; '
              f'PYTHON="{sys.executable}"; cd "{REPO}"; _srft_prepare_data; _srft_prepare_data')
    env = _env(tmp_path, RAW_TRAIN_FILE=raw, TRAIN_FILE=train, DRY_RUN=0, MAX_PROMPT_LENGTH=1024,
               MAX_RESPONSE_LENGTH=8192)
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--template luffy_think" in proc.stdout and "exists, not re-converting" in proc.stdout

    import pandas as pd

    df = pd.read_parquet(train)
    assert len(df) == 3 and "target" in df.columns
    assert {row["template"] for row in df["extra_info"]} == {"luffy_think"}


def test_real_launch_refuses_missing_data(tmp_path):
    proc = subprocess.run(["bash", str(REPO / "run_scripts" / "qwen_math_1p5b.sh")], env=_env(tmp_path, DRY_RUN=0),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "TRAIN_FILE=" in proc.stderr and "not found" in proc.stderr


# ------------------------------------------------------------------------------------------ PRESET=sft
@pytest.fixture(scope="module")
def sft_stage():
    from recipe_srft.integration import sft_stage

    return sft_stage


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_sft_preset_dry_runs_with_luffys_settings(sft_stage, tmp_path, script):
    ov = script_overrides(script, tmp_path, PRESET="sft")
    for item in ["data.train_batch_size=64", "trainer.total_epochs=3", "optim.lr=5e-5", "optim.lr_warmup_steps_ratio=0.1",
                 "optim.lr_scheduler_type=cosine", "optim.min_lr_ratio=0.1", "optim.betas=[0.9,0.95]",
                 "optim.weight_decay=0.0", "optim.clip_grad=1.0", "data.messages_key=messages",
                 "data.enable_thinking_default=null", "trainer.test_freq=-1", "trainer.resume_mode=auto",
                 f"data.train_files={tmp_path}/no_such_train.sft.parquet",
                 f"trainer.default_local_dir={tmp_path}/ckpt"]:
        assert item in ov, item
    summary = sft_stage.dry_run_sft(ov)
    assert summary["train_batch_size"] == 64 and summary["total_epochs"] == 3
    assert summary["max_length"] == (9216 if SCRIPTS[script] == "7b" else 4096)
    assert summary["train_rows"] is None and summary["missing_files"]


def test_sft_steps_per_epoch_and_epoch_boundary_warning(sft_stage, tmp_path):
    """With the SFT file present the dry run counts the steps; a save_freq that lands on an epoch boundary is
    flagged (verl #7401; the run script's resume guard handles it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    train = tmp_path / "train.sft.parquet"
    pq.write_table(pa.table({"messages": [[{"content": "q", "role": "user"}]] * 1003}), train)
    summary = sft_stage.dry_run_sft(script_overrides("qwen_math.sh", tmp_path, SFT_TRAIN_FILE=train, PRESET="sft"))
    assert (summary["train_rows"], summary["steps_per_epoch"], summary["total_training_steps"]) == (1003, 15, 45)
    assert not summary["warnings"]
    summary = sft_stage.dry_run_sft(script_overrides("qwen_math.sh", tmp_path, SFT_TRAIN_FILE=train, SFT_SAVE_FREQ=5,
                                                     PRESET="sft"))
    assert any("saves on an epoch boundary (15 steps per epoch)" in w for w in summary["warnings"])


@pytest.mark.parametrize("env, args, expected", [
    ({"SFT_TOKENS_PER_GPU": 4096}, (), "data.max_token_len_per_gpu=4096 (x sequence parallel 1) cannot hold one "
                                       "sequence of data.max_length=9216"),
    ({"NNODES": 3, "SFT_BATCH_SIZE": 64}, (), "data.train_batch_size=64 (global, sequences) is not divisible by the 24"),
    ({"SFT_MAX_LENGTH": 32768, "SFT_TOKENS_PER_GPU": 32768, "MODEL_PATH": "Elliott/Qwen2.5-Math-7B-16k-think"}, (),
     "data.max_length=32768 exceeds the model's 16384 positions"),
    ({}, ("actor_rollout_ref.actor.ppo_epochs=1",), "actor_rollout_ref"),  # an RL key: not in the SFT config
    ({}, ("data.pad_mode=left",), "data.pad_mode='left'"),
    ({}, ("engine.strategy=deepspeed",), "engine: verl's verl.workers.config.FSDPEngineConfig rejects it"),
    ({}, ("optim.lr=fast",), "optim.lr"),
    ({}, ("trainer.test_freq=10",), "trainer.test_freq=10 without data.val_files"),
    ({}, ("trainer.resume_mode=sometimes",), "trainer.resume_mode='sometimes'"),
    ({}, ("data.use_dynamic_bsz=false", "data.micro_batch_size_per_gpu=3"),
     "data.micro_batch_size_per_gpu=3 does not divide the 8 sequences per rank (data.train_batch_size=64 / 8)"),
])
def test_bad_sft_settings_fail_naming_the_key(sft_stage, tmp_path, capsys, env, args, expected):
    ov = script_overrides("qwen_math.sh", tmp_path, *args, **dict(env, PRESET="sft"))
    assert sft_stage.main(["dry-run", *ov]) == 1
    err = capsys.readouterr().err
    assert "SRFT dry run (PRESET=sft): FAILED" in err and expected in err, err


def test_sft_launch_converts_then_guards_then_execs_torchrun(tmp_path):
    """Without DRY_RUN: data_prep.sft writes the SFT file from TRAIN_FILE, the resume guard runs, then the script
    execs torchrun -m verl.trainer.sft_trainer (a stand-in PYTHON records the three commands; nothing runs)."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "python"
    fake.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "{log}"\n')
    fake.chmod(0o755)
    (tmp_path / "no_such_train.parquet").write_bytes(b"")  # TRAIN_FILE must exist to be converted
    env = _env(tmp_path, DRY_RUN=0, PRESET="sft", PYTHON=fake, NNODES=2, NODE_RANK=1, MASTER_ADDR="10.0.0.1")
    proc = subprocess.run(["bash", str(REPO / "run_scripts" / "qwen_math.sh"), "trainer.save_freq=50"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    convert, guard, run = log.read_text().splitlines()
    assert convert == (f"-m data_prep.sft --input {tmp_path}/no_such_train.parquet --output "
                       f"{tmp_path}/no_such_train.sft.parquet --tokenizer {tmp_path}/no_such_model")
    assert guard.startswith("-m recipe_srft.integration.sft_stage resume-guard model.path=")
    assert run.startswith("-m torch.distributed.run --nnodes=2 --nproc_per_node=8 --node_rank=1 "
                          "--master_addr=10.0.0.1 --master_port=29500 -m verl.trainer.sft_trainer model.path=")
    assert guard.split(" ", 3)[3] == run.split(" -m verl.trainer.sft_trainer ", 1)[1]  # same overrides
    assert run.endswith("trainer.save_freq=50")


# ------------------------------------------------------------------------------------------ PRESET=sft_rl
@pytest.mark.parametrize("name", ["7b_sft_rl", "1p5b_sft_rl"])
def test_bash_dry_run_sft_rl_checks_both_stages(bash_runs, name):
    rc, out = bash_runs[name]
    assert rc == 0, out[-4000:]
    ckpt = bash_runs["tmp"] / "ckpt"
    assert "SRFT dry run (PRESET=sft): OK" in out  # stage 1: verl's SFT config
    assert f"stage 2 of 2 (GRPO) starts from stage 1's model: {ckpt}/stage1_sft/global_step_N/huggingface" in out
    assert "SRFT dry run: OK" in out  # stage 2: the RL config
    assert out.index("SRFT dry run (PRESET=sft): OK") < out.index("SRFT dry run: OK")


def test_bash_dry_run_sft_rl_stops_at_a_bad_stage1(bash_runs):
    rc, out = bash_runs["sft_rl_bad_stage1"]
    assert rc != 0 and "SRFT dry run (PRESET=sft): FAILED" in out and "data.pad_mode='left'" in out
    assert "SRFT dry run: OK" not in out


def test_sft_rl_routes_stage1_arguments_and_folders(tmp_path):
    """stage1.<key>=<v> goes to the SFT stage (prefix removed), everything else to the GRPO stage; each stage has
    its own checkpoint folder and experiment name, and stage 2 is srft.preset=grpo from stage 1's model."""
    args = ("stage1.trainer.save_freq=7", "trainer.save_freq=9")
    stage1 = script_overrides("qwen_math.sh", tmp_path, *args, PRESET="sft_rl", mode="overrides_stage1")
    stage2 = script_overrides("qwen_math.sh", tmp_path, *args, PRESET="sft_rl")
    sft = script_overrides("qwen_math.sh", tmp_path, PRESET="sft")
    assert stage1[-1] == "trainer.save_freq=7" and "trainer.save_freq=9" not in stage1
    assert stage2[-1] == "trainer.save_freq=9" and "trainer.save_freq=7" not in stage2
    assert f"trainer.default_local_dir={tmp_path}/ckpt/stage1_sft" in stage1
    assert f"trainer.default_local_dir={tmp_path}/ckpt/stage2_grpo" in stage2
    assert "srft.preset=grpo" in stage2
    assert f"actor_rollout_ref.model.path={tmp_path}/ckpt/stage1_sft/global_step_N/huggingface" in stage2
    # stage 1 is the SFT baseline: the same settings except where it writes
    differ = lambda o: o.split("=", 1)[0] in ("trainer.default_local_dir", "trainer.experiment_name")  # noqa: E731
    assert [o for o in stage1[:-1] if not differ(o)] == [o for o in sft if not differ(o)]
    # stage 2 is the grpo baseline: the same settings except the model and where it writes
    grpo = script_overrides("qwen_math.sh", tmp_path, "trainer.save_freq=9", PRESET="grpo")
    differ2 = lambda o: o.split("=", 1)[0] in ("actor_rollout_ref.model.path", "trainer.default_local_dir",  # noqa: E731
                                               "trainer.experiment_name",
                                               "+ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR")
    assert [o for o in stage2 if not differ2(o)] == [o for o in grpo if not differ2(o)]


def _fake_python(tmp_path: Path, finished_after: int) -> tuple[Path, Path]:
    """A stand-in PYTHON that records its commands; ``final-model`` answers 'not finished' (exit 3) for its first
    ``finished_after`` calls, then prints a model folder."""
    log, count = tmp_path / "calls.log", tmp_path / "final_calls"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/usr/bin/env bash
printf "%s\\n" "$*" >> "{log}"
case "$*" in *" final-model "*)
    n=$(( $(cat "{count}" 2>/dev/null || echo 0) + 1 )); echo $n > "{count}"
    if [ $n -le {finished_after} ]; then echo "SFT stage not finished" >&2; exit 3; fi
    echo "{tmp_path}/ckpt/stage1_sft/global_step_42/huggingface" ;;
esac
""")
    fake.chmod(0o755)
    for f in ("no_such_train.parquet", "no_such_train.sft.parquet", "no_such_valid.parquet"):
        (tmp_path / f).write_bytes(b"")
    return fake, log


@pytest.mark.parametrize("finished_after, trains_stage1", [(1, True), (0, False)])
def test_sft_rl_launch_runs_or_skips_stage1_then_execs_stage2(tmp_path, finished_after, trains_stage1):
    """Without DRY_RUN: an unfinished stage 1 is resume-guarded and trained (torchrun, not exec'd), then stage 2
    execs main_srft from stage 1's final model; a finished stage 1 is not trained again."""
    fake, log = _fake_python(tmp_path, finished_after)
    proc = subprocess.run(["bash", str(REPO / "run_scripts" / "qwen_math.sh")],
                          env=_env(tmp_path, DRY_RUN=0, PRESET="sft_rl", PYTHON=fake), capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = [c.split(" ", 3)[:3] for c in log.read_text().splitlines()]
    first = [["-m", "recipe_srft.integration.sft_stage", "final-model"]]
    trained = [["-m", "recipe_srft.integration.sft_stage", "resume-guard"],
               ["-m", "torch.distributed.run", "--nnodes=1"],
               ["-m", "recipe_srft.integration.sft_stage", "final-model"]]
    assert calls == first + (trained if trains_stage1 else []) + [["-m", "recipe_srft.main_srft",
                                                                   f"actor_rollout_ref.model.path={tmp_path}/ckpt/"
                                                                   "stage1_sft/global_step_42/huggingface"]]
    assert ("stage 1 of 2 (SFT) finished earlier" in proc.stdout) == (not trains_stage1)


def test_sft_rl_launch_stops_when_stage1_fails(tmp_path):
    fake, log = _fake_python(tmp_path, finished_after=99)
    # torchrun fails: the fake exits 1 for it
    fake.write_text(fake.read_text().replace('esac', '*"torch.distributed.run"*) exit 1 ;;\nesac'))
    proc = subprocess.run(["bash", str(REPO / "run_scripts" / "qwen_math.sh")],
                          env=_env(tmp_path, DRY_RUN=0, PRESET="sft_rl", PYTHON=fake), capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode != 0 and "stage 1 (SFT) failed; rerun the same command to resume it" in proc.stderr
    assert "recipe_srft.main_srft" not in log.read_text()
