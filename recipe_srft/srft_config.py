"""The ``srft:`` config section: presets, switches, and their resolution.

Every knob of the method (``../shared/docs/srft_method.md`` section 4) is a key of the
``srft:`` section of ``recipe_srft/config/srft_trainer.yaml``. Keys left ``null`` take the
value of ``srft.preset``; an explicit value that contradicts the preset fails at start-up
(use ``srft.preset=custom`` to set every switch freely).

Presets (the paper's comparisons, Tables 2-3):

============  =====================================================================================
``srft``      the paper's method: 1 demo per group, SFT w_sft = 0.5 exp(-H), w_rl = 0.1 exp(+H) on
              positives, LUFFY shaping of the off-policy term, std-normalised group advantages
``grpo``      plain GRPO: no demonstrations, no SFT term, unweighted clipped surrogate
``luffy``     LUFFY's published script: demo in the group, p/(p+0.1) shaping, no SFT term, no w_rl, no std
              normalisation, unclipped ratio, and its aggregation (:data:`PRESET_VERL`)
``sft_plus_rl`` single-stage SFT + GRPO: unweighted SFT on demos (w = 1), GRPO on rollouts; demos take no
              RL term and stay out of the group statistics
``no_w_sft``  SRFT with a constant SFT weight 1.0 (Table 3, "w/o w_sft")
``sft_only``  SFT on the demonstrations only (w = 1, no RL term; rollouts still generated, same budget)
``no_w_rl``   SRFT with a constant positive weight 1.0 (Table 3, "w/o w_rl")
``no_demo_sft`` SRFT without the SFT term on demonstrations (Table 3, "w/o the SFT term"): ``use_sft=False``,
              everything else as ``srft`` (demo in the group and its statistics, off-policy RL term, w_rl)
``no_demo_rl`` SRFT without the RL term on demonstrations (Table 3, "w/o the RL term on demos"):
              ``demo_rl=False``, everything else as ``srft``. Reading: only the demonstrations' own off-policy
              RL term (Eq. 9-10) is removed; they stay in the group and in its mean/std (Eq. 7,
              ``demos_in_group_stats=True``), so the rollouts' advantages are those of SRFT, and they keep
              the entropy-weighted SFT term. (Taking them out of the statistics as well would be
              ``srft.preset=custom srft.demo_rl=false srft.demos_in_group_stats=false``.)
``custom``    no constraint: every switch as given, defaults of ``srft``
============  =====================================================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from .losses import ACTOR_LOSS_KNOBS, SRFTLossConfig

#: Values of the paper's method; every other preset is a diff on these.
_SRFT = dict(
    demos_per_prompt=1,
    demo_reward="verifier",
    norm_adv_by_std=True,
    demos_in_group_stats=True,
    use_sft=True,
    sft_weighting="entropy",
    sft_coef=0.5,
    sft_entropy_sign=-1,
    pos_weighting="entropy",
    pos_coef=0.1,
    offpolicy_shaping="luffy",
    onpolicy_clip=True,
    demo_rl=True,
    rollout_rl=True,
)

PRESETS: dict[str, dict[str, Any]] = {
    "srft": dict(_SRFT),
    "grpo": dict(_SRFT, demos_per_prompt=0, use_sft=False, pos_weighting="constant", pos_coef=1.0),
    "luffy": dict(_SRFT, use_sft=False, pos_weighting="constant", pos_coef=1.0, norm_adv_by_std=False,
                  onpolicy_clip=False),
    "sft_plus_rl": dict(_SRFT, sft_weighting="constant", sft_coef=1.0, pos_weighting="constant", pos_coef=1.0,
                        demos_in_group_stats=False, demo_rl=False),
    "no_w_sft": dict(_SRFT, sft_weighting="constant", sft_coef=1.0),
    "sft_only": dict(_SRFT, sft_weighting="constant", sft_coef=1.0, demo_rl=False, rollout_rl=False,
                     demos_in_group_stats=False),
    "no_w_rl": dict(_SRFT, pos_weighting="constant", pos_coef=1.0),
    "no_demo_sft": dict(_SRFT, use_sft=False),
    "no_demo_rl": dict(_SRFT, demo_rl=False),
    "custom": {},
}
PRESET_KEYS = tuple(_SRFT)

#: Rows per micro-batch per GPU in LUFFY's script (``ppo_micro_batch_size=64`` over 8 GPUs). LUFFY divides each
#: micro-batch's token sum by the padded response length T and by the micro-batches per optimizer step, which
#: is verl's ``seq-mean-token-sum-norm`` with ``loss_scale_factor = T / LUFFY_MICRO_ROWS_PER_GPU``.
LUFFY_MICRO_ROWS_PER_GPU = 8

#: verl settings that are part of what a preset reproduces: key -> (required value, why). ``None`` as the
#: value means "must be set" (any non-null value). ``check_verl_config`` refuses a contradiction at start-up.
PRESET_VERL: dict[str, dict[str, tuple]] = {
    "luffy": {
        "actor_rollout_ref.actor.loss_agg_mode": (
            "seq-mean-token-sum-norm", "LUFFY sums the RL loss over tokens and divides by the response length"),
        "actor_rollout_ref.actor.loss_scale_factor": (
            None, f"LUFFY's constant is max_response_length / {LUFFY_MICRO_ROWS_PER_GPU} (1024 for its 8192 tokens)"),
    },
}


def preset_verl_overrides(preset: str, max_response_length: int) -> list[str]:
    """Hydra overrides of the verl settings :data:`PRESET_VERL` ties to ``preset`` (empty for most presets).

    ``run_scripts/_common.sh`` writes the same overrides in bash (tests/test_run_scripts.py checks they agree)."""
    if preset != "luffy":
        return []
    return ["actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm",
            f"actor_rollout_ref.actor.loss_scale_factor={max(1, max_response_length // LUFFY_MICRO_ROWS_PER_GPU)}"]


@dataclass
class SRFTConfig:
    """Resolved ``srft:`` section (see the module docstring and ``srft_trainer.yaml`` for each knob)."""

    preset: str = "srft"
    #: m, demonstrations appended to each training prompt's group (sec. 1; 0 = plain GRPO groups).
    demos_per_prompt: int = 1
    #: Reward of a demonstration: "verifier" (scored like a rollout) or "constant" (always 1).
    demo_reward: str = "verifier"
    #: Eq. 7: divide the group-centred reward by the group std (paper) or not (LUFFY/HPT scripts).
    norm_adv_by_std: bool = True
    #: Eq. 7: demonstrations enter the group mean/std (paper) or not (LUFFY's grpo_split); they get an
    #: advantage from the statistics either way.
    demos_in_group_stats: bool = True
    #: Columns holding the demonstration(s), first found wins: LUFFY's ``target`` chat list or a ``demo`` string.
    demo_fields: tuple = ("target", "demo")
    #: Seconds between polls of verl's replay buffer (verl's default of 2 s dominates small runs).
    replay_poll_interval_s: float = 0.05
    #: The loss switches (Eq. 8-13); clip ratios and the entropy coefficient come from the actor config.
    loss: SRFTLossConfig = field(default_factory=SRFTLossConfig)
    #: Seconds verl's set-up (worker groups placed, rollout servers, reward workers) may take before the run
    #: fails with a report of the phase and Ray's resources (recipe_srft.integration.watchdog); null or 0 = no limit.
    startup_timeout_s: Optional[float] = 1800.0
    #: Seconds one training step may take, likewise; null or 0 = no limit (long generations on a GPU).
    step_timeout_s: Optional[float] = None
    #: Seconds one weight sync (actor -> rollout servers, after set-up and after every update) may take, likewise.
    #: A receiver that fails leaves verl's sender blocked on its socket forever; this bounds it. null or 0 = no limit.
    weight_sync_timeout_s: Optional[float] = 600.0
    #: Directory for one ``step_<N>.pt`` per step with each trajectory's optimizer mini-batch, rank, demo flag,
    #: prompt/response ids and the mini-batch's demo-token count (debugging the batch layout; tests read it).
    dump_minibatches_dir: Optional[str] = None
    #: Mixed training sources: list of {path, weight, name}; None = data.train_files as verl reads them.
    data_sources: Optional[list] = None
    data_seed: int = 0
    #: Training rows without a ground truth or a usable demonstration, with a demonstration over the response length
    #: or one the reward rejects (recipe_srft.data_check, at start-up): "error" stops, "skip" drops, "keep" trains on.
    data_check: str = "error"
    #: Demonstrations the start-up check grades with the reward (a seeded sample); null = all, 0 = none.
    data_check_reward_rows: Optional[int] = 1024

    def __post_init__(self):
        if self.demos_per_prompt < 0:
            raise ValueError(f"srft.demos_per_prompt must be >= 0, got {self.demos_per_prompt}")
        if self.demo_reward not in ("verifier", "constant"):
            raise ValueError(f"srft.demo_reward must be 'verifier' or 'constant', got {self.demo_reward!r}")
        if self.replay_poll_interval_s <= 0:
            raise ValueError("srft.replay_poll_interval_s must be > 0")


_LOSS_FIELDS = {f.name for f in fields(SRFTLossConfig)}
_TOP_FIELDS = {"demos_per_prompt", "demo_reward", "norm_adv_by_std", "demos_in_group_stats",
               "demo_fields", "replay_poll_interval_s", "dump_minibatches_dir",
               "startup_timeout_s", "step_timeout_s", "weight_sync_timeout_s", "data_check", "data_check_reward_rows"}
#: Loss fields that are taken from verl's actor config, never from ``srft:``.
_FROM_ACTOR = set(ACTOR_LOSS_KNOBS)


def resolve_srft_config(section: dict, actor: Optional[dict] = None) -> SRFTConfig:
    """Builds an :class:`SRFTConfig` from the ``srft:`` mapping (and the actor config for clip ratios / entropy).

    Raises ``ValueError`` (naming the key and the fix) when a preset and an explicit switch disagree,
    or when a key is unknown.
    """
    section = {k: v for k, v in dict(section or {}).items()}
    preset = section.pop("preset", "srft") or "srft"
    if preset not in PRESETS:
        raise ValueError(f"srft.preset={preset!r} is unknown; choose one of {sorted(PRESETS)}")
    data = section.pop("data", None) or {}
    preset_values = PRESETS[preset]

    values: dict[str, Any] = dict(_SRFT)
    conflicts = []
    for key, value in section.items():
        if key in _FROM_ACTOR:
            raise ValueError(
                f"srft.{key} is not a key of the srft section: set actor_rollout_ref.actor.{key} instead "
                "(the SRFT loss reads clip ratios and the entropy coefficient from verl's actor config)"
            )
        if key not in _LOSS_FIELDS and key not in _TOP_FIELDS:
            raise ValueError(f"srft.{key} is not a known SRFT switch; known: {sorted(_LOSS_FIELDS | _TOP_FIELDS)}")
        if value is None:
            continue
        if key in preset_values and _differs(value, preset_values[key]):
            conflicts.append(f"srft.{key}={value!r} contradicts srft.preset={preset} (which sets {preset_values[key]!r})")
        values[key] = value
    if conflicts:
        raise ValueError(
            "Inconsistent SRFT configuration:\n  " + "\n  ".join(conflicts)
            + "\nFix: remove the override(s), pick the preset that matches, or set srft.preset=custom."
        )
    for key, value in preset_values.items():
        if section.get(key) is None:
            values[key] = value

    loss_kwargs = {k: values[k] for k in _LOSS_FIELDS if k in values}
    actor = dict(actor or {})
    for key in _FROM_ACTOR:
        if actor.get(key) is not None:
            loss_kwargs[key] = float(actor[key])
    if loss_kwargs.get("sft_entropy_sign") is not None:
        loss_kwargs["sft_entropy_sign"] = int(loss_kwargs["sft_entropy_sign"])
    top = {k: values[k] for k in _TOP_FIELDS if k in values}
    if "demo_fields" in top:
        top["demo_fields"] = tuple(top["demo_fields"])
    return SRFTConfig(preset=preset, loss=SRFTLossConfig(**loss_kwargs), data_sources=data.get("sources"),
                      data_seed=int(data.get("seed", 0) or 0), **top)


def _differs(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) != float(b)
    return a != b


def describe(cfg: SRFTConfig) -> dict:
    """Flat dict of the resolved switches (printed at start-up and logged)."""
    out = {k: v for k, v in asdict(cfg).items() if k != "loss"}
    out.update({f"loss.{k}": v for k, v in asdict(cfg.loss).items()})
    return out
