"""One launch path: what the SRFT trainer and the dry run (``recipe_srft.tools.dry_run``) do to a composed verl config
before verl sees it, so that a cluster job fails at start-up exactly where ``DRY_RUN=1`` would.

* :func:`srft_config_from`: the ``srft:`` section resolved (presets, conflicts);
* :func:`check_verl_config`: every start-up check (verl settings SRFT cannot honour, the preset's verl settings,
  and the batch arithmetic of :func:`batch_checks`); one ``ValueError`` lists every problem with its fix;
* :func:`apply_srft_group`: the group size n + m written into verl's ``rollout.n`` (in place, once).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from ..losses import actor_loss_knobs
from ..srft_config import SRFTConfig, resolve_srft_config
from .verl_checks import preset_verl_conflicts, unhonoured_verl_settings
from .verl_batch import verl_batch_problems

#: Top-level key where :func:`apply_srft_group` records the user's n (not a user key: it marks the config as
#: already transformed, so a second call changes nothing).
LAUNCH_KEY = "srft_launch"

#: Position limits of the models the run scripts name (``max_position_embeddings``; used when the
#: model path is not a local folder with a ``config.json``). srft_method.md, pitfall 4.
KNOWN_POSITION_LIMITS = {
    "Qwen/Qwen2.5-Math-7B": 4096,
    "Qwen/Qwen2.5-Math-1.5B": 4096,
    "Elliott/Qwen2.5-Math-7B-16k-think": 16384,
}

def srft_config_from(config) -> SRFTConfig:
    """Resolves ``config.srft``; its loss config shows the actor's clip ratios and entropy coefficient (read by
    :func:`recipe_srft.losses.actor_loss_knobs`, the reader the loss itself uses)."""
    section = OmegaConf.to_container(config.get("srft", {}) or {}, resolve=True)
    actor_values = actor_loss_knobs(config.actor_rollout_ref.actor)
    return resolve_srft_config(section, actor_values)


def check_verl_config(config, srft: SRFTConfig) -> None:
    """Fails loudly on verl settings the SRFT trainer does not support (the message names the fix)."""
    problems = []
    if config.algorithm.adv_estimator != "grpo":
        problems.append(f"algorithm.adv_estimator={config.algorithm.adv_estimator}: SRFT uses group advantages "
                        "(Eq. 7); set algorithm.adv_estimator=grpo")
    if config.algorithm.get("use_kl_in_reward", False):
        problems.append("algorithm.use_kl_in_reward=true: SRFT has no KL term; set it to false")
    if config.actor_rollout_ref.actor.get("shuffle", False):
        problems.append("actor_rollout_ref.actor.shuffle=true: the SFT term is normalised over the demo tokens of each "
                        "optimizer mini-batch, which the trainer counts before the update from the batch layout; verl "
                        "would reshuffle the rows inside each rank every epoch, so those counts (and the whole-group "
                        "mini-batches) would no longer hold. Set it to false: the trainer already spreads whole groups "
                        "evenly over the mini-batches")
    if config.actor_rollout_ref.actor.get("ppo_epochs", 1) != 1 and srft.loss.entropy_scope == "batch":
        problems.append("entropy_scope=batch uses the old policy's entropy per mini-batch; with ppo_epochs>1 use "
                        "srft.entropy_scope=sequence")
    if config.trainer.v1.get("trainer_mode") != "srft":
        problems.append(f"trainer.v1.trainer_mode={config.trainer.v1.get('trainer_mode')}: expected srft")
    problems += unhonoured_verl_settings(config)
    problems += preset_verl_conflicts(config, srft.preset)
    if str(OmegaConf.select(config, "trainer.device", default="")) == "cpu":
        from ..cpu.engines import rollout_engine_problems  # the CPU runtime's own check (GPU runs never import it)

        problems += rollout_engine_problems(config)
    try:
        problems += batch_checks(config, srft)[0]
    except (TypeError, ValueError, OmegaConfBaseException) as exc:
        problems.append(f"batch arithmetic could not be checked: {exc}")
    if problems:
        raise ValueError("SRFT cannot run with this configuration:\n  - " + "\n  - ".join(problems))


def num_rollouts(config) -> int:
    """n, the on-policy rollouts per prompt the user asked for (``rollout.n`` before :func:`apply_srft_group`)."""
    launched = OmegaConf.select(config, f"{LAUNCH_KEY}.num_rollouts", default=None)
    return int(config.actor_rollout_ref.rollout.n if launched is None else launched)


def apply_srft_group(config, srft: SRFTConfig) -> int:
    """Writes the group size into ``config`` as the SRFT trainer hands it to verl's workers; returns n.

    ``rollout.n`` (and the actor's ``rollout_n``) become n + m so that verl's mini-batch arithmetic counts whole
    groups; the per-token entropy is computed (Eq. 8, 11, 13). Idempotent (:data:`LAUNCH_KEY`).
    """
    n = num_rollouts(config)
    if OmegaConf.select(config, f"{LAUNCH_KEY}.num_rollouts", default=None) is None:
        with open_dict(config):
            config[LAUNCH_KEY] = {"num_rollouts": n}
            config.actor_rollout_ref.rollout.n = n + srft.demos_per_prompt
            config.actor_rollout_ref.actor.rollout_n = n + srft.demos_per_prompt
            config.actor_rollout_ref.actor.calculate_entropy = True
    return n


def _select(config, key: str, default=None):
    value = OmegaConf.select(config, key, default=default)
    return default if value is None else value


def _model_position_limit(model_path: str) -> tuple[Optional[int], str]:
    path = Path(os.path.expanduser(str(model_path)))
    cfg_file = path / "config.json"
    if cfg_file.is_file():
        try:
            data = json.loads(cfg_file.read_text())
        except (OSError, ValueError) as exc:
            return None, f"{cfg_file} unreadable ({exc})"
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            if isinstance(data.get(key), int):
                return int(data[key]), f"{key} of {cfg_file}"
        return None, f"no position limit in {cfg_file}"
    if str(model_path) in KNOWN_POSITION_LIMITS:
        return KNOWN_POSITION_LIMITS[str(model_path)], f"known limit of {model_path}"
    return None, f"{model_path} is not a local folder with config.json and not a known model: not checked"


def batch_checks(config, srft: SRFTConfig, use_ref: Optional[bool] = None) -> tuple[list[str], dict[str, Any]]:
    """(problems, summary) of the batch arithmetic: group size, mini-batches, GPUs and ranks, token budgets, the
    model's positions. ``use_ref`` defaults to verl's ``need_reference_policy``."""
    if use_ref is None:
        from verl.trainer.ppo.utils import need_reference_policy

        use_ref = bool(need_reference_policy(config))
    problems: list[str] = []
    summary: dict[str, Any] = {}

    def size(key: str, default=None) -> int:
        value = OmegaConf.select(config, key, default=default)
        try:
            return int(default if value is None else value)
        except (TypeError, ValueError):
            raise ValueError(f"{key}={value!r} is not an integer") from None

    actor = config.actor_rollout_ref.actor
    rollout = config.actor_rollout_ref.rollout
    n = num_rollouts(config)
    m = int(srft.demos_per_prompt)
    group = n + m
    tbs = size("data.train_batch_size")
    mini = size("actor_rollout_ref.actor.ppo_mini_batch_size")
    epochs = size("actor_rollout_ref.actor.ppo_epochs", 1) or 1
    nnodes = size("trainer.nnodes")
    per_node = size("trainer.n_gpus_per_node")
    n_gpus = nnodes * per_node
    prompt_len = size("data.max_prompt_length")
    response_len = size("data.max_response_length")
    longest = prompt_len + response_len

    if n < 1:
        problems.append(f"actor_rollout_ref.rollout.n={n}: need at least one on-policy rollout per prompt")
    if tbs < 1 or mini < 1:
        problems.append(f"data.train_batch_size={tbs} and actor.ppo_mini_batch_size={mini} must be >= 1")
        return problems, summary
    if mini > tbs:
        problems.append(f"actor_rollout_ref.actor.ppo_mini_batch_size={mini} > data.train_batch_size={tbs}")
    if tbs % mini:
        problems.append(f"data.train_batch_size={tbs} is not a multiple of actor_rollout_ref.actor.ppo_mini_batch_size"
                        f"={mini} (both count prompts): the last optimizer step would get a partial mini-batch. "
                        f"Use e.g. ppo_mini_batch_size={_divisor_near(tbs, mini)}")
    if (tbs * group) % (mini * group):
        problems.append(f"a rollout batch of {tbs * group} trajectories (train_batch_size {tbs} x group {group}) "
                        f"does not split into mini-batches of {mini * group} (ppo_mini_batch_size {mini} x {group})")

    # GPUs: rollout replicas (hybrid engine: on all GPUs) and the actor's data-parallel ranks
    tp = int(rollout.tensor_model_parallel_size)
    rollout_ws = tp * int(rollout.get("data_parallel_size", 1) or 1) * int(rollout.get("pipeline_model_parallel_size", 1) or 1)
    if n_gpus < 1:
        problems.append(f"trainer.nnodes={nnodes} x trainer.n_gpus_per_node={per_node}: no GPU")
        return problems, summary
    if n_gpus % rollout_ws:
        problems.append(f"{n_gpus} GPUs (NNODES {nnodes} x GPUS_PER_NODE {per_node}) are not divisible by the rollout's "
                        f"model-parallel size {rollout_ws} (tensor_model_parallel_size={tp})")
    if per_node % tp and tp <= per_node:
        problems.append(f"rollout tensor_model_parallel_size={tp} does not divide the {per_node} GPUs of a node")
    strategy = str(actor.strategy)
    if strategy == "megatron":
        mp = (int(actor.megatron.tensor_model_parallel_size) * int(actor.megatron.pipeline_model_parallel_size)
              * int(actor.megatron.context_parallel_size))
        sp = 1
    else:
        sp = max(int(actor.get("ulysses_sequence_parallel_size", 1) or 1),
                 int(_select(actor, "fsdp_config.ulysses_sequence_parallel_size", 1)))
        mp = sp
    if n_gpus % mp:
        problems.append(f"{n_gpus} GPUs are not divisible by the actor's model/sequence-parallel size {mp}")
    dp = max(1, n_gpus // mp)
    # what verl asserts later about mini-/micro-batches, ranks and token budgets (one home: verl_batch.py)
    # a prompt reaches the batch with >= 1 demonstration when the data check refuses or drops rows without one
    min_demos = 1 if srft.data_check in ("error", "skip") else 0
    verl_problems, budgets = verl_batch_problems(config, n=n, m=m, tbs=tbs, mini=mini, dp=dp, sp=sp,
                                                 longest=longest, n_gpus=n_gpus, use_ref=use_ref, min_demos=min_demos)
    problems += verl_problems

    # positions of the model (pitfall 4) and vLLM's context
    limit, source = _model_position_limit(str(config.actor_rollout_ref.model.path))
    if limit is not None and longest > limit:
        problems.append(f"max_prompt_length {prompt_len} + max_response_length {response_len} = {longest} exceeds the "
                        f"model's {limit} positions ({source}); vLLM would cap the responses: use a model with a "
                        f"longer window (e.g. Elliott/Qwen2.5-Math-7B-16k-think) or lower data.max_response_length")
    max_model_len = rollout.get("max_model_len")
    if max_model_len is not None and int(max_model_len) < longest:
        problems.append(f"actor_rollout_ref.rollout.max_model_len={max_model_len} < {longest} = max prompt + response")

    summary.update(
        rollouts_per_prompt=n,
        demos_per_prompt=m,
        group_size=group,
        train_batch_size_prompts=tbs,
        trajectories_per_step=tbs * group,
        generated_per_step=tbs * n,
        ppo_mini_batch_size_prompts=mini,
        trajectories_per_mini_batch=mini * group,
        ppo_epochs=epochs,
        optimizer_steps_per_rollout_batch=(tbs // mini) * epochs,
        nnodes=nnodes,
        gpus_per_node=per_node,
        total_gpus=n_gpus,
        rollout_tp=tp,
        rollout_replicas=n_gpus // rollout_ws if rollout_ws else 0,
        actor_strategy=strategy,
        actor_dp=dp,
        trajectories_per_rank_per_mini_batch=(mini * group) // dp,
        max_sequence_length=longest,
        token_budgets={k: v for k, v in budgets.items()},
        model_positions=f"{limit} ({source})" if limit is not None else source,
    )
    return problems, summary


def _divisor_near(total: int, target: int) -> int:
    divisors = [d for d in range(1, total + 1) if total % d == 0]
    return min(divisors, key=lambda d: (abs(d - target), -d))


