"""SRFT loss (Fu et al., "SRFT: A Single-Stage Method with Supervised and Reinforcement Fine-Tuning
for Reasoning", arXiv 2506.19767).

One loss over a mini-batch that mixes demonstrations (``is_demo``) and the policy's own rollouts:

* (a) Eq. 8, SFT on demonstration tokens, entropy weighted:
  ``L_sft = mean_{demo tokens} w_sft * (-log pi_theta(y_t))``, ``w_sft = sft_coef * sg(exp(sign * H))``.
* (b) Eq. 9-10, off-policy RL on demonstration tokens (behaviour policy pi_beta := 1, no clipping):
  ``loss_t = -A * f(pi_theta(y_t))`` with ``f(p) = p / (p + gamma)`` (LUFFY shaping) or ``f(p) = p``.
* (c) Eq. 11-12, on-policy RL on rollout tokens, positives weighted by ``w_rl = pos_coef * sg(exp(+H))``:
  either verl's clipped (dual-clip) surrogate with ``w_rl`` on positive samples ("ratio" form), or the paper's
  literal REINFORCE form ``loss_t = -c * log pi_theta(y_t)``, ``c = w_rl`` (positive) / ``-1`` (negative).
* Eq. 13: ``L = L_rl + L_sft - entropy_coeff * mean(H)``, where ``L_rl`` aggregates (b) and (c) with verl's
  ``loss_agg_mode`` over the tokens that carry an RL term (demonstration tokens only when ``demo_rl``, rollout
  tokens only when ``rollout_rl``), and the entropy bonus is a token-mean over all response tokens.

The file provides the configuration (:class:`SRFTLossConfig`), a pure tensor function
(:func:`compute_srft_loss`) and a thin adapter with verl's loss-callable signature (:func:`srft_loss_fn`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Optional

import torch

from verl.trainer.ppo.core_algos import agg_loss, compute_policy_loss_vanilla
from verl.utils import tensordict_utils as tu
from verl.utils.metric import AggregationType, Metric
from verl.workers.utils.padding import no_padding_2_padding

from . import contract as C

__all__ = [
    "SUPPORTED_LOSS_AGG_MODES",
    "SRFTLossConfig",
    "compute_srft_loss",
    "srft_loss_fn",
]

SUPPORTED_LOSS_AGG_MODES = (
    "token-mean",
    "token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-sum-norm",
)

_CHOICES: dict[str, tuple] = {
    "sft_entropy_sign": (-1, 1),
    "sft_weighting": ("entropy", "constant", "phi"),
    "pos_weighting": ("entropy", "constant"),
    "positive_by": ("advantage", "reward"),
    "entropy_scope": ("sequence", "token", "batch"),
    "onpolicy_form": ("ratio", "reinforce"),
    "offpolicy_shaping": ("luffy", "none"),
    "mix": ("sum", "chord"),
}

_GLOBAL_INFO_KEYS = (
    "dp_size",
    "batch_num_tokens",
    "demo_num_tokens",
    "rl_num_tokens",
    "rl_num_seqs",
    "global_batch_size",
    "batch_entropy",
    "loss_scale_factor",
    "kept_num_tokens",
    "global_step",
)

#: The loss knobs that belong to verl's actor config (``actor_rollout_ref.actor.<key>``), not to ``srft:``. The loss
#: reads them, with ``loss_agg_mode`` and ``loss_scale_factor``, from the actor config verl binds to it
#: (:func:`srft_loss_fn`); :func:`actor_loss_knobs` is the one reader, also used by the start-up checks and the
#: dry run to show them.
ACTOR_LOSS_KNOBS = ("clip_ratio_low", "clip_ratio_high", "clip_ratio_c", "entropy_coeff")


def actor_loss_knobs(actor) -> dict[str, float]:
    """``ACTOR_LOSS_KNOBS`` of verl's actor config (its dataclass, a DictConfig or a mapping), as verl's own
    ``compute_policy_loss_vanilla`` reads them: ``clip_ratio_low``/``clip_ratio_high`` fall back to ``clip_ratio``.
    Keys the config does not have are left out (the :class:`SRFTLossConfig` defaults apply)."""
    def get(key):
        if hasattr(actor, "get"):
            return actor.get(key)
        return getattr(actor, key, None)

    out = {}
    for key in ACTOR_LOSS_KNOBS:
        value = get(key)
        if value is None and key in ("clip_ratio_low", "clip_ratio_high"):
            value = get("clip_ratio")
        if value is not None:
            out[key] = float(value)
    return out


# Clamp of the log importance ratio, as in verl's compute_policy_loss_vanilla.
_LOG_RATIO_CLAMP = 20.0


@dataclass
class SRFTLossConfig:
    r"""
    Configuration of the SRFT loss (arXiv 2506.19767, Eq. 8-13).

    Defaults follow the paper; each alternative reading of the sources is one switch
    (see ``docs/method.md`` and ``docs/defaults.md``).

    Parameters:
        > Parameters of the SFT term on demonstrations (Eq. 8)

        sft_coef (`float`, *optional*, defaults to `0.5`):
            Coefficient of the SFT weight, `w_sft = sft_coef * sg(exp(sft_entropy_sign * H))` (Eq. 8).
        sft_entropy_sign (`int`, *optional*, defaults to `-1`):
            Sign of the entropy in `w_sft`. `-1` is the paper (high entropy damps imitation); `+1` is the
            third-party reading of the authors' code. Allowed: `-1`, `1`.
        sft_weighting (`str`, *optional*, defaults to `"entropy"`):
            `"entropy"`: `w_sft = sft_coef * exp(sft_entropy_sign * H)`. `"constant"`: `w_sft = sft_coef`
            (ablation "w/o w_sft" of Table 3 uses `sft_coef=1.0`). `"phi"`: `w_sft = sft_coef * sg(p * (1 - p))`
            with `p = pi_theta(y_t)`, CHORD's token weight (`phi_function` in
            `modelscope/Trinity-RFT@0414330:trinity/algorithm/policy_loss_fn/chord_policy_loss.py`).
        use_sft (`bool`, *optional*, defaults to `True`):
            Whether the SFT term (Eq. 8) is part of the loss (`False` gives LUFFY-style training).

        > Parameters of the off-policy RL term on demonstrations (Eq. 9-10)

        offpolicy_shaping (`str`, *optional*, defaults to `"luffy"`):
            Shaping `f` in `loss_t = -A * f(pi_theta(y_t))` (Eq. 10). `"luffy"`: `f(p) = p / (p + gamma)`
            (LUFFY and the authors' code); `"none"`: `f(p) = p` (paper-literal).
        offpolicy_gamma (`float`, *optional*, defaults to `0.1`):
            The `gamma` of the `"luffy"` shaping; must be `> 0`.

        > Which rows carry an RL term (Eq. 9-12)

        demo_rl (`bool`, *optional*, defaults to `True`):
            Demonstrations receive the off-policy RL term (Eq. 9-10). `False` (`sft_plus_rl`, `sft_only`): they
            get advantage 0 and their tokens leave the RL denominators.
        rollout_rl (`bool`, *optional*, defaults to `True`):
            Rollouts receive the on-policy RL term (Eq. 11-12). `False` (`sft_only`): advantage 0, no RL term.

        > Parameters of the on-policy RL term on rollouts (Eq. 11-12)

        pos_coef (`float`, *optional*, defaults to `0.1`):
            Coefficient of the positive-sample weight, `w_rl = pos_coef * sg(exp(+H))` (Eq. 11).
        pos_weighting (`str`, *optional*, defaults to `"entropy"`):
            `"entropy"`: `w_rl = pos_coef * exp(+H)`. `"constant"`: `w_rl = pos_coef` (ablation "w/o w_rl"
            uses `pos_coef=1.0`).
        positive_by (`str`, *optional*, defaults to `"advantage"`):
            What makes a rollout "positive" (weighted by `w_rl`). `"advantage"`: `A > 0` (authors' code);
            `"reward"`: sequence reward `r > 0.5` (paper Eq. 12, rewards are in {0, 1}).
        onpolicy_form (`str`, *optional*, defaults to `"ratio"`):
            `"ratio"`: verl's clipped surrogate with dual clip, multiplied by `w_rl` on positive tokens
            (authors' code, Eq. 11). `"reinforce"`: `loss_t = -c * log pi_theta(y_t)` with `c = w_rl` for
            positive samples and `c = -1` for negative ones (paper Eq. 12). Negative means `A < 0`
            (`positive_by="advantage"`) or `r <= 0.5` (`positive_by="reward"`); with `positive_by="advantage"`
            a rollout with `A == 0` (e.g. an all-correct group) is neither and gets `c = 0`.
        onpolicy_clip (`bool`, *optional*, defaults to `True`):
            `"ratio"` form only. `True`: verl's clipped surrogate with dual clip. `False`: the plain ratio,
            `loss_t = -A * ratio` (LUFFY's and HPT's published scripts, `loss_remove_clip=True`).
        clip_ratio_low (`float`, *optional*, defaults to `0.2`):
            Lower PPO clip `eps_low` of the `"ratio"` form: the ratio is clipped to `[1 - eps_low, 1 + eps_high]`.
        clip_ratio_high (`float`, *optional*, defaults to `0.2`):
            Upper PPO clip `eps_high` of the `"ratio"` form.
        clip_ratio_c (`float`, *optional*, defaults to `3.0`):
            Dual-clip constant for negative advantages (arXiv 1912.09729); must be `> 1`.

        > How the terms are combined (Eq. 13, or CHORD's scheduled mix)

        mix (`str`, *optional*, defaults to `"sum"`):
            `"sum"`: `L = L_rl + L_sft - entropy_coeff * Hbar` (SRFT, Eq. 13). `"chord"`:
            `L = (1 - mu) * L_rl + mu * L_sft - entropy_coeff * Hbar` with `mu` = :func:`mu_schedule` of verl's
            global step (`global_info["global_step"]`), CHORD's `MIXCHORDPolicyLossFn`.
        mu_warmup_steps (`int`, *optional*, defaults to `200`):
            `mix="chord"`: steps of the linear warm-up of `mu` from 0 to `mu_peak` (CHORD's example config).
        mu_decay_steps (`int`, *optional*, defaults to `400`):
            `mix="chord"`: steps of the cosine decay from `mu_peak` to `mu_valley` after the warm-up.
        mu_peak (`float`, *optional*, defaults to `0.5`):
            `mix="chord"`: `mu` at the end of the warm-up; in [0, 1].
        mu_valley (`float`, *optional*, defaults to `0.02`):
            `mix="chord"`: `mu` after the decay; in [0, 1].

        > Parameters shared by the entropy weights (Eq. 8 and 11) and the total (Eq. 13)

        entropy_scope (`str`, *optional*, defaults to `"sequence"`):
            Which entropy `H` enters the weights (always detached). `"sequence"`: masked mean over the
            trajectory's response tokens; `"token"`: per token; `"batch"`: mean over the optimizer mini-batch
            (`global_info["batch_entropy"]` when given, else the mean over the micro-batch).
        weight_clamp (`float` or `None`, *optional*, defaults to `None`):
            Upper bound applied to both `w_sft` and `w_rl` (per-token `exp(+H)` can reach ~1e5). Must be `> 0`.
        entropy_coeff (`float`, *optional*, defaults to `0.0`):
            Entropy bonus of Eq. 13 (`L -= entropy_coeff * agg(H)`); the published scripts use `0.001`.
    """

    # Each parameter is documented once, in the class docstring above.
    # Eq. 8: w_sft = sft_coef * sg(exp(sft_entropy_sign * H))
    sft_coef: float = 0.5
    sft_entropy_sign: int = -1
    sft_weighting: str = "entropy"
    use_sft: bool = True
    # Eq. 9-10: f(p) of the off-policy term
    offpolicy_shaping: str = "luffy"
    offpolicy_gamma: float = 0.1
    # Eq. 9-12: which rows carry an RL term (their tokens alone make the RL denominators)
    demo_rl: bool = True
    rollout_rl: bool = True
    # Eq. 11: w_rl = pos_coef * sg(exp(+H)) on positive rollouts; which rollouts are positive
    pos_coef: float = 0.1
    pos_weighting: str = "entropy"
    positive_by: str = "advantage"
    # Eq. 11 (ratio, verl's clipped surrogate) vs Eq. 12 (REINFORCE, paper)
    onpolicy_form: str = "ratio"
    onpolicy_clip: bool = True
    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.2
    clip_ratio_c: float = 3.0
    # Eq. 8 / 11: the entropy in the weights; Eq. 13: entropy bonus
    entropy_scope: str = "sequence"
    weight_clamp: Optional[float] = None
    entropy_coeff: float = 0.0
    # Eq. 13 (sum) or CHORD's (1 - mu) * L_rl + mu * L_sft with a scheduled mu
    mix: str = "sum"
    mu_warmup_steps: int = 200
    mu_decay_steps: int = 400
    mu_peak: float = 0.5
    mu_valley: float = 0.02

    def __post_init__(self):
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            # bool is an int subclass: do not accept True/False as +-1.
            if isinstance(value, bool) or value not in allowed:
                raise ValueError(f"SRFTLossConfig.{name} must be one of {list(allowed)}, got {value!r}.")
        for name in ("use_sft", "onpolicy_clip", "demo_rl", "rollout_rl"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"SRFTLossConfig.{name} must be one of [True, False], got {getattr(self, name)!r}.")
        _check_real(self, "sft_coef", lambda v: v >= 0, ">= 0")
        _check_real(self, "pos_coef", lambda v: v >= 0, ">= 0")
        _check_real(self, "offpolicy_gamma", lambda v: v > 0, "> 0")
        _check_real(self, "clip_ratio_low", lambda v: 0 <= v <= 1, "in [0, 1]")
        _check_real(self, "clip_ratio_high", lambda v: v >= 0, ">= 0")
        _check_real(self, "clip_ratio_c", lambda v: v > 1, "> 1")
        _check_real(self, "entropy_coeff", lambda v: True, "a finite number")
        _check_real(self, "mu_peak", lambda v: 0 <= v <= 1, "in [0, 1]")
        _check_real(self, "mu_valley", lambda v: 0 <= v <= 1, "in [0, 1]")
        for name in ("mu_warmup_steps", "mu_decay_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"SRFTLossConfig.{name} must be an integer >= 0, got {value!r}.")
        if self.weight_clamp is not None:
            _check_real(self, "weight_clamp", lambda v: v > 0, "None or > 0")


def _check_real(cfg: SRFTLossConfig, name: str, ok, what: str) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise ValueError(f"SRFTLossConfig.{name} must be {what}, got {value!r}.")


def _as_number(value):
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


def _parse_global_info(global_info: Optional[dict]) -> dict[str, Any]:
    info: dict[str, Any] = {key: None for key in _GLOBAL_INFO_KEYS}
    info["dp_size"] = 1
    if global_info is None:
        return info
    unknown = set(global_info) - set(_GLOBAL_INFO_KEYS)
    if unknown:
        raise ValueError(f"Unknown global_info keys {sorted(unknown)}; allowed: {list(_GLOBAL_INFO_KEYS)}.")
    for key, value in global_info.items():
        if value is not None:
            info[key] = _as_number(value)
    if info["dp_size"] is None:
        info["dp_size"] = 1
    return info


def _per_sample(x: torch.Tensor, batch_size: int, name: str) -> torch.Tensor:
    """Accept a [B] or [B, 1] per-sample tensor and return it as [B]."""
    if x.numel() != batch_size:
        raise ValueError(f"{name} must hold one value per sample ({batch_size}), got shape {tuple(x.shape)}.")
    return x.reshape(batch_size)


def _stats(prefix: str, values: torch.Tensor, mask: torch.Tensor, metrics: dict) -> None:
    if mask.any():
        selected = values[mask].detach().float()
        metrics[f"{prefix}_mean"] = selected.mean().item()
        metrics[f"{prefix}_min"] = selected.min().item()
        metrics[f"{prefix}_max"] = selected.max().item()


def _masked_mean_item(values: torch.Tensor, mask: torch.Tensor) -> float:
    return values[mask].detach().float().mean().item()


# ---------------------------------------------------------------- the weights (pure)
#
# A method is a choice of weights over the same three per-token terms (SFT, off-policy RL, on-policy RL) plus the
# entropy bonus (docs/method.md, "Methods as switches"):
#   * a token weight of the SFT term (``sft_weighting``: entropy | constant | phi),
#   * a token weight of positive rollouts (``pos_weighting``: entropy | constant),
#   * a per-step mix of the two sums (``mix``: sum | chord, :func:`term_coefficients`),
#   * a per-group gate that keeps or drops rows (the trainer's ``srft.group_gate``, read here as ``keep``).


def entropy_for_weights(ent: torch.Tensor, mask: torch.Tensor, scope: str, batch_entropy=None) -> torch.Tensor:
    """The (detached) entropy H in the weights of Eq. 8 and 11: per token, the trajectory's masked mean
    (``"sequence"``) or the optimizer mini-batch's mean (``"batch"``: ``batch_entropy``, else this batch's)."""
    zeros = torch.zeros_like(ent)
    if scope == "token":
        h = ent
    elif scope == "sequence":
        h = (ent.sum(dim=-1, keepdim=True) / mask.sum(dim=-1, keepdim=True).clamp(min=1)).expand_as(ent)
    elif batch_entropy is not None:
        h = torch.full_like(ent, float(batch_entropy))
    else:
        h = (ent.sum() / mask.sum().clamp(min=1)).expand_as(ent)
    return torch.where(mask, h, zeros)


def entropy_weight(h: torch.Tensor, coef: float, sign: int, weighting: str, clamp: Optional[float]) -> torch.Tensor:
    """``coef * exp(sign * H)`` (``"entropy"``) or ``coef`` (``"constant"``), clamped above by ``clamp``:
    w_sft of Eq. 8 (sign -1 in the paper) and w_rl of Eq. 11 (sign +1)."""
    w = torch.full_like(h, coef) if weighting == "constant" else coef * torch.exp(sign * h)
    return w if clamp is None else w.clamp(max=clamp)


def phi_weight(prob: torch.Tensor, coef: float, clamp: Optional[float]) -> torch.Tensor:
    """CHORD's token weight ``coef * sg(p * (1 - p))`` (``phi_function`` of Trinity-RFT@0414330
    ``chord_policy_loss.py``): largest at p = 0.5, small for tokens the policy already knows or finds unlikely."""
    p = prob.detach()
    w = coef * p * (1 - p)
    return w if clamp is None else w.clamp(max=clamp)


def sft_weight(cfg: SRFTLossConfig, h: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """w_sft per token, by ``cfg.sft_weighting`` (Eq. 8 for entropy/constant, CHORD's phi)."""
    if cfg.sft_weighting == "phi":
        return phi_weight(prob, cfg.sft_coef, cfg.weight_clamp)
    return entropy_weight(h, cfg.sft_coef, cfg.sft_entropy_sign, cfg.sft_weighting, cfg.weight_clamp)


def pos_weight(cfg: SRFTLossConfig, h: torch.Tensor) -> torch.Tensor:
    """w_rl per token on positive rollouts, by ``cfg.pos_weighting`` (Eq. 11)."""
    return entropy_weight(h, cfg.pos_coef, 1, cfg.pos_weighting, cfg.weight_clamp)


def mu_schedule(step: float, warmup_steps: int, decay_steps: int, peak: float, valley: float) -> float:
    """CHORD's mu at ``step`` (verl's ``trainer.global_steps``, 1 at the first update): linear from 0 to ``peak``
    over ``warmup_steps``, then a half cosine from ``peak`` to ``valley`` over ``decay_steps``, then ``valley``.

    Written from ``mu_schedule_function`` in modelscope/Trinity-RFT@0414330
    ``trinity/algorithm/policy_loss_fn/chord_policy_loss.py`` (step < warmup: step / warmup * peak; step >=
    warmup + decay: valley; otherwise valley + (peak - valley) * (1 + cos(pi * (step - warmup) / decay)) / 2).
    A pure function of the step, so a resumed run (verl restores ``global_steps`` from its checkpoint) continues
    the same curve."""
    if step < warmup_steps:
        return float(step) / warmup_steps * peak
    if step >= warmup_steps + decay_steps:
        return float(valley)
    frac = (step - warmup_steps) / decay_steps
    return valley + (peak - valley) * 0.5 * (1.0 + math.cos(math.pi * frac))


def term_coefficients(cfg: SRFTLossConfig, global_step=None) -> dict[str, float]:
    """The per-step coefficients of the summed RL terms and of the SFT term: ``{"rl": 1, "sft": 1}`` for
    ``mix="sum"`` (Eq. 13); ``{"rl": 1 - mu, "sft": mu}`` for ``mix="chord"``. The entropy bonus is outside
    (``-entropy_coeff``)."""
    if cfg.mix == "sum":
        return {"rl": 1.0, "sft": 1.0}
    if global_step is None:
        raise ValueError("SRFTLossConfig.mix='chord' needs the global step (global_info['global_step']).")
    mu = mu_schedule(global_step, cfg.mu_warmup_steps, cfg.mu_decay_steps, cfg.mu_peak, cfg.mu_valley)
    return {"rl": 1.0 - mu, "sft": mu, "mu": mu}


# ---------------------------------------------------------------- the terms (pure, per token)


def sft_token_loss(log_prob: torch.Tensor, w_sft: torch.Tensor) -> torch.Tensor:
    """Eq. 8 per token: ``w_sft * (-log pi_theta(y_t))``."""
    return w_sft * (-log_prob)


def offpolicy_token_loss(prob: torch.Tensor, adv: torch.Tensor, shaping: str, gamma: float) -> torch.Tensor:
    """Eq. 9-10 per token, behaviour policy pi_beta := 1 and no clipping: ``-A * f(p)`` with ``f(p) = p/(p+gamma)``
    (``"luffy"``) or ``p`` (``"none"``)."""
    return -adv * (prob / (prob + gamma) if shaping == "luffy" else prob)


def rows_with_rl_term(is_demo: torch.Tensor, cfg: SRFTLossConfig, keep: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``[B]`` bool: the rows whose tokens carry an RL term (demonstrations if ``demo_rl``, rollouts if
    ``rollout_rl``; only rows the group gate keeps); their tokens and rows alone are the denominators of L_rl."""
    rows = (is_demo & cfg.demo_rl) | (~is_demo & cfg.rollout_rl)
    return rows if keep is None else rows & keep.bool()


def positives(adv, rewards, on_mask, positive_by: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) rollout tokens: ``A > 0`` / ``A < 0`` (``"advantage"``) or ``r > 0.5`` / not
    (``"reward"``, Eq. 12); a rollout with ``A == 0`` is neither under ``"advantage"``."""
    if positive_by == "advantage":
        positive, negative = adv > 0, adv < 0
    else:
        positive = (rewards > 0.5)[:, None].expand_as(on_mask)
        negative = ~positive
    return positive & on_mask, negative & on_mask


def reinforce_token_loss(log_prob, positive, negative, w_rl) -> torch.Tensor:
    """Eq. 12 per token: ``-c * log pi_theta(y_t)`` with ``c = w_rl`` (positive), ``-1`` (negative), 0 otherwise."""
    coef = torch.where(positive, w_rl, torch.where(negative, -torch.ones_like(log_prob), torch.zeros_like(log_prob)))
    return -coef * log_prob


class _SurrogateConfig:
    """What verl's ``compute_policy_loss_vanilla`` reads from its actor config: the clip ratios of the SRFT loss
    and the global denominators of ``agg_loss`` (``global_batch_info``)."""

    def __init__(self, cfg: SRFTLossConfig, global_batch_info: dict):
        self.clip_ratio = cfg.clip_ratio_low
        self.clip_ratio_low = cfg.clip_ratio_low
        self.clip_ratio_high = cfg.clip_ratio_high
        self.clip_ratio_c = cfg.clip_ratio_c
        self.global_batch_info = global_batch_info

    def get(self, key, default=None):
        return getattr(self, key, default)


def _denominators(mask, loss_agg_mode, info, num_tokens=None, num_seqs=None) -> dict:
    """``agg_loss`` keywords whose denominators are never 0 (an empty selection aggregates to exactly 0).

    ``num_tokens`` / ``num_seqs`` (global counts over the optimizer mini-batch, e.g. of the tokens that carry an
    RL term) replace verl's ``batch_num_tokens`` / ``global_batch_size``. Without either, a single rank counts
    ``mask`` itself; with ``dp_size > 1`` the count stays missing and ``agg_loss`` refuses to guess it.
    """
    dp_size = info["dp_size"]
    tokens = info["batch_num_tokens"] if num_tokens is None else num_tokens
    seqs = info["global_batch_size"] if num_seqs is None else num_seqs
    if tokens is not None:
        tokens = max(tokens, 1)
    elif dp_size == 1 and loss_agg_mode == "token-mean":
        tokens = max(int(mask.sum()), 1)
    if seqs is not None:
        seqs = max(seqs, 1)
    elif dp_size == 1 and loss_agg_mode.startswith("seq-mean"):
        seqs = max(int((mask.sum(dim=-1) > 0).sum()), 1)
    return dict(dp_size=dp_size, batch_num_tokens=tokens, global_batch_size=seqs,
                loss_scale_factor=info["loss_scale_factor"])


def _agg(loss_mat, mask, loss_agg_mode, agg_info) -> torch.Tensor:
    return agg_loss(loss_mat=loss_mat, loss_mask=mask, loss_agg_mode=loss_agg_mode, **agg_info)


# ---------------------------------------------------------------- the loss


def compute_srft_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    entropy: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    is_demo: torch.Tensor,
    rewards: Optional[torch.Tensor],
    cfg: SRFTLossConfig,
    loss_agg_mode: str = "token-mean",
    global_info: Optional[dict] = None,
    keep: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    r"""
    SRFT loss of one (micro-)batch, Eq. 13: `L = c_rl * L_rl + c_sft * L_sft - entropy_coeff * agg(H)`, with
    `(c_rl, c_sft) = (1, 1)` (`mix="sum"`, Eq. 13) or `(1 - mu, mu)` (`mix="chord"`, :func:`term_coefficients`).

    * `L_sft` (Eq. 8): `sum_{demo tokens} w_sft * (-log p) / N_demo`, with `N_demo` the demo-token count of this
      batch, or `global_info["demo_num_tokens"]` (then multiplied by `dp_size`, like verl's `agg_loss`). It is
      always a token-mean over demo tokens, independent of `loss_agg_mode`.
    * `L_rl`: the off-policy term (Eq. 9-10) on demo rows and the on-policy term (Eq. 11 "ratio" or Eq. 12
      "reinforce") on rollout rows, one per-token matrix aggregated with `loss_agg_mode` (verl's `agg_loss`)
      over the tokens that carry an RL term: demo rows only if `cfg.demo_rl`, rollout rows only if
      `cfg.rollout_rl`. Its global denominators are `global_info["rl_num_tokens"]` / `["rl_num_seqs"]`; when
      every row carries an RL term they default to verl's `batch_num_tokens` / `global_batch_size`.
    * Entropy bonus (Eq. 13): token-mean of H over all response tokens (`batch_num_tokens`, or
      `kept_num_tokens` when a group gate drops rows), whatever `loss_agg_mode` is (LUFFY and HPT take a
      token-mean); its gradient flows through `entropy`.
    * `keep` (`[B]`, optional): rows a per-group gate keeps (HPT's switch, :func:`recipe_srft.advantage.hpt_switch`);
      a dropped row carries no term and is in no denominator, as if it were not in the batch.

    Entropy enters the weights `w_sft`, `w_rl` detached. No NaN: a batch without demo tokens gives exactly 0 for
    the SFT and the off-policy terms, and an all-masked batch gives 0.

    Args:
        log_prob (`torch.Tensor`): `[B, T]` log-probabilities of the response tokens under the current policy.
        old_log_prob (`torch.Tensor`): `[B, T]` log-probabilities under the rollout policy; used only on
            rollout rows of the `"ratio"` form (demonstration rows use pi_beta := 1, Eq. 9).
        entropy (`torch.Tensor`): `[B, T]` per-token entropy of the current policy.
        advantages (`torch.Tensor`): `[B, T]` advantages (GRPO: one value per trajectory, Eq. 7).
        response_mask (`torch.Tensor`): `[B, T]` mask of the response tokens.
        is_demo (`torch.Tensor`): `[B]` (or `[B, 1]`) bool/int, True for demonstration rows.
        rewards (`torch.Tensor` or `None`): `[B]` sequence rewards; required when `positive_by="reward"`.
        cfg (`SRFTLossConfig`): the loss configuration.
        loss_agg_mode (`str`): aggregation of `L_rl` and of the entropy bonus, one of
            `SUPPORTED_LOSS_AGG_MODES`.
        global_info (`dict` or `None`): optimizer mini-batch statistics making the loss of one micro-batch a
            partial sum (sum over micro-batches, gradient-average over dp ranks = the single-batch loss):
            `dp_size`, `batch_num_tokens`, `demo_num_tokens`, `global_batch_size`, `rl_num_tokens` and
            `rl_num_seqs` (response tokens / non-empty rows carrying an RL term), and optionally
            `batch_entropy` (entropy scope "batch"), `loss_scale_factor` ("seq-mean-token-sum-norm"),
            `kept_num_tokens` (response tokens of the kept rows, the entropy bonus's denominator under a gate)
            and `global_step` (verl's step, for `mix="chord"`).
        keep (`torch.Tensor` or `None`): `[B]` bool/int, rows kept by the group gate (default: all).

    Returns:
        `(loss, metrics)`: the scalar loss and a dict of python floats (`srft/...`); statistics of an empty
        subset are omitted.
    """
    if loss_agg_mode not in SUPPORTED_LOSS_AGG_MODES:
        raise ValueError(f"loss_agg_mode must be one of {list(SUPPORTED_LOSS_AGG_MODES)}, got {loss_agg_mode!r}.")
    for name, tensor in (("old_log_prob", old_log_prob), ("entropy", entropy), ("advantages", advantages),
                         ("response_mask", response_mask)):
        if tensor.shape != log_prob.shape:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {tuple(log_prob.shape)}.")
    info = _parse_global_info(global_info)
    dp_size = info["dp_size"]
    batch_size = log_prob.shape[0]

    demo_rows = _per_sample(is_demo, batch_size, "is_demo").bool()
    kept = None if keep is None else _per_sample(keep, batch_size, "keep").bool()
    # a row the group gate drops is masked out everywhere, as if it were not in the batch (HPT removes it)
    mask = response_mask.bool() if kept is None else response_mask.bool() & kept[:, None]
    demo_mask = mask & demo_rows[:, None]
    on_mask = mask & ~demo_rows[:, None]
    rl_rows = rows_with_rl_term(demo_rows, cfg, kept)
    rl_mask = mask & rl_rows[:, None]
    rl_num_tokens, rl_num_seqs = info["rl_num_tokens"], info["rl_num_seqs"]
    globally_counted = dp_size > 1 or info["batch_num_tokens"] is not None or info["global_batch_size"] is not None
    if (not (cfg.demo_rl and cfg.rollout_rl) or kept is not None) and globally_counted:
        if (loss_agg_mode == "token-mean" and rl_num_tokens is None) or (
                loss_agg_mode.startswith("seq-mean") and rl_num_seqs is None):
            raise ValueError(
                "global_info['rl_num_tokens'] and ['rl_num_seqs'] are required when only some rows carry an RL "
                "term (demo_rl or rollout_rl is False, or a group gate): verl's batch counts include the rows "
                "without one."
            )
    if kept is not None and globally_counted and info["kept_num_tokens"] is None:
        raise ValueError("global_info['kept_num_tokens'] is required with a group gate (keep): verl's "
                         "batch_num_tokens counts the dropped rows too.")
    coefs = term_coefficients(cfg, info["global_step"])
    if rewards is not None:
        rewards = _per_sample(rewards, batch_size, "rewards")
    elif cfg.positive_by == "reward":
        raise ValueError("rewards are required when SRFTLossConfig.positive_by == 'reward'.")

    # Padding may hold anything (even inf): zero it so no NaN can reach values or gradients.
    zeros = torch.zeros_like(log_prob)
    lp = torch.where(mask, log_prob, zeros)
    adv = torch.where(mask, advantages.detach().to(lp.dtype), zeros)
    ent = torch.where(mask, entropy.to(lp.dtype), zeros)
    ent_sg = ent.detach()

    prob = torch.exp(lp)

    # ---- the token weights (detached: sg(H) in Eq. 8 and 11, sg(p(1-p)) for CHORD's phi) ----
    h = entropy_for_weights(ent_sg, mask, cfg.entropy_scope, info["batch_entropy"])
    w_sft = sft_weight(cfg, h, prob)  # Eq. 8 (or phi)
    w_rl = pos_weight(cfg, h)  # Eq. 11

    # ---- (a) SFT on demonstration tokens, Eq. 8 ----
    num_demo_tokens = int(demo_mask.sum().item())
    demo_num_tokens = info["demo_num_tokens"]
    if demo_num_tokens is not None and num_demo_tokens > demo_num_tokens:
        raise ValueError(
            f"global_info['demo_num_tokens']={demo_num_tokens} is smaller than this micro-batch's "
            f"{num_demo_tokens} demo tokens; it must count the whole optimizer mini-batch."
        )
    if cfg.use_sft:
        if demo_num_tokens is None and dp_size > 1:
            raise ValueError("global_info['demo_num_tokens'] is required when dp_size > 1")
        sft_sum = torch.where(demo_mask, sft_token_loss(lp, w_sft), zeros).sum()
        if demo_num_tokens is None:
            sft_loss = sft_sum / max(num_demo_tokens, 1)
        else:
            sft_loss = sft_sum / max(demo_num_tokens, 1) * dp_size
    else:
        sft_loss = lp.new_zeros(())

    # ---- L_rl = (b) + (c), aggregated with loss_agg_mode over the tokens that carry an RL term; both parts
    # share the same (global) denominators, so their sum is one aggregation over the whole RL mask ----
    agg_info = _denominators(rl_mask, loss_agg_mode, info, rl_num_tokens, rl_num_seqs)
    off_mask = rl_mask & demo_rows[:, None]
    on_rl_mask = rl_mask & ~demo_rows[:, None]

    # (b) off-policy RL on demonstration tokens, Eq. 9-10 (pi_beta := 1, no clipping)
    off_tok = offpolicy_token_loss(prob, adv, cfg.offpolicy_shaping, cfg.offpolicy_gamma)
    offpolicy_loss = _agg(torch.where(off_mask, off_tok, zeros), off_mask, loss_agg_mode, agg_info)

    # (c) on-policy RL on rollout tokens, Eq. 11-12; positives are weighted by w_rl
    positive, negative = positives(adv, rewards, on_mask, cfg.positive_by)
    clipfrac = clipfrac_lower = ppo_kl = None
    if cfg.onpolicy_form == "reinforce":
        on_tok = reinforce_token_loss(lp, positive, negative, w_rl)
        onpolicy_loss = _agg(torch.where(on_rl_mask, on_tok, zeros), on_rl_mask, loss_agg_mode, agg_info)
    else:
        # ratio := 1 outside rollout tokens (demonstrations have no behaviour log-probs)
        old = torch.where(on_mask, old_log_prob.detach().to(lp.dtype), lp.detach())
        weights = torch.where(positive, w_rl, torch.ones_like(w_rl))
        if not on_rl_mask.any():
            onpolicy_loss = lp.new_zeros(())
        elif cfg.onpolicy_clip:
            # verl's own clipped surrogate with dual clip; w_rl enters as its per-token weights
            onpolicy_loss, pg_metrics = compute_policy_loss_vanilla(
                old_log_prob=old, log_prob=lp, advantages=adv, response_mask=on_rl_mask,
                loss_agg_mode=loss_agg_mode, config=_SurrogateConfig(cfg, agg_info), rollout_is_weights=weights,
            )
            # verl names them actor/...; the SRFT loss logs them as srft/... (rollout tokens only)
            clipfrac, clipfrac_lower, ppo_kl = (pg_metrics["actor/" + k] for k in ("pg_clipfrac", "pg_clipfrac_lower",
                                                                                   "ppo_kl"))
        else:  # LUFFY / HPT scripts (loss_remove_clip=True): the plain ratio
            log_ratio = torch.clamp(lp - old, min=-_LOG_RATIO_CLAMP, max=_LOG_RATIO_CLAMP)
            on_tok = -adv * torch.exp(log_ratio) * weights
            onpolicy_loss = _agg(torch.where(on_rl_mask, on_tok, zeros), on_rl_mask, loss_agg_mode, agg_info)
            clipfrac = clipfrac_lower = 0.0
            ppo_kl = _masked_mean_item(-log_ratio, on_rl_mask)
    rl_loss = offpolicy_loss + onpolicy_loss

    # ---- Eq. 13: entropy bonus, token-mean over all (kept) response tokens ----
    ent_count = info["kept_num_tokens"] if kept is not None else None
    entropy_loss = _agg(ent, mask, "token-mean", _denominators(mask, "token-mean", info, ent_count))
    # ---- the total: Eq. 13 (c_rl = c_sft = 1) or CHORD's (1 - mu, mu) ----
    loss = coefs["rl"] * rl_loss + coefs["sft"] * sft_loss
    if cfg.entropy_coeff != 0:
        loss = loss - cfg.entropy_coeff * entropy_loss

    # ---- metrics (python floats; local to this micro-batch except the loss partial sums) ----
    metrics: dict[str, float] = {
        "srft/sft_loss": sft_loss.detach().item(),
        "srft/offpolicy_pg_loss": offpolicy_loss.detach().item(),
        "srft/onpolicy_pg_loss": onpolicy_loss.detach().item(),
        "srft/rl_loss": rl_loss.detach().item(),
        "srft/entropy_loss": entropy_loss.detach().item(),
        "srft/num_demo_tokens": float(num_demo_tokens),
        "srft/num_onpolicy_tokens": float(on_mask.sum().item()),
        "srft/num_rl_tokens": float(rl_mask.sum().item()),
    }
    if "mu" in coefs:
        metrics["srft/mu"] = coefs["mu"]
    if num_demo_tokens > 0:
        if cfg.use_sft:
            _stats("srft/w_sft", w_sft, demo_mask, metrics)
        metrics["srft/entropy_demo"] = _masked_mean_item(ent_sg, demo_mask)
        metrics["srft/demo_token_prob"] = _masked_mean_item(prob, demo_mask)
    if demo_rows.any() and rewards is not None:
        metrics["srft/demo_reward_mean"] = rewards[demo_rows].detach().float().mean().item()
    if on_mask.any():
        metrics["srft/entropy_onpolicy"] = _masked_mean_item(ent_sg, on_mask)
        metrics["srft/positive_token_frac"] = _masked_mean_item(positive.to(lp.dtype), on_mask)
    _stats("srft/w_rl", w_rl, positive, metrics)
    if clipfrac is not None:
        metrics["srft/pg_clipfrac"] = clipfrac
        metrics["srft/pg_clipfrac_lower"] = clipfrac_lower
        metrics["srft/ppo_kl"] = ppo_kl
    return loss, metrics


_LOSS_METRICS = ("srft/offpolicy_pg_loss", "srft/onpolicy_pg_loss", "srft/rl_loss")


def srft_loss_fn(config, model_output, data, dp_group=None, *, srft_cfg: SRFTLossConfig):
    """verl loss callable (signature of `verl.workers.utils.losses.ppo_loss`) computing the SRFT loss (Eq. 13).

    Bind the configuration with `functools.partial(srft_loss_fn, srft_cfg=...)`. Every actor-side knob comes from
    the actor `config` verl passes (`ACTOR_LOSS_KNOBS` through :func:`actor_loss_knobs`, `loss_agg_mode`,
    `loss_scale_factor`); `srft_cfg` gives the SRFT switches.

    Reads from the micro-batch `data` (a TensorDict in verl's no-padding layout; keys: `recipe_srft.contract`):
        * `response_mask`, `old_log_probs`, `advantages` (`[B, T]`);
        * `is_demo` (`[B]` or `[B, 1]`, bool/int), `srft_rewards` (`[B]`, the sequence reward);
        * `srft_demo_num_tokens` (`[B]`, every element = demo-token count of the whole optimizer mini-batch,
          over micro-batches and dp ranks);
        * `srft_rl_num_tokens`, `srft_rl_num_seqs` (`[B]`, likewise: response tokens and non-empty rows of the
          mini-batch that carry an RL term, the denominators of `L_rl`);
        * optional `srft_batch_entropy` (`[B]`, every element = mean entropy of the optimizer mini-batch);
        * optional `srft_keep` (`[B]`, rows the group gate keeps), `srft_kept_num_tokens` (`[B]`, the kept
          response tokens of the mini-batch) and `srft_global_step` (`[B]`, verl's step, for `mix="chord"`);
        * non-tensor `dp_size`, `batch_num_tokens`, `global_batch_size` (set by verl's engine).
    `model_output` must contain `log_probs` and `entropy` (set `actor_rollout_ref.actor.calculate_entropy=True`).
    """
    entropy = model_output.get("entropy", None)
    if entropy is None:
        raise ValueError(
            "The SRFT loss needs the per-token entropy of the policy (Eq. 8, 11, 13) but the model output has no "
            "'entropy'; set actor_rollout_ref.actor.calculate_entropy=True."
        )
    log_prob = no_padding_2_padding(model_output["log_probs"], data)
    entropy = no_padding_2_padding(entropy, data)

    dp_size = tu.get_non_tensor_data(data=data, key="dp_size", default=1)
    batch_num_tokens = tu.get_non_tensor_data(data=data, key="batch_num_tokens", default=None)
    global_batch_size = tu.get_non_tensor_data(data=data, key="global_batch_size", default=None)
    loss_scale_factor = getattr(config, "loss_scale_factor", None)
    srft_cfg = replace(srft_cfg, **actor_loss_knobs(config))

    required = ["response_mask", "old_log_probs", "advantages", *C.LOSS_FIELDS]
    missing = [key for key in required if key not in data.keys()]
    if missing:
        raise KeyError(f"SRFT loss: the micro-batch lacks {missing}; the SRFT trainer must provide them.")
    fields = list(required) + [key for key in C.OPTIONAL_LOSS_FIELDS if key in data.keys()]
    batch = data.select(*fields).to_padded_tensor()

    def _batch_constant(key: str):
        values = batch[key].reshape(-1)
        if values.numel() == 0:
            return None
        if not torch.all(values == values[0]):
            raise ValueError(f"SRFT loss: '{key}' must hold the same value for every row of a mini-batch.")
        return values[0].item()

    demo_num_tokens = _batch_constant(C.DEMO_NUM_TOKENS)
    rl_num_tokens = _batch_constant(C.RL_NUM_TOKENS)
    rl_num_seqs = _batch_constant(C.RL_NUM_SEQS)
    batch_entropy = _batch_constant(C.BATCH_ENTROPY) if C.BATCH_ENTROPY in fields else None
    kept_num_tokens = _batch_constant(C.KEPT_NUM_TOKENS) if C.KEPT_NUM_TOKENS in fields else None
    global_step = _batch_constant(C.GLOBAL_STEP) if C.GLOBAL_STEP in fields else None
    keep = batch[C.KEEP] if C.KEEP in fields else None
    global_info = {
        "dp_size": dp_size,
        "batch_num_tokens": batch_num_tokens,
        "global_batch_size": global_batch_size,
        "loss_scale_factor": loss_scale_factor,
        "demo_num_tokens": None if demo_num_tokens is None else int(round(demo_num_tokens)),
        "rl_num_tokens": None if rl_num_tokens is None else int(round(rl_num_tokens)),
        "rl_num_seqs": None if rl_num_seqs is None else int(round(rl_num_seqs)),
        "batch_entropy": batch_entropy,
        "kept_num_tokens": None if kept_num_tokens is None else int(round(kept_num_tokens)),
        "global_step": None if global_step is None else int(round(global_step)),
    }

    loss, raw_metrics = compute_srft_loss(
        log_prob=log_prob,
        old_log_prob=batch["old_log_probs"],
        entropy=entropy,
        advantages=batch["advantages"],
        response_mask=batch["response_mask"],
        is_demo=batch[C.IS_DEMO],
        rewards=batch[C.REWARDS],
        cfg=srft_cfg,
        loss_agg_mode=config.loss_agg_mode,
        global_info=global_info,
        keep=keep,
    )

    # As in verl's ppo_loss: a loss normalised by global counts is a partial sum over micro-batches -> SUM.
    rl_globally_normalised = (
        dp_size > 1 or batch_num_tokens is not None or global_batch_size is not None or loss_scale_factor is not None
    )
    rl_aggregation = AggregationType.SUM if rl_globally_normalised else AggregationType.MEAN
    sft_aggregation = AggregationType.SUM if global_info["demo_num_tokens"] is not None else AggregationType.MEAN
    entropy_aggregation = AggregationType.SUM if (dp_size > 1 or batch_num_tokens is not None) else AggregationType.MEAN

    metrics: dict[str, Any] = {}
    for key, value in raw_metrics.items():
        if key == "srft/sft_loss":
            metrics[key] = Metric(value=value, aggregation=sft_aggregation)
        elif key == "srft/entropy_loss":
            metrics[key] = Metric(value=value, aggregation=entropy_aggregation)
        elif key in _LOSS_METRICS:
            metrics[key] = Metric(value=value, aggregation=rl_aggregation)
        else:
            metrics[key] = value
    # Same names as ppo_loss so the usual dashboards keep working.
    metrics["actor/pg_loss"] = Metric(value=raw_metrics["srft/rl_loss"], aggregation=rl_aggregation)
    metrics["actor/entropy_loss"] = Metric(value=raw_metrics["srft/entropy_loss"], aggregation=entropy_aggregation)
    return loss, metrics
