"""The batch arithmetic verl 0.9.1 asserts after start-up, checked before anything is launched.

verl's V1 trainer checks little of its batch arithmetic at start-up; the rest is asserted inside the workers, after
the model load, the rollout servers' start and the initial validation: on a cluster, hours. :func:`verl_batch_problems`
mirrors each of those assertions (cited ``file:line`` in verl 0.9.1 below) on the numbers the SRFT trainer hands to
verl (the group of n rollouts + m demonstrations per prompt) and names the key and the fix. It is called from
:func:`recipe_srft.integration.launch.batch_checks`, which both the trainer's start-up (``check_verl_config``) and
``DRY_RUN`` run. ``tests/test_verl_batch.py`` enumerates a grid of small shapes and calls verl's own splitting code on
synthetic batches of each shape: no shape that passes these checks fails there.

What verl does with one training batch (trajectories, all of one step), in order:

1. pads it with no-op samples to a multiple of ``lcm(dp, ppo_mini_batch_size x rollout.n)``
   (``verl/trainer/ppo/v1/trainer_base.py:1589-1606``, ``verl/trainer/ppo/padding_utils.py:165-186``); the SRFT
   trainer keeps that padding and puts whole groups into every optimizer mini-batch
   (``recipe_srft/minibatch.py``), whose token balance over the ranks (``trainer.balance_batch``) is verl's
   equal-size partition (``verl/utils/seqlen_balancing.py:147,239``);
2. splits it into ``dp`` contiguous, equal shares, one per data-parallel rank of the actor
   (``verl/single_controller/base/decorator.py:77``, ``transfer_queue/metadata.py:984``);
3. old log-probs: each rank cuts its share into micro-batches of ``rollout.log_prob_micro_batch_size_per_gpu``
   rows, asserting that it divides the share (``verl/workers/engine/utils.py:125``, called by
   ``TrainingWorker.infer_batch``, ``verl/workers/engine_workers.py:410``), or, with dynamic batch size, into
   micro-batches of at most ``log_prob_max_token_len_per_gpu`` tokens x sequence parallel, asserting that the
   longest sequence fits (``verl/utils/seqlen_balancing.py:384``);
4. update: each rank cuts its share into mini-batches of ``ppo_mini_batch_size x rollout.n / dp`` rows, asserting
   the division (``verl/workers/engine_workers.py:267``, ``verl/utils/tensordict_utils.py:588``), then each
   mini-batch into micro-batches of ``actor.ppo_micro_batch_size_per_gpu`` rows (``engine/utils.py:125`` again, via
   ``TrainingWorker.train_batch``, ``engine_workers.py:356``) or of ``ppo_max_token_len_per_gpu`` tokens
   (``seqlen_balancing.py:384``).

The worker also asserts, when it builds the actor (``verl/workers/engine_workers.py:616,633-637``), that the actor and
the log-prob pass agree on dynamic batch size and that the sizes it reads are set: the deprecated global keys
(``ppo_micro_batch_size``, ``log_prob_micro_batch_size``) are not read by verl 0.9.1's engine workers
(``engine_workers.py:623-629``). ``verl.utils.config.validate_config`` (run at start-up by ``main_srft`` and the dry
run) asserts one more, with the user's n (``verl/utils/config.py:124``); it is mirrored here so that its message
names the key too.
"""

from __future__ import annotations

import math
from omegaconf import OmegaConf

__all__ = ["verl_batch_problems", "logprob_shares"]

_ACTOR = "actor_rollout_ref.actor"
_ROLLOUT = "actor_rollout_ref.rollout"
_REF = "actor_rollout_ref.ref"


def logprob_shares(tbs: int, n: int, m: int, mini: int, dp: int, min_demos: int = 0) -> list[int]:
    """Trajectories each rank may get in one log-prob pass: every padded batch size verl can produce, divided by dp.

    A step holds ``tbs x n`` rollouts plus ``tbs x min_demos`` to ``tbs x m`` demonstrations (a prompt brings at most
    m; ``min_demos`` = 1 when the start-up data check drops or refuses rows without one, else 0); verl pads that
    count up to a multiple of ``lcm(dp, mini x (n + m))`` (trainer_base.py:1589-1606, padding_utils.py:165-186)."""
    group = n + m
    multiple = math.lcm(dp, mini * group)
    fewest = tbs * (n + min(min_demos, m))
    padded = sorted({-(-count // multiple) * multiple for count in range(max(fewest, 1), tbs * group + 1)})
    return [size // dp for size in padded if size % dp == 0]


def _divisors(value: int) -> list[int]:
    return [d for d in range(1, value + 1) if value % d == 0]


def _mini_fix(tbs: int, mini: int, group: int, dp: int) -> str:
    """A ppo_mini_batch_size (prompts) near ``mini`` that divides ``tbs`` and whose trajectories split over dp."""
    fits = [d for d in _divisors(tbs) if (d * group) % dp == 0]
    if fits:
        best = min(fits, key=lambda d: (abs(d - mini), -d))
        return f"{_ACTOR}.ppo_mini_batch_size={best}"
    return (f"a data.train_batch_size whose mini-batches hold a multiple of {dp // math.gcd(dp, group)} prompts, "
            f"or a number of GPUs dividing {mini * group}")


def verl_batch_problems(config, *, n: int, m: int, tbs: int, mini: int, dp: int, sp: int, longest: int,
                        n_gpus: int, use_ref: bool, min_demos: int = 0) -> tuple[list[str], dict[str, int]]:
    """(problems, token budgets) of the batch arithmetic verl asserts later (see the module docstring).

    ``n`` rollouts and ``m`` demonstrations per prompt, ``tbs`` prompts per step, ``mini`` prompts per optimizer
    mini-batch, ``dp`` data-parallel ranks of the actor, ``sp`` its sequence-parallel size, ``longest`` = max prompt +
    max response tokens, ``n_gpus`` = nnodes x n_gpus_per_node, ``min_demos`` the fewest demonstrations a prompt
    brings (see :func:`logprob_shares`). Each problem names the key, what verl would do (``file:line``) and the fix."""
    problems: list[str] = []
    budgets: dict[str, int] = {}
    group = n + m
    mb = mini * group  # trajectories per optimizer mini-batch (verl: ppo_mini_batch_size x rollout.n)

    def get(key: str, default=None):
        value = OmegaConf.select(config, key, default=default)
        return default if value is None else value

    # the optimizer mini-batch over the ranks: the update's split and balance_batch's equal-size partition
    if mb % dp:
        problems.append(
            f"{_ACTOR}.ppo_mini_batch_size={mini}: an optimizer mini-batch of {mb} trajectories ({mini} prompts x "
            f"group {group} = n {n} + m {m}) does not split over the actor's {dp} data-parallel ranks: verl asserts "
            f"mini_batch_size % dp == 0 (verl/workers/engine_workers.py:267), trainer.balance_batch's equal-size "
            f"partition needs it (verl/utils/seqlen_balancing.py:147) and so do the SRFT trainer's per-mini-batch "
            f"demo-token counts. Fix: {_mini_fix(tbs, mini, group, dp)}")
        return problems, budgets  # every per-rank number below would be a fraction

    dynamic = bool(get(f"{_ACTOR}.use_dynamic_bsz", False))
    logprob_dynamic = bool(get(f"{_ROLLOUT}.log_prob_use_dynamic_bsz", False))
    if dynamic != logprob_dynamic:
        problems.append(
            f"{_ACTOR}.use_dynamic_bsz={str(dynamic).lower()} but {_ROLLOUT}.log_prob_use_dynamic_bsz="
            f"{str(logprob_dynamic).lower()}: verl's worker asserts they agree when it builds the actor "
            f"(verl/workers/engine_workers.py:616). Fix: {_ROLLOUT}.log_prob_use_dynamic_bsz={str(dynamic).lower()}")

    per_rank_mini = mb // dp
    shares = logprob_shares(tbs, n, m, mini, dp, min_demos)
    share_text = (f"{shares[-1]} trajectories per rank" if len(shares) == 1 else
                  f"{', '.join(map(str, shares))} trajectories per rank (fewer when prompts lack demonstrations"
                  + (": srft.data_check=keep" if min_demos == 0 and m > 0 else "") + ")")

    if dynamic:
        budget_keys = [(f"{_ACTOR}.ppo_max_token_len_per_gpu", "the update")]
        if logprob_dynamic:
            budget_keys.append((f"{_ROLLOUT}.log_prob_max_token_len_per_gpu", "the old-log-prob pass"))
    else:
        budget_keys = ([(f"{_ROLLOUT}.log_prob_max_token_len_per_gpu", "the old-log-prob pass")]
                       if logprob_dynamic else [])
    if use_ref and get(f"{_REF}.log_prob_use_dynamic_bsz", False):
        budget_keys.append((f"{_REF}.log_prob_max_token_len_per_gpu", "the reference pass"))
    for key, what in budget_keys:
        value = get(key)
        if value is None:
            problems.append(f"{key}=null with dynamic batch size: verl asserts it is set "
                            f"(verl/workers/engine_workers.py:633-634). Fix: {key}={longest} or more")
            continue
        budgets[key] = int(value)
        if int(value) * sp < longest:
            problems.append(
                f"{key}={value} (x sequence parallel {sp}) cannot hold one trajectory of up to {longest} tokens "
                f"(data.max_prompt_length + data.max_response_length): {what} would fail verl's assertion "
                f"max_token_len >= max_seq_len (verl/utils/seqlen_balancing.py:384). Fix: {key}={-(-longest // sp)} "
                f"or more")

    if not dynamic:
        micro = get(f"{_ACTOR}.ppo_micro_batch_size_per_gpu")
        legacy = get(f"{_ACTOR}.ppo_micro_batch_size")
        cap = int(micro) if micro else max(1, int(legacy) // dp) if legacy else per_rank_mini
        fix = max(d for d in _divisors(per_rank_mini) if d <= cap)
        if micro is None and legacy is not None:  # both null: ActorConfig refuses it at start-up (actor.py:207)
            problems.append(
                f"{_ACTOR}.ppo_micro_batch_size_per_gpu=null without dynamic batch size: verl's worker asserts it is "
                f"set (verl/workers/engine_workers.py:637); {_ACTOR}.ppo_micro_batch_size={legacy} is deprecated "
                f"and not read by verl 0.9.1's engine workers (engine_workers.py:627). Fix: "
                f"{_ACTOR}.ppo_micro_batch_size_per_gpu={fix} (it must divide the {per_rank_mini} trajectories of "
                f"each rank's mini-batch), or {_ACTOR}.use_dynamic_bsz=true")
        elif micro is not None and per_rank_mini % int(micro):
            problems.append(
                f"{_ACTOR}.ppo_micro_batch_size_per_gpu={micro} does not divide the {per_rank_mini} trajectories of "
                f"each rank's optimizer mini-batch ({mini} prompts x group {group} / {dp} ranks): verl asserts "
                f"'data size must be divisible by force_group_size * micro_batch_size_per_gpu' in the update "
                f"(verl/workers/engine/utils.py:125). Fix: {_ACTOR}.ppo_micro_batch_size_per_gpu={fix} (a divisor "
                f"of {per_rank_mini}), or {_ACTOR}.use_dynamic_bsz=true")

    passes = []
    if not logprob_dynamic:
        passes.append((_ROLLOUT, "old-log-prob", "engine_workers.py:410, 623-625"))
    if use_ref and not get(f"{_REF}.log_prob_use_dynamic_bsz", False):
        passes.append((_REF, "reference log-prob", "engine_workers.py:546-549, 580-584"))
    common = math.gcd(*shares) if shares else 1
    for section, what, site in passes:
        key = f"{section}.log_prob_micro_batch_size_per_gpu"
        value = get(key)
        legacy = get(f"{section}.log_prob_micro_batch_size")
        cap = int(value) if value else max(1, int(legacy) // dp) if legacy else common
        fix = max(d for d in _divisors(common) if d <= cap)
        if value is None:
            if legacy is not None:  # both null: verl's validate_config refuses it at start-up (config.py:155)
                problems.append(
                    f"{key}=null without dynamic batch size: verl's worker asserts it is set "
                    f"(verl/workers/engine_workers.py:636); {section}.log_prob_micro_batch_size={legacy} is "
                    f"deprecated and not read by verl 0.9.1's engine workers. Fix: {key}={fix} (it must divide "
                    f"{share_text})")
            continue
        bad = [s for s in shares if s % int(value)]
        if bad:
            problems.append(
                f"{key}={value} does not divide each rank's share of the {what} pass: {share_text} (train_batch_size "
                f"{tbs} x group {group}, padded by verl to a multiple of lcm({dp} ranks, mini-batch {mb}), over {dp} "
                f"ranks); verl asserts 'data size must be divisible by force_group_size * micro_batch_size_per_gpu' "
                f"(verl/workers/engine/utils.py:125, via {site}) after the model load and the first rollout. "
                f"Fix: {key}={fix} (a divisor of {common}), or dynamic batch size "
                f"({_ACTOR}.use_dynamic_bsz=true and {_ROLLOUT}.log_prob_use_dynamic_bsz=true)")

    # verl.utils.config.validate_config, with the n the user gave (it runs before the SRFT trainer adds the m demos)
    if not dynamic and (tbs * n) % n_gpus:
        step = n_gpus // math.gcd(n, n_gpus)
        problems.append(
            f"data.train_batch_size={tbs} x {_ROLLOUT}.n={n} = {tbs * n} is not a multiple of the {n_gpus} GPUs: "
            f"verl's validate_config asserts it without dynamic batch size (verl/utils/config.py:124). Fix: "
            f"data.train_batch_size a multiple of {step} (with the mini-batch dividing it), or "
            f"{_ACTOR}.use_dynamic_bsz=true")
    return problems, budgets

