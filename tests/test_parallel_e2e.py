"""SRFT through verl's real trainer in the shape of a real run: two optimizer mini-batches per step and two
data-parallel FSDP2 ranks (gloo) on the CPU runtime, tiny model, fp32.

Runs (module-scoped, shared by the tests below):
  one_rank   1 rank, 2 mini-batches of 4 micro-batches each, lr 0, 3 steps (the uninterrupted reference for resume,
             and for rank and micro-batch invariance)
  two_mb     1 rank, 2 mini-batches, lr 0, demos outside the group statistics: the SFT term of each mini-batch
             is recomputed outside verl from the dumped layout and the initial weights; recipe_srft.main_srft's
             metrics, validation, checkpoint and quiet log
  two_rank   2 ranks, 2 mini-batches of 1 micro-batch per rank, lr 0, 3 steps with a 2-shard checkpoint every
             step; the trainer's whole process group is SIGKILLed (a preempted node) once step 2 is logged (its
             checkpoint complete) and step 3 has begun, then the identical command runs again: it resumes from
             global_step_2, finishes step 3
one_rank and two_rank draw their prompts from two sources mixed by weight (srft.data.sources, a seeded sampler
whose state is checkpointed), so the resume also shows the mixed sampler continuing where it stopped.
Rollouts are deterministic (top_k=1), so one_rank and two_rank see the same trajectories.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch

from recipe_srft.tools.console_metrics import read_console_metrics
from recipe_srft.cpu.smoke import run_trainer, step_begun
from recipe_srft.experiments.smoke_data import write_smoke_data

pytestmark = pytest.mark.ray

N_PROMPTS, N_ROLLOUTS = 4, 3
GROUP = N_ROLLOUTS + 1


def overrides(model, train, val, out, *, steps, ranks=1, mini=N_PROMPTS, lr="1e-3", save_freq=-1, test_freq=-1,
              micro=None, extra=()):
    micro = micro or (mini * GROUP) // ranks  # default: one micro-batch per rank and mini-batch
    return [
        "+runtime=cpu",
        "actor_rollout_ref.rollout.name=hf",  # the HF fallback engine; the same shapes on vLLM: tests/test_vllm_e2e.py
        f"data.train_files={train}", f"data.val_files={val}",
        f"data.train_batch_size={N_PROMPTS}", "data.max_prompt_length=64", "data.max_response_length=16",
        f"actor_rollout_ref.model.path={model}",
        f"trainer.n_gpus_per_node={ranks}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={mini}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.rollout.n={N_ROLLOUTS}", f"actor_rollout_ref.actor.optim.lr={lr}",
        "actor_rollout_ref.rollout.top_k=1",  # argmax rollouts: every run sees the same trajectories
        f"trainer.total_training_steps={steps}", f"trainer.save_freq={save_freq}", f"trainer.test_freq={test_freq}",
        f"trainer.default_local_dir={out}/ckpt", "trainer.val_before_train=false",
        f"trainer.rollout_data_dir={out}/rollouts",
        "trainer.project_name=srft_test", "trainer.experiment_name=parallel",
        *extra,
    ]


def train(args, out: Path, kill_when=None):
    result = run_trainer(args, out, entry="recipe_srft.main_srft", config_name="srft_trainer", echo=False,
                         timeout=600, kill_when=kill_when)
    if kill_when:
        assert result.returncode == -9 and result.killed_at, (out / "train.log").read_text()[-6000:]
    else:
        assert result.returncode == 0, (out / "train.log").read_text()[-6000:]
    steps = {}
    for row in read_console_metrics(out / "train.log"):
        steps.setdefault(row["step"], {}).update(row)
    return steps


def prompts_by_step(rollout_dir: Path) -> dict:
    out = {}
    for f in sorted(rollout_dir.glob("*.jsonl")):
        rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        out[int(f.stem)] = sorted(r["input"] for r in rows)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_smoke_data(tmp_path_factory.mktemp("parallel_data"), n_train=16, n_val=4)


@pytest.fixture(scope="module")
def mixed(data, tmp_path_factory):
    """srft.data.sources: the module's training file and a second one, drawn 30/70 by a seeded sampler."""
    other, _ = write_smoke_data(tmp_path_factory.mktemp("parallel_data_b"), n_train=20, n_val=4, seed=2)
    return [f"srft.data.sources=[{{path:'{data[0]}',weight:0.3,name:a}},{{path:'{other}',weight:0.7,name:b}}]",
            "srft.data.seed=7"]


@pytest.fixture(scope="module")
def one_rank(tiny_model_dir, data, mixed, tmp_path_factory):
    out = tmp_path_factory.mktemp("one_rank")
    return out, train(overrides(tiny_model_dir, *data, out, steps=3, mini=N_PROMPTS // 2, lr=0.0, micro=2, extra=mixed),
                      out)


@pytest.fixture(scope="module")
def two_rank(tiny_model_dir, data, mixed, tmp_path_factory):
    """Killed mid-step 3 and rerun; returns (out, metrics of the killed run, its checkpoint state at the kill,
    metrics of the rerun)."""
    out = tmp_path_factory.mktemp("two_rank")
    args = overrides(tiny_model_dir, *data, out, steps=3, ranks=2, mini=N_PROMPTS // 2, lr=0.0, save_freq=1,
                     extra=mixed)
    start = time.monotonic()
    # killed once step 2's metrics (logged after its checkpoint is complete) and rollout dump and step 3's start
    # were printed: SIGKILL of the process group, ray stop --force, /dev/shm sweep (run_trainer's kill_when)
    first = train(args, out, kill_when=(*step_begun(2, 3), r"Dumped generations to \S*/rollouts/2\.jsonl"))
    ckpt = out / "ckpt"
    at_kill = {
        "tracker": (ckpt / "latest_checkpointed_iteration.txt").read_text().strip(),
        "folders": sorted(p.name for p in ckpt.glob("global_step_*")),
        "shards": sorted(p.name for p in (ckpt / "global_step_2" / "actor").glob("model_world_size_*")),
        "killed_s": time.monotonic() - start,
    }
    # the identical command (same checkpoint and rollout directories; its log in out/resumed)
    resumed = train(args, out / "resumed")
    at_kill["total_s"] = time.monotonic() - start
    print(f"two_rank: killed after {at_kill['killed_s']:.0f} s, killed + rerun {at_kill['total_s']:.0f} s")
    return out, first, at_kill, resumed


def test_two_ranks_match_one_rank(one_rank, two_rank):
    """1 rank in 4 micro-batches per mini-batch vs 2 ranks in 1 each (FSDP2 over gloo): the first step's gradient
    norm and SFT loss agree (the demo-token normalisation spans micro-batches and ranks)."""
    _, ref = one_rank
    _, dp2, _, _ = two_rank
    for key in ("actor/grad_norm", "actor/srft/sft_loss"):
        a, b = ref[1][key], dp2[1][key]
        assert a > 0 and math.isfinite(b)
        assert abs(a - b) <= 1e-5 * abs(a), (key, a, b)
    assert dp2[1]["srft/num_demos"] == N_PROMPTS
    assert ref[1]["srft/num_minibatches"] == dp2[1]["srft/num_minibatches"] == 2  # two optimizer steps per step
    # rollouts come from weights gathered from the sharded actor: they match the actor's log-probs
    assert dp2[1]["training/rollout_probs_diff_max"] < 1e-5
    assert dp2[2]["training/rollout_probs_diff_max"] < 1e-5


def test_two_rank_checkpoint_resume_and_merge(one_rank, two_rank, tiny_model_dir, data, tmp_path):
    """Killed mid-step 3 (a preempted node), the same command resumes from the latest complete checkpoint
    (global_step_2, not global_step_1) with the same prompts as the uninterrupted run (the mixed sampler's state
    is in the checkpoint); the 2-shard checkpoint merges to the initial weights (lr 0) and has the size the dry
    run estimates."""
    ref_out, _ = one_rank
    out, killed, at_kill, resumed = two_rank
    # the kill came mid-step 3: steps 1-2 and their checkpoints complete, step 3 neither logged nor saved
    assert sorted(killed) == [1, 2], sorted(killed)
    assert at_kill["tracker"] == "2" and at_kill["folders"] == ["global_step_1", "global_step_2"], at_kill
    assert at_kill["shards"] == ["model_world_size_2_rank_0.pt", "model_world_size_2_rank_1.pt"]
    assert (out / "ckpt" / "global_step_2" / "data.pt").exists()  # the training loader's (sampler's) state
    log = (out / "resumed" / "train.log").read_text()
    assert f"Resuming from {out / 'ckpt' / 'global_step_2'}, setting global step to 2" in log
    assert min(resumed) == 3 and max(resumed) == 3  # the rerun started at step 3 and finished it
    assert (out / "ckpt" / "latest_checkpointed_iteration.txt").read_text().strip() == "3"
    straight, interrupted = prompts_by_step(ref_out / "rollouts"), prompts_by_step(out / "rollouts")
    assert {1, 2, 3} <= set(straight) and {1, 2, 3} <= set(interrupted), (sorted(straight), sorted(interrupted))
    for step in (1, 2, 3):
        assert interrupted[step] == straight[step], f"step {step}: the resumed 2-rank run consumed other prompts"
    assert straight[1] != straight[2]  # the sampler moves on

    # the evaluation harness merges the real 2-shard checkpoint with verl's model merger; lr 0 keeps the
    # initial weights, so the merged model must equal the tiny model (the merger writes bf16)
    from safetensors.torch import load_file

    from recipe_srft.evaluation.checkpoint import prepare_model

    info = prepare_model(str(out / "ckpt" / "global_step_2"), tmp_path / "eval", log=lambda *_: None)
    assert info["num_shards"] == 2
    merged = {}
    for f in Path(info["eval_path"]).glob("*.safetensors"):
        merged.update(load_file(f))
    original = load_file(Path(tiny_model_dir) / "model.safetensors")
    common = set(merged) & set(original)
    assert len(common) >= len(original) - 1, (sorted(merged)[:5], sorted(original)[:5])  # tied lm_head may be absent
    for name in common:
        assert torch.equal(merged[name].float(), original[name].to(merged[name].dtype).float()), name

    # the dry run's estimate (the same config) against the shards on disk: fp32 weights + 2 Adam moments, split
    # over 2 ranks; what remains is torch.save's per-tensor overhead
    from omegaconf import OmegaConf

    from recipe_srft.tools.dry_run import checkpoint_budget, compose_config

    config = compose_config(overrides(tiny_model_dir, *data, out, steps=3, ranks=2, mini=N_PROMPTS // 2,
                                      lr=0.0, save_freq=1))
    OmegaConf.resolve(config)
    budget = checkpoint_budget(config)
    actor = out / "ckpt" / "global_step_2" / "actor"
    on_disk = {kind: sum(f.stat().st_size for f in actor.glob(f"{kind}_world_size_2_rank_*.pt"))
               for kind in ("model", "optim")}
    assert budget["saves"] == 3 and budget["kept"] == 3
    assert budget["parts_bytes"]["model"] <= on_disk["model"] <= 1.1 * budget["parts_bytes"]["model"], (budget, on_disk)
    assert budget["parts_bytes"]["optimizer"] <= on_disk["optim"] <= 1.1 * budget["parts_bytes"]["optimizer"], on_disk


def _naive_sft_terms(model_dir: Path, dump: dict) -> list[float]:
    """SFT term of each optimizer mini-batch, from scratch: sum over its demo tokens of
    w_sft * -log p(token) / (its demo-token count), w_sft = 0.5 * exp(-H), H the mean token entropy of the
    demonstration (srft defaults), under the initial weights (lr 0)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    for i, demo in enumerate(dump["is_demo"]):
        j = dump["minibatch"][i]
        sums.setdefault(j, 0.0)
        counts.setdefault(j, 0)
        if not demo:
            continue
        prompt, response = dump["prompts"][i], dump["responses"][i]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + response])).logits[0].double()
        logp = torch.log_softmax(logits[len(prompt) - 1:-1], dim=-1)
        token_logp = logp.gather(-1, torch.tensor(response).unsqueeze(-1)).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1)
        w = 0.5 * math.exp(-entropy.mean().item())
        sums[j] += float((w * -token_logp).sum())
        counts[j] += len(response)
    return [sums[j] / counts[j] for j in sorted(sums)]


#: what recipe_srft.main_srft logs every step besides verl's own metrics
SRFT_METRICS = ("actor/srft/w_sft_mean", "actor/srft/w_sft_min", "actor/srft/w_sft_max", "actor/srft/entropy_demo",
                "actor/srft/entropy_onpolicy", "actor/srft/offpolicy_pg_loss", "actor/srft/onpolicy_pg_loss",
                "actor/srft/demo_token_prob", "srft/demo_solve_rate", "srft/onpolicy_solve_rate",
                "srft/groups_all_solved_frac", "srft/groups_none_solved_frac", "srft/demo_truncated_count",
                "srft/onpolicy/entropy", "srft/demo/entropy", "srft/onpolicy/response_length_mean",
                "srft/demo/response_length_mean", "srft/onpolicy/score_mean", "srft/demo/score_mean",
                "srft/minibatch_demo_frac_min", "srft/minibatch_demo_frac_max")


def test_two_minibatches_each_get_demos_and_a_per_minibatch_sft_term(tiny_model_dir, data, tmp_path):
    out = tmp_path / "two_mb"
    extra = ["srft.preset=custom", "srft.demos_in_group_stats=false", f"srft.dump_minibatches_dir={out}/layout"]
    steps = train(overrides(tiny_model_dir, *data, out, steps=2, mini=N_PROMPTS // 2, lr=0.0, save_freq=2, test_freq=2,
                            extra=extra), out)
    for step in (1, 2):
        m = steps[step]
        # every prompt's group received its demonstration (m = 1) and it reached the actor's loss
        assert m["srft/num_demos"] == N_PROMPTS and m["actor/srft/num_demo_tokens"] > 0
        assert math.isfinite(m["actor/srft/sft_loss"]) and m["actor/srft/sft_loss"] > 0
        assert [key for key in SRFT_METRICS if key not in m] == []
        # w_sft = 0.5 exp(-H) with H the sequence-mean entropy of the demo (paper default)
        assert 0 < m["actor/srft/w_sft_min"] <= m["actor/srft/w_sft_max"] <= 0.5
        assert m["srft/demo_solve_rate"] == 1.0  # the smoke demonstrations are correct answers
        assert m["srft/demo/score_mean"] == 1.0 and m["srft/onpolicy/score_mean"] == m["srft/onpolicy_solve_rate"]
        assert m["actor/grad_norm"] > 0
        # rollout/actor agreement is measured on rollouts only (demos have no behaviour log-probs)
        assert m["training/rollout_probs_diff_max"] < 1e-6
        assert m["srft/num_minibatches"] == 2
        # the demo fraction of every mini-batch is the batch's: 2 groups x (3 rollouts + 1 demo) each
        assert m["srft/minibatch_demo_frac_min"] == pytest.approx(0.25)
        assert m["srft/minibatch_demo_frac_max"] == pytest.approx(0.25)
        # all-fail groups with the demo outside the statistics: std 0 is treated as 1, not 1e-6
        assert m["critic/advantages/max"] < 100
        dump = torch.load(out / "layout" / f"step_{step}.pt")
        for j in (0, 1):  # whole groups: every group's trajectories are in one mini-batch
            keys = [k.rsplit("_", 2)[0] for k, mb in zip(dump["keys"], dump["minibatch"]) if mb == j]
            assert sum(d for d, mb in zip(dump["is_demo"], dump["minibatch"]) if mb == j) == 2
            assert len(set(keys)) == 2 and all(keys.count(k) == GROUP for k in set(keys))
        expected = _naive_sft_terms(Path(tiny_model_dir), dump)
        # verl reports the mean over the step's optimizer mini-batches of each one's SFT term
        assert m["actor/srft/sft_loss"] == pytest.approx(sum(expected) / len(expected), rel=1e-5)
        # and the demo-token count each mini-batch was normalised by is the count of its own demo tokens
        for j in (0, 1):
            own = sum(len(r) for r, d, mb in zip(dump["responses"], dump["is_demo"], dump["minibatch"]) if d and mb == j)
            assert m[f"srft/minibatch_demo_tokens/{j}"] == own
    assert "val-core/openai/gsm8k/acc/mean@1" in steps[2]
    assert (out / "ckpt" / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    # quiet by default (recipe_srft.tools.quiet): the driver and every Ray worker hide verl's optional-engine warnings,
    # and TransferQueue's thread count fits the host
    log = (out / "train.log").read_text()
    assert "engine is not available" not in log
    assert "should not exceed total physical CPU cores" not in log
