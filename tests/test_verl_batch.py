"""Batch arithmetic: no shape passes the start-up check and then fails in verl (recipe_srft/integration/verl_batch.py).

For every shape of a grid (prompts per step, n rollouts + m demonstrations, 1 or 2 ranks, mini-batch, micro-batch and
log-prob micro-batch sizes, dynamic batch size off and on with tight and too small token budgets), either
``launch.batch_checks`` (what the trainer's start-up and ``DRY_RUN`` run) refuses it, or verl's own code accepts
synthetic batches of that shape, rank by rank:

* ``verl.utils.config.validate_config`` (run at start-up before Ray);
* the padding multiple of ``PPOTrainer._get_required_batch_multiple`` (trainer_base.py:1589), the SRFT trainer's
  whole-group layout (``recipe_srft.minibatch.whole_group_order``, which calls verl's equal-size
  ``get_seqlen_balanced_partitions``) and ``minibatch_ids``;
* the split over ranks (``KVBatchMeta.chunk(dp)``, transfer_queue/metadata.py:984, what ``decorator.py:77`` ends in);
* per rank, verl's ``TrainingWorker.infer_batch`` (the old-log-prob pass) and ``TrainingWorker.train_mini_batch``
  (the update: mini-batches, then ``train_batch``) with a stand-in engine whose forward pass is verl's own
  ``prepare_micro_batches`` (what ``FSDPEngine.forward_backward_batch`` calls, transformer_impl.py:737), which holds
  the assertions of engine/utils.py:125 and seqlen_balancing.py:384.

A batch of each shape is tried with every demonstration present, then with 1, 2, ... missing, down to one per prompt
(``srft.data_check=error``, the default: rows without one never reach the batch) or to none (``srft.data_check=keep``,
a dimension of the grid). verl's calls are memoised on their inputs. No Ray, no model.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import types
from collections import Counter

import pytest
import torch
import torch.distributed as dist
from omegaconf import OmegaConf
from tensordict import TensorDict

from recipe_srft.integration.launch import apply_srft_group, batch_checks, srft_config_from
from recipe_srft.tools.dry_run import compose_config

PROMPT_LEN, RESPONSE_LEN = 8, 8
LONGEST = PROMPT_LEN + RESPONSE_LEN

GROUPS = [(1, 1), (2, 1), (3, 1), (1, 2), (2, 0)]  # (n rollouts, m demonstrations)
PROMPTS = [1, 2, 3, 4]
RANKS = [1, 2]
MINIS = [1, 2, 4]
MICROS = [1, 2, 3, 4]
LOGPROB_MICROS = [1, 2, 3, 4, 6]
BUDGETS = [(LONGEST, LONGEST), (LONGEST - 1, LONGEST), (LONGEST, LONGEST - 1)]  # (update, log-prob) tokens per GPU


def grid():
    for tbs, (n, m), dp, mini in itertools.product(PROMPTS, GROUPS, RANKS, MINIS):
        for micro, lp in itertools.product(MICROS, LOGPROB_MICROS):
            yield dict(tbs=tbs, n=n, m=m, dp=dp, mini=mini, dynamic=False, micro=micro, lp=lp)
            if m:  # srft.data_check=keep: prompts may come without any demonstration
                yield dict(tbs=tbs, n=n, m=m, dp=dp, mini=mini, dynamic=False, micro=micro, lp=lp, check="keep")
        for budget, lp_budget in BUDGETS:
            yield dict(tbs=tbs, n=n, m=m, dp=dp, mini=mini, dynamic=True, budget=budget, lp_budget=lp_budget)


@pytest.fixture(scope="module", autouse=True)
def no_ray():
    """This file must never start Ray (another Ray cluster may be running): any ray.init fails the test."""
    import ray
    import ray._private.worker as ray_worker

    def refuse(*args, **kwargs):
        raise RuntimeError("tests/test_verl_batch.py must not start Ray")

    saved = ray.init, ray_worker.init
    ray.init = ray_worker.init = refuse
    yield
    ray.init, ray_worker.init = saved


# ------------------------------------------------------------------------------------------------ configs
@pytest.fixture(scope="module")
def base():
    return compose_config(["+runtime=cpu", "actor_rollout_ref.rollout.name=hf", "srft.preset=custom",
                           "actor_rollout_ref.model.path=/nonexistent/model",
                           f"data.max_prompt_length={PROMPT_LEN}", f"data.max_response_length={RESPONSE_LEN}"])


def configure(config, shape: dict):
    """``config`` (composed once) set to ``shape``, in place."""
    values = {
        "data.train_batch_size": shape["tbs"],
        "actor_rollout_ref.rollout.n": shape["n"],
        "srft.demos_per_prompt": shape["m"],
        "actor_rollout_ref.actor.ppo_mini_batch_size": shape["mini"],
        "trainer.n_gpus_per_node": shape["dp"],
        "actor_rollout_ref.actor.use_dynamic_bsz": shape["dynamic"],
        "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz": shape["dynamic"],
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": shape.get("micro"),
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": shape.get("lp"),
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu": shape.get("budget", 16384),
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu": shape.get("lp_budget", 16384),
        "srft.data_check": shape.get("check", "error"),
    }
    for key, value in values.items():
        OmegaConf.update(config, key, value, merge=False)
    return config


def start_up_problems(config) -> list[str]:
    srft = srft_config_from(config)
    return batch_checks(config, srft, use_ref=False)[0]


# ------------------------------------------------------------------------------------------------ verl's side
class _Engine:
    """Stands in for verl's FSDP engine: its forward/backward pass is only the micro-batch split verl runs first
    (``FSDPEngine.forward_backward_batch``, verl/workers/engine/fsdp/transformer_impl.py:726-738)."""

    def __init__(self, dp: int, rank: int):
        self.dp, self.rank, self.micro_batches = dp, rank, []

    def get_data_parallel_size(self):
        return self.dp

    def get_data_parallel_rank(self):
        return self.rank

    def get_data_parallel_group(self):
        return None

    def train_mode(self, **kwargs):
        return contextlib.nullcontext()

    eval_mode = train_mode

    def _forward_backward(self, data, loss_function=None):
        from verl.utils import tensordict_utils as tu
        from verl.workers.engine.utils import prepare_micro_batches

        tu.assign_non_tensor(data, sp_size=1)
        micro, _ = prepare_micro_batches(data=data, dp_group=None, same_micro_num_in_dp=True)
        self.micro_batches.append([len(mb) for mb in micro])
        return {"loss": [], "metrics": {}, "model_output": {}}

    train_batch = infer_batch = _forward_backward

    def lr_scheduler_step(self):
        return None

    def is_mp_src_rank_with_outputs(self):
        return False


class _Profiler:
    rank = 0

    def step(self):
        pass

    def check_enable(self):
        return False


def _worker(dp: int, rank: int, config):
    """A ``TrainingWorker`` of rank ``rank`` with verl's engine settings of the actor (engine_workers.py:618-631)."""
    from verl.workers.engine_workers import TrainingWorker

    actor, rollout = config.actor_rollout_ref.actor, config.actor_rollout_ref.rollout
    worker = types.SimpleNamespace(engine=_Engine(dp, rank), profiler=_Profiler(), loss_fn=lambda *a, **k: None,
                                   model_config={"use_remove_padding": True})
    worker.engine_config = types.SimpleNamespace(
        use_dynamic_bsz=actor.use_dynamic_bsz, micro_batch_size_per_gpu=actor.ppo_micro_batch_size_per_gpu,
        max_token_len_per_gpu=actor.ppo_max_token_len_per_gpu,
        infer_micro_batch_size_per_gpu=rollout.log_prob_micro_batch_size_per_gpu,
        infer_max_token_len_per_gpu=rollout.log_prob_max_token_len_per_gpu, use_fused_kernels=False,
        forward_only=False)
    worker.train_batch = lambda data: TrainingWorker.train_batch(worker, data)
    return worker


@pytest.fixture(scope="module")
def process_group():
    """One gloo process (``train_mini_batch`` all-gathers token counts over the data-parallel group)."""
    if dist.is_initialized():
        yield
        return
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _trajectory_counts(tbs: int, n: int, m: int, every: bool = True, least: int = 0) -> list[list[int]]:
    """Demonstrations per prompt: all present, then one more missing at a time, down to ``least`` per prompt
    (``every=False``: all, one missing, fewest)."""
    out = []
    most = tbs * (m - least)
    for missing in (range(most + 1) if every else sorted({0, min(1, most), most})):
        demos = [m] * tbs
        for k in range(missing):
            demos[k % tbs] -= 1
        out.append(demos)
    return out


_VALIDATED: dict = {}
_RANK_RUNS: dict = {}


def _validate_config(config, shape: dict) -> str | None:
    """verl's validate_config on ``config`` (memoised on the grid's keys it reads)."""
    from verl.utils.config import validate_config

    key = (shape["tbs"], shape["n"], shape["dp"], shape["mini"], shape["dynamic"], shape.get("micro") is None,
           shape.get("lp") is None)
    if key not in _VALIDATED:
        try:
            validate_config(config=config, use_reference_policy=False, use_critic=False)
            _VALIDATED[key] = None
        except (AssertionError, ValueError) as exc:
            _VALIDATED[key] = f"validate_config: {exc}"
    return _VALIDATED[key]


def _run_rank(config, dp: int, rank: int, lens: list[int], mini_batch: int) -> None:
    """verl's old-log-prob pass and update on one rank's share (memoised: same inputs, same outcome)."""
    from verl.utils import tensordict_utils as tu
    from verl.workers.engine_workers import TrainingWorker

    actor, rollout = config.actor_rollout_ref.actor, config.actor_rollout_ref.rollout
    key = (dp, tuple(lens) if actor.use_dynamic_bsz else len(lens), mini_batch, actor.use_dynamic_bsz,
           actor.ppo_micro_batch_size_per_gpu, rollout.log_prob_micro_batch_size_per_gpu,
           actor.ppo_max_token_len_per_gpu, rollout.log_prob_max_token_len_per_gpu)
    if key not in _RANK_RUNS:
        ids = torch.nested.as_nested_tensor([torch.ones(k, dtype=torch.long) for k in lens], layout=torch.jagged)
        data = TensorDict({"input_ids": ids}, batch_size=[len(lens)])
        worker = _worker(dp, rank, config)
        try:
            TrainingWorker.infer_batch(worker, data.clone())  # old log-probs
            update = data.clone()
            tu.assign_non_tensor(update, mini_batch_size=mini_batch, epochs=1, seed=1,
                                 dataloader_kwargs={"shuffle": False})
            TrainingWorker.train_mini_batch(worker, update)
            _RANK_RUNS[key] = None
        except (AssertionError, ValueError, RuntimeError, ZeroDivisionError) as exc:
            _RANK_RUNS[key] = exc
    if _RANK_RUNS[key] is not None:
        raise _RANK_RUNS[key]


def verl_failure(config, shape: dict, seed: int = 0, validate: bool = True) -> str | None:
    """None when verl's code accepts batches of this shape, else what failed (verl's message). ``validate=False``
    leaves out verl's ``validate_config`` (it runs at start-up anyway; the grid calls it on the accepted shapes)."""
    from transfer_queue import KVBatchMeta
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    from recipe_srft.minibatch import minibatch_ids, whole_group_order

    failure = _validate_config(config, shape) if validate else None
    if failure:
        return failure
    dp, n = shape["dp"], shape["n"]
    group = n + srft_config_from(config).demos_per_prompt  # what apply_srft_group writes into rollout.n
    view = OmegaConf.create({"trainer": {"critic_warmup": config.trainer.critic_warmup},
                             "actor_rollout_ref": {"actor": {"ppo_mini_batch_size": shape["mini"]},
                                                   "rollout": {"n": group}}})
    mini_batch = shape["mini"] * group
    multiple = PPOTrainer._get_required_batch_multiple(
        types.SimpleNamespace(use_critic=False, config=view, global_steps=1), dp)
    rng = random.Random(seed)
    # the start-up data check (error, the default; or skip) lets no prompt without a demonstration through
    least = 0 if shape.get("check") == "keep" else min(1, shape["m"])
    for demos in _trajectory_counts(shape["tbs"], n, shape["m"], every=not shape["dynamic"], least=least):
        groups = [f"p{p}" for p, k in enumerate(demos) for _ in range(n + k)]
        real = len(groups)
        padded = real + (-real) % multiple  # verl/trainer/ppo/padding_utils.py:165-186
        groups += ["pad"] * (padded - real)
        seq_lens = [rng.randint(2, LONGEST) for _ in groups]
        seq_lens[0] = LONGEST
        try:
            order, _ = whole_group_order(groups, seq_lens, [i >= real for i in range(padded)], dp, mini_batch,
                                         balance=True)
            minibatch_ids(padded, dp, mini_batch)
            batch = KVBatchMeta(keys=[f"k{i}" for i in order], tags=[{"seq_len": seq_lens[i]} for i in order],
                                partition_id="train")
            for rank, share in enumerate(batch.chunk(dp)):
                _run_rank(config, dp, rank, [tag["seq_len"] for tag in share.tags], mini_batch)
        except (AssertionError, ValueError, RuntimeError, ZeroDivisionError) as exc:
            return f"{type(exc).__name__} with {sum(demos)} demonstrations: {exc}"
    return None


# ------------------------------------------------------------------------------------------------ the grid
@pytest.fixture(scope="module")
def outcomes(base, process_group):
    """shape -> (start-up problems, verl's failure or None)."""
    results = []
    for shape in grid():
        config = configure(base, shape)
        problems = start_up_problems(config)
        # verl's validate_config runs where the check accepts (or refuses only with validate_config's own rule)
        failure = verl_failure(config, shape, validate=all("verl/utils/config.py:124" in p for p in problems))
        results.append((shape, problems, failure))
    return results


def test_no_shape_passes_the_check_and_fails_in_verl(outcomes):
    slipped = [(shape, failure) for shape, problems, failure in outcomes if not problems and failure]
    assert not slipped, f"{len(slipped)} shapes pass the start-up check but fail in verl, e.g. {slipped[:3]}"


def test_the_grid_has_both_outcomes(outcomes):
    """Not vacuous: verl really fails on many shapes of the grid, and many are accepted."""
    counts = Counter(("refused" if problems else "accepted", "fails" if failure else "runs")
                     for _, problems, failure in outcomes)
    print(f"\n{len(outcomes)} shapes: {dict(counts)}")
    assert counts[("refused", "fails")] > 100 and counts[("accepted", "runs")] > 100, counts
    # the shapes of the issue: 2 ranks, 2 mini-batches, every micro-batch size verl asserts on
    accepted = [s for s, problems, _ in outcomes if not problems]
    assert any(s["dp"] == 2 and s["tbs"] // s["mini"] == 2 and not s["dynamic"] for s in accepted)
    assert any(s["dp"] == 2 and s["tbs"] // s["mini"] == 2 and s["dynamic"] for s in accepted)


#: each rule of verl_batch.py: (the key its message starts with, the verl line it cites)
RULES = {
    "update micro-batch": ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=", "verl/workers/engine/utils.py:125"),
    "log-prob micro-batch": ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=",
                             "verl/workers/engine/utils.py:125"),
    "update token budget": ("actor_rollout_ref.actor.ppo_max_token_len_per_gpu=", "seqlen_balancing.py:384"),
    "log-prob token budget": ("actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=", "seqlen_balancing.py:384"),
    "mini-batch over ranks": ("actor_rollout_ref.actor.ppo_mini_batch_size=", "verl/workers/engine_workers.py:267"),
    "validate_config": ("data.train_batch_size=", "verl/utils/config.py:124"),
}


def test_every_rule_is_needed_and_names_its_key(outcomes):
    """Negative control: for each rule there are shapes refused by that rule alone on which verl does fail, so
    dropping any rule would let a shape through that fails in verl (and each message names the key and verl's line)."""
    alone = Counter()
    for shape, problems, failure in outcomes:
        if len(problems) != 1 or not failure:
            continue
        for name, (key, line) in RULES.items():
            if problems[0].startswith(key) and line in problems[0]:
                alone[name] += 1
    assert set(alone) == set(RULES), alone


def test_the_issue_shape_is_refused_with_the_fix(base, process_group):
    """The issue's run: 4 prompts, mini-batch 2, micro 1, 2 ranks and the smoke's log-prob micro-batch 4 (n = 4, m = 1):
    verl fails in the first old-log-prob pass; the start-up check names the key and a value that works."""
    shape = dict(tbs=4, n=4, m=1, dp=2, mini=2, dynamic=False, micro=1, lp=4)
    config = configure(base, shape)
    assert "divisible by force_group_size" in verl_failure(config, shape)
    problems = start_up_problems(config)
    assert len(problems) == 1 and problems[0].startswith(
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4 does not divide"), problems
    assert "Fix: actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2" in problems[0]
    fixed = configure(base, dict(shape, lp=2))
    assert start_up_problems(fixed) == [] and verl_failure(fixed, dict(shape, lp=2)) is None


def test_dynamic_flags_must_agree_and_legacy_keys_are_not_read(base):
    """Asserted by verl's worker when it builds the actor (engine_workers.py:616, 636-637): not in the grid, which
    sets the flags together and the per-GPU keys."""
    config = configure(base, dict(tbs=4, n=2, m=1, dp=1, mini=2, dynamic=False, micro=2, lp=2))
    OmegaConf.update(config, "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz", True, merge=False)
    assert any("engine_workers.py:616" in p and "log_prob_use_dynamic_bsz=false" in p
               for p in start_up_problems(config))
    config = configure(base, dict(tbs=4, n=2, m=1, dp=1, mini=2, dynamic=False, micro=None, lp=2))
    OmegaConf.update(config, "actor_rollout_ref.actor.ppo_micro_batch_size", 2, merge=False)
    problems = start_up_problems(config)
    assert any(p.startswith("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=null") and "deprecated" in p
               and "ppo_micro_batch_size_per_gpu=2" in p for p in problems), problems


# ------------------------------------------------------------------------------------------------ the SFT stage
SFT_MAX_LENGTH = 16


def sft_grid():
    for tbs, dp in itertools.product(range(1, 9), RANKS):
        for micro in MICROS:
            yield dict(tbs=tbs, dp=dp, dynamic=False, micro=micro)
        for budget in (SFT_MAX_LENGTH, SFT_MAX_LENGTH - 1):
            yield dict(tbs=tbs, dp=dp, dynamic=True, budget=budget)


def test_sft_stage_no_shape_passes_the_check_and_fails_in_verl(process_group):
    """PRESET=sft (verl's own SFT trainer): ``sft_batch_checks`` (its dry run and its start-up, ``resume-guard``)
    against what verl runs on each rank: a batch of ``train_batch_size // dp`` sequences
    (verl/trainer/sft_trainer.py:241) through ``TrainingWorker.train_batch`` and ``prepare_micro_batches``."""
    from verl.workers.engine_workers import TrainingWorker

    from recipe_srft.integration.sft_stage import compose_sft_config, sft_batch_checks

    base = compose_sft_config(["model.path=/nonexistent/model", "data.train_files=/nonexistent/train.parquet",
                               "data.val_files=null", "trainer.test_freq=-1", f"data.max_length={SFT_MAX_LENGTH}"])
    counts = Counter()
    for shape in sft_grid():
        for key, value in {"data.train_batch_size": shape["tbs"], "trainer.n_gpus_per_node": shape["dp"],
                           "data.use_dynamic_bsz": shape["dynamic"],
                           "data.micro_batch_size_per_gpu": shape.get("micro", 1),
                           "data.max_token_len_per_gpu": shape.get("budget", 16384)}.items():
            OmegaConf.update(base, key, value, merge=False)
        problems = sft_batch_checks(base)[0]
        failure = None
        per_rank = shape["tbs"] // shape["dp"]
        lens = [SFT_MAX_LENGTH] + [2 + (7 * i) % (SFT_MAX_LENGTH - 1) for i in range(1, per_rank)]
        worker = types.SimpleNamespace(engine=_Engine(shape["dp"], 0), profiler=_Profiler(), model_config={},
                                       loss_fn=lambda *a, **k: None)
        worker.engine_config = types.SimpleNamespace(
            use_dynamic_bsz=shape["dynamic"], micro_batch_size_per_gpu=shape.get("micro", 1),
            max_token_len_per_gpu=shape.get("budget", 16384), use_fused_kernels=False, forward_only=False)
        try:
            ids = torch.nested.as_nested_tensor([torch.ones(k, dtype=torch.long) for k in lens], layout=torch.jagged)
            TrainingWorker.train_batch(worker, TensorDict({"input_ids": ids}, batch_size=[len(lens)]))
        except (AssertionError, ValueError, RuntimeError, ZeroDivisionError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        assert problems or not failure, (shape, failure)
        counts[(bool(problems), bool(failure))] += 1
    assert counts[(True, True)] > 10 and counts[(False, False)] > 10, counts
