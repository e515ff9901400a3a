"""Whole groups in every optimizer mini-batch, checked against a simulation of verl's split."""

from __future__ import annotations

import random

import pytest
import torch

from recipe_srft.minibatch import minibatch_ids, whole_group_order


def verl_split(order, dp_size, global_mini_batch):
    """(rank, mini-batch) of each original index after verl's dispatch: contiguous rank chunks, each cut in
    order into mini-batches of global_mini_batch / dp_size rows (written out independently of the module)."""
    per_rank = len(order) // dp_size
    per_mini = global_mini_batch // dp_size
    return {old: (pos // per_rank, (pos % per_rank) // per_mini) for pos, old in enumerate(order)}


def arrival_batch(num_prompts, n, m, demo_prompts=None, seed=0):
    """Trajectories in completion order: demonstrations first (no generation), then shuffled rollouts."""
    rng = random.Random(seed)
    demo_prompts = range(num_prompts) if demo_prompts is None else demo_prompts
    demos = [(f"p{p}", True, rng.randint(200, 900)) for p in demo_prompts for _ in range(m)]
    rollouts = [(f"p{p}", False, rng.randint(20, 900)) for p in range(num_prompts) for _ in range(n)]
    rng.shuffle(rollouts)
    return demos + rollouts


def layout(batch, dp, mini, balance=True, pad_to=None):
    gids = [g for g, _, _ in batch]
    is_demo = [d for _, d, _ in batch]
    lens = [s for _, _, s in batch]
    pads = []
    if pad_to is not None:
        pads = list(range(len(batch), pad_to))
        gids += ["pad"] * len(pads)
        is_demo += [False] * len(pads)
        lens += [8] * len(pads)
    order, ranks = whole_group_order(gids, lens, [i in pads for i in range(len(gids))], dp, mini, balance=balance)
    assert sorted(order) == list(range(len(gids)))
    return order, ranks, gids, is_demo, lens


def test_paper_shape_demos_in_every_minibatch():
    # 128 prompts x (8 rollouts + 1 demo), PPO mini-batch 64 prompts, 8 ranks: before the fix [128, 0]
    batch = arrival_batch(128, 8, 1)
    dp, mini = 8, 64 * 9
    order, ranks, gids, is_demo, lens = layout(batch, dp, mini)
    where = verl_split(order, dp, mini)
    demos_per_mb = [sum(1 for i, d in enumerate(is_demo) if d and where[i][1] == j) for j in range(2)]
    assert demos_per_mb == [64, 64]
    for g in set(gids):  # a group's rollouts and its demonstration share one optimizer mini-batch
        assert len({where[i][1] for i, x in enumerate(gids) if x == g}) == 1
    for r in range(dp):  # every rank gets 72 rows of each mini-batch
        for j in range(2):
            assert sum(1 for i in range(len(gids)) if where[i] == (r, j)) == 72
    # verl's minibatch_ids (what the trainer uses for the demo-token counts) agrees with the simulation
    ids = minibatch_ids(len(order), dp, mini)
    assert all(ids[pos].item() == where[old][1] for pos, old in enumerate(order))
    # token balance over ranks survives (Karmarkar-Karp inside each mini-batch)
    per_rank = [sum(lens[i] for i in part) for part in ranks]
    assert max(per_rank) - min(per_rank) <= 0.02 * sum(per_rank) / dp


def test_uneven_groups_spread_demos_and_padding():
    # 8 prompts, 3 rollouts each, only 5 have a demo; mini-batch 2 prompts x 4 -> verl pads 29 rows to 32
    batch = arrival_batch(8, 3, 1, demo_prompts=[0, 2, 3, 5, 7])
    order, _, gids, is_demo, _ = layout(batch, dp=2, mini=8, pad_to=32)
    where = verl_split(order, 2, 8)
    demos = [sum(1 for i, d in enumerate(is_demo) if d and where[i][1] == j) for j in range(4)]
    assert sorted(demos) == [1, 1, 1, 2]
    for g in set(gids) - {"pad"}:
        assert len({where[i][1] for i, x in enumerate(gids) if x == g}) == 1


@pytest.mark.parametrize("balance", [True, False])
def test_single_rank_and_balance_off_keep_whole_groups(balance):
    batch = arrival_batch(4, 4, 1)
    order, _, gids, is_demo, _ = layout(batch, dp=1 if balance else 2, mini=10, balance=balance)
    dp = 1 if balance else 2
    where = verl_split(order, dp, 10)
    assert [sum(1 for i, d in enumerate(is_demo) if d and where[i][1] == j) for j in range(2)] == [2, 2]
    if not balance:  # contiguous split: rank 0 gets the first 5 rows of each mini-batch in bin order
        assert [where[order[p]][0] for p in range(20)] == [0] * 10 + [1] * 10


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="mini-batch"):
        whole_group_order(["a"] * 10, [1] * 10, [False] * 10, dp_size=2, global_mini_batch=4)
    with pytest.raises(ValueError, match="mini-batch"):
        whole_group_order(["a"] * 12, [1] * 12, [False] * 12, dp_size=4, global_mini_batch=6)


def test_verl_own_layout_puts_every_demo_in_the_first_minibatch():
    """The defect this module fixes, reproduced with verl's own balancer: demos arrive first, verl's
    _balance_batch keeps index order inside each rank's partition -> [128, 0] at the paper's shape."""
    from verl.utils.seqlen_balancing import calculate_workload, get_seqlen_balanced_partitions

    batch = arrival_batch(128, 8, 1)
    workload = calculate_workload(torch.tensor([s for _, _, s in batch]))
    parts = get_seqlen_balanced_partitions(workload, k_partitions=8, equal_size=True)
    order = [i for part in parts for i in part]
    where = verl_split(order, 8, 64 * 9)
    assert [sum(1 for i, (_, d, _) in enumerate(batch) if d and where[i][1] == j) for j in range(2)] == [128, 0]


@pytest.mark.parametrize("dp", [1, 2])
def test_dataloader_order_fixes_which_groups_share_a_minibatch(dp):
    """Rollouts finish in any order (and in another order with another number of servers): given the
    dataloader's order, the groups each optimizer mini-batch gets are the same for every arrival order and
    rank count; without it they follow arrival (the negative control)."""
    prompts = ["p0", "p1", "p2", "p3"]
    group = {p: [(p, False, 10 + k) for k in range(3)] + [(p, True, 20)] for p in prompts}  # 3 rollouts + 1 demo

    def minibatch_groups(arrival, dp, dataloader_order):
        batch = [t for p in arrival for t in group[p]]
        gids = [g for g, _, _ in batch]
        order, _ = whole_group_order(gids, [s for _, _, s in batch], [False] * len(batch), dp, 8,
                                     group_order=dataloader_order)
        where = verl_split(order, dp, 8)
        return sorted(sorted({gids[i] for i in range(len(batch)) if where[i][1] == j}) for j in range(2))

    positions = {p: i for i, p in enumerate(prompts)}
    rng = random.Random(0)
    arrivals = [prompts] + [rng.sample(prompts, 4) for _ in range(6)]
    expected = [["p0", "p2"], ["p1", "p3"]]  # round robin over the dataloader's order
    for arrival in arrivals:
        assert minibatch_groups(arrival, dp, positions) == expected, arrival
        assert minibatch_groups(arrival, 3 - dp, positions) == expected, arrival  # 1 rank and 2 agree
    # without the dataloader's order the layout follows arrival: some arrival order changes it
    assert any(minibatch_groups(a, dp, None) != expected for a in arrivals)
