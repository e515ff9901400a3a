"""Unit tests of the SRFT pieces around the loss: presets, Eq. 7 advantage, demonstrations, mini-batch ids."""

from __future__ import annotations

import itertools
import statistics

import pytest
import torch

from recipe_srft.advantage import grpo_advantage_with_demos
from recipe_srft.demos import extract_demos, tokenize_demo
from recipe_srft.srft_config import PRESETS, resolve_srft_config
from recipe_srft.minibatch import minibatch_ids
from recipe_srft.integration.trainer import srft_data_metrics


# ---------------------------------------------------------------- presets
def test_srft_preset_is_the_paper_default():
    cfg = resolve_srft_config({"preset": "srft"})
    assert cfg.demos_per_prompt == 1 and cfg.norm_adv_by_std and cfg.demos_in_group_stats
    assert cfg.loss.sft_weighting == "entropy" and cfg.loss.sft_coef == 0.5 and cfg.loss.sft_entropy_sign == -1
    assert cfg.loss.pos_weighting == "entropy" and cfg.loss.pos_coef == 0.1
    assert cfg.loss.offpolicy_shaping == "luffy" and cfg.loss.use_sft


#: every switch a preset owns, at the srft preset's value (the Table 3 presets differ from it in one key)
_SRFT_VALUES = dict(demos_per_prompt=1, demo_reward="verifier", norm_adv_by_std=True, demos_in_group_stats=True,
                    use_sft=True, sft_weighting="entropy", sft_coef=0.5, sft_entropy_sign=-1, pos_weighting="entropy",
                    pos_coef=0.1, offpolicy_shaping="luffy", onpolicy_clip=True, demo_rl=True, rollout_rl=True,
                    mix="sum", group_gate="none")


@pytest.mark.parametrize("preset,expected", [
    ("grpo", dict(demos_per_prompt=0, use_sft=False, pos_weighting="constant", pos_coef=1.0)),
    ("luffy", dict(demos_per_prompt=1, use_sft=False, pos_weighting="constant", offpolicy_shaping="luffy",
                   norm_adv_by_std=False)),
    ("sft_plus_rl", dict(use_sft=True, sft_weighting="constant", sft_coef=1.0, pos_weighting="constant",
                         demo_rl=False, demos_in_group_stats=False)),
    ("no_w_sft", dict(sft_weighting="constant", sft_coef=1.0, pos_weighting="entropy", pos_coef=0.1)),
    ("no_w_rl", dict(pos_weighting="constant", pos_coef=1.0, sft_weighting="entropy", sft_coef=0.5)),
    ("sft_only", dict(use_sft=True, sft_weighting="constant", sft_coef=1.0, demo_rl=False, rollout_rl=False)),
    # Table 3, "w/o the SFT term on demos": only use_sft changes
    ("no_demo_sft", dict(_SRFT_VALUES, use_sft=False)),
    # Table 3, "w/o the RL term on demos": only demo_rl changes; demos stay in the group statistics
    ("no_demo_rl", dict(_SRFT_VALUES, demo_rl=False, demos_in_group_stats=True)),
])
def test_presets(preset, expected):
    cfg = resolve_srft_config({"preset": preset})
    for key, value in expected.items():
        actual = getattr(cfg.loss, key) if hasattr(cfg.loss, key) else getattr(cfg, key)
        assert actual == value, (preset, key, actual)


def test_null_switches_take_the_preset_and_matching_explicit_values_are_fine():
    cfg = resolve_srft_config({"preset": "no_w_sft", "sft_coef": None, "pos_coef": None})
    assert cfg.loss.sft_coef == 1.0 and cfg.loss.pos_coef == 0.1
    cfg = resolve_srft_config({"preset": "no_w_sft", "sft_weighting": "constant", "sft_coef": 1})
    assert cfg.loss.sft_weighting == "constant" and cfg.loss.sft_coef == 1.0


@pytest.mark.parametrize("preset,key,value", [
    ("grpo", "demos_per_prompt", 1), ("luffy", "use_sft", True), ("srft", "sft_coef", 1.0),
    ("no_w_rl", "pos_weighting", "entropy"), ("sft_plus_rl", "demo_rl", True),
    ("no_demo_sft", "use_sft", True), ("no_demo_rl", "demo_rl", True),
    ("no_demo_rl", "demos_in_group_stats", False),
])
def test_preset_conflicts_fail_with_the_fix(preset, key, value):
    with pytest.raises(ValueError) as err:
        resolve_srft_config({"preset": preset, key: value})
    assert f"srft.{key}={value!r} contradicts srft.preset={preset}" in str(err.value)
    assert "srft.preset=custom" in str(err.value)


def test_custom_preset_and_free_switches():
    cfg = resolve_srft_config({"preset": "custom", "sft_coef": 2.0, "entropy_scope": "token", "weight_clamp": 5.0,
                               "onpolicy_form": "reinforce", "positive_by": "reward"})
    assert cfg.loss.sft_coef == 2.0 and cfg.loss.entropy_scope == "token" and cfg.loss.weight_clamp == 5.0
    assert cfg.loss.onpolicy_form == "reinforce" and cfg.loss.positive_by == "reward"
    # switches no preset owns can be set with any preset
    assert resolve_srft_config({"preset": "srft", "entropy_scope": "batch"}).loss.entropy_scope == "batch"


def test_unknown_keys_and_actor_owned_keys_are_rejected():
    with pytest.raises(ValueError, match="not a known SRFT switch"):
        resolve_srft_config({"sft_cof": 1.0})
    with pytest.raises(ValueError, match="actor_rollout_ref.actor.clip_ratio_low"):
        resolve_srft_config({"clip_ratio_low": 0.1})
    with pytest.raises(ValueError, match="unknown"):
        resolve_srft_config({"preset": "dapo"})
    with pytest.raises(ValueError):
        resolve_srft_config({"preset": "custom", "sft_weighting": "linear"})


def test_clip_ratios_and_entropy_coeff_come_from_the_actor():
    cfg = resolve_srft_config({}, {"clip_ratio_low": 0.1, "clip_ratio_high": 0.3, "clip_ratio_c": 4.0,
                                   "entropy_coeff": 0.001})
    assert (cfg.loss.clip_ratio_low, cfg.loss.clip_ratio_high, cfg.loss.clip_ratio_c) == (0.1, 0.3, 4.0)
    assert cfg.loss.entropy_coeff == 0.001


def test_table3_presets_differ_from_srft_in_one_switch():
    """no_demo_sft / no_demo_rl are SRFT with exactly one term removed (what the preset tables document)."""
    from recipe_srft.srft_config import PRESET_KEYS

    srft = PRESETS["srft"]
    assert set(srft) == set(PRESET_KEYS) == set(_SRFT_VALUES) and srft == _SRFT_VALUES
    for preset, key in (("no_demo_sft", "use_sft"), ("no_demo_rl", "demo_rl")):
        diff = {k for k in PRESET_KEYS if PRESETS[preset][k] != srft[k]}
        assert diff == {key}, (preset, diff)
    # matching explicit values are accepted, and custom reaches the other reading of "w/o the RL term"
    assert not resolve_srft_config({"preset": "no_demo_sft", "use_sft": False}).loss.use_sft
    cfg = resolve_srft_config({"preset": "custom", "demo_rl": False, "demos_in_group_stats": False})
    assert not cfg.loss.demo_rl and not cfg.demos_in_group_stats


def test_every_preset_resolves():
    for name in PRESETS:
        resolve_srft_config({"preset": name})


@pytest.mark.parametrize("preset", ["srft_code", "hpt", "chord"])
def test_published_code_presets_name_a_source_for_every_setting(preset):
    """Every key srft_code / hpt / chord set, and every verl key they tie (PRESET_VERL), has an entry in
    PRESET_SOURCES: a file:line of the published code, or "not settled" / "not used" with the value's reason."""
    from recipe_srft.srft_config import PRESET_SOURCES, PRESET_VERL

    sources = PRESET_SOURCES[preset]
    missing = sorted((set(PRESETS[preset]) | set(PRESET_VERL.get(preset, {}))) - set(sources))
    assert not missing, f"{preset}: no source for {missing}"
    assert not set(sources) - set(PRESETS[preset]) - set(PRESET_VERL.get(preset, {})) - {
        "actor_rollout_ref.actor.entropy_coeff"}, "stale source entries"
    for key, text in sources.items():
        assert text and (".py" in text or ".sh" in text or ".yaml" in text or text.startswith(("not ", "no "))), (
            key, text)


def test_published_code_presets():
    code = resolve_srft_config({"preset": "srft_code"})
    assert (code.loss.sft_coef, code.loss.sft_entropy_sign, code.loss.entropy_scope) == (0.5, 1, "token")
    assert (code.loss.pos_coef, code.loss.pos_weighting, code.loss.positive_by) == (0.1, "entropy", "advantage")
    assert not code.norm_adv_by_std and not code.loss.onpolicy_clip and code.loss.weight_clamp is None
    hpt = resolve_srft_config({"preset": "hpt"})
    assert (hpt.group_gate, hpt.gate_max_solved, hpt.loss.sft_weighting, hpt.loss.sft_coef) == ("hpt", 0, "constant", 1.0)
    assert not hpt.loss.demo_rl and hpt.loss.rollout_rl and not hpt.norm_adv_by_std and not hpt.demos_in_group_stats
    chord = resolve_srft_config({"preset": "chord"})
    assert (chord.loss.mix, chord.loss.mu_warmup_steps, chord.loss.mu_decay_steps) == ("chord", 200, 400)
    assert (chord.loss.mu_peak, chord.loss.mu_valley, chord.loss.sft_weighting) == (0.5, 0.02, "phi")
    assert not chord.loss.demo_rl and not chord.demos_in_group_stats and chord.norm_adv_by_std
    with pytest.raises(ValueError, match="group_gate"):
        resolve_srft_config({"preset": "custom", "group_gate": "maybe"})
    with pytest.raises(ValueError, match="needs demonstrations"):
        resolve_srft_config({"preset": "custom", "group_gate": "hpt", "demos_per_prompt": 0})


# ---------------------------------------------------------------- HPT's switch, decisions written out by hand
def test_hpt_switch_decisions_follow_hpts_published_rule():
    """HPT@ae332f5 mix_trainer.py:394-407 and :609 with exp_scripts/train.sh SWITCH_GATE=0: a group whose rollouts
    solved <= gate times (reward == 1) trains SFT on its demonstration and drops its rollouts; any other group
    keeps its rollouts (GRPO) and drops its demonstration. The demonstration's own reward never counts."""
    from recipe_srft.advantage import hpt_switch

    # group a: 0 of 3 solved (demo solved)      -> SFT: keep the demo only
    # group b: 1 of 3 solved                    -> RL: keep the rollouts
    # group c: 0 of 3 solved, demo scored 0     -> SFT (the demo's reward does not matter)
    # group d: 3 of 3 solved                    -> RL
    # group e: 0 of 2 solved, no demonstration  -> RL (nothing to imitate)
    # the last row is verl padding: dropped
    rows = [("a", 0, 0.0), ("a", 0, 0.0), ("a", 0, 0.0), ("a", 1, 1.0),
            ("b", 0, 0.0), ("b", 0, 1.0), ("b", 0, 0.0), ("b", 1, 1.0),
            ("c", 0, 0.0), ("c", 0, 0.0), ("c", 0, 0.0), ("c", 1, 0.0),
            ("d", 0, 1.0), ("d", 0, 1.0), ("d", 0, 1.0), ("d", 1, 1.0),
            ("e", 0, 0.0), ("e", 0, 0.0),
            ("pad", 0, 0.0)]
    groups = [r[0] for r in rows]
    is_demo = torch.tensor([bool(r[1]) for r in rows])
    scores = torch.tensor([r[2] for r in rows])
    valid = torch.tensor([g != "pad" for g in groups])
    keep, stats = hpt_switch(scores, groups, is_demo, valid, max_solved=0)
    expected = [0, 0, 0, 1,  1, 1, 1, 0,  0, 0, 0, 1,  1, 1, 1, 0,  1, 1,  0]
    assert keep.int().tolist() == expected
    assert stats == {"groups": 5, "sft_groups": 2, "sft_frac": 2 / 5}
    # HPT's LLaMA script (SWITCH_GATE=2): group b (1 solved) switches to SFT too
    keep2, stats2 = hpt_switch(scores, groups, is_demo, valid, max_solved=2)
    assert keep2[4:8].int().tolist() == [0, 0, 0, 1] and stats2["sft_groups"] == 3
    # the trainer's gate: every row kept without a gate, HPT's switch and its metrics with one
    from recipe_srft.integration.trainer import group_gate

    keep3, metrics = group_gate(resolve_srft_config({"preset": "hpt"}), scores, groups, is_demo, valid)
    assert keep3.int().tolist() == expected
    assert metrics == {"srft/hpt_sft_frac": 0.4, "srft/hpt_sft_groups": 2.0, "srft/hpt_groups": 5.0}
    keep4, metrics4 = group_gate(resolve_srft_config({"preset": "srft"}), scores, groups, is_demo, valid)
    assert keep4.all() and metrics4 == {}


def test_hpt_advantage_is_grpo_over_the_kept_rollouts_without_std():
    """RL-mode groups: A = r - mean over the kept rollouts (grpo_use_std=False, train.sh:107); dropped rows get 0."""
    from recipe_srft.advantage import hpt_switch

    groups = ["b"] * 4 + ["a"] * 4
    is_demo = torch.tensor([False, False, False, True] * 2)
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    cfg = resolve_srft_config({"preset": "hpt"})
    keep, _ = hpt_switch(scores, groups, is_demo, None, cfg.gate_max_solved)
    adv = grpo_advantage_with_demos(scores, groups, is_demo, keep, norm_by_std=cfg.norm_adv_by_std,
                                    demos_in_stats=cfg.demos_in_group_stats, demo_rl=cfg.loss.demo_rl,
                                    rollout_rl=cfg.loss.rollout_rl)
    torch.testing.assert_close(adv, torch.tensor([2 / 3, -1 / 3, -1 / 3, 0.0, 0.0, 0.0, 0.0, 0.0]))


# ---------------------------------------------------------------- advantage (Eq. 7), against a naive version
def naive_advantage(scores, groups, is_demo, valid, norm, demos_in_stats, demo_rl, rollout_rl=True, eps=1e-6):
    out = [0.0] * len(scores)
    for g in set(gid for gid, v in zip(groups, valid) if v):
        idx = [i for i in range(len(scores)) if groups[i] == g and valid[i]]
        stat = [scores[i] for i in idx if demos_in_stats or not is_demo[i]]
        if not stat:
            continue
        mean = statistics.mean(stat) if len(stat) > 1 else 0.0
        std = statistics.stdev(stat) if len(stat) > 1 else 1.0
        std = 1.0 if std == 0 else std  # LUFFY's grpo_split
        for i in idx:
            a = scores[i] - mean
            out[i] = a / (std + eps) if norm else a
    return [0.0 if (is_demo[i] and not demo_rl) or (not is_demo[i] and not rollout_rl) else a
            for i, a in enumerate(out)]


@pytest.mark.parametrize("norm,demos_in_stats,demo_rl,rollout_rl", list(itertools.product([True, False], repeat=4)))
def test_advantage_matches_naive(norm, demos_in_stats, demo_rl, rollout_rl):
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 2, (14,), generator=gen).float().tolist()
    groups = ["a"] * 5 + ["b"] * 5 + ["c"] * 3 + ["d"]
    is_demo = [False] * 4 + [True] + [False] * 4 + [True] + [False] * 3 + [True]
    valid = [True] * 13 + [False]
    expected = naive_advantage(scores, groups, is_demo, valid, norm, demos_in_stats, demo_rl, rollout_rl)
    got = grpo_advantage_with_demos(torch.tensor(scores), groups, torch.tensor(is_demo), torch.tensor(valid),
                                    norm_by_std=norm, demos_in_stats=demos_in_stats, demo_rl=demo_rl,
                                    rollout_rl=rollout_rl)
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float32), atol=1e-6)


def test_demo_gets_advantage_from_rollout_stats_when_excluded():
    # rollouts 0,0,1,1 (mean .5, std .577), demo 1: its advantage comes from the rollouts' statistics
    adv = grpo_advantage_with_demos(torch.tensor([0., 0., 1., 1., 1.]), ["g"] * 5,
                                    torch.tensor([False] * 4 + [True]), demos_in_stats=False)
    std = statistics.stdev([0, 0, 1, 1])
    assert adv[4].item() == pytest.approx(0.5 / (std + 1e-6), rel=1e-5)
    assert adv[:4].sum().item() == pytest.approx(0.0, abs=1e-6)


def test_all_failed_rollouts_plus_correct_demo_gives_demo_positive_rollouts_negative():
    adv = grpo_advantage_with_demos(torch.tensor([0., 0., 0., 1.]), ["g"] * 4, torch.tensor([False] * 3 + [True]))
    assert adv[3] > 0 and (adv[:3] < 0).all()


@pytest.mark.parametrize("rollout_score,demo_score", [(0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0)])
def test_zero_std_rollouts_with_demo_outside_stats_stay_bounded(rollout_score, demo_score):
    # 8 equal rollouts (std 0) + 1 demo outside the statistics: (r_demo - mean) / 1, not / 1e-6
    scores = torch.tensor([rollout_score] * 8 + [demo_score])
    adv = grpo_advantage_with_demos(scores, ["g"] * 9, torch.tensor([False] * 8 + [True]), demos_in_stats=False)
    assert adv[8].item() == pytest.approx((demo_score - rollout_score) / (1 + 1e-6), abs=1e-6)
    assert torch.all(adv[:8] == 0)
    assert adv.abs().max() <= 1.0


# ---------------------------------------------------------------- demonstrations
def test_extract_demos_from_luffy_target_and_demo_string():
    row = {"target": [{"role": "assistant", "content": "<think>\nA</think> 5"}], "demo": "B"}
    assert extract_demos(row) == ["<think>\nA</think> 5"]
    assert extract_demos({"demo": "B"}) == ["B"]
    assert extract_demos({"demo": ["x", "", "y"]}) == ["x", "y"]
    assert extract_demos({"target": None, "demo": None}) == []
    assert extract_demos({"target": [{"role": "user", "content": "no"}]}) == []


def test_tokenize_demo_eos_think_strip_and_truncation(tiny_tokenizer):
    tok = tiny_tokenizer
    text = "<think>\nabc</think> 7"
    plain = tokenize_demo(text, tok, 100, prompt_text="<|im_start|>assistant\n")
    assert plain.response_ids == tok.encode(text, add_special_tokens=False) + [tok.eos_token_id]
    assert not plain.stripped_think and not plain.truncated
    stripped = tokenize_demo(text, tok, 100, prompt_text="<|im_start|>assistant\n<think>\n")
    assert stripped.stripped_think
    assert stripped.response_ids == tok.encode("abc</think> 7", add_special_tokens=False) + [tok.eos_token_id]
    short = tokenize_demo(text, tok, 5)
    assert short.truncated and len(short.response_ids) == 5


# ---------------------------------------------------------------- mini-batches and metrics
def test_minibatch_ids_follow_verl_unshuffled_split():
    # 1 rank, 16 trajectories, mini-batches of 8
    assert minibatch_ids(16, 1, 8).tolist() == [0] * 8 + [1] * 8
    # 2 ranks: rank r holds rows [8r, 8r+8); each rank's mini-batch j has 4 rows; global mini-batch j = both
    assert minibatch_ids(16, 2, 8).tolist() == [0] * 4 + [1] * 4 + [0] * 4 + [1] * 4
    with pytest.raises(ValueError):
        minibatch_ids(15, 2, 8)


def test_srft_data_metrics():
    scores = torch.tensor([1., 0., 0., 1., 1., 1., 0.])
    uids = ["a", "a", "a", "b", "b", "b", "pad"]
    is_demo = torch.tensor([False, False, True, False, False, True, False])
    valid = torch.tensor([True] * 6 + [False])
    m = srft_data_metrics(scores, uids, is_demo, torch.tensor([False, False, True] + [False] * 4), valid)
    assert m["srft/num_demos"] == 2 and m["srft/demo_truncated_count"] == 1
    assert m["srft/demo_solve_rate"] == 0.5
    assert m["srft/onpolicy_solve_rate"] == 0.75
    assert m["srft/groups_all_solved_frac"] == 0.5 and m["srft/groups_none_solved_frac"] == 0.0


def test_split_metrics_separate_rollouts_and_demos():
    from recipe_srft.integration.trainer import split_metrics

    is_demo = torch.tensor([False, False, True, False])
    valid = torch.tensor([True, True, True, False])
    m = split_metrics("score_mean", torch.tensor([1.0, 0.0, 1.0, 5.0]), is_demo, valid)
    assert m == {"srft/onpolicy/score_mean": 0.5, "srft/demo/score_mean": 1.0}  # padding row left out
    # token means: entropy sums 2 and 6 over 4 and 2 tokens -> 8 / 6 for rollouts
    m = split_metrics("entropy", torch.tensor([2.0, 6.0, 3.0, 9.0]), is_demo, valid,
                      weights=torch.tensor([4.0, 2.0, 3.0, 1.0]))
    assert m["srft/onpolicy/entropy"] == pytest.approx(8 / 6) and m["srft/demo/entropy"] == pytest.approx(1.0)


def test_shuffle_is_refused_with_the_reason():
    from recipe_srft.tools.dry_run import compose_config
    from recipe_srft.integration.trainer import check_verl_config, srft_config_from

    config = compose_config(["actor_rollout_ref.actor.shuffle=true"])
    with pytest.raises(ValueError, match="reshuffle the rows inside each rank every epoch"):
        check_verl_config(config, srft_config_from(config))
    config = compose_config([])
    check_verl_config(config, srft_config_from(config))  # the recipe's defaults pass


def test_preset_verl_overrides_satisfy_the_preset_check():
    """The overrides the CPU scripts add for a preset are exactly what check_verl_config asks for."""
    from recipe_srft.tools.dry_run import compose_config
    from recipe_srft.srft_config import PRESETS, preset_verl_overrides
    from recipe_srft.integration.verl_checks import preset_verl_conflicts

    for preset in PRESETS:
        overrides = ["+runtime=cpu", f"srft.preset={preset}", "data.max_response_length=48"]
        config = compose_config(overrides + preset_verl_overrides(preset, 48))
        assert preset_verl_conflicts(config, preset) == [], preset
    assert preset_verl_conflicts(compose_config(["+runtime=cpu", "srft.preset=luffy"]), "luffy")


def test_one_launch_path_group_size_and_batch_checks():
    """The trainer (check_verl_config + apply_srft_group) fails where the dry run fails, and the group-size
    transformation is applied once, whoever calls it."""
    from recipe_srft.tools import dry_run as dr
    from recipe_srft.tools.dry_run import compose_config
    from recipe_srft.integration.launch import LAUNCH_KEY, apply_srft_group, check_verl_config, num_rollouts, srft_config_from

    config = compose_config(["+runtime=cpu", "actor_rollout_ref.rollout.n=4", "data.train_batch_size=8",
                             "actor_rollout_ref.actor.ppo_mini_batch_size=4"])
    srft = srft_config_from(config)
    assert apply_srft_group(config, srft) == 4 and apply_srft_group(config, srft) == 4
    assert config.actor_rollout_ref.rollout.n == 5 and config.actor_rollout_ref.actor.rollout_n == 5
    assert config[LAUNCH_KEY].num_rollouts == 4 and num_rollouts(config) == 4
    check_verl_config(config, srft_config_from(config))  # the transformed config still passes (no srft key added)

    bad = ["+runtime=cpu", "data.train_batch_size=6", "actor_rollout_ref.actor.ppo_mini_batch_size=4"]
    with pytest.raises(ValueError, match="data.train_batch_size=6 is not a multiple of") as trainer_err:
        config = compose_config(bad)
        check_verl_config(config, srft_config_from(config))
    with pytest.raises(dr.DryRunError) as dry_err:
        dr.dry_run(bad)
    assert str(trainer_err.value) in str(dry_err.value)


def test_demonstrations_read_staleness_zero_like_the_rollouts_they_join():
    """verl logs training/off_policy/trajectory_staleness = (global_steps - 1) - max_global_steps
    (verl/trainer/ppo/v1/trainer_base.py); a synchronous rollout of step k comes from weights version k - 1
    (PPOTrainerSync.on_step_end: update_weights(global_steps)). A demonstration joins its rollouts' version."""
    from recipe_srft.integration.agent_loop import demo_version_tags

    for step in (1, 2, 57):
        tags = demo_version_tags(step)
        assert tags == {"global_steps": step - 1, "min_global_steps": step - 1, "max_global_steps": step - 1}
        rollout_version = step - 1
        assert (step - 1) - tags["max_global_steps"] == 0 == (step - 1) - rollout_version
    assert demo_version_tags(None) == {"global_steps": None, "min_global_steps": None, "max_global_steps": None}


def test_minibatch_counts_leave_out_the_rows_a_gate_drops():
    """The trainer's global counts per optimizer mini-batch, by hand: two mini-batches of 3 rows; the gate dropped
    row 1 (a rollout) and row 5 (a demo); hpt's loss config (demos carry no RL term)."""
    from recipe_srft import contract as C
    from recipe_srft.integration.trainer import minibatch_counts

    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    lengths = torch.tensor([3, 2, 4, 1, 2, 5])
    keep = torch.tensor([1, 0, 1, 1, 1, 0]).bool()
    is_demo = torch.tensor([False, False, True, False, False, True])
    mask = (torch.arange(5)[None, :] < lengths[:, None]).float() * keep[:, None]
    entropy = torch.arange(30, dtype=torch.float32).reshape(6, 5) / 10
    counts = minibatch_counts(groups, mask, is_demo, entropy, resolve_srft_config({"preset": "hpt"}).loss)
    assert counts[C.DEMO_NUM_TOKENS].tolist() == [4, 4, 4, 0, 0, 0]
    assert counts[C.RL_NUM_TOKENS].tolist() == [3, 3, 3, 3, 3, 3]  # kept rollout tokens: 3 | 1 + 2
    assert counts[C.RL_NUM_SEQS].tolist() == [1, 1, 1, 2, 2, 2]
    assert counts[C.KEPT_NUM_TOKENS].tolist() == [7, 7, 7, 3, 3, 3]
    # mean old-policy entropy over the kept tokens: rows 0 (0.0, 0.1, 0.2) and 2 (1.0 .. 1.3) | 3 (1.5), 4 (2.0, 2.1)
    torch.testing.assert_close(counts[C.BATCH_ENTROPY], torch.tensor([4.9 / 7] * 3 + [5.6 / 3] * 3))


def test_compare_cpu_accepts_the_new_methods_and_refuses_unknown_ones():
    from recipe_srft.experiments.compare import check_methods

    check_methods(["srft", "srft_code", "hpt", "chord", "luffy", "sft_rl"])
    with pytest.raises(SystemExit, match=r"unknown \['hptt'\].*srft_code, hpt, chord, sft, sft_rl"):
        check_methods(["srft", "hptt"])
    with pytest.raises(SystemExit, match="custom"):  # listed nowhere: custom has no fixed settings to compare
        check_methods(["custom"])
