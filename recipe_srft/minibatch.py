"""Which trajectory goes to which optimizer mini-batch and data-parallel rank (pure; no verl machinery).

verl's V1 trainer hands the actor one batch per step. The worker group cuts it into ``dp_size``
contiguous chunks (one per rank) and each rank cuts its chunk, in order (``actor.shuffle=false``),
into mini-batches of ``global_mini_batch / dp_size`` rows; mini-batch ``j`` of every rank forms
optimizer step ``j``. verl orders the batch only to balance tokens across ranks, and trajectories
arrive in completion order, so demonstrations (which need no generation) all came first and all
landed in the first optimizer mini-batch: step 1 got every SFT and off-policy term, step 2 none.

:func:`whole_group_order` instead assigns whole groups (a prompt's rollouts and its
demonstrations, same ``uid``) to mini-batches, spreads groups with demonstrations evenly over
them, then balances each mini-batch's tokens over the ranks (``trainer.balance_batch``), and
returns the permutation that makes verl's split produce exactly that layout. Groups are taken in
the dataloader's order when it is given (``group_order``), so which prompts share an optimizer
step does not depend on which rollout finished first (nor on how many rollout servers ran).
:func:`minibatch_ids` maps a batch in that order back to mini-batch indices.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Mapping, Optional, Sequence

import torch


def minibatch_ids(batch_size: int, dp_size: int, global_mini_batch: int) -> torch.Tensor:
    """Optimizer mini-batch index of each position of the batch under verl's unshuffled split."""
    if batch_size % dp_size:
        raise ValueError(f"batch of {batch_size} trajectories does not split over {dp_size} ranks")
    per_rank = batch_size // dp_size
    per_rank_mini = max(1, global_mini_batch // dp_size)
    positions = torch.arange(batch_size) % per_rank
    return positions // per_rank_mini


def _assign_groups(groups: list[list[int]], num_bins: int, capacity: int) -> list[list[int]]:
    """Whole groups into ``num_bins`` bins of ``capacity`` rows: largest groups first, each into the
    emptiest bin (so equal groups go round-robin and groups with demonstrations spread evenly). A group
    larger than every bin's room (only when group sizes do not divide the mini-batch) is split."""
    bins: list[list[int]] = [[] for _ in range(num_bins)]
    order = sorted(range(len(groups)), key=lambda g: -len(groups[g]))  # stable: ties keep arrival order
    for g in order:
        members = list(groups[g])
        while members:
            room = [capacity - len(b) for b in bins]
            target = max(range(num_bins), key=lambda j: (room[j], -j))
            if room[target] <= 0:
                raise ValueError("more trajectories than mini-batch slots")
            take = members[: room[target]] if len(members) > room[target] else members
            bins[target].extend(take)
            members = members[len(take):]
    return bins


def whole_group_order(
    group_ids: Sequence,
    seq_lens: Sequence[int],
    is_padding: Sequence[bool],
    dp_size: int,
    global_mini_batch: int,
    balance: bool = True,
    partitioner: Optional[Callable[[list[int], int], list[list[int]]]] = None,
    group_order: Optional[Mapping[object, int]] = None,
) -> tuple[list[int], list[list[int]]]:
    """Permutation putting whole groups into each optimizer mini-batch; and each rank's indices.

    Args:
        group_ids: per trajectory, its group (verl's ``uid``); padding rows may carry any id.
        seq_lens: per trajectory, prompt + response tokens (the balancing workload).
        is_padding: verl's no-op padding rows; they fill the mini-batches' free slots.
        dp_size: actor data-parallel ranks. global_mini_batch: trajectories per optimizer step.
        balance: split each mini-batch over ranks by tokens (``trainer.balance_batch``) or contiguously.
        partitioner: ``(workloads, k) -> k equal-size lists of positions``; default: verl's
            Karmarkar-Karp ``get_seqlen_balanced_partitions`` over ``calculate_workload``.
        group_order: group id -> its prompt's position in the dataloader's batch. Groups are assigned in
            this order (ties of size broken by it) instead of the batch's, which is the order rollouts
            completed in; groups it lacks follow, in batch order.

    Returns:
        ``order`` with ``new_batch[i] = old_batch[order[i]]``, and ``rank_indices[r]`` (old indices
        rank ``r`` receives, for verl's balance metrics).
    """
    size = len(group_ids)
    if size % global_mini_batch or global_mini_batch % dp_size:
        raise ValueError(f"batch of {size} trajectories, mini-batch {global_mini_batch}, dp {dp_size}: verl pads the "
                         "batch to a multiple of lcm(dp, mini-batch) and the mini-batch must split over the ranks")
    members: "OrderedDict[object, list[int]]" = OrderedDict()
    pads = []
    for i, gid in enumerate(group_ids):
        if is_padding[i]:
            pads.append(i)
        else:
            members.setdefault(gid, []).append(i)
    groups = list(members.items())
    if group_order is not None:  # stable: groups the map lacks keep their batch order, after the others
        groups.sort(key=lambda item: (group_order.get(item[0]) is None, group_order.get(item[0], 0)))
    num_bins = size // global_mini_batch
    bins = _assign_groups([m for _, m in groups], num_bins, global_mini_batch)
    for b in bins:  # padding fills the free slots
        free = global_mini_batch - len(b)
        b.extend(pads[:free])
        pads = pads[free:]
    per_rank = global_mini_batch // dp_size
    if balance and dp_size > 1:
        partitioner = partitioner or _verl_partitioner()
    rank_indices: list[list[int]] = [[] for _ in range(dp_size)]
    for b in bins:
        if balance and dp_size > 1:
            parts = partitioner([int(seq_lens[i]) for i in b], dp_size)
            parts = [[b[p] for p in part] for part in parts]
        else:
            parts = [b[r * per_rank:(r + 1) * per_rank] for r in range(dp_size)]
        for r, part in enumerate(parts):
            if len(part) != per_rank:
                raise ValueError(f"rank {r} got {len(part)} of a mini-batch's rows, expected {per_rank}")
            rank_indices[r].extend(part)
    order = [i for part in rank_indices for i in part]
    return order, rank_indices


def _verl_partitioner():
    from verl.utils.seqlen_balancing import calculate_workload, get_seqlen_balanced_partitions

    def partition(seq_lens: list[int], k: int) -> list[list[int]]:
        workload = calculate_workload(torch.tensor(seq_lens, dtype=torch.int64))
        return get_seqlen_balanced_partitions(workload, k_partitions=k, equal_size=True)

    return partition
