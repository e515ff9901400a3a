"""The SRFT trainer: verl's V1 synchronous trainer plus demonstrations in groups and the SRFT loss.

Registered as ``trainer.v1.trainer_mode=srft`` (set by ``config/srft_trainer.yaml``). What it adds
to :class:`verl.trainer.ppo.v1.trainer_sync.PPOTrainerSync`, through the V1 hooks only:

* start-up: resolves ``srft:`` (presets, conflicts -> error), checks the verl config is compatible
  (GRPO estimator, no KL in reward, entropy computed, unshuffled mini-batches), counts demonstrations
  in the group size (``rollout.n := n + m``) so verl's mini-batch arithmetic sees whole groups;
* ``on_init_end``: installs :func:`recipe_srft.losses.srft_loss_fn` on the actor with ``set_loss_fn``;
* ``_fetch_one_gen_batch``: routes training rows to the ``srft_agent`` loop with ``__rollout_n__ =
  n + m_i`` (m_i = demonstrations the row has, at most m), so each group gets its demonstrations at
  zero generation cost; validation rows are untouched (no demonstrations);
* ``_balance_batch``: right after generation, marks the demonstrations once as the tensor field ``is_demo``
  (:mod:`recipe_srft.contract`), then puts whole groups into every optimizer mini-batch
  (:mod:`recipe_srft.minibatch`);
* ``_compute_old_log_prob``: demonstrations have no behaviour log-probs; rollout-vs-actor diagnostics
  are recomputed on rollouts only;
* ``_compute_advantage``: the per-group gate (``srft.group_gate=hpt``: HPT's switch, which rows a group keeps;
  ``srft/hpt_sft_frac``), Eq. 7 over the augmented group (:mod:`recipe_srft.advantage`), plus the sequence
  rewards for the loss and the SRFT data metrics;
* ``_update_actor``: global demo-token counts (and mean entropy) per optimizer mini-batch, so the
  SFT term is a token-mean over the mini-batch's demo tokens whatever the micro-batch size; verl's global
  step for the per-step weights (``srft.mix=chord``: mu, logged as ``srft/mu``);
* ``_save_checkpoint``: ``trainer.max_actor_ckpt_to_keep`` bounds the checkpoint folder across restarts, and what
  verl's keep rule leaves of a deleted save goes too (:mod:`recipe_srft.integration.checkpoints`);
* a configurable replay-buffer poll interval (verl's fixed 2 s dominates small runs).
"""

from __future__ import annotations

import itertools
import logging
from functools import partial

import numpy as np
import torch
import transfer_queue as tq
from tensordict import TensorDict

from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.debug.metrics import calculate_debug_metrics
from verl.protocol import DataProto
from verl.trainer.ppo.padding_utils import upsample_batch_to_divisible_size
from verl.utils.seqlen_balancing import log_seqlen_unbalance
from verl.workers.utils.padding import response_to_nested

from . import agent_loop  # noqa: F401  (registers the "srft_agent" agent loop)
from .. import contract as C
from ..advantage import grpo_advantage_with_demos, hpt_switch
from ..data_check import batch_data_metrics, check_training_data
from ..demos import count_demos
from ..losses import rows_with_rl_term, srft_loss_fn, term_coefficients
from ..minibatch import minibatch_ids, whole_group_order
from .checkpoints import prune_saves
from .launch import apply_srft_group, check_verl_config, srft_config_from  # noqa: F401  (re-exported)
from ..srft_config import describe
from .watchdog import PhaseWatchdog, alive_ray_actors

logger = logging.getLogger(__name__)


#: actors the run cannot lose once set-up is done (class-name substrings): verl's rollout servers (vLLM's and
#: SGLang's ``*HttpServer``, the CPU runtime's HF server), FSDP worker groups, agent-loop and reward workers
WATCHED_ACTORS = ("HttpServer", "HFRolloutServer", "WorkerDict", "AgentLoopWorker", "RewardLoopWorker")


@register_trainer("srft")
class SRFTTrainer(PPOTrainerSync):
    """verl V1 sync trainer with demonstrations in GRPO groups and the SRFT loss (see module docstring)."""

    def __init__(self, config):
        self.srft = srft_config_from(config)
        check_verl_config(config, self.srft)
        # n = on-policy rollouts per prompt (what the user asked for); the group holds n + m trajectories.
        self.num_rollouts = apply_srft_group(config, self.srft)
        print("SRFT configuration:", describe(self.srft), f"(rollouts per prompt n={self.num_rollouts}, "
              f"group size n+m={config.actor_rollout_ref.rollout.n})", flush=True)
        # uid -> the prompt's position in the dataloader's order, until its group is laid out (_balance_batch)
        self._prompt_positions: dict[str, int] = {}
        self._prompts_fetched = itertools.count()
        super().__init__(config)
        self.watchdog = PhaseWatchdog().start()

    def init(self):
        with self.watchdog.phase("set-up: worker groups, rollout servers, reward workers, checkpoint",
                                 self.srft.startup_timeout_s):
            return super().init()

    def step(self, metrics: dict, timing_raw: dict):
        with self.watchdog.phase(f"training step {self.global_steps}", self.srft.step_timeout_s):
            return super().step(metrics, timing_raw)

    # ------------------------------------------------------------------ set-up
    def _build_replay_buffer(self):
        buffer = super()._build_replay_buffer()
        if hasattr(buffer, "poll_interval"):
            buffer.poll_interval = self.srft.replay_poll_interval_s
        return buffer

    def _init_dataloader(self):
        # srft.data_check (recipe_srft.data_check): broken training rows stop the run, are dropped or are kept, here,
        # before verl builds its datasets (skip: data.train_files / srft.data.sources become copies without them)
        check_training_data(self.config, self.srft, self.tokenizer)
        if not self.srft.data_sources:
            return super()._init_dataloader()
        from .mixed_data import init_mixed_train_dataloader

        super()._init_dataloader()  # validation loader and step counts, then swap the training loader
        init_mixed_train_dataloader(self)

    def on_init_end(self):
        actor_cfg = omega_conf_to_dataclass(self.config.actor_rollout_ref.actor)
        self.actor_rollout_wg.set_loss_fn(partial(srft_loss_fn, config=actor_cfg, srft_cfg=self.srft.loss))
        with self.watchdog.phase("weight sync: actor -> rollout servers (after set-up)",
                                 self.srft.weight_sync_timeout_s):
            super().on_init_end()  # verl's PPOTrainerSync syncs the (loaded) weights here
        try:  # from here on, one of these dying (a crashed rollout server) would leave verl waiting forever
            self.watchdog.watch(alive_ray_actors(WATCHED_ACTORS))
        except Exception as exc:
            print(f"SRFT watchdog: cannot read Ray's actor table ({exc!r}); a dead rollout server is then bounded "
                  "only by srft.step_timeout_s", flush=True)

    def _save_checkpoint(self):
        super()._save_checkpoint()
        # verl keeps the last max_actor_ckpt_to_keep saves of this process only, and leaves their data.pt and
        # transfer_queue/ behind: the same bound on the folder, across restarts (recipe_srft.integration.checkpoints)
        keep = self.config.trainer.get("max_actor_ckpt_to_keep", None)
        actor_ckpt = self.config.actor_rollout_ref.actor.get("checkpoint", {}) or {}
        if keep and int(keep) > 0 and not actor_ckpt.get("async_save", False):
            for folder in prune_saves(self.config.trainer.default_local_dir, self.global_steps, int(keep)):
                print(f"SRFT: removed {folder} (trainer.max_actor_ckpt_to_keep={keep}: an older save, or what verl "
                      "left of one)", flush=True)

    def on_step_end(self):
        # verl's PPOTrainerSync.on_step_end pushes the updated weights; a failed receiver would block it forever
        with self.watchdog.phase(f"weight sync: actor -> rollout servers (after step {self.global_steps})",
                                 self.srft.weight_sync_timeout_s):
            super().on_step_end()

    # ------------------------------------------------------------------ demonstrations in groups
    def _fetch_one_gen_batch(self) -> TensorDict:
        batch = super()._fetch_one_gen_batch()
        size = len(batch)
        fields = [f for f in self.srft.demo_fields if f in batch.keys()]
        num_demos = [count_demos({f: _item(batch[f], i) for f in fields}, self.srft.demo_fields,
                                 self.srft.demos_per_prompt) for i in range(size)]
        tu.assign_non_tensor_stack(batch, "__rollout_n__", [self.num_rollouts + k for k in num_demos])
        tu.assign_non_tensor_stack(batch, C.NUM_ROLLOUTS, [self.num_rollouts] * size)
        tu.assign_non_tensor_stack(batch, C.DEMO_FIELDS, [",".join(self.srft.demo_fields)] * size)
        tu.assign_non_tensor_stack(batch, "agent_name", [C.AGENT_NAME] * size)
        for i in range(size):  # the dataloader's order of the step's prompts, for the mini-batch layout
            self._prompt_positions[_item(batch["uid"], i)] = next(self._prompts_fetched)
        return batch

    def _mark_demos(self, batch):
        """Right after generation: the agent loop's per-trajectory flags (``extra_fields``) become the tensor
        fields ``is_demo`` and ``srft_demo_truncated`` (:mod:`recipe_srft.contract`), read once here; every
        later phase reads them with its other fields. verl's padding rows are never demonstrations."""
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
        extras = [_item(data["extra_fields"], i) or {} for i in range(len(batch))]
        valid = ~_padding_mask(batch)
        is_demo = torch.tensor([int(e.get(C.EXTRA_IS_DEMO, 0)) for e in extras], dtype=torch.bool) & valid
        truncated = torch.tensor([int(e.get(C.EXTRA_DEMO_TRUNCATED, 0)) for e in extras], dtype=torch.bool) & valid
        fields = TensorDict({C.IS_DEMO: is_demo.long(), C.DEMO_TRUNCATED: truncated.long()}, batch_size=len(batch))
        return tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=fields)

    # ------------------------------------------------------------------ batch layout
    def _balance_batch(self, batch, metrics, logging_prefix="global_seqlen", keep_minibatch=False):
        """Whole groups in every optimizer mini-batch (see :mod:`recipe_srft.minibatch`), then verl's token
        balance over ranks inside each mini-batch (``trainer.balance_batch``; verl's V1 trainer always
        balances, this trainer honours ``false`` with a contiguous split)."""
        dp_size = self._actor_dp_size()
        batch = upsample_batch_to_divisible_size(batch, self._get_required_batch_multiple(dp_size),
                                                 self.tokenizer.eos_token_id)
        batch = self._mark_demos(batch)
        seq_lens = [int(tag["seq_len"]) for tag in batch.tags]
        group_ids = [_group_of_key(key) for key in batch.keys]
        # the step's prompts in the dataloader's order; once laid out, they are forgotten
        group_order = {g: self._prompt_positions.pop(g) for g in set(group_ids) if g in self._prompt_positions}
        order, rank_indices = whole_group_order(
            group_ids=group_ids,
            seq_lens=seq_lens,
            is_padding=_padding_mask(batch).tolist(),
            dp_size=dp_size,
            global_mini_batch=self._global_mini_batch(),
            balance=bool(self.config.trainer.get("balance_batch", True)),
            group_order=group_order,
        )
        batch.reorder(order)
        metrics.update(log_seqlen_unbalance(seqlen_list=seq_lens, partitions=rank_indices, prefix=logging_prefix))
        return batch

    def _global_mini_batch(self) -> int:
        """Trajectories per optimizer step: ppo_mini_batch_size prompts x (n + m), as verl's _update_actor."""
        return (int(self.config.actor_rollout_ref.actor.ppo_mini_batch_size)
                * int(self.config.actor_rollout_ref.rollout.n))

    # ------------------------------------------------------------------ log-probs
    def _compute_old_log_prob(self, batch, metrics: dict):
        batch = super()._compute_old_log_prob(batch, metrics)
        if self.config.actor_rollout_ref.rollout.calculate_log_probs and self.srft.demos_per_prompt > 0:
            # Demonstrations carry placeholder behaviour log-probs (pi_beta := 1, Eq. 9): measure the
            # rollout-vs-actor agreement on real rollouts only.
            fields = ["old_log_probs", "rollout_log_probs", "response_mask", "responses"]
            data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields + [C.IS_DEMO])
            padded = data.to_padded_tensor()
            keep = (~padded[C.IS_DEMO].bool().reshape(-1) & ~_padding_mask(batch)).nonzero().flatten()
            if len(keep):  # noqa: SIM102
                sub = {k: padded[k][keep] for k in fields}
                metrics.update(calculate_debug_metrics(DataProto.from_dict(tensors=sub)))
        return batch

    # ------------------------------------------------------------------ advantage (Eq. 7)
    def _compute_advantage(self, batch, metrics: dict):
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                               select_fields=["uid", "response_mask", "rm_scores", C.IS_DEMO, C.DEMO_TRUNCATED])
        response_mask = data["response_mask"]
        padded = data.to_padded_tensor()
        scores = padded["rm_scores"].sum(-1).float()
        uids = list(data["uid"].tolist()) if hasattr(data["uid"], "tolist") else list(data["uid"])
        is_demo = padded[C.IS_DEMO].bool().reshape(-1)
        truncated = padded[C.DEMO_TRUNCATED].bool().reshape(-1)
        valid = ~_padding_mask(batch)
        rewards = scores.clone()
        if self.srft.demo_reward == "constant":
            rewards = torch.where(is_demo, torch.ones_like(rewards), rewards)
        keep, gate_metrics = group_gate(self.srft, scores, uids, is_demo, valid)
        adv = grpo_advantage_with_demos(
            rewards, uids, is_demo, valid & keep,
            norm_by_std=self.srft.norm_adv_by_std,
            demos_in_stats=self.srft.demos_in_group_stats,
            demo_rl=self.srft.loss.demo_rl,
            rollout_rl=self.srft.loss.rollout_rl,
        )
        mask = padded["response_mask"].float()
        advantages = adv[:, None] * mask
        output = TensorDict(
            {
                "advantages": response_to_nested(advantages, response_mask),
                "returns": response_to_nested(advantages.clone(), response_mask),
                C.REWARDS: rewards,
                C.KEEP: keep.long(),
            },
            batch_size=len(batch),
        )
        batch = tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=output)
        metrics.update(gate_metrics)
        metrics.update(srft_data_metrics(scores, uids, is_demo, truncated, valid))
        if self.srft.demos_per_prompt > 0:  # what reached the batch: prompts without a demo, demos scored 0
            metrics.update(batch_data_metrics(scores, uids, is_demo, valid))
        metrics.update(split_metrics("score_mean", scores, is_demo, valid))
        metrics.update(split_metrics("response_length_mean", padded["response_mask"].float().sum(-1), is_demo, valid))
        return batch

    # ------------------------------------------------------------------ actor update
    def _update_actor(self, batch, metrics: dict):
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                               select_fields=["response_mask", C.IS_DEMO, C.KEEP, "entropy"])
        padded = data.to_padded_tensor()
        keep = padded[C.KEEP].bool().reshape(-1)
        all_tokens = padded["response_mask"].float()
        mask = all_tokens * keep[:, None]  # the rows the group gate drops count nowhere (HPT removes them)
        is_demo = padded[C.IS_DEMO].bool().reshape(-1)
        groups = minibatch_ids(len(batch), self._actor_dp_size(), self._global_mini_batch())
        counts = minibatch_counts(groups, mask, is_demo, padded["entropy"].float(), self.srft.loss)
        valid = ~_padding_mask(batch)
        metrics.update(minibatch_metrics(groups, is_demo & keep, valid & keep, (mask * is_demo[:, None]).sum(-1)))
        # token-mean old-policy entropy of rollouts and of demonstrations (verl's actor/entropy mixes both); every
        # generated rollout counts, also one a gate drops: this is the policy's own entropy curve
        metrics.update(split_metrics("entropy", (padded["entropy"].float() * all_tokens).sum(-1), is_demo, valid,
                                     weights=all_tokens.sum(-1)))
        # the per-step weights are a function of verl's step alone, restored on resume (trainer_base._load_checkpoint)
        metrics.update(step_metrics(self.srft.loss, self.global_steps))
        if self.srft.dump_minibatches_dir:
            self._dump_minibatches(batch, groups, is_demo, valid, counts[C.DEMO_NUM_TOKENS])
        counts[C.GLOBAL_STEP] = torch.full((len(batch),), float(self.global_steps))
        fields = TensorDict(counts, batch_size=len(batch))
        batch = tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=fields)
        return super()._update_actor(batch, metrics)

    def _dump_minibatches(self, batch, minibatch, is_demo, valid, demo_num_tokens) -> None:
        """``srft.dump_minibatches_dir``: the layout the actor is about to train on, one file per step."""
        import os

        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["prompts", "responses"])
        dp_size = self._actor_dp_size()
        per_rank = len(batch) // dp_size
        record = {
            "global_step": int(self.global_steps),
            "dp_size": dp_size,
            "keys": list(batch.keys),
            "rank": [i // per_rank for i in range(len(batch))],
            "minibatch": minibatch.tolist(),
            "is_demo": is_demo.tolist(),
            "valid": valid.tolist(),
            "prompts": [t.tolist() for t in data["prompts"].unbind()],
            "responses": [t.tolist() for t in data["responses"].unbind()],
            "minibatch_demo_num_tokens": demo_num_tokens.tolist(),
        }
        os.makedirs(self.srft.dump_minibatches_dir, exist_ok=True)
        torch.save(record, os.path.join(self.srft.dump_minibatches_dir, f"step_{int(self.global_steps)}.pt"))

    def _actor_dp_size(self) -> int:
        wg = self.actor_rollout_wg
        if "actor" not in wg._dispatch_info:
            wg._dispatch_info["actor"] = wg._query_dispatch_info("actor")
        return max(wg._dispatch_info["actor"]) + 1


def step_metrics(loss_cfg, global_step) -> dict[str, float]:
    """What the trainer logs every step about the per-step weights: ``srft/mu`` under ``srft.mix=chord`` (a function
    of verl's global step alone, :func:`recipe_srft.losses.term_coefficients`)."""
    coefs = term_coefficients(loss_cfg, global_step)
    return {"srft/mu": coefs["mu"]} if "mu" in coefs else {}


def group_gate(srft, scores: torch.Tensor, uids: list, is_demo: torch.Tensor, valid: torch.Tensor):
    """``(keep [B] bool, metrics)``: the rows the per-group gate keeps (every row without a gate). ``hpt``: HPT's
    switch (:func:`recipe_srft.advantage.hpt_switch`) on the verifier scores, with ``srft/hpt_sft_frac`` (the
    fraction of groups in SFT mode), ``srft/hpt_sft_groups`` and ``srft/hpt_groups``."""
    if srft.group_gate == "none":
        return torch.ones_like(is_demo, dtype=torch.bool), {}
    keep, stats = hpt_switch(scores, uids, is_demo, valid, srft.gate_max_solved)
    return keep, {"srft/hpt_sft_frac": stats["sft_frac"], "srft/hpt_sft_groups": float(stats["sft_groups"]),
                  "srft/hpt_groups": float(stats["groups"])}


def minibatch_counts(groups: torch.Tensor, mask: torch.Tensor, is_demo: torch.Tensor, entropy: torch.Tensor,
                     loss_cfg) -> dict:
    """Per-row copies of each optimizer mini-batch's global counts (:mod:`recipe_srft.contract`): demo tokens,
    tokens and rows that carry an RL term, all (kept) response tokens and their mean old-policy entropy. ``mask``
    is the response mask with the rows the group gate drops already zeroed."""
    demo_tokens = (mask * is_demo[:, None]).sum(-1)
    tokens = mask.sum(-1)
    entropy_sum = (entropy * mask).sum(-1)
    # rows whose tokens carry an RL term: their tokens and rows are the denominators of L_rl
    rl_tokens = tokens * rows_with_rl_term(is_demo, loss_cfg)
    out = {key: torch.zeros(len(groups)) for key in (C.DEMO_NUM_TOKENS, C.BATCH_ENTROPY, C.RL_NUM_TOKENS,
                                                      C.RL_NUM_SEQS, C.KEPT_NUM_TOKENS)}
    for g in groups.unique():
        sel = groups == g
        out[C.DEMO_NUM_TOKENS][sel] = demo_tokens[sel].sum()
        out[C.BATCH_ENTROPY][sel] = entropy_sum[sel].sum() / tokens[sel].sum().clamp(min=1)
        out[C.RL_NUM_TOKENS][sel] = rl_tokens[sel].sum()
        out[C.RL_NUM_SEQS][sel] = (rl_tokens[sel] > 0).sum().float()
        out[C.KEPT_NUM_TOKENS][sel] = tokens[sel].sum()
    return out


def _padding_mask(batch) -> torch.Tensor:
    """``[B]`` bool: verl's no-op padding rows (tag ``is_padding``, added by its upsampling) of a KVBatchMeta."""
    return torch.tensor([bool(tag.get("is_padding", False)) for tag in batch.tags], dtype=torch.bool)


def _group_of_key(key: str) -> str:
    """The group (prompt ``uid``) of a TransferQueue key ``{uid}_{session_id}_{index}`` (verl's agent loop)."""
    return key.rsplit("_", 2)[0]


def minibatch_metrics(minibatch: torch.Tensor, is_demo: torch.Tensor, valid: torch.Tensor,
                      demo_tokens: torch.Tensor) -> dict:
    """Demonstration share of each optimizer mini-batch (logged under ``srft/``).

    ``minibatch_demo_frac_{min,max}``: demonstrations / real (non-padding) trajectories, min and max over
    the step's mini-batches; ``minibatch_demo_tokens_{min,max}`` and ``minibatch_demo_tokens/<j>`` (first 8
    mini-batches): the demo tokens the SFT term of mini-batch j is normalised by."""
    fracs, tokens = [], []
    for j in minibatch.unique().tolist():
        sel = minibatch == j
        real = int((sel & valid).sum())
        fracs.append(float((sel & is_demo).sum()) / max(real, 1))
        tokens.append(float(demo_tokens[sel].sum()))
    metrics = {
        "srft/num_minibatches": float(len(fracs)),
        "srft/minibatch_demo_frac_min": min(fracs),
        "srft/minibatch_demo_frac_max": max(fracs),
        "srft/minibatch_demo_tokens_min": min(tokens),
        "srft/minibatch_demo_tokens_max": max(tokens),
    }
    for j, count in enumerate(tokens[:8]):
        metrics[f"srft/minibatch_demo_tokens/{j}"] = count
    return metrics


def split_metrics(name: str, values: torch.Tensor, is_demo: torch.Tensor, valid: torch.Tensor,
                  weights: torch.Tensor | None = None) -> dict:
    """``srft/onpolicy/<name>`` and ``srft/demo/<name>``: the mean of ``values`` over real rollouts and over
    demonstrations apart (verl's own ``critic/score``, ``response_length``, ``actor/entropy`` mix the two). With
    ``weights``, ``sum(values) / sum(weights)`` (per-trajectory sums -> a token mean)."""
    out = {}
    for part, sel in (("onpolicy", ~is_demo & valid), ("demo", is_demo & valid)):
        if sel.any():
            total = values[sel].float().sum()
            count = weights[sel].float().sum() if weights is not None else sel.sum().float()
            out[f"srft/{part}/{name}"] = (total / count.clamp(min=1)).item()
    return out


def srft_data_metrics(scores, uids, is_demo, truncated, valid) -> dict:
    """Solve rates and group composition of one training batch (logged under ``srft/``)."""
    solved = scores > 0.5
    metrics = {"srft/num_demos": float(is_demo.sum()), "srft/demo_truncated_count": float(truncated.sum())}
    onpolicy = ~is_demo & valid
    if is_demo.any():
        metrics["srft/demo_solve_rate"] = solved[is_demo].float().mean().item()
    if onpolicy.any():
        metrics["srft/onpolicy_solve_rate"] = solved[onpolicy].float().mean().item()
    groups: dict = {}
    for i, uid in enumerate(uids):
        if onpolicy[i]:
            groups.setdefault(uid, []).append(bool(solved[i]))
    if groups:
        metrics["srft/groups_all_solved_frac"] = float(np.mean([all(v) for v in groups.values()]))
        metrics["srft/groups_none_solved_frac"] = float(np.mean([not any(v) for v in groups.values()]))
    return metrics


def _item(column, i):
    value = column[i]
    return getattr(value, "data", value)
