"""Tests of recipe_srft.losses against an independent, loop-based reference implementation.

The reference (`naive_srft`) walks rows and tokens one by one with python control flow and scalar autograd
tensors; it shares no code with the vectorised module. Both values and gradients w.r.t. log_prob are compared.
"""

import math
from types import SimpleNamespace

import pytest
import torch

from recipe_srft.losses import SUPPORTED_LOSS_AGG_MODES, SRFTLossConfig, compute_srft_loss, srft_loss_fn
from verl.utils import tensordict_utils as tu
from verl.utils.metric import AggregationType, Metric
from verl.workers.utils.padding import left_right_2_no_padding

F64 = torch.float64
MODES = list(SUPPORTED_LOSS_AGG_MODES)

# ----------------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------------

# (is_demo, reward, sign of advantage, response length) per row; designed so that every switch matters:
# demo rows with reward 1 and 0, rollouts with A>0/r=1, A<0/r=0, A=0/r=1, A>0/r=0, A<0/r=1, and an empty row.
ROWS = [
    (True, 1.0, +1, 6),
    (True, 0.0, -1, 4),
    (False, 1.0, +1, 5),
    (False, 0.0, -1, 6),
    (False, 1.0, 0, 3),
    (False, 0.0, +1, 2),
    (False, 1.0, -1, 4),
    (False, 0.0, -1, 0),
]
T = 6


def make_batch(seed=0, dtype=F64, rows=ROWS, T=T):
    g = torch.Generator().manual_seed(seed)
    B = len(rows)
    lengths = torch.tensor([r[3] for r in rows])
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(dtype)
    log_prob = -(0.05 + 3.0 * torch.rand(B, T, generator=g, dtype=dtype))
    old_log_prob = log_prob + 0.4 * torch.randn(B, T, generator=g, dtype=dtype)
    entropy = 3.0 * torch.rand(B, T, generator=g, dtype=dtype)
    mag = 0.3 + torch.rand(B, generator=g, dtype=dtype)
    adv_row = torch.tensor([r[2] for r in rows], dtype=dtype) * mag
    advantages = adv_row[:, None].expand(B, T).clone()
    is_demo = torch.tensor([r[0] for r in rows])
    rewards = torch.tensor([r[1] for r in rows], dtype=dtype)
    # Make the dual clip fire on the first token of a negative rollout (ratio e^{1.5} > clip_ratio_c = 3).
    for i, r in enumerate(rows):
        if not r[0] and r[2] < 0 and r[3] > 0:
            old_log_prob[i, 0] = log_prob[i, 0] - 1.5
            break
    return dict(
        log_prob=log_prob,
        old_log_prob=old_log_prob,
        entropy=entropy,
        advantages=advantages,
        response_mask=mask,
        is_demo=is_demo,
        rewards=rewards,
    )


def subset(batch, idx):
    idx = torch.as_tensor(idx)
    return {k: v[idx] for k, v in batch.items()}


def counts(batch):
    mask = batch["response_mask"].bool()
    return dict(
        batch_num_tokens=int(mask.sum()),
        demo_num_tokens=int((mask & batch["is_demo"][:, None]).sum()),
        global_batch_size=int((mask.sum(-1) > 0).sum()),
        batch_entropy=float(batch["entropy"][mask].mean()),
    )


# ----------------------------------------------------------------------------------------------------------------
# independent reference implementation: explicit loops over rows and tokens
# ----------------------------------------------------------------------------------------------------------------


def naive_mu(step, warmup, decay, peak, valley):
    """CHORD's mu written out again (piecewise: linear warm-up, half cosine, valley)."""
    if step < warmup:
        return peak * step / warmup
    if step - warmup >= decay:
        return valley
    return valley + (peak - valley) * (1 + math.cos(math.pi * (step - warmup) / decay)) / 2


def naive_srft(batch, lp, cfg, mode="token-mean", g=None, keep=None):
    """Loop-based SRFT loss. `lp` is the [B, T] tensor to differentiate; returns (loss, parts). `keep`: rows a group
    gate keeps (a dropped row is treated as absent)."""
    g = dict(g or {})
    dp = g.get("dp_size", 1)
    B, Tn = lp.shape
    kept = [True] * B if keep is None else [bool(keep[i]) for i in range(B)]
    mask = [[bool(batch["response_mask"][i, t] != 0) and kept[i] for t in range(Tn)] for i in range(B)]
    demo = [bool(batch["is_demo"][i]) for i in range(B)]
    ent = [[float(batch["entropy"][i, t]) for t in range(Tn)] for i in range(B)]
    adv = [[float(batch["advantages"][i, t]) for t in range(Tn)] for i in range(B)]
    old = [[float(batch["old_log_prob"][i, t]) for t in range(Tn)] for i in range(B)]
    rew = [float(batch["rewards"][i]) for i in range(B)]

    all_ent = [ent[i][t] for i in range(B) for t in range(Tn) if mask[i][t]]

    def h(i, t):
        if cfg.entropy_scope == "token":
            return ent[i][t]
        if cfg.entropy_scope == "sequence":
            vals = [ent[i][s] for s in range(Tn) if mask[i][s]]
            return sum(vals) / len(vals)
        if g.get("batch_entropy") is not None:
            return g["batch_entropy"]
        return sum(all_ent) / len(all_ent)

    def clamp(w):
        return w if cfg.weight_clamp is None else min(w, cfg.weight_clamp)

    def w_sft(i, t):
        if cfg.sft_weighting == "constant":
            return clamp(cfg.sft_coef)
        if cfg.sft_weighting == "phi":
            p = math.exp(lp[i, t].item())
            return clamp(cfg.sft_coef * p * (1 - p))
        return clamp(cfg.sft_coef * math.exp(cfg.sft_entropy_sign * h(i, t)))

    def w_rl(i, t):
        if cfg.pos_weighting == "constant":
            return clamp(cfg.pos_coef)
        return clamp(cfg.pos_coef * math.exp(h(i, t)))

    zero = lp.new_zeros(())
    sft_terms = []
    off = [[None] * Tn for _ in range(B)]
    on = [[None] * Tn for _ in range(B)]
    for i in range(B):
        for t in range(Tn):
            if not mask[i][t]:
                continue
            x = lp[i, t]
            A = adv[i][t]
            if demo[i]:
                sft_terms.append(w_sft(i, t) * (-x))
                p = torch.exp(x)
                f = p / (p + cfg.offpolicy_gamma) if cfg.offpolicy_shaping == "luffy" else p
                off[i][t] = -A * f
                continue
            if cfg.positive_by == "advantage":
                positive, negative = A > 0, A < 0
            else:
                positive = rew[i] > 0.5
                negative = not positive
            if cfg.onpolicy_form == "ratio":
                rho = torch.exp(x - old[i][t])
                r = rho.item()
                lo, hi = 1 - cfg.clip_ratio_low, 1 + cfg.clip_ratio_high
                unclipped = -A * rho
                if r < lo:
                    clipped = zero + (-A * lo)
                elif r > hi:
                    clipped = zero + (-A * hi)
                else:
                    clipped = -A * rho
                pg = unclipped if unclipped.item() >= clipped.item() else clipped
                if A < 0 and pg.item() > -A * cfg.clip_ratio_c:
                    pg = zero + (-A * cfg.clip_ratio_c)
                if not cfg.onpolicy_clip:
                    pg = unclipped
                if positive:
                    pg = w_rl(i, t) * pg
            else:
                c = w_rl(i, t) if positive else (-1.0 if negative else 0.0)
                pg = -c * x
            on[i][t] = pg

    # rows whose tokens carry an RL term: the RL aggregation runs over them alone
    rl_row = [(demo[i] and cfg.demo_rl) or (not demo[i] and cfg.rollout_rl) for i in range(B)]
    every_row = [True] * B

    def agg(mat, mode=mode, rows=rl_row):
        """verl's aggregation modes written out over the rows in `rows`; `mat[i][t]` is None where the token is
        not part of `mat`. Global counts: rl_num_tokens / rl_num_seqs for the RL rows (verl's batch_num_tokens /
        global_batch_size when every row carries an RL term), batch_num_tokens for all rows."""
        def val(i, t):
            v = mat[i][t]
            return zero if v is None else v

        all_rows = rows is every_row or all(rows)
        rows_nonempty = [i for i in range(B) if rows[i] and any(mask[i])]
        if mode == "token-mean":
            n = g.get("rl_num_tokens") if rows is not every_row else None
            if n is None and (all_rows or rows is every_row):
                n = g.get("batch_num_tokens")
            if n is None:
                n = sum(sum(mask[i]) for i in range(B) if rows[i])
            total = zero
            for i in rows_nonempty:
                for t in range(Tn):
                    if mask[i][t]:
                        total = total + val(i, t)
            return total / max(n, 1) * dp
        if mode == "token-sum":
            total = zero
            for i in rows_nonempty:
                for t in range(Tn):
                    if mask[i][t]:
                        total = total + val(i, t)
            return total * dp
        G = g.get("rl_num_seqs")
        if G is None and all_rows:
            G = g.get("global_batch_size")
        if G is None:
            G = len(rows_nonempty)
        total = zero
        for i in rows_nonempty:
            row = zero
            for t in range(Tn):
                if mask[i][t]:
                    row = row + val(i, t)
            if mode == "seq-mean-token-mean":
                row = row / sum(mask[i])
            total = total + row
        out = total / max(G, 1) * dp
        if mode == "seq-mean-token-sum-norm":
            out = out / (g.get("loss_scale_factor") or Tn)
        return out

    rl_mat = [[off[i][t] if demo[i] else on[i][t] for t in range(Tn)] for i in range(B)]
    rl = agg(rl_mat)
    if cfg.use_sft:
        total_sft = sum(sft_terms, zero)
        if g.get("demo_num_tokens") is None:
            sft = total_sft / max(len(sft_terms), 1)
        else:
            sft = total_sft / max(g["demo_num_tokens"], 1) * dp
    else:
        sft = zero
    ent_mat = [[batch["entropy"][i, t].item() + zero for t in range(Tn)] for i in range(B)]
    if keep is not None and g.get("kept_num_tokens") is not None:
        g["batch_num_tokens"] = g["kept_num_tokens"]  # the entropy bonus counts the kept tokens only
    ent_loss = agg(ent_mat, mode="token-mean", rows=every_row)  # the entropy bonus is always a token-mean
    if cfg.mix == "chord":
        mu = naive_mu(g["global_step"], cfg.mu_warmup_steps, cfg.mu_decay_steps, cfg.mu_peak, cfg.mu_valley)
        c_rl, c_sft = 1 - mu, mu
    else:
        c_rl, c_sft = 1.0, 1.0
    loss = c_rl * rl + c_sft * sft - cfg.entropy_coeff * ent_loss
    parts = dict(sft=sft, off=agg(off), on=agg(on), rl=rl, ent=ent_loss)
    return loss, parts


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------


def grad_of(loss, x):
    if not loss.requires_grad:
        return torch.zeros_like(x)
    (gr,) = torch.autograd.grad(loss, x, allow_unused=True)
    return torch.zeros_like(x) if gr is None else gr


def run_module(batch, cfg, mode="token-mean", g=None, lp=None, with_grad=True):
    lp = batch["log_prob"].clone().requires_grad_() if lp is None else lp
    loss, metrics = compute_srft_loss(
        lp,
        batch["old_log_prob"],
        batch["entropy"],
        batch["advantages"],
        batch["response_mask"],
        batch["is_demo"],
        batch["rewards"],
        cfg,
        loss_agg_mode=mode,
        global_info=g,
    )
    return loss, metrics, (grad_of(loss, lp) if with_grad else None)


def run_naive(batch, cfg, mode="token-mean", g=None):
    lp = batch["log_prob"].clone().requires_grad_()
    loss, parts = naive_srft(batch, lp, cfg, mode, g)
    return loss, parts, grad_of(loss, lp)


def assert_matches_naive(batch, cfg, mode="token-mean", g=None, tol=1e-10):
    loss, metrics, grad = run_module(batch, cfg, mode, g)
    nloss, parts, ngrad = run_naive(batch, cfg, mode, g)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    torch.testing.assert_close(loss.detach(), nloss.detach(), atol=tol, rtol=tol)
    torch.testing.assert_close(grad, ngrad, atol=tol, rtol=tol)
    assert metrics["srft/sft_loss"] == pytest.approx(parts["sft"].item(), abs=tol)
    assert metrics["srft/offpolicy_pg_loss"] == pytest.approx(parts["off"].item(), abs=tol)
    assert metrics["srft/onpolicy_pg_loss"] == pytest.approx(parts["on"].item(), abs=tol)
    assert metrics["srft/rl_loss"] == pytest.approx(parts["rl"].item(), abs=tol)
    assert metrics["srft/entropy_loss"] == pytest.approx(parts["ent"].item(), abs=tol)
    return loss, metrics, grad


CONFIGS = {
    "default": {},
    "sft_sign_plus": {"sft_entropy_sign": 1},
    "sft_constant": {"sft_weighting": "constant", "sft_coef": 1.0},
    "pos_constant": {"pos_weighting": "constant", "pos_coef": 1.0},
    "positive_by_reward": {"positive_by": "reward"},
    "scope_token": {"entropy_scope": "token"},
    "scope_batch": {"entropy_scope": "batch"},
    "clamp_token": {"entropy_scope": "token", "weight_clamp": 0.3},
    "reinforce": {"onpolicy_form": "reinforce"},
    "reinforce_reward": {"onpolicy_form": "reinforce", "positive_by": "reward"},
    "shaping_none": {"offpolicy_shaping": "none"},
    "gamma_half": {"offpolicy_gamma": 0.5},
    "no_sft": {"use_sft": False},
    "entropy_coeff": {"entropy_coeff": 0.01},
    "asym_clip": {"clip_ratio_low": 0.1, "clip_ratio_high": 0.3, "clip_ratio_c": 2.0},
    "no_clip": {"onpolicy_clip": False},
    "no_demo_rl": {"demo_rl": False},
    "no_rollout_rl": {"rollout_rl": False},
    "phi": {"sft_weighting": "phi", "sft_coef": 1.0},
    "phi_clamp": {"sft_weighting": "phi", "sft_coef": 2.0, "weight_clamp": 0.3},
}


# ----------------------------------------------------------------------------------------------------------------
# reference comparisons
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_naive(name, mode):
    batch = make_batch(seed=1)
    assert_matches_naive(batch, SRFTLossConfig(**CONFIGS[name]), mode)


GATED = {
    "hpt_like": dict(sft_weighting="constant", sft_coef=1.0, demo_rl=False, pos_weighting="constant", pos_coef=1.0,
                     onpolicy_clip=False, entropy_coeff=0.01),
    "chord_like": dict(mix="chord", sft_weighting="phi", sft_coef=1.0, demo_rl=False, pos_weighting="constant",
                       pos_coef=1.0, mu_warmup_steps=3, mu_decay_steps=5, mu_peak=0.7, mu_valley=0.1),
    "srft_gated": dict(entropy_coeff=0.01, entropy_scope="token", sft_entropy_sign=1),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(GATED))
@pytest.mark.parametrize("step", [1, 5, 20])
@pytest.mark.parametrize("global_counts", [False, True])
def test_gate_and_mix_match_naive(name, mode, step, global_counts):
    """A group gate (keep) and CHORD's mix against the loop reference, local and with the trainer's global counts
    (kept rows only), including the gradient."""
    batch = make_batch(seed=4)
    keep = torch.tensor([True, False, True, False, True, True, False, True])
    cfg = SRFTLossConfig(**GATED[name])
    g = dict(dp_size=1, global_step=step)
    if global_counts:
        mask = batch["response_mask"].bool() & keep[:, None]
        rl_rows = (batch["is_demo"] & cfg.demo_rl) | (~batch["is_demo"] & cfg.rollout_rl)
        g.update(batch_num_tokens=int(batch["response_mask"].sum()) + 7, global_batch_size=9,
                 demo_num_tokens=int((mask & batch["is_demo"][:, None]).sum()),
                 rl_num_tokens=int((mask & rl_rows[:, None]).sum()),
                 rl_num_seqs=int(((mask & rl_rows[:, None]).sum(-1) > 0).sum()), kept_num_tokens=int(mask.sum()))
    lp = batch["log_prob"].clone().requires_grad_()
    loss, _ = compute_srft_loss(lp, batch["old_log_prob"], batch["entropy"], batch["advantages"],
                                batch["response_mask"], batch["is_demo"], batch["rewards"], cfg, mode, g, keep=keep)
    (grad,) = torch.autograd.grad(loss, lp)
    nlp = batch["log_prob"].clone().requires_grad_()
    nloss, _ = naive_srft(batch, nlp, cfg, mode, g, keep=keep)
    (ngrad,) = torch.autograd.grad(nloss, nlp)
    torch.testing.assert_close(loss.detach(), nloss.detach(), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(grad, ngrad, atol=1e-10, rtol=1e-10)
    assert grad[~keep].abs().sum() == 0  # a dropped row gets no gradient


@pytest.mark.parametrize("name", [n for n in CONFIGS if n != "default"])
def test_every_switch_changes_the_loss(name):
    """Guards the reference comparison against vacuous data: each switch must matter on this batch."""
    batch = make_batch(seed=1)
    base, _, base_grad = run_module(batch, SRFTLossConfig())
    other, _, other_grad = run_module(batch, SRFTLossConfig(**CONFIGS[name]))
    same_loss = abs(base.item() - other.item()) < 1e-8
    assert not (same_loss and torch.allclose(base_grad, other_grad, atol=1e-8))


def test_data_exercises_clipping_and_clamp():
    batch = make_batch(seed=1)
    _, metrics, _ = run_module(batch, SRFTLossConfig())
    assert metrics["srft/pg_clipfrac"] > 0
    assert metrics["srft/pg_clipfrac_lower"] > 0
    _, metrics, _ = run_module(batch, SRFTLossConfig(**CONFIGS["clamp_token"]))
    assert metrics["srft/w_rl_max"] == pytest.approx(0.3)
    assert metrics["srft/w_rl_min"] < 0.3


@pytest.mark.parametrize("mode", MODES)
def test_batch_scope_uses_given_batch_entropy(mode):
    batch = make_batch(seed=2)
    cfg = SRFTLossConfig(entropy_scope="batch")
    loss_given, _, _ = assert_matches_naive(batch, cfg, mode, g={"batch_entropy": 2.25})
    loss_local, _, _ = assert_matches_naive(batch, cfg, mode, g={"batch_entropy": None})
    assert abs(loss_given.item() - loss_local.item()) > 1e-6


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_matches_naive_other_seeds_and_global_info(seed):
    batch = make_batch(seed=seed)
    g = dict(dp_size=1, batch_num_tokens=57, demo_num_tokens=13, global_batch_size=11, loss_scale_factor=4)
    for mode in MODES:
        assert_matches_naive(batch, SRFTLossConfig(entropy_scope="token", weight_clamp=1.5), mode, g)


def test_metrics_are_floats_and_sum_up():
    batch = make_batch(seed=1)
    loss, metrics, _ = run_module(batch, SRFTLossConfig(entropy_coeff=0.003))
    assert all(isinstance(v, float) for v in metrics.values())
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["srft/offpolicy_pg_loss"] + metrics["srft/onpolicy_pg_loss"] == pytest.approx(
        metrics["srft/rl_loss"], abs=1e-12
    )
    expected = metrics["srft/rl_loss"] + metrics["srft/sft_loss"] - 0.003 * metrics["srft/entropy_loss"]
    assert loss.item() == pytest.approx(expected, abs=1e-12)

    mask = batch["response_mask"].bool()
    demo = mask & batch["is_demo"][:, None]
    on = mask & ~batch["is_demo"][:, None]
    assert metrics["srft/num_demo_tokens"] == float(demo.sum())
    assert metrics["srft/num_onpolicy_tokens"] == float(on.sum())
    assert metrics["srft/demo_token_prob"] == pytest.approx(batch["log_prob"][demo].exp().mean().item())
    assert metrics["srft/entropy_demo"] == pytest.approx(batch["entropy"][demo].mean().item())
    assert metrics["srft/entropy_onpolicy"] == pytest.approx(batch["entropy"][on].mean().item())
    assert metrics["srft/demo_reward_mean"] == pytest.approx(batch["rewards"][batch["is_demo"]].mean().item())
    # w_sft over demo tokens, sequence scope: one value per demo row
    seq_h = [batch["entropy"][i][mask[i]].mean().item() for i in range(len(ROWS)) if ROWS[i][0]]
    w = [0.5 * math.exp(-x) for x in seq_h]
    assert metrics["srft/w_sft_max"] == pytest.approx(max(w))
    assert metrics["srft/w_sft_min"] == pytest.approx(min(w))


# ----------------------------------------------------------------------------------------------------------------
# closed forms
# ----------------------------------------------------------------------------------------------------------------


def _all_demo_batch(seed=7, B=3, T=5):
    rows = [(True, 1.0, +1, T), (True, 0.0, -1, T - 2), (True, 1.0, +1, 2)][:B]
    return make_batch(seed=seed, rows=rows, T=T)


@pytest.mark.parametrize("gamma", [0.1, 0.7])
def test_offpolicy_luffy_gradient_closed_form(gamma):
    batch = _all_demo_batch()
    cfg = SRFTLossConfig(use_sft=False, offpolicy_gamma=gamma)
    _, _, grad = run_module(batch, cfg)
    mask = batch["response_mask"].bool()
    n = mask.sum()
    p = batch["log_prob"].exp()
    A = batch["advantages"]
    expected = torch.where(mask, -A * gamma * p / (p + gamma) ** 2 / n, torch.zeros_like(p))
    torch.testing.assert_close(grad, expected)


def test_offpolicy_literal_gradient_closed_form():
    batch = _all_demo_batch()
    _, _, grad = run_module(batch, SRFTLossConfig(use_sft=False, offpolicy_shaping="none"))
    mask = batch["response_mask"].bool()
    p = batch["log_prob"].exp()
    expected = torch.where(mask, -batch["advantages"] * p / mask.sum(), torch.zeros_like(p))
    torch.testing.assert_close(grad, expected)


def test_sft_gradient_closed_form():
    """Zero advantages leave only Eq. 8: d/d log p = -w_sft / N_demo with w_sft = 0.5 exp(-H_seq)."""
    batch = make_batch(seed=8)
    batch["advantages"].zero_()
    _, metrics, grad = run_module(batch, SRFTLossConfig())
    mask = batch["response_mask"].bool()
    demo = mask & batch["is_demo"][:, None]
    h_seq = (batch["entropy"] * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1)
    expected = torch.where(demo, -0.5 * torch.exp(-h_seq) / demo.sum(), torch.zeros_like(h_seq))
    torch.testing.assert_close(grad, expected)
    assert metrics["srft/offpolicy_pg_loss"] == 0.0 and metrics["srft/onpolicy_pg_loss"] == 0.0


def test_reinforce_gradient_closed_form():
    """Eq. 12: d/d log p = -c / N, c = w_rl (A>0), -1 (A<0), 0 (A==0) with positive_by='advantage'."""
    rows = [(False, 1.0, +1, 4), (False, 0.0, -1, 3), (False, 1.0, 0, 2)]
    batch = make_batch(seed=9, rows=rows, T=4)
    cfg = SRFTLossConfig(onpolicy_form="reinforce", pos_weighting="constant", pos_coef=0.25)
    _, _, grad = run_module(batch, cfg)
    mask = batch["response_mask"].bool()
    c = torch.tensor([0.25, -1.0, 0.0], dtype=F64)[:, None]
    expected = torch.where(mask, -c / mask.sum(), torch.zeros_like(grad))
    torch.testing.assert_close(grad, expected)


def test_dual_clip_negative_and_clip_positive_advantages():
    """Ratio form (Eq. 11, verl's dual clip), token-sum so each token's loss and gradient are visible."""
    ratios = torch.tensor([5.0, 2.0, 1.1, 0.5], dtype=F64)
    lp = torch.full((2, 4), -1.0, dtype=F64)
    old = lp - ratios.log()[None, :]
    adv = torch.tensor([[-0.7], [0.9]], dtype=F64).expand(2, 4).clone()
    batch = dict(
        log_prob=lp,
        old_log_prob=old,
        entropy=torch.ones(2, 4, dtype=F64),
        advantages=adv,
        response_mask=torch.ones(2, 4, dtype=F64),
        is_demo=torch.tensor([False, False]),
        rewards=torch.tensor([0.0, 1.0], dtype=F64),
    )
    cfg = SRFTLossConfig(pos_weighting="constant", pos_coef=1.0, clip_ratio_c=3.0)
    loss, metrics, grad = run_module(batch, cfg, mode="token-sum")
    a_neg, a_pos = 0.7, 0.9
    # A < 0: ratio 5 -> dual clip |A|*3 (no grad); 2 -> |A|*2 (grad |A|*2); 1.1 -> |A|*1.1; 0.5 -> |A|*0.8 (no grad)
    neg_vals = [a_neg * 3.0, a_neg * 2.0, a_neg * 1.1, a_neg * 0.8]
    neg_grad = [0.0, a_neg * 2.0, a_neg * 1.1, 0.0]
    # A > 0: ratio 5 and 2 -> -A*1.2 (no grad); 1.1 -> -A*1.1 (grad -A*1.1); 0.5 -> -A*0.5 (grad -A*0.5)
    pos_vals = [-a_pos * 1.2, -a_pos * 1.2, -a_pos * 1.1, -a_pos * 0.5]
    pos_grad = [0.0, 0.0, -a_pos * 1.1, -a_pos * 0.5]
    assert loss.item() == pytest.approx(sum(neg_vals) + sum(pos_vals), abs=1e-12)
    torch.testing.assert_close(grad, torch.tensor([neg_grad, pos_grad], dtype=F64))
    assert metrics["srft/pg_clipfrac_lower"] == pytest.approx(1 / 8)
    assert metrics["srft/pg_clipfrac"] == pytest.approx(3 / 8)  # (A<0, 0.5), (A>0, 5), (A>0, 2)


@pytest.mark.parametrize("scope", ["sequence", "token", "batch"])
@pytest.mark.parametrize("coeff", [0.0, 0.02])
def test_entropy_gradient_only_from_the_bonus(scope, coeff):
    """H enters w_sft and w_rl detached (sg in Eq. 8, 11): d loss / d H is the Eq. 13 bonus alone."""
    batch = make_batch(seed=10)
    ent = batch["entropy"].clone().requires_grad_()
    lp = batch["log_prob"].clone().requires_grad_()
    cfg = SRFTLossConfig(entropy_scope=scope, entropy_coeff=coeff)
    loss, _ = compute_srft_loss(
        lp, batch["old_log_prob"], ent, batch["advantages"], batch["response_mask"], batch["is_demo"],
        batch["rewards"], cfg, loss_agg_mode="token-mean",
    )
    (grad,) = torch.autograd.grad(loss, ent, allow_unused=True)
    grad = torch.zeros_like(ent) if grad is None else grad
    mask = batch["response_mask"].bool()
    expected = torch.where(mask, torch.full_like(ent, -coeff / mask.sum().item()), torch.zeros_like(ent))
    torch.testing.assert_close(grad, expected)


# ----------------------------------------------------------------------------------------------------------------
# micro-batch and data-parallel invariance
# ----------------------------------------------------------------------------------------------------------------

INVARIANCE_CONFIGS = ["default", "scope_token", "scope_batch", "reinforce", "positive_by_reward", "entropy_coeff"]
SPLITS = [[0, 2], [1, 3], [4, 5], [6, 7]]  # includes demo-free micro-batches


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", INVARIANCE_CONFIGS)
def test_micro_batch_invariance(name, mode):
    batch = make_batch(seed=11, dtype=torch.float32)
    cfg = SRFTLossConfig(**CONFIGS[name])
    full_lp = batch["log_prob"].clone().requires_grad_()
    full_loss, _, full_grad = run_module(batch, cfg, mode, lp=full_lp)

    g = dict(dp_size=1, **counts(batch))
    lp = batch["log_prob"].clone().requires_grad_()
    total = 0.0
    for idx in SPLITS:
        mb = subset(batch, idx)
        loss, metrics, _ = run_module(mb, cfg, mode, g, lp=lp[torch.tensor(idx)], with_grad=False)
        assert torch.isfinite(loss)
        total = total + loss
    grad = grad_of(total, lp)
    torch.testing.assert_close(total.detach(), full_loss.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad, full_grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["default", "scope_batch", "reinforce"])
def test_data_parallel_invariance(name, mode):
    batch = make_batch(seed=12, dtype=F64)
    cfg = SRFTLossConfig(**CONFIGS[name])
    full_loss, _, full_grad = run_module(batch, cfg, mode)

    g = dict(dp_size=2, **counts(batch))
    ranks = [[[0, 2], [4, 6]], [[1, 3], [5, 7]]]  # rank -> micro-batches
    grads, losses = [], []
    for rank_splits in ranks:
        lp = batch["log_prob"].clone().requires_grad_()  # the "parameter" every rank differentiates
        rank_loss = 0.0
        for idx in rank_splits:
            loss, _, _ = run_module(subset(batch, idx), cfg, mode, g, lp=lp[torch.tensor(idx)], with_grad=False)
            rank_loss = rank_loss + loss
        grads.append(grad_of(rank_loss, lp))
        losses.append(rank_loss.detach())
    torch.testing.assert_close(sum(grads) / 2, full_grad, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(sum(losses) / 2, full_loss.detach(), atol=1e-10, rtol=1e-10)


def test_dp_size_requires_global_counts():
    batch = make_batch()
    with pytest.raises(ValueError, match="demo_num_tokens"):
        run_module(batch, SRFTLossConfig(), g=dict(dp_size=2, batch_num_tokens=40, global_batch_size=8))
    with pytest.raises(ValueError, match="demo_num_tokens"):
        run_module(batch, SRFTLossConfig(), g=dict(demo_num_tokens=1))


# ----------------------------------------------------------------------------------------------------------------
# empty and degenerate batches
# ----------------------------------------------------------------------------------------------------------------

DEMO_FREE_ROWS = [r for r in ROWS if not r[0]]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("g", [None, dict(dp_size=2, batch_num_tokens=19, demo_num_tokens=0, global_batch_size=5)])
def test_demo_free_batch(mode, g):
    batch = make_batch(seed=13, rows=DEMO_FREE_ROWS)
    loss, metrics, grad = assert_matches_naive(batch, SRFTLossConfig(entropy_coeff=0.01), mode, g)
    assert metrics["srft/sft_loss"] == 0.0
    assert metrics["srft/offpolicy_pg_loss"] == 0.0
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    for key in ("srft/w_sft_mean", "srft/entropy_demo", "srft/demo_token_prob", "srft/demo_reward_mean"):
        assert key not in metrics
    assert all(math.isfinite(v) for v in metrics.values())


def test_demo_free_micro_batch_with_global_demo_tokens():
    batch = make_batch(seed=14)
    mb = subset(batch, [2, 3, 4])
    loss, metrics, grad = run_module(mb, SRFTLossConfig(), g=dict(dp_size=1, **counts(batch)))
    assert metrics["srft/sft_loss"] == 0.0 and metrics["srft/offpolicy_pg_loss"] == 0.0
    assert torch.isfinite(loss) and torch.isfinite(grad).all()


@pytest.mark.parametrize("mode", MODES)
def test_all_demo_batch(mode):
    batch = _all_demo_batch(seed=15)
    loss, metrics, _ = assert_matches_naive(batch, SRFTLossConfig(), mode)
    assert metrics["srft/onpolicy_pg_loss"] == 0.0
    assert metrics["srft/sft_loss"] > 0
    for key in ("srft/pg_clipfrac", "srft/entropy_onpolicy", "srft/w_rl_mean"):
        assert key not in metrics


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("g", [None, dict(dp_size=1, batch_num_tokens=0, demo_num_tokens=0, global_batch_size=0)])
def test_all_masked_batch_is_zero(mode, g):
    batch = make_batch(seed=16)
    batch["response_mask"].zero_()
    loss, metrics, grad = run_module(batch, SRFTLossConfig(entropy_coeff=0.01, entropy_scope="batch"), mode, g)
    assert loss.item() == 0.0
    assert torch.count_nonzero(grad) == 0
    assert all(math.isfinite(v) for v in metrics.values())


def test_garbage_in_padding_and_demo_old_log_probs_is_ignored():
    """Padding may hold -inf/NaN and demo rows have no behaviour log-probs: neither may leak into loss or grad."""
    batch = make_batch(seed=17)
    clean_loss, _, clean_grad = run_module(batch, SRFTLossConfig(entropy_scope="token", entropy_coeff=0.01))
    dirty = {k: v.clone() for k, v in batch.items()}
    pad = ~dirty["response_mask"].bool()
    dirty["log_prob"][pad] = -float("inf")
    dirty["log_prob"][:, -1][pad[:, -1]] = float("nan")
    dirty["entropy"][pad] = float("nan")
    dirty["advantages"][pad] = float("nan")
    dirty["old_log_prob"][pad] = float("nan")
    dirty["old_log_prob"][dirty["is_demo"]] = float("nan")
    loss, _, grad = run_module(dirty, SRFTLossConfig(entropy_scope="token", entropy_coeff=0.01))
    torch.testing.assert_close(loss.detach(), clean_loss.detach())
    torch.testing.assert_close(grad, clean_grad)


# ----------------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field_name, value, allowed",
    [
        ("sft_entropy_sign", 0, "[-1, 1]"),
        ("sft_entropy_sign", True, "[-1, 1]"),
        ("sft_weighting", "linear", "'entropy', 'constant'"),
        ("pos_weighting", "none", "'entropy', 'constant'"),
        ("positive_by", "reward_1", "'advantage', 'reward'"),
        ("entropy_scope", "global", "'sequence', 'token', 'batch'"),
        ("onpolicy_form", "ppo", "'ratio', 'reinforce'"),
        ("offpolicy_shaping", "p", "'luffy', 'none'"),
        ("use_sft", "yes", "True, False"),
        ("weight_clamp", 0.0, "None or > 0"),
        ("weight_clamp", -1.0, "None or > 0"),
        ("offpolicy_gamma", 0.0, "> 0"),
        ("clip_ratio_c", 1.0, "> 1"),
        ("clip_ratio_low", -0.1, "in [0, 1]"),
        ("clip_ratio_high", -0.1, ">= 0"),
        ("sft_coef", -0.5, ">= 0"),
        ("pos_coef", float("nan"), ">= 0"),
        ("entropy_coeff", float("inf"), "finite"),
    ],
)
def test_config_validation(field_name, value, allowed):
    with pytest.raises(ValueError) as err:
        SRFTLossConfig(**{field_name: value})
    assert field_name in str(err.value)
    assert allowed in str(err.value)


def test_config_defaults_are_the_paper():
    cfg = SRFTLossConfig()
    assert (cfg.sft_coef, cfg.sft_entropy_sign, cfg.sft_weighting) == (0.5, -1, "entropy")
    assert (cfg.pos_coef, cfg.pos_weighting, cfg.positive_by) == (0.1, "entropy", "advantage")
    assert (cfg.entropy_scope, cfg.weight_clamp, cfg.onpolicy_form) == ("sequence", None, "ratio")
    assert (cfg.offpolicy_shaping, cfg.offpolicy_gamma, cfg.use_sft, cfg.entropy_coeff) == ("luffy", 0.1, True, 0.0)
    assert (cfg.clip_ratio_low, cfg.clip_ratio_high, cfg.clip_ratio_c) == (0.2, 0.2, 3.0)


def test_call_validation():
    batch = make_batch()
    with pytest.raises(ValueError, match="loss_agg_mode"):
        run_module(batch, SRFTLossConfig(), mode="seq-sum")
    with pytest.raises(ValueError, match="Unknown global_info"):
        run_module(batch, SRFTLossConfig(), g={"num_tokens": 3})
    no_rewards = dict(batch, rewards=None)
    with pytest.raises(ValueError, match="rewards"):
        run_module(no_rewards, SRFTLossConfig(positive_by="reward"))
    run_module(no_rewards, SRFTLossConfig(positive_by="advantage"))  # rewards are optional otherwise
    with pytest.raises(ValueError, match="is_demo"):
        run_module(dict(batch, is_demo=batch["is_demo"][:3]), SRFTLossConfig())


# ----------------------------------------------------------------------------------------------------------------
# verl adapter
# ----------------------------------------------------------------------------------------------------------------


def build_micro_batch(batch, P=4, seed=21, is_demo_shape="flat", with_batch_entropy=False, demo_num_tokens=None,
                      rl_num_tokens=None, rl_num_seqs=None, extra=None):
    """A verl micro-batch in the no-padding layout plus the model output as nested (jagged) full-sequence tensors.

    Returns (data, model_output, lp_leaf, ent_leaf); lp_leaf/ent_leaf are the padded [B, T] response tensors the
    nested outputs are built from, so gradients can be compared with the padded pure function.
    """
    g = torch.Generator().manual_seed(seed)
    B, Tn = batch["log_prob"].shape
    resp_len = batch["response_mask"].sum(-1).long()
    assert (resp_len > 0).all()
    prompt_len = torch.randint(1, P + 1, (B,), generator=g)
    prompt_mask = (torch.arange(P)[None, :] >= (P - prompt_len)[:, None]).long()  # left padded
    response_mask = batch["response_mask"].long()
    prompts = torch.randint(5, 100, (B, P), generator=g) * prompt_mask
    responses = torch.randint(5, 100, (B, Tn), generator=g) * response_mask
    attention_mask = torch.cat([prompt_mask, response_mask], dim=1)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    is_demo = batch["is_demo"]
    if is_demo_shape == "column":
        is_demo = is_demo.long()[:, None]
    mask = batch["response_mask"].bool()
    if demo_num_tokens is None:
        demo_num_tokens = int((mask & batch["is_demo"][:, None]).sum())
    if rl_num_tokens is None:
        rl_num_tokens = int(mask.sum())
    if rl_num_seqs is None:
        rl_num_seqs = int((mask.sum(-1) > 0).sum())
    tensors = {
        "prompts": prompts,
        "responses": responses,
        "input_ids": torch.cat([prompts, responses], dim=1),
        "attention_mask": attention_mask,
        "position_ids": position_ids,
        "response_mask": response_mask,
        "old_log_probs": batch["old_log_prob"],
        "advantages": batch["advantages"],
        "is_demo": is_demo,
        "srft_rewards": batch["rewards"],
        "srft_demo_num_tokens": torch.full((B,), demo_num_tokens),
        "srft_rl_num_tokens": torch.full((B,), rl_num_tokens),
        "srft_rl_num_seqs": torch.full((B,), rl_num_seqs),
    }
    if with_batch_entropy:
        tensors["srft_batch_entropy"] = torch.full((B,), 1.25, dtype=batch["entropy"].dtype)
    tensors.update(extra or {})
    data = left_right_2_no_padding(tu.get_tensordict(tensors))

    lp_leaf = batch["log_prob"].clone().requires_grad_()
    ent_leaf = batch["entropy"].clone().requires_grad_()

    def nested(resp_values):
        pieces = []
        for i in range(B):
            p, r = int(prompt_len[i]), int(resp_len[i])
            # position j predicts token j+1: the response log-probs sit at [p-1, p-1+r); the rest is junk
            pieces += [torch.randn(p - 1, generator=g, dtype=resp_values.dtype), resp_values[i, :r],
                       torch.randn(1, generator=g, dtype=resp_values.dtype)]
        values = torch.cat(pieces)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), (prompt_len + resp_len).cumsum(0)])
        return torch.nested.nested_tensor_from_jagged(values, offsets=offsets)

    model_output = {"log_probs": nested(lp_leaf), "entropy": nested(ent_leaf)}
    return data, model_output, lp_leaf, ent_leaf


ADAPTER_ROWS = [r if r[3] > 0 else (r[0], r[1], r[2], 3) for r in ROWS]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "cfg_kwargs, with_batch_entropy, is_demo_shape",
    [({}, False, "flat"), ({"entropy_scope": "batch", "entropy_coeff": 0.01}, True, "column"),
     ({"onpolicy_form": "reinforce", "positive_by": "reward"}, False, "column")],
)
def test_adapter_matches_pure_function(mode, cfg_kwargs, with_batch_entropy, is_demo_shape):
    batch = make_batch(seed=22, rows=ADAPTER_ROWS)
    srft_cfg = SRFTLossConfig(**cfg_kwargs)
    total_demo = 40  # the optimizer mini-batch has more demo tokens than this micro-batch
    data, model_output, lp_leaf, ent_leaf = build_micro_batch(
        batch, is_demo_shape=is_demo_shape, with_batch_entropy=with_batch_entropy, demo_num_tokens=total_demo,
        rl_num_tokens=90, rl_num_seqs=17,
    )
    tu.assign_non_tensor(data, dp_size=2, batch_num_tokens=90, global_batch_size=17)
    config = SimpleNamespace(loss_agg_mode=mode, loss_scale_factor=None)
    loss, metrics = srft_loss_fn(config, model_output, data, srft_cfg=srft_cfg)
    grad_lp, grad_ent = torch.autograd.grad(loss, [lp_leaf, ent_leaf], allow_unused=True)

    g = dict(dp_size=2, batch_num_tokens=90, global_batch_size=17, demo_num_tokens=total_demo,
             batch_entropy=1.25 if with_batch_entropy else None)
    lp = batch["log_prob"].clone().requires_grad_()
    ent = batch["entropy"].clone().requires_grad_()
    ref_loss, ref_metrics = compute_srft_loss(
        lp, batch["old_log_prob"], ent, batch["advantages"], batch["response_mask"], batch["is_demo"],
        batch["rewards"], srft_cfg, loss_agg_mode=mode, global_info=g,
    )
    ref_lp, ref_ent = torch.autograd.grad(ref_loss, [lp, ent], allow_unused=True)
    torch.testing.assert_close(loss.detach(), ref_loss.detach(), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(grad_lp, ref_lp, atol=1e-12, rtol=1e-12)
    if srft_cfg.entropy_coeff:
        torch.testing.assert_close(grad_ent, ref_ent, atol=1e-12, rtol=1e-12)
    # and against the independent reference
    nloss, _ = naive_srft(batch, batch["log_prob"], srft_cfg, mode, g)
    assert loss.item() == pytest.approx(nloss.item(), abs=1e-10)

    for key in ("srft/sft_loss", "srft/offpolicy_pg_loss", "srft/onpolicy_pg_loss", "actor/pg_loss"):
        assert isinstance(metrics[key], Metric)
        assert metrics[key].aggregation == AggregationType.SUM
    assert metrics["srft/sft_loss"].aggregate() == pytest.approx(ref_metrics["srft/sft_loss"])
    assert metrics["actor/pg_loss"].aggregate() == pytest.approx(ref_metrics["srft/rl_loss"])
    assert isinstance(metrics["srft/num_demo_tokens"], float)
    assert metrics["srft/demo_token_prob"] == pytest.approx(ref_metrics["srft/demo_token_prob"])


def test_adapter_without_global_info_uses_mean_aggregation_for_rl():
    batch = make_batch(seed=23, rows=ADAPTER_ROWS)
    data, model_output, _, _ = build_micro_batch(batch)
    tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=None, global_batch_size=None)
    config = SimpleNamespace(loss_agg_mode="token-mean", loss_scale_factor=None)
    loss, metrics = srft_loss_fn(config, model_output, data, srft_cfg=SRFTLossConfig())
    nloss, _ = naive_srft(batch, batch["log_prob"], SRFTLossConfig(), "token-mean", None)
    assert loss.item() == pytest.approx(nloss.item(), abs=1e-10)
    assert metrics["actor/pg_loss"].aggregation == AggregationType.MEAN
    assert metrics["srft/sft_loss"].aggregation == AggregationType.SUM  # SFT is always globally normalised


def test_adapter_with_real_actor_config():
    from verl.workers.config import FSDPActorConfig

    batch = make_batch(seed=26, rows=ADAPTER_ROWS)
    data, model_output, lp_leaf, _ = build_micro_batch(batch, demo_num_tokens=30, rl_num_tokens=60, rl_num_seqs=12)
    tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=60, global_batch_size=12)
    config = FSDPActorConfig(
        strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=2, loss_agg_mode="seq-mean-token-sum-norm",
        loss_scale_factor=5,
    )
    srft_cfg = SRFTLossConfig(entropy_scope="token", weight_clamp=0.5)
    loss, _ = srft_loss_fn(config, model_output, data, srft_cfg=srft_cfg)
    g = dict(dp_size=1, batch_num_tokens=60, global_batch_size=12, demo_num_tokens=30, loss_scale_factor=5)
    nloss, _, ngrad = run_naive(batch, srft_cfg, "seq-mean-token-sum-norm", g)
    (grad,) = torch.autograd.grad(loss, lp_leaf)
    assert loss.item() == pytest.approx(nloss.item(), abs=1e-10)
    torch.testing.assert_close(grad, ngrad, atol=1e-10, rtol=1e-10)


def test_adapter_reads_every_actor_knob_from_the_actor_config():
    """Clip ratios and the entropy coefficient come from the actor config verl binds to the loss, like
    loss_agg_mode: an SRFTLossConfig holding other values does not change the loss."""
    from verl.workers.config import FSDPActorConfig

    from recipe_srft.losses import actor_loss_knobs

    batch = make_batch(seed=27, rows=ADAPTER_ROWS)
    data, model_output, _, _ = build_micro_batch(batch, demo_num_tokens=30, rl_num_tokens=60, rl_num_seqs=12)
    tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=60, global_batch_size=12)
    config = FSDPActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=2, loss_agg_mode="token-mean",
                             clip_ratio_low=0.05, clip_ratio_high=0.08, clip_ratio_c=2.0, entropy_coeff=0.02)
    assert actor_loss_knobs(config) == dict(clip_ratio_low=0.05, clip_ratio_high=0.08, clip_ratio_c=2.0,
                                            entropy_coeff=0.02)
    stale = SRFTLossConfig(clip_ratio_low=0.3, clip_ratio_high=0.3, clip_ratio_c=5.0, entropy_coeff=0.0)
    loss, _ = srft_loss_fn(config, model_output, data, srft_cfg=stale)
    actor_side = SRFTLossConfig(clip_ratio_low=0.05, clip_ratio_high=0.08, clip_ratio_c=2.0, entropy_coeff=0.02)
    g = dict(dp_size=1, batch_num_tokens=60, global_batch_size=12, demo_num_tokens=30)
    nloss, _ = naive_srft(batch, batch["log_prob"], actor_side, "token-mean", g)
    assert loss.item() == pytest.approx(nloss.item(), abs=1e-10)
    stale_loss, _ = naive_srft(batch, batch["log_prob"], stale, "token-mean", g)
    assert abs(stale_loss.item() - nloss.item()) > 1e-6  # the knobs matter for this batch
    # verl's fallback: clip_ratio for both sides when clip_ratio_low/high are null
    assert actor_loss_knobs({"clip_ratio": 0.1, "clip_ratio_low": None, "clip_ratio_high": None}) == dict(
        clip_ratio_low=0.1, clip_ratio_high=0.1)


def test_adapter_requires_entropy_and_srft_fields():
    batch = make_batch(seed=24, rows=ADAPTER_ROWS)
    data, model_output, _, _ = build_micro_batch(batch)
    tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=40, global_batch_size=8)
    config = SimpleNamespace(loss_agg_mode="token-mean", loss_scale_factor=None)
    with pytest.raises(ValueError, match="calculate_entropy=True"):
        srft_loss_fn(config, {"log_probs": model_output["log_probs"]}, data, srft_cfg=SRFTLossConfig())
    del data["srft_demo_num_tokens"]
    with pytest.raises(KeyError, match="srft_demo_num_tokens"):
        srft_loss_fn(config, model_output, data, srft_cfg=SRFTLossConfig())


def test_adapter_rejects_inconsistent_batch_constants():
    batch = make_batch(seed=25, rows=ADAPTER_ROWS)
    data, model_output, _, _ = build_micro_batch(batch, demo_num_tokens=50)
    data["srft_demo_num_tokens"][0] = 51
    tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=40, global_batch_size=8)
    config = SimpleNamespace(loss_agg_mode="token-mean", loss_scale_factor=None)
    with pytest.raises(ValueError, match="srft_demo_num_tokens"):
        srft_loss_fn(config, model_output, data, srft_cfg=SRFTLossConfig())


# ----------------------------------------------------------------------------------------------------------------
# closed forms: the RL denominators and LUFFY's published loss, written out by hand
# ----------------------------------------------------------------------------------------------------------------


def _two_row_batch(lp_demo, lp_roll, old_roll, adv_demo, adv_roll, ent_demo, ent_roll, T=4):
    """Row 0 a demonstration, row 1 a rollout, right-padded to T (padding holds junk that must not matter)."""
    rows = []
    for values, n in ((lp_demo, len(lp_demo)), (lp_roll, len(lp_roll))):
        rows.append(list(values) + [-7.0] * (T - n))
    log_prob = torch.tensor(rows, dtype=F64)
    old = torch.tensor([[0.0] * T, list(old_roll) + [-9.0] * (T - len(old_roll))], dtype=F64)
    mask = torch.tensor([[1.0] * len(lp_demo) + [0.0] * (T - len(lp_demo)),
                         [1.0] * len(lp_roll) + [0.0] * (T - len(lp_roll))], dtype=F64)
    ent = torch.tensor([list(ent_demo) + [5.0] * (T - len(ent_demo)),
                        list(ent_roll) + [5.0] * (T - len(ent_roll))], dtype=F64)
    adv = torch.tensor([[adv_demo] * T, [adv_roll] * T], dtype=F64)
    return dict(log_prob=log_prob, old_log_prob=old, entropy=ent, advantages=adv, response_mask=mask,
                is_demo=torch.tensor([True, False]), rewards=torch.tensor([1.0, 1.0], dtype=F64))


def test_rl_denominators_count_only_tokens_that_carry_an_rl_term():
    """sft_plus_rl / sft_only reading: demonstrations carry no RL term, so their 3 tokens are not in the RL mean."""
    ln = math.log
    b = _two_row_batch(lp_demo=[ln(0.5)] * 3, lp_roll=[ln(0.5), ln(0.25)], old_roll=[ln(0.5), ln(0.25)],
                       adv_demo=0.7, adv_roll=1.0, ent_demo=[1.0] * 3, ent_roll=[1.0] * 2)
    cfg = SRFTLossConfig(use_sft=False, demo_rl=False, pos_weighting="constant", pos_coef=1.0)
    for mode, expected in (("token-mean", -1.0),          # (-1 - 1) / 2 rollout tokens, not / 5
                           ("seq-mean-token-mean", -1.0),  # one RL sequence, token-mean -1
                           ("token-sum", -2.0)):
        loss, metrics, grad = run_module(b, cfg, mode)
        assert metrics["srft/rl_loss"] == pytest.approx(expected, abs=1e-12), mode
        assert metrics["srft/num_rl_tokens"] == 2.0
    # gradient of token-mean: d(-A * ratio)/d log p = -A * ratio = -1 per rollout token, / 2 tokens; demos 0
    _, _, grad = run_module(b, cfg, "token-mean")
    torch.testing.assert_close(grad, torch.tensor([[0, 0, 0, 0], [-0.5, -0.5, 0, 0]], dtype=F64))
    # with global counts the RL denominators are rl_num_tokens / rl_num_seqs, not verl's batch counts
    g = dict(dp_size=1, batch_num_tokens=50, global_batch_size=10, rl_num_tokens=20, rl_num_seqs=4,
             demo_num_tokens=30)
    _, metrics, _ = run_module(b, cfg, "token-mean", g)
    assert metrics["srft/rl_loss"] == pytest.approx(-2.0 / 20, abs=1e-12)
    _, metrics, _ = run_module(b, cfg, "seq-mean-token-mean", g)
    assert metrics["srft/rl_loss"] == pytest.approx(-1.0 / 4, abs=1e-12)
    # the entropy bonus stays a token-mean over every response token (50 here)
    assert metrics["srft/entropy_loss"] == pytest.approx(5.0 / 50, abs=1e-12)
    with pytest.raises(ValueError, match="rl_num_tokens"):
        run_module(b, cfg, "token-mean", dict(dp_size=2, batch_num_tokens=50, global_batch_size=10,
                                              demo_num_tokens=30))


def test_luffy_preset_equals_luffy_published_loss_written_out_by_hand():
    """LUFFY's exp_scripts/train.sh: demo (prefix) tokens -A * p/(p+0.1), rollout tokens -A * ratio (no clip,
    loss_remove_clip=True), sum over tokens / T (loss_remove_token_mean=True, T = padded response length),
    / gradient accumulation, minus 0.001 * token-mean entropy; advantages r - mean(group) (grpo_use_std=False).

    One micro-batch of m_g = 2 rows on one GPU (gradient accumulation 1), T = 4, so LUFFY's loss is
    sum / 4 - 0.001 * mean(H) and verl's equivalent is seq-mean-token-sum-norm with
    loss_scale_factor = T / m_g = 2 (docs/defaults.md)."""
    from recipe_srft.advantage import grpo_advantage_with_demos
    from recipe_srft.srft_config import resolve_srft_config

    cfg = resolve_srft_config({"preset": "luffy"}, {"entropy_coeff": 0.001}).loss
    # group: demo r=1, rollouts r=1, 0, 0 -> mean 0.5, no std: A = +0.5, +0.5, -0.5, -0.5
    adv = grpo_advantage_with_demos(torch.tensor([1.0, 1.0, 0.0, 0.0]), ["u"] * 4,
                                    torch.tensor([True, False, False, False]), norm_by_std=False)
    assert adv.tolist() == [0.5, 0.5, -0.5, -0.5]

    ln = math.log
    # demo probabilities 0.5, 0.25, 0.9; rollout (A = +0.5) ratios 2 and 0.5 (a clip would turn 2 into 1.2)
    b = _two_row_batch(lp_demo=[ln(0.5), ln(0.25), ln(0.9)], lp_roll=[ln(0.4), ln(0.1)],
                       old_roll=[ln(0.2), ln(0.2)], adv_demo=0.5, adv_roll=0.5,
                       ent_demo=[1.0, 2.0, 0.5], ent_roll=[1.5, 0.5])
    demo_terms = [-0.5 * (0.5 / 0.6), -0.5 * (0.25 / 0.35), -0.5 * (0.9 / 1.0)]
    rollout_terms = [-0.5 * 2.0, -0.5 * 0.5]
    expected = (sum(demo_terms) + sum(rollout_terms)) / 4 - 0.001 * (1.0 + 2.0 + 0.5 + 1.5 + 0.5) / 5
    loss, metrics, grad = run_module(b, cfg, "seq-mean-token-sum-norm", dict(dp_size=1, loss_scale_factor=2))
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert metrics["srft/pg_clipfrac"] == 0.0
    # d/d log p: demo -A * p * 0.1 / (p + 0.1)^2, rollout -A * ratio, each / 4 (entropy is not a function of lp)
    expected_grad = torch.tensor(
        [[-0.5 * p * 0.1 / (p + 0.1) ** 2 / 4 for p in (0.5, 0.25, 0.9)] + [0.0],
         [-0.5 * 2.0 / 4, -0.5 * 0.5 / 4, 0.0, 0.0]], dtype=F64)
    torch.testing.assert_close(grad, expected_grad, atol=1e-12, rtol=1e-12)
    # the clipped surrogate (srft's default) differs on this batch: ratio 2 with A > 0 is clipped to 1.2
    clipped, _, _ = run_module(b, SRFTLossConfig(**{**cfg.__dict__, "onpolicy_clip": True}),
                               "seq-mean-token-sum-norm", dict(dp_size=1, loss_scale_factor=2))
    assert clipped.item() == pytest.approx(expected + (-0.5 * 1.2 + 0.5 * 2.0) / 4, abs=1e-12)


def test_adapter_passes_the_rl_denominators_from_the_batch():
    batch = make_batch(seed=27, rows=ADAPTER_ROWS)
    srft_cfg = SRFTLossConfig(demo_rl=False)
    data, model_output, _, _ = build_micro_batch(batch, demo_num_tokens=30, rl_num_tokens=44, rl_num_seqs=9)
    tu.assign_non_tensor(data, dp_size=2, batch_num_tokens=70, global_batch_size=12)
    for mode in MODES:
        loss, _ = srft_loss_fn(SimpleNamespace(loss_agg_mode=mode, loss_scale_factor=None), model_output, data,
                               srft_cfg=srft_cfg)
        g = dict(dp_size=2, batch_num_tokens=70, global_batch_size=12, demo_num_tokens=30, rl_num_tokens=44,
                 rl_num_seqs=9)
        nloss, _ = naive_srft(batch, batch["log_prob"], srft_cfg, mode, g)
        assert loss.item() == pytest.approx(nloss.item(), abs=1e-10), mode


@pytest.mark.parametrize("mode", MODES)
def test_onpolicy_ratio_term_is_verls_vanilla_surrogate_bit_for_bit(mode):
    """The clipped on-policy term is verl's compute_policy_loss_vanilla with w_rl as its per-token weights
    (rollout_is_weights = where(positive, w_rl, 1)), called independently here: equal to the last bit."""
    from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla
    from verl.workers.config import FSDPActorConfig

    batch = make_batch(seed=3)
    cfg = SRFTLossConfig(entropy_scope="token", clip_ratio_low=0.15, clip_ratio_high=0.25, clip_ratio_c=2.5)
    _, metrics, _ = run_module(batch, cfg, mode, with_grad=False)
    mask = batch["response_mask"].bool()
    on = mask & ~batch["is_demo"][:, None]
    adv = torch.where(mask, batch["advantages"], torch.zeros_like(batch["advantages"]))
    lp = torch.where(mask, batch["log_prob"], torch.zeros_like(adv))
    w_rl = torch.where(mask, 0.1 * torch.exp(batch["entropy"]), torch.zeros_like(adv))
    weights = torch.where((adv > 0) & on, w_rl, torch.ones_like(adv))
    actor = FSDPActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, clip_ratio=0.15,
                            clip_ratio_low=0.15, clip_ratio_high=0.25, clip_ratio_c=2.5)
    actor.global_batch_info.update(dp_size=1, batch_num_tokens=int(mask.sum()), global_batch_size=int(
        (mask.sum(-1) > 0).sum()), loss_scale_factor=None)
    expected, verl_metrics = compute_policy_loss_vanilla(
        old_log_prob=torch.where(on, batch["old_log_prob"], lp), log_prob=lp, advantages=adv, response_mask=on,
        loss_agg_mode=mode, config=actor, rollout_is_weights=weights)
    assert metrics["srft/onpolicy_pg_loss"] == expected.item()
    assert metrics["srft/pg_clipfrac"] == verl_metrics["actor/pg_clipfrac"]


@pytest.mark.parametrize("mode, missing", [("token-mean", "batch_num_tokens"),
                                           ("seq-mean-token-mean", "global_batch_size")])
def test_two_ranks_without_global_counts_are_refused_not_guessed(mode, missing):
    """With dp_size > 1 a micro-batch cannot know the mini-batch's counts: verl's agg_loss refuses."""
    batch = make_batch(seed=1)
    with pytest.raises(ValueError, match=missing):
        run_module(batch, SRFTLossConfig(), mode, dict(dp_size=2, demo_num_tokens=30))


# ----------------------------------------------------------------------------------------------------------------
# the presets that reproduce published code: loss and gradient written out by hand from each code's formula
# ----------------------------------------------------------------------------------------------------------------


def _rows_batch(rows, T=4):
    """rows: dicts with is_demo, lp (log-probs), old (behaviour log-probs; demos: ignored), ent, adv, reward.
    Right-padded to T with junk that must not matter."""
    def pad(values, junk):
        return list(values) + [junk] * (T - len(values))

    return dict(
        log_prob=torch.tensor([pad(r["lp"], -7.0) for r in rows], dtype=F64),
        old_log_prob=torch.tensor([pad(r.get("old", [0.0] * len(r["lp"])), -9.0) for r in rows], dtype=F64),
        entropy=torch.tensor([pad(r["ent"], 5.0) for r in rows], dtype=F64),
        advantages=torch.tensor([[r["adv"]] * T for r in rows], dtype=F64),
        response_mask=torch.tensor([pad([1.0] * len(r["lp"]), 0.0) for r in rows], dtype=F64),
        is_demo=torch.tensor([r["is_demo"] for r in rows]),
        rewards=torch.tensor([r["reward"] for r in rows], dtype=F64),
    )


def test_srft_code_preset_equals_the_released_code_written_out_by_hand():
    """fyqqyf/SRFT@8d4e10a as public notes read it (srft_config.PRESET_SOURCES["srft_code"]), on one micro-batch of
    one GPU (gradient accumulation 1, LUFFY's mix_src), T = 4:

    * demo tokens, SFT (mix_core_alg.py:162-163, mix_actor.py, train.sh:63 sft_loss_coef=-0.5 subtracted):
      +0.5 * exp(+H_t) * (-log p_t), token-mean over the demo tokens (LUFFY's compute_sft_pure_loss, not settled);
    * demo tokens, off-policy: -A * p / (p + 0.1) (off_policy_reshape p_div_p_0.1);
    * rollout tokens: -A * ratio, unclipped (LUFFY's loss_remove_clip, not settled), times 0.1 * exp(+H_t) when
      A > 0 (mix_core_alg.py:134), per token;
    * RL: sum over tokens / T (LUFFY's loss_remove_token_mean, not settled); entropy bonus 0.001 * token-mean of H.

    In verl terms the RL sum / T is seq-mean-token-sum-norm with loss_scale_factor = T / rows (3 rows here)."""
    from recipe_srft.srft_config import resolve_srft_config

    cfg = resolve_srft_config({"preset": "srft_code"}, {"entropy_coeff": 0.001}).loss
    ln, e = math.log, math.exp
    T = 4
    demo = dict(is_demo=True, lp=[ln(0.5), ln(0.25), ln(0.9)], ent=[1.0, 2.0, 0.5], adv=0.5, reward=1.0)
    pos = dict(is_demo=False, lp=[ln(0.4), ln(0.1)], old=[ln(0.2), ln(0.2)], ent=[1.5, 0.2], adv=0.5, reward=1.0)
    neg = dict(is_demo=False, lp=[ln(0.3), ln(0.6), ln(0.2), ln(0.5)], old=[ln(0.6), ln(0.3), ln(0.2), ln(0.25)],
               ent=[0.3, 0.7, 1.1, 2.2], adv=-0.5, reward=0.0)
    b = _rows_batch([demo, pos, neg], T)
    # by hand
    sft = sum(0.5 * e(h) * -ln(p) for p, h in zip((0.5, 0.25, 0.9), demo["ent"])) / 3
    off = sum(-0.5 * p / (p + 0.1) for p in (0.5, 0.25, 0.9))
    on_pos = sum(-0.5 * rho * 0.1 * e(h) for rho, h in zip((2.0, 0.5), pos["ent"]))
    on_neg = sum(0.5 * rho for rho in (0.5, 2.0, 1.0, 2.0))  # -A * ratio with A = -0.5; no clip, no weight
    all_h = demo["ent"] + pos["ent"] + neg["ent"]
    expected = (off + on_pos + on_neg) / T + sft - 0.001 * sum(all_h) / len(all_h)
    loss, metrics, grad = run_module(b, cfg, "seq-mean-token-sum-norm", dict(dp_size=1, loss_scale_factor=T / 3))
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert metrics["srft/sft_loss"] == pytest.approx(sft, abs=1e-12)
    # d/d log p: SFT -0.5 e^{H} / 3; off-policy -A * 0.1 p / (p + 0.1)^2 / T; rollouts -A * ratio * w / T
    expected_grad = torch.tensor([
        [-0.5 * e(h) / 3 - 0.5 * 0.1 * p / (p + 0.1) ** 2 / T for p, h in zip((0.5, 0.25, 0.9), demo["ent"])] + [0],
        [-0.5 * rho * 0.1 * e(h) / T for rho, h in zip((2.0, 0.5), pos["ent"])] + [0, 0],
        [0.5 * rho / T for rho in (0.5, 2.0, 1.0, 2.0)]], dtype=F64)
    torch.testing.assert_close(grad, expected_grad, atol=1e-12, rtol=1e-12)
    # the paper's reading (srft) differs on this batch: exp(-H) per sequence in w_sft, clipping, std
    paper, _, _ = run_module(b, resolve_srft_config({"preset": "srft"}, {"entropy_coeff": 0.001}).loss,
                             "seq-mean-token-sum-norm", dict(dp_size=1, loss_scale_factor=T / 3))
    assert abs(paper.item() - expected) > 1e-3


def test_hpt_preset_equals_hpts_published_loss_and_switch_written_out_by_hand():
    """HPT@ae332f5 (srft_config.PRESET_SOURCES["hpt"]) on one micro-batch of one GPU, T = 4. Two prompts:

    * prompt a: 0 of 2 rollouts solved -> SFT mode (mix_trainer.py:397, SWITCH_GATE=0): its rollouts are removed
      and its demonstration trained with compute_sft_pure_loss (token-mean of -log p), sft_loss_coef 1.0;
    * prompt b: 1 of 2 solved -> RL mode: rollouts only, A = r - mean (grpo_use_std=False), -A * ratio unclipped,
      sum over tokens / T (loss_remove_token_mean); its demonstration is never added.
    Entropy bonus 0.001 * token-mean of H over the rows that remain (mix_actor.py:436). In verl terms the RL sum /
    T is seq-mean-token-sum-norm with loss_scale_factor = T / (2 kept RL rows)."""
    from recipe_srft.advantage import grpo_advantage_with_demos, hpt_switch
    from recipe_srft.srft_config import resolve_srft_config

    srft = resolve_srft_config({"preset": "hpt"}, {"entropy_coeff": 0.001})
    ln = math.log
    T = 4
    rows = [
        dict(g="a", is_demo=False, reward=0.0, lp=[ln(0.3), ln(0.4)], old=[ln(0.3), ln(0.2)], ent=[0.9, 0.8]),
        dict(g="a", is_demo=False, reward=0.0, lp=[ln(0.5)], old=[ln(0.25)], ent=[1.7]),
        dict(g="a", is_demo=True, reward=1.0, lp=[ln(0.5), ln(0.25), ln(0.8)], ent=[1.0, 2.0, 0.5]),
        dict(g="b", is_demo=False, reward=1.0, lp=[ln(0.4), ln(0.1)], old=[ln(0.2), ln(0.2)], ent=[1.5, 0.5]),
        dict(g="b", is_demo=False, reward=0.0, lp=[ln(0.6), ln(0.3), ln(0.3)], old=[ln(0.3), ln(0.6), ln(0.3)],
             ent=[0.3, 0.6, 0.9]),
        dict(g="b", is_demo=True, reward=1.0, lp=[ln(0.7)], ent=[2.5]),
    ]
    groups = [r["g"] for r in rows]
    scores = torch.tensor([r["reward"] for r in rows])
    is_demo = torch.tensor([r["is_demo"] for r in rows])
    keep, stats = hpt_switch(scores, groups, is_demo, None, srft.gate_max_solved)
    assert keep.tolist() == [False, False, True, True, True, False]  # the decision, by hand
    assert stats["sft_frac"] == 0.5
    adv = grpo_advantage_with_demos(scores, groups, is_demo, keep, norm_by_std=srft.norm_adv_by_std,
                                    demos_in_stats=srft.demos_in_group_stats, demo_rl=srft.loss.demo_rl,
                                    rollout_rl=srft.loss.rollout_rl)
    assert adv.tolist() == [0.0, 0.0, 0.0, 0.5, -0.5, 0.0]  # b: 1 - 0.5, 0 - 0.5; a's rows and b's demo: none
    for r, a in zip(rows, adv.tolist()):
        r["adv"] = a
    b = _rows_batch(rows, T)
    sft = (-ln(0.5) - ln(0.25) - ln(0.8)) / 3
    rl = (-0.5 * 2.0 - 0.5 * 0.5 + 0.5 * 2.0 + 0.5 * 0.5 + 0.5 * 1.0) / T
    kept_h = [1.0, 2.0, 0.5, 1.5, 0.5, 0.3, 0.6, 0.9]
    expected = sft + rl - 0.001 * sum(kept_h) / len(kept_h)
    g = dict(dp_size=1, loss_scale_factor=T / 2)
    lp = b["log_prob"].clone().requires_grad_()
    loss, metrics = compute_srft_loss(lp, b["old_log_prob"], b["entropy"], b["advantages"], b["response_mask"],
                                      b["is_demo"], b["rewards"], srft.loss, "seq-mean-token-sum-norm", g, keep=keep)
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    (grad,) = torch.autograd.grad(loss, lp)
    expected_grad = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [-1 / 3, -1 / 3, -1 / 3, 0],
                                  [-0.5 * 2.0 / T, -0.5 * 0.5 / T, 0, 0], [0.5 * 2.0 / T, 0.5 * 0.5 / T, 0.5 / T, 0],
                                  [0, 0, 0, 0]], dtype=F64)
    torch.testing.assert_close(grad, expected_grad, atol=1e-12, rtol=1e-12)
    # the same through global counts (what the trainer passes): kept tokens 8, kept RL rows 2 / tokens 5
    g_global = dict(g, batch_num_tokens=15, global_batch_size=6, demo_num_tokens=3, rl_num_tokens=5, rl_num_seqs=2,
                    kept_num_tokens=8)
    loss2, _ = compute_srft_loss(b["log_prob"], b["old_log_prob"], b["entropy"], b["advantages"],
                                 b["response_mask"], b["is_demo"], b["rewards"], srft.loss,
                                 "seq-mean-token-sum-norm", g_global, keep=keep)
    assert loss2.item() == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="kept_num_tokens"):
        compute_srft_loss(b["log_prob"], b["old_log_prob"], b["entropy"], b["advantages"], b["response_mask"],
                          b["is_demo"], b["rewards"], srft.loss, "seq-mean-token-sum-norm",
                          {k: v for k, v in g_global.items() if k != "kept_num_tokens"}, keep=keep)


@pytest.mark.parametrize("step, mu", [(0, 0.0), (100, 0.25), (200, 0.5), (400, 0.26), (600, 0.02), (650, 0.02)])
def test_chord_mu_schedule_written_out_by_hand(step, mu):
    """Trinity-RFT@0414330 chord_policy_loss.py mu_schedule_function with mix_chord.yaml's 200 / 400 / 0.5 / 0.02:
    warm-up 100/200 * 0.5 = 0.25; at 400 the cosine is half-way: 0.02 + 0.48 * (1 + cos(pi/2)) / 2 = 0.26."""
    from recipe_srft.integration.trainer import step_metrics
    from recipe_srft.losses import mu_schedule
    from recipe_srft.srft_config import resolve_srft_config

    cfg = resolve_srft_config({"preset": "chord"}).loss
    assert mu_schedule(step, cfg.mu_warmup_steps, cfg.mu_decay_steps, cfg.mu_peak, cfg.mu_valley) == pytest.approx(mu)
    assert step_metrics(cfg, step) == {"srft/mu": pytest.approx(mu)}  # what the trainer logs every step
    assert step_metrics(SRFTLossConfig(), step) == {}
    # CHORD's other published variants (mix_chord.yaml comments): chord-phi, constant mu = 0.1 (0 warm-up/decay)
    assert mu_schedule(step, 0, 0, 0.1, 0.1) == pytest.approx(0.1)


def test_chord_preset_equals_chords_published_loss_written_out_by_hand():
    """Trinity-RFT@0414330 MIXCHORDPolicyLossFn (srft_config.PRESET_SOURCES["chord"]) on one micro-batch of one GPU:
    loss = (1 - mu) * grpo + mu * sft with

    * grpo: PPOPolicyLossFn on the usual rows, token-mean of verl's clipped surrogate (clip 0.2, dual clip 3) with
      std-normalised GRPO advantages over the rollouts alone (expert rows are outside the groups);
    * sft: SFTPhiLossFn on the expert rows, token-mean of -log p * sg(p (1 - p));
    * the per-type weights n_type * per_micro_batch_weight_type: with dynamic batches experience_per_gpu /
      (B * type_count_per_gpu), times verl's B / experience_per_gpu, = n_type / type_count = 1 for one micro-batch
      holding the whole mini-batch; no entropy bonus (entropy_coef 0)."""
    from recipe_srft.advantage import grpo_advantage_with_demos
    from recipe_srft.losses import mu_schedule
    from recipe_srft.srft_config import resolve_srft_config

    srft = resolve_srft_config({"preset": "chord"}, {"entropy_coeff": 0.0})
    ln = math.log
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0])
    is_demo = torch.tensor([False, False, False, True])
    adv = grpo_advantage_with_demos(scores, ["u"] * 4, is_demo, norm_by_std=srft.norm_adv_by_std,
                                    demos_in_stats=srft.demos_in_group_stats, demo_rl=srft.loss.demo_rl)
    # rollouts 1, 0, 0: mean 1/3, unbiased std sqrt(1/3); the expert row is outside and gets A = 0 (no RL term)
    s = math.sqrt(1 / 3)
    a_pos, a_neg = (2 / 3) / (s + 1e-6), (-1 / 3) / (s + 1e-6)
    torch.testing.assert_close(adv, torch.tensor([a_pos, a_neg, a_neg, 0.0], dtype=torch.float32))
    rows = [
        dict(is_demo=False, reward=1.0, adv=a_pos, lp=[ln(0.4), ln(0.2)], old=[ln(0.2), ln(0.2)], ent=[1.0, 1.0]),
        dict(is_demo=False, reward=0.0, adv=a_neg, lp=[ln(0.3), ln(0.9)], old=[ln(0.3), ln(0.1)], ent=[1.0, 1.0]),
        dict(is_demo=False, reward=0.0, adv=a_neg, lp=[ln(0.5)], old=[ln(0.6)], ent=[1.0]),
        dict(is_demo=True, reward=1.0, adv=0.0, lp=[ln(0.5), ln(0.9), ln(0.1)], ent=[3.0, 3.0, 3.0]),
    ]
    b = _rows_batch(rows, T=4)
    # PPO surrogate per rollout token: ratio 2 with A > 0 is clipped at 1.2 (no gradient); ratio 1; ratio 1;
    # ratio 9 with A < 0 is dual-clipped at 3 (no gradient); ratio 5/6 with A < 0 stays -A * ratio
    grpo_tokens = [-a_pos * 1.2, -a_pos * 1.0, -a_neg * 1.0, -a_neg * 3.0, -a_neg * (5 / 6)]
    grpo = sum(grpo_tokens) / 5
    sft = sum(-ln(p) * p * (1 - p) for p in (0.5, 0.9, 0.1)) / 3
    for step in (100, 400, 700):
        mu = mu_schedule(step, 200, 400, 0.5, 0.02)
        expected = (1 - mu) * grpo + mu * sft
        g = dict(dp_size=1, global_step=step)
        loss, metrics, grad = run_module(b, srft.loss, "token-mean", g)
        assert loss.item() == pytest.approx(expected, abs=1e-12), step
        assert metrics["srft/mu"] == pytest.approx(mu)
        # d/d log p: expert -p (1 - p) / 3 (phi detached) times mu; rollouts -A * ratio / 5 where unclipped
        expected_grad = torch.tensor([
            [0.0, -a_pos * 1.0 / 5 * (1 - mu), 0, 0],
            [-a_neg * 1.0 / 5 * (1 - mu), 0.0, 0, 0],
            [-a_neg * (5 / 6) / 5 * (1 - mu), 0, 0, 0],
            [-p * (1 - p) / 3 * mu for p in (0.5, 0.9, 0.1)] + [0]], dtype=F64)
        torch.testing.assert_close(grad, expected_grad, atol=1e-9, rtol=1e-9)
    with pytest.raises(ValueError, match="global step"):
        run_module(b, srft.loss, "token-mean", dict(dp_size=1))


def test_chord_per_type_normalisation_over_micro_batches_is_a_stated_difference():
    """CHORD weights each micro-batch's per-type token-mean by its share of that type's rows (n_type / type count
    per GPU, see the test above). Here each type is a token-mean over the whole optimizer mini-batch (global
    counts). Equal when the micro-batches hold equal token counts per row; this batch shows the difference."""
    from recipe_srft.srft_config import resolve_srft_config

    srft = resolve_srft_config({"preset": "chord"}, {"entropy_coeff": 0.0})
    ln = math.log
    # every ratio is 1 (no clipping), A = +1 or -1 so -A * ratio = -/+1 per token; expert log-probs differ
    rows = [dict(is_demo=False, reward=1.0, adv=1.0, lp=[ln(0.5)] * 4, old=[ln(0.5)] * 4, ent=[1.0] * 4),
            dict(is_demo=True, reward=1.0, adv=0.0, lp=[ln(0.5)] * 4, ent=[1.0] * 4),
            dict(is_demo=False, reward=0.0, adv=-1.0, lp=[ln(0.5)], old=[ln(0.5)], ent=[1.0]),
            dict(is_demo=True, reward=1.0, adv=0.0, lp=[ln(0.9)], ent=[1.0])]
    b = _rows_batch(rows, T=4)
    step = 200  # mu = 0.5
    # ours: token-means over the mini-batch: grpo (4 * -1 + 1 * +1) / 5, sft over 5 expert tokens
    phi = lambda p: -ln(p) * p * (1 - p)  # noqa: E731
    ours = 0.5 * (-4 + 1) / 5 + 0.5 * (4 * phi(0.5) + phi(0.9)) / 5
    # CHORD's: micro-batch 1 = rows 0-1, micro-batch 2 = rows 2-3; each type's token-mean weighted by 1/2 (1 of 2 rows)
    chord = 0.5 * (0.5 * -1 + 0.5 * 1) + 0.5 * (0.5 * phi(0.5) + 0.5 * phi(0.9))
    g = dict(dp_size=1, global_step=step, batch_num_tokens=10, global_batch_size=4, demo_num_tokens=5,
             rl_num_tokens=5, rl_num_seqs=2)
    total = 0.0
    for idx in ([0, 1], [2, 3]):  # two micro-batches: their losses add up to the mini-batch's
        loss, _, _ = run_module(subset(b, idx), srft.loss, "token-mean", g, with_grad=False)
        total += loss.item()
    assert total == pytest.approx(ours, abs=1e-12)
    assert abs(total - chord) > 0.05  # the stated difference (docs/method.md)


def test_adapter_reads_the_gate_the_step_and_the_kept_tokens_from_the_batch():
    """srft_loss_fn passes srft_keep, srft_kept_num_tokens and srft_global_step (written by the trainer) to the loss."""
    batch = make_batch(seed=28, rows=ADAPTER_ROWS)
    keep = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1])
    cfg = SRFTLossConfig(mix="chord", sft_weighting="phi", sft_coef=1.0, demo_rl=False, entropy_coeff=0.01)
    extra = {"srft_keep": keep, "srft_kept_num_tokens": torch.full((8,), 33.0),
             "srft_global_step": torch.full((8,), 250.0)}
    data, model_output, lp_leaf, _ = build_micro_batch(batch, demo_num_tokens=30, rl_num_tokens=40, rl_num_seqs=9,
                                                       extra=extra)
    tu.assign_non_tensor(data, dp_size=2, batch_num_tokens=70, global_batch_size=12)
    loss, metrics = srft_loss_fn(SimpleNamespace(loss_agg_mode="token-mean", loss_scale_factor=None), model_output,
                                 data, srft_cfg=cfg)
    g = dict(dp_size=2, batch_num_tokens=70, global_batch_size=12, demo_num_tokens=30, rl_num_tokens=40,
             rl_num_seqs=9, kept_num_tokens=33, global_step=250)
    nloss, _ = naive_srft(batch, batch["log_prob"], cfg, "token-mean", g, keep=keep.bool())
    assert loss.item() == pytest.approx(nloss.item(), abs=1e-10)
    assert metrics["srft/mu"] == pytest.approx(0.02 + 0.48 * (1 + math.cos(math.pi * 50 / 400)) / 2)
