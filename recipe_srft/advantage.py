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


def hpt_switch(
    scores: torch.Tensor,
    group_ids: list,
    is_demo: torch.Tensor,
    valid: torch.Tensor | None = None,
    max_solved: int = 0,
) -> tuple[torch.Tensor, dict]:
    """HPT's per-prompt switch between SFT and RL (Lv et al., arXiv 2509.04419): ``(keep [B] bool, stats)``.

    Read (never copied) from TsinghuaC3I/Unify-Post-Training@ae332f5f, ``hpt/verl/verl/mix_src/mix_trainer.py``:
    ``select_on_off_ada_balance`` (``unify_strategy == 'switch'``) and the loop that applies it in ``fit``:

    * the group's success count is the number of its rollouts whose reward equals ``success_value`` (1 for
      ``reward_impl_version`` 6, the script's); the demonstration is not generated yet, so it never counts;
    * success count <= ``switch_gate`` (``max_solved``; 0 in ``exp_scripts/train.sh``): **SFT mode**, the
      prompt's rollouts are removed from the batch and its demonstration is added (``on_remove_num = 8``,
      ``off_add_num = 1``, ``whether_off = False``) and trained with the SFT loss only;
    * otherwise **RL mode**: the rollouts stay, no demonstration is added (the GRPO group is the rollouts).

    Here every group already holds its rollouts and its demonstration(s) (``srft_agent``), so the switch keeps
    one side and drops the other: SFT mode keeps the demonstrations, RL mode the rollouts. A group without a
    demonstration has nothing to imitate and stays in RL mode (HPT's data always has one). Padding rows
    (``valid`` False) are dropped. ``stats``: ``groups``, ``sft_groups`` and ``sft_frac`` (the fraction of groups
    in SFT mode, logged as ``srft/hpt_sft_frac``).
    """
    is_demo = is_demo.bool()
    valid = torch.ones_like(is_demo) if valid is None else valid.bool()
    solved = scores.detach() > 0.5  # rewards are 0/1: HPT's `reward == success_value`
    members: dict = defaultdict(list)
    for i, gid in enumerate(group_ids):
        if valid[i]:
            members[gid].append(i)
    keep = torch.zeros_like(is_demo)
    sft_groups = 0
    for idx in members.values():
        idx_t = torch.tensor(idx)
        demos = is_demo[idx_t]
        num_solved = int((solved[idx_t] & ~demos).sum())
        sft_mode = num_solved <= max_solved and bool(demos.any())
        sft_groups += int(sft_mode)
        keep[idx_t] = demos if sft_mode else ~demos
    groups = len(members)
    return keep, {"groups": groups, "sft_groups": sft_groups, "sft_frac": sft_groups / groups if groups else 0.0}
