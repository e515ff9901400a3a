"""GRPO advantage over groups that contain demonstrations (paper Eq. 7).

``A_k = (r_k - mean_G r) / (std_G r + eps)``, one value per trajectory, broadcast to its tokens.
Switches: ``norm_by_std`` (divide by the group std or not) and ``demos_in_stats`` (demonstrations
enter the group mean/std, or the statistics come from the rollouts only while demonstrations still
receive ``(r_demo - mean) / (std + eps)``); ``demo_rl=False`` gives demonstrations advantage 0 (no
off-policy RL term) and ``rollout_rl=False`` gives rollouts advantage 0 (no on-policy RL term). The std is the unbiased one, as in verl's ``compute_grpo_outcome_advantage``;
a statistics set of one trajectory has mean 0 and std 1, again as in verl.

A zero std is treated as 1 (LUFFY's ``grpo_split``): with ``demos_in_stats=False`` a group whose rollouts
all score the same has std 0, and its demonstration would get ``(r_demo - mean) / 1e-6 = +-1e6``, exactly in
the all-fail groups demonstrations are for. With the std of 1 the advantages of binary rewards stay in
[-1, 1]. Where the demonstrations are in the statistics, a zero std means every numerator is 0, so
nothing changes there.
"""

from __future__ import annotations

from collections import defaultdict

import torch


def grpo_advantage_with_demos(
    scores: torch.Tensor,
    group_ids: list,
    is_demo: torch.Tensor,
    valid: torch.Tensor | None = None,
    norm_by_std: bool = True,
    demos_in_stats: bool = True,
    demo_rl: bool = True,
    rollout_rl: bool = True,
    epsilon: float = 1e-6,
) -> torch.Tensor:
    """Per-trajectory advantages ``[B]``.

    Args:
        scores: ``[B]`` sequence rewards.
        group_ids: length-B prompt ids (verl's ``uid``); trajectories with equal ids form a group.
        is_demo: ``[B]`` bool, demonstration trajectories.
        valid: ``[B]`` bool, False for verl's padding samples (they get 0 and never enter statistics).
    """
    scores = scores.detach().to(torch.float64)
    is_demo = is_demo.bool()
    valid = torch.ones_like(is_demo) if valid is None else valid.bool()
    members: dict = defaultdict(list)
    for i, gid in enumerate(group_ids):
        if valid[i]:
            members[gid].append(i)
    adv = torch.zeros_like(scores)
    for idx in members.values():
        idx_t = torch.tensor(idx)
        stat_idx = idx_t if demos_in_stats else idx_t[~is_demo[idx_t]]
        stats = scores[stat_idx]
        if len(stats) == 0:  # a group of demonstrations only: nothing to compare with
            continue
        if len(stats) == 1:
            mean, std = torch.tensor(0.0, dtype=scores.dtype), torch.tensor(1.0, dtype=scores.dtype)
        else:
            mean, std = stats.mean(), stats.std(unbiased=True)
        group_adv = scores[idx_t] - mean
        if norm_by_std:
            if std <= epsilon:  # all statistics equal: see the module docstring
                std = torch.ones_like(std)
            group_adv = group_adv / (std + epsilon)
        adv[idx_t] = group_adv
    if not demo_rl:
        adv = torch.where(is_demo, torch.zeros_like(adv), adv)
    if not rollout_rl:  # SFT-only baseline: rollouts are generated (same budget) but carry no RL signal
        adv = torch.where(is_demo, adv, torch.zeros_like(adv))
    return adv.to(torch.float32)
