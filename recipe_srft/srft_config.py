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
``srft_code`` the authors' released code (fyqqyf/SRFT@8d4e10a) as the public notes read it: w_sft =
              0.5 exp(+H) per token, w_rl = 0.1 exp(+H) per token on A > 0, LUFFY's shaping, and LUFFY's script
              for what the notes do not settle (no std, unclipped ratio, sum / T aggregation); :data:`PRESET_SOURCES`
``hpt``       HPT (TsinghuaC3I/Unify-Post-Training@ae332f5): per group, SFT on the demonstration when no rollout
              solved the prompt, else GRPO on the rollouts only (``group_gate=hpt``); no std, unclipped ratio
``chord``     CHORD (modelscope/Trinity-RFT@0414330): ``(1 - mu) * L_GRPO + mu * L_SFT`` with mu scheduled over
              verl's global step, phi = p(1 - p) on the SFT tokens, demonstrations outside the group statistics
              and without an RL term
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
    mix="sum",
    group_gate="none",
)

#: Where the three methods' published code was read (never copied); the values below cite these.
SRFT_CODE = "fyqqyf/SRFT@8d4e10a586266a27359086188f78303e320a9266"
HPT_CODE = "TsinghuaC3I/Unify-Post-Training@ae332f5fa4dc8b4c3d3cd77ebc9cff3a3abab2d0"
CHORD_CODE = "modelscope/Trinity-RFT@041433056e9067e35a42a3943ecbaf89bef24518"
LUFFY_CODE = "ElliottYan/LUFFY@01f4ae066249e6965ce0d5512ccdf99a12895c74"

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
    "srft_code": dict(_SRFT, sft_entropy_sign=1, entropy_scope="token", weight_clamp=None, positive_by="advantage",
                      onpolicy_form="ratio", onpolicy_clip=False, norm_adv_by_std=False),
    "hpt": dict(_SRFT, group_gate="hpt", gate_max_solved=0, sft_weighting="constant", sft_coef=1.0, demo_rl=False,
                demos_in_group_stats=False, pos_weighting="constant", pos_coef=1.0, onpolicy_form="ratio",
                onpolicy_clip=False, norm_adv_by_std=False),
    "chord": dict(_SRFT, mix="chord", mu_warmup_steps=200, mu_decay_steps=400, mu_peak=0.5, mu_valley=0.02,
                  sft_weighting="phi", sft_coef=1.0, demo_rl=False, demos_in_group_stats=False,
                  pos_weighting="constant", pos_coef=1.0, onpolicy_form="ratio", onpolicy_clip=True,
                  norm_adv_by_std=True),
    "custom": {},
}
#: the keys every preset sets (an explicit contradicting value fails); srft_code, hpt and chord set more
PRESET_KEYS = tuple(_SRFT)

#: Where each setting of the presets that reproduce published code comes from: ``file:line`` at the commit above
#: where a reading gives one, or "not settled: ..." with the value chosen and why. ``tests/test_srft_units.py``
#: checks that every key these presets set (and every verl key they tie, :data:`PRESET_VERL`) has an entry.
#: SRFT's code was not read here: its lines come from public notes that read it at 8d4e10a (search the string
#: ``fyqqyf/SRFT`` in public notes); "LUFFY's script" is ``exp_scripts/train.sh`` at :data:`LUFFY_CODE`, the
#: template of the mix_src code family the SRFT code forks.
PRESET_SOURCES: dict[str, dict[str, str]] = {
    "srft_code": {
        "demos_per_prompt": "not settled: the notes give rollout.n=8 (exp_scripts/train.sh) in LUFFY's mix_src "
                            "layout, where a demo takes one of the 8 slots (n_prefix=1 in LUFFY's script); here 1 "
                            "demo + 7 rollouts (PRESET=srft_code sets N_ROLLOUTS=7)",
        "demo_reward": "not settled: the verifier on every row, as in LUFFY's mix_src (use_sft_prefix_reward=False)",
        "norm_adv_by_std": "not settled: false, LUFFY's script (algorithm.grpo_use_std=False, train.sh:82); the "
                           "method notes say 'probably no'",
        "demos_in_group_stats": "not settled: LUFFY's mix_src GRPO puts the demo in its prompt's group (same uid)",
        "use_sft": "exp_scripts/train.sh (+actor_rollout_ref.actor.use_sft_loss=True)",
        "sft_weighting": "srft/verl/verl/mix_src/mix_core_alg.py:162 (entropy_exp_coeff = entropy.exp().detach())",
        "sft_coef": "exp_scripts/train.sh:63 (sft_loss_coef=-0.5) with mix_actor.py (policy_loss - sft_loss * "
                    "sft_loss_coef): +0.5",
        "sft_entropy_sign": "mix_core_alg.py:162-163: exp(+H) (the paper's Eq. 8 writes exp(-H))",
        "entropy_scope": "mix_core_alg.py:134 and :162: exp of the per-token entropy tensor, no mean taken",
        "weight_clamp": "mix_core_alg.py:134 and :162: no clamp in the reported lines",
        "pos_weighting": "mix_core_alg.py:134 (pos_entropy_exp_coeff = 0.1 * entropy.exp().detach())",
        "pos_coef": "mix_core_alg.py:134 (0.1)",
        "positive_by": "mix_core_alg.py:134: the weight multiplies the positive-advantage term",
        "offpolicy_shaping": "exp_scripts/train.sh (off_policy_reshape=\"p_div_p_0.1\")",
        "onpolicy_form": "mix_core_alg.py, compute_token_on_off_policy_loss: ratio times advantage",
        "onpolicy_clip": "not settled: off, LUFFY's script (loss_remove_clip=True, train.sh:84)",
        "demo_rl": "exp_scripts/train.sh (actor_rollout_ref.actor.use_off_policy_loss=True)",
        "rollout_rl": "mix_core_alg.py, compute_token_on_off_policy_loss (on-policy term)",
        "mix": "mix_actor.py: the SFT term is added to the policy loss (policy_loss - sft_loss * sft_loss_coef)",
        "group_gate": "no per-group switch in the reported code",
        "actor_rollout_ref.actor.loss_agg_mode": "not settled: LUFFY's script, loss_remove_token_mean=True "
                                                 "(train.sh:83): each micro-batch's token sum / T",
        "actor_rollout_ref.actor.loss_scale_factor": "T / 16: 64 prompts x 8 rows / 32 GPUs per optimizer "
                                                     "mini-batch (exp_scripts/train.sh: ppo_mini_batch_size=64, "
                                                     "ppo_micro_batch_size=64, rollout.n=8, nnodes=4 x 8)",
        "actor_rollout_ref.actor.entropy_coeff": "exp_scripts/train.sh:59 (0.001; the recipe's default)",
    },
    "hpt": {
        "demos_per_prompt": "mix_trainer.py:399 (off_add_num = 1: one demonstration in SFT mode)",
        "demo_reward": "not used: the demonstration takes no RL term",
        "group_gate": "mix_trainer.py:394-407 (select_on_off_ada_balance, unify_strategy 'switch'; "
                      "exp_scripts/train.sh:24 UNIFY_STRATEGY=\"switch\")",
        "gate_max_solved": "exp_scripts/train.sh:25 (SWITCH_GATE=0; SWITCH_GATE_OFF=0 at :26 leaves no off-policy "
                           "band); a success is reward == 1 (mix_trainer.py:545 and :609, reward_impl_version=6 at "
                           "train.sh:110); SFT mode when successes <= the gate (mix_trainer.py:397)",
        "norm_adv_by_std": "exp_scripts/train.sh:107 (algorithm.grpo_use_std=False)",
        "demos_in_group_stats": "mix_trainer.py:962: in RL mode the group is the rollouts, no demo is added",
        "use_sft": "exp_scripts/train.sh:27 (OFFLINE_LOSS_TYPE=\"sft\"), mix_actor.py:135-165",
        "sft_weighting": "mix_core_alg.py:7 (compute_sft_pure_loss: token-mean of -log p, no weight)",
        "sft_coef": "exp_scripts/train.sh:28 (SFT_LOSS_COEF=1.0), mix_actor.py:165",
        "sft_entropy_sign": "not used: constant weight",
        "demo_rl": "mix_actor.py:135-165: demonstration rows take the SFT term only",
        "rollout_rl": "mix_actor.py:153 (core_algos.compute_policy_loss on the rollouts)",
        "pos_weighting": "core_algos.py:311 (-A * ratio, no weight)",
        "pos_coef": "core_algos.py:311",
        "offpolicy_shaping": "not used: no off-policy term",
        "onpolicy_form": "core_algos.py:307-311 (ratio)",
        "onpolicy_clip": "exp_scripts/train.sh:109 (loss_remove_clip=True), core_algos.py:314",
        "mix": "mix_actor.py:165 (pg_loss = sft_loss * sft_loss_coef + pg_loss)",
        "actor_rollout_ref.actor.loss_agg_mode": "exp_scripts/train.sh:108 (loss_remove_token_mean=True), "
                                                 "core_algos.py:317 (sum / T)",
        "actor_rollout_ref.actor.loss_scale_factor": "T / 64: mix_fsdp_worker.py:88-91 and mix_actor.py:65 give "
                                                     "gradient accumulation 1 with 64 rows per GPU "
                                                     "(train.sh:55-56, 8 GPUs)",
        "actor_rollout_ref.actor.entropy_coeff": "exp_scripts/train.sh:79 (0.001; the recipe's default)",
    },
    "chord": {
        "demos_per_prompt": "not settled: CHORD draws expert rows from a separate SFT set (expert_data_ratio 0.20 "
                            "in mix_chord.yaml); here each prompt's own demonstration, 1 per group",
        "demo_reward": "not used: expert rows take no RL term",
        "mix": "chord_policy_loss.py, MIXCHORDPolicyLossFn (loss = (1 - mu) * grpo_loss + mu * sft_loss)",
        "mu_warmup_steps": "examples/mix_chord/mix_chord.yaml (mu_warmup_steps: 200)",
        "mu_decay_steps": "examples/mix_chord/mix_chord.yaml (mu_decay_steps: 400)",
        "mu_peak": "examples/mix_chord/mix_chord.yaml (mu_peak: 0.5)",
        "mu_valley": "examples/mix_chord/mix_chord.yaml (mu_valley: 0.02)",
        "use_sft": "chord_policy_loss.py: the SFT loss on expert rows",
        "sft_weighting": "mix_chord.yaml (enable_phi_function: true), chord_policy_loss.py phi_function p(1-p)",
        "sft_coef": "chord_policy_loss.py: mu is the only coefficient",
        "sft_entropy_sign": "not used: phi weight",
        "norm_adv_by_std": "trinity/algorithm/advantage_fn/grpo_advantage.py (std-normalised); "
                           "trinity/algorithm/algorithm.py (mix_chord: advantage_fn grpo)",
        "demos_in_group_stats": "chord_policy_loss.py: GRPO on the rows outside expert_mask only",
        "demo_rl": "chord_policy_loss.py: expert rows take only the SFT loss",
        "rollout_rl": "chord_policy_loss.py (grpo_loss_fn on the usual rows)",
        "pos_weighting": "ppo_policy_loss.py: no weight",
        "pos_coef": "ppo_policy_loss.py",
        "offpolicy_shaping": "not used: no off-policy term",
        "onpolicy_form": "ppo_policy_loss.py (PPOPolicyLossFn: clipped ratio)",
        "onpolicy_clip": "mix_chord.yaml (clip_range: 0.2)",
        "group_gate": "no per-group switch in the code",
        "actor_rollout_ref.actor.loss_agg_mode": "ppo_policy_loss.py (loss_agg_mode token-mean), mix_chord.yaml "
                                                 "(use_token_level_loss_in_sft: true)",
        "actor_rollout_ref.actor.entropy_coeff": "not set by mix_chord.yaml; Trinity's entropy_loss_fn defaults "
                                                 "entropy_coef to 0.0 (entropy_loss_fn.py@7e8c944)",
    },
}

#: Rows of one optimizer mini-batch on one GPU in the published mix_src scripts (LUFFY's, HPT's and the SRFT
#: code's). Their workers multiply ``ppo_mini_batch_size`` and ``ppo_micro_batch_size`` (both 64 prompts in the
#: scripts) by ``rollout.n`` (8) and divide both by the GPUs (``mix_fsdp_worker.py:88-91`` in LUFFY@01f4ae0 and
#: HPT@ae332f5), so their gradient accumulation (``mix_actor.py``: mini // micro) is 1: each token-budget
#: micro-batch adds ``sum over its tokens / T`` (``loss_remove_token_mean=True``) and the GPUs' gradients are
#: averaged. Over one mini-batch of R rows that is ``sum / (T * GPUs) = sum / (R * T / rows_per_gpu)``: verl's
#: ``seq-mean-token-sum-norm`` with ``loss_scale_factor = T / rows_per_gpu``. 64 x 8 / 8 GPUs = 64 for LUFFY and
#: HPT, 64 x 8 / 32 GPUs = 16 for the SRFT code (4 x 8 GPUs). (An earlier reading took 8 rows per micro-batch,
#: missing the multiplication by rollout.n, and gave T / 8.)
MIX_SRC_ROWS_PER_GPU = {"luffy": 64, "hpt": 64, "srft_code": 16}


class ResponseLengthOver(int):
    """A :data:`PRESET_VERL` value that depends on the run: ``max_response_length // self`` (at least 1)."""

    def value(self, max_response_length: int) -> int:
        return max(1, int(max_response_length) // int(self))


def _sum_over_t(preset: str, who: str) -> dict[str, tuple]:
    rows = MIX_SRC_ROWS_PER_GPU[preset]
    return {
        "actor_rollout_ref.actor.loss_agg_mode": (
            "seq-mean-token-sum-norm", f"{who} sums the RL loss over tokens and divides by the response length"),
        "actor_rollout_ref.actor.loss_scale_factor": (
            ResponseLengthOver(rows), f"{who}: the constant is max_response_length / {rows}, {rows} rows of an "
                                      f"optimizer mini-batch per GPU in its script ({8192 // rows} for 8192 tokens)"),
    }


#: verl settings that are part of what a preset reproduces: key -> (required value, why). A
#: :class:`ResponseLengthOver` value means "must be set" (the overrides write max_response_length // it).
#: ``check_verl_config`` refuses a contradiction at start-up; :func:`preset_verl_overrides` writes the fix.
PRESET_VERL: dict[str, dict[str, tuple]] = {
    "luffy": _sum_over_t("luffy", "LUFFY"),
    "srft_code": _sum_over_t("srft_code", "the SRFT code (LUFFY's mix_src script; not settled by the notes)"),
    "hpt": _sum_over_t("hpt", "HPT"),
    "chord": {
        "actor_rollout_ref.actor.loss_agg_mode": (
            "token-mean", "CHORD takes a token-mean of each loss type (PPOPolicyLossFn, use_token_level_loss_in_sft)"),
        "actor_rollout_ref.actor.entropy_coeff": (
            0.0, "CHORD's example config sets no entropy bonus (Trinity's entropy_coef defaults to 0)"),
    },
}


def preset_verl_overrides(preset: str, max_response_length: int) -> list[str]:
    """Hydra overrides of the verl settings :data:`PRESET_VERL` ties to ``preset`` (empty for most presets).

    ``run_scripts/_common.sh`` and ``qwen_math*.sh`` write the same values in bash (tests/test_run_scripts.py
    checks they agree)."""
    out = []
    for key, (want, _why) in PRESET_VERL.get(preset, {}).items():
        value = want.value(max_response_length) if isinstance(want, ResponseLengthOver) else want
        out.append(f"{key}={value}")
    return out


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
    #: A per-group gate computed after the rewards: "none", or "hpt" (HPT's switch: SFT on the demonstration when
    #: at most ``gate_max_solved`` rollouts solved the prompt, else RL on the rollouts; ``advantage.hpt_switch``).
    group_gate: str = "none"
    #: ``group_gate=hpt``: a group whose rollouts solved at most this many times goes to SFT mode (HPT: 0).
    gate_max_solved: int = 0
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
        if self.group_gate not in ("none", "hpt"):
            raise ValueError(f"srft.group_gate must be 'none' or 'hpt', got {self.group_gate!r}")
        if isinstance(self.gate_max_solved, bool) or not isinstance(self.gate_max_solved, int) or self.gate_max_solved < 0:
            raise ValueError(f"srft.gate_max_solved must be an integer >= 0, got {self.gate_max_solved!r}")
        if self.group_gate == "hpt" and self.demos_per_prompt < 1:
            raise ValueError("srft.group_gate=hpt needs demonstrations (srft.demos_per_prompt >= 1)")


_LOSS_FIELDS = {f.name for f in fields(SRFTLossConfig)}
_TOP_FIELDS = {"demos_per_prompt", "demo_reward", "norm_adv_by_std", "demos_in_group_stats",
               "demo_fields", "replay_poll_interval_s", "dump_minibatches_dir",
               "startup_timeout_s", "step_timeout_s", "weight_sync_timeout_s",
               "group_gate", "gate_max_solved", "data_check", "data_check_reward_rows"}
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
