"""recipe_srft.integration.verl_checks: verl settings the SRFT trainer cannot honour are refused, with the key and the fix;
verl's defaults, the CPU runtime and every preset of the GPU scripts are not (no Ray, no GPU)."""

from __future__ import annotations

import subprocess

import pytest
from omegaconf import OmegaConf, open_dict

from recipe_srft.tools.dry_run import compose_config
from recipe_srft.integration.verl_checks import REFUSED, unhonoured_verl_settings
from test_run_scripts import PRESETS, REPO, SCRIPTS, _env, script_overrides

#: (override, the key it names, text of the fix) for the settings of the "Honest configuration" issue
CASES = [
    ("actor_rollout_ref.actor.policy_loss.loss_mode=gspo", "actor_rollout_ref.actor.policy_loss.loss_mode=gspo",
     "remove the override"),
    ("actor_rollout_ref.actor.policy_loss.loss_mode=clip_cov", "actor_rollout_ref.actor.policy_loss.loss_mode=clip_cov",
     "remove the override"),
    ("algorithm.rollout_correction.rollout_is=token", "algorithm.rollout_correction.rollout_is=token",
     "algorithm.rollout_correction.rollout_is=null"),
    ("algorithm.rollout_correction.rollout_is=sequence", "algorithm.rollout_correction.rollout_is=sequence",
     "algorithm.rollout_correction.rollout_is=null"),
    ("algorithm.rollout_correction.rollout_rs=seq_mean_k3", "algorithm.rollout_correction.rollout_rs=seq_mean_k3",
     "algorithm.rollout_correction.rollout_rs=null"),
    ("algorithm.rollout_correction.bypass_mode=true", "algorithm.rollout_correction.bypass_mode=true",
     "set algorithm.rollout_correction.bypass_mode=false"),
    ("actor_rollout_ref.actor.use_kl_loss=true", "actor_rollout_ref.actor.use_kl_loss=true",
     "set actor_rollout_ref.actor.use_kl_loss=false"),
    ("algorithm.norm_adv_by_std_in_grpo=false", "algorithm.norm_adv_by_std_in_grpo=false",
     "set srft.norm_adv_by_std=false"),
    # issue 19: the run must not depend on verl's default of trainer.use_v1
    ("trainer.use_v1=false", "trainer.use_v1=false", "set trainer.use_v1=true"),
]


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict:
    """Overrides of the CPU runtime and of the 7B GPU script (as ``DRY_RUN=overrides`` prints them)."""
    tmp = tmp_path_factory.mktemp("verl_checks")
    return {"cpu": ["+runtime=cpu"], "gpu": script_overrides("qwen_math.sh", tmp)}


@pytest.mark.parametrize("base", ["cpu", "gpu"])
@pytest.mark.parametrize("override, named, fix", CASES, ids=[c[0] for c in CASES])
def test_issue_settings_are_refused(bases, base, override, named, fix):
    problems = unhonoured_verl_settings(compose_config(bases[base] + [override]))
    assert len(problems) == 1, problems
    assert problems[0].startswith(named + ": "), problems
    assert fix in problems[0], problems


@pytest.mark.parametrize("overrides", [[], ["+runtime=cpu"]], ids=["srft_trainer", "cpu_runtime"])
def test_defaults_are_honoured(overrides):
    assert unhonoured_verl_settings(compose_config(overrides)) == []


def test_srft_trainer_yaml_states_use_v1_itself():
    """The recipe's yaml sets trainer.use_v1: true, so a flip of verl's default cannot change the trainer."""
    import yaml

    data = yaml.safe_load((REPO / "recipe_srft" / "config" / "srft_trainer.yaml").read_text())
    assert data["trainer"]["use_v1"] is True


@pytest.mark.parametrize("script", sorted(SCRIPTS))
@pytest.mark.parametrize("preset", PRESETS)
def test_gpu_scripts_are_honoured(tmp_path, script, preset):
    assert unhonoured_verl_settings(compose_config(script_overrides(script, tmp_path, PRESET=preset))) == []


def test_every_row_fires_alone_and_accepts_its_honoured_values():
    """Each row of the table is checked (a value it does not honour is reported, naming it) and each of its
    honoured values passes; a row whose key is missing, or under a null section, is honoured."""
    base = compose_config(["+runtime=cpu"])
    for row in REFUSED:
        config = base.copy()
        with open_dict(config):
            OmegaConf.update(config, row.key, "not_a_verl_value", force_add=True)
        assert [p.split(":", 1)[0] for p in unhonoured_verl_settings(config)] == [f"{row.key}=not_a_verl_value"]
        for value in row.honoured:
            with open_dict(config):
                OmegaConf.update(config, row.key, value, force_add=True)
            assert unhonoured_verl_settings(config) == [], (row.key, value)
    assert unhonoured_verl_settings(compose_config(["algorithm.rollout_correction=null"])) == []


def test_dry_run_reports_them(tmp_path, capsys):
    """The dry run fails with the message of check_verl_config (recipe_srft.integration.launch, the trainer's own check)."""
    from recipe_srft.tools import dry_run

    ov = script_overrides("qwen_math_1p5b.sh", tmp_path, "algorithm.rollout_correction.bypass_mode=true",
                          "actor_rollout_ref.actor.use_kl_loss=true")
    assert dry_run.main(ov) == 1
    err = capsys.readouterr().err
    assert "SRFT dry run: FAILED" in err and "SRFT cannot run with this configuration" in err
    assert "algorithm.rollout_correction.bypass_mode=true:" in err and "actor_rollout_ref.actor.use_kl_loss=true:" in err


def test_bash_dry_run_refuses_gspo(tmp_path):
    """The real script: needs ``problems += unhonoured_verl_settings(config)`` in trainer.check_verl_config."""
    proc = subprocess.run(["bash", str(REPO / "run_scripts" / "qwen_math.sh"),
                           "actor_rollout_ref.actor.policy_loss.loss_mode=gspo"],
                          cwd=str(REPO), env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "SRFT dry run: FAILED" in out
    assert "actor_rollout_ref.actor.policy_loss.loss_mode=gspo: the SRFT loss" in out and "remove the override" in out


@pytest.mark.parametrize("base", ["cpu", "gpu"])
def test_async_save_is_refused_under_fsdp_where_it_would_lose_every_save_to_resume(bases, base):
    """verl 0.9.1 has no asynchronous FSDP save, but its V1 trainer skips the resume tracker when the flag is on."""
    key = "actor_rollout_ref.actor.checkpoint.async_save"
    problems = unhonoured_verl_settings(compose_config(bases[base] + [f"{key}=true"]))
    assert len(problems) == 1 and problems[0].startswith(f"{key}=true: "), problems
    assert "latest_checkpointed_iteration.txt" in problems[0] and f"set {key}=false" in problems[0]
    assert unhonoured_verl_settings(compose_config(bases[base] + [f"{key}=false"])) == []


def test_upstream_async_save_is_still_megatron_only_and_still_skips_the_tracker():
    """The refusal answers two facts of verl 0.9.1; when either changes, revisit it (and the SRFT checkpoint bound,
    which is skipped under async_save)."""
    from pathlib import Path

    import verl

    source = lambda rel: (Path(verl.__file__).parent / rel).read_text()  # noqa: E731  (megatron is not installed)
    assert "async_save" not in source("utils/checkpoint/fsdp_checkpoint_manager.py")
    assert "self.checkpoint_config.async_save" in source("utils/checkpoint/megatron_checkpoint_manager.py")
    save = source("trainer/ppo/v1/trainer_base.py")
    assert 'if actor_ckpt_cfg.get("async_save", False):' in save
    assert "skip write latest_checkpointed_iteration.txt when async_save is True" in save
