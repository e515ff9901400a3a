"""verl 0.9.1 settings that the SRFT trainer cannot honour, refused at start-up.

The SRFT trainer replaces verl's policy loss (``set_loss_fn``), its advantage step and the rollout of
training prompts; a verl switch that only acts inside those parts would be silently ignored (or crash
later). :data:`REFUSED` lists each such key with the values SRFT honours (verl's default first), why
any other value cannot work and the fix; :func:`unhonoured_verl_settings` reports every key whose value
is not honoured. A knob that verl reads only when one of these switches is on (``kl_loss_coef``,
``policy_loss.clip_cov_ratio``, ``tau_pos``, ``rollout_is_threshold``, ...) is inert in verl as well and
is not listed separately.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from omegaconf import OmegaConf

__all__ = ["REFUSED", "Refusal", "async_save_problem", "preset_verl_conflicts", "unhonoured_verl_settings"]


class Refusal(NamedTuple):
    key: str  #: dotted path in the composed config
    honoured: tuple  #: the values SRFT honours (verl's default first); anything else is refused
    why: str  #: why SRFT cannot honour another value
    fix: str  #: what to do instead


REFUSED: tuple[Refusal, ...] = (
    Refusal("trainer.use_v1", (True,),
            "verl's main_ppo then runs its legacy RayPPOTrainer, which never builds the SRFT trainer "
            "(trainer.v1.trainer_mode): no demonstrations, no SRFT loss",
            "set trainer.use_v1=true (srft_trainer.yaml states it)"),
    Refusal("actor_rollout_ref.actor.policy_loss.loss_mode", ("vanilla",),
            "the SRFT loss (Eq. 8-13) replaces verl's policy loss, the mode (and its knobs clip_cov_*, kl_cov_ratio, "
            "ppo_kl_coef, dro_beta, tau_pos/tau_neg) would never be used",
            "remove the override (SRFT's on-policy term is verl's vanilla clipped surrogate, or the paper's "
            "Eq. 12 with srft.onpolicy_form=reinforce)"),
    Refusal("actor_rollout_ref.actor.use_kl_loss", (False, None),
            "a reference model would be built but its KL (kl_loss_coef, kl_loss_type) never enters the SRFT loss "
            "(Eq. 13 has no KL term)",
            "set actor_rollout_ref.actor.use_kl_loss=false"),
    Refusal("actor_rollout_ref.actor.use_rollout_log_probs", (False, None),
            "verl 0.9.1's V1 trainer never reads it (rollout log-probs replace the old ones only in "
            "rollout_correction.bypass_mode, which SRFT cannot run)",
            "remove the override"),
    Refusal("algorithm.norm_adv_by_std_in_grpo", (True,),
            "the SRFT trainer computes the group advantage itself (Eq. 7) and reads srft.norm_adv_by_std instead",
            "remove the override and set srft.norm_adv_by_std=false (with srft.preset=custom; srft.preset=luffy "
            "already has it)"),
    Refusal("algorithm.rollout_correction.rollout_is", (None,),
            "verl computes the importance weights in the advantage step that the SRFT trainer replaces, and the "
            "SRFT loss never reads rollout_is_weights (demonstrations have no behaviour log-probs either)",
            "remove the override (algorithm.rollout_correction.rollout_is=null)"),
    Refusal("algorithm.rollout_correction.rollout_rs", (None,),
            "verl's rejection sampling runs in the advantage step that the SRFT trainer replaces: no trajectory "
            "would ever be rejected",
            "remove the override (algorithm.rollout_correction.rollout_rs=null)"),
    Refusal("algorithm.rollout_correction.bypass_mode", (False, None),
            "verl then skips the old-policy forward pass, so the entropy that the SRFT weights need (Eq. 8, 11) is "
            "never computed (the SRFT trainer's _update_actor fails) and the demonstrations' placeholder "
            "log-probs would become their old log-probs",
            "set algorithm.rollout_correction.bypass_mode=false"),
    Refusal("algorithm.use_pf_ppo", (False, None),
            "PF-PPO reweighting is part of verl's advantage step, which the SRFT trainer replaces (verl's V1 "
            "trainer does not apply it either)",
            "remove the override"),
    Refusal("critic.enable", (None, False),
            "SRFT uses group advantages (Eq. 7) and no value model: a critic would be built and trained but never "
            "used",
            "set critic.enable=false (or leave it null)"),
    Refusal("distillation.enabled", (False, None),
            "teacher servers would be started but the SRFT loss replaces verl's distillation loss, so the teacher "
            "never enters the update",
            "set distillation.enabled=false"),
    Refusal("actor_rollout_ref.rollout.agent.default_agent_loop", ("single_turn_agent",),
            "the SRFT trainer sends every training prompt to its single-turn srft_agent loop (rollouts plus "
            "demonstrations), so this loop would only run for validation",
            "remove the override (multi-turn and tool rollouts are not supported by SRFT)"),
)

_ABSENT = object()

#: verl 0.9.1 saves asynchronously only with Megatron (utils/checkpoint/megatron_checkpoint_manager.py:1136 writes
#: the tracker when its save lands); the FSDP checkpoint manager has no async path and saves synchronously, yet the
#: V1 trainer's _save_checkpoint still skips writing latest_checkpointed_iteration.txt when the flag is on
#: (trainer/ppo/v1/trainer_base.py:1012), and trainer.resume_mode=auto finds saves only through that file
#: (utils/checkpoint/checkpoint_manager.py:222 find_latest_ckpt_path)
ASYNC_SAVE = "actor_rollout_ref.actor.checkpoint.async_save"


def async_save_problem(config) -> list[str]:
    """``async_save=true`` under an FSDP actor: nothing is saved asynchronously and every save is lost to resume."""
    strategy = str(OmegaConf.select(config, "actor_rollout_ref.actor.strategy", default="fsdp"))
    if OmegaConf.select(config, ASYNC_SAVE, default=False) is not True or strategy == "megatron":
        return []
    return [f"{ASYNC_SAVE}=true: verl 0.9.1 saves asynchronously only with Megatron; with "
            f"actor_rollout_ref.actor.strategy={strategy} the checkpoint is written synchronously anyway, but the "
            "trainer then skips latest_checkpointed_iteration.txt (verl/trainer/ppo/v1/trainer_base.py:1012), so "
            "trainer.resume_mode=auto would never find a save and a restarted run would start again from step 0; "
            f"set {ASYNC_SAVE}=false"]


def unhonoured_verl_settings(config) -> list[str]:
    """One message per :data:`REFUSED` key whose value in ``config`` (composed OmegaConf) SRFT cannot honour.

    A key missing from the config (or under a ``null`` section) takes verl's default and is honoured. Also
    :func:`async_save_problem`, the one refusal that depends on another key (the actor's strategy).
    """
    problems = []
    for row in REFUSED:
        value = OmegaConf.select(config, row.key, default=_ABSENT)
        if value is _ABSENT or value in row.honoured:
            continue
        problems.append(f"{row.key}={_show(value)}: {row.why}; {row.fix}")
    return problems + async_save_problem(config)


def preset_verl_conflicts(config, preset: str) -> list[str]:
    """One message per verl key that contradicts what ``srft.preset`` reproduces (``srft_config.PRESET_VERL``)."""
    from ..srft_config import PRESET_VERL, ResponseLengthOver, preset_verl_overrides

    rules = PRESET_VERL.get(preset, {})
    problems = []
    for key, (want, why) in rules.items():
        value = OmegaConf.select(config, key, default=None)
        if isinstance(want, ResponseLengthOver):  # run-dependent: any value, the fix names the published one
            bad, need = value is None, "a value"
        else:
            bad, need = _differs(value, want), _show(want)
        if bad:
            problems.append(f"{key}={_show(value)} contradicts srft.preset={preset}, which needs {need} ({why})")
    if problems:
        # the fix is the overrides the CPU scripts add for this preset (run_scripts/ write the same in bash)
        response_length = OmegaConf.select(config, "data.max_response_length", default=None) or 8192
        problems.append(
            "fix: add " + " ".join(preset_verl_overrides(preset, int(response_length)))
            + f" (PRESET={preset} in run_scripts/ sets them), or use srft.preset=custom with the switches you want"
        )
    return problems


def _differs(value: Any, want: Any) -> bool:
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        return isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != float(want)
    return value != want


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
