"""Entry point: ``python -m recipe_srft.main_srft [hydra overrides]`` (config: ``config/srft_trainer.yaml``).

Equivalent to ``python -m verl.trainer.main_ppo --config-path <this package>/config --config-name
srft_trainer``: verl's own validation and ``run_ppo`` with its V1 task runner; the trainer
``srft`` is registered by this package's verl plugin in every Ray process.
"""

from __future__ import annotations

import hydra

from .tools.quiet import quiet_verl_imports

quiet_verl_imports()  # before verl is imported (SRFT_VERL_WARNINGS=1 shows its import warnings)

from .integration import trainer  # noqa: E402,F401  (registers trainer_mode=srft in this process)


@hydra.main(config_path="config", config_name="srft_trainer", version_base=None)
def main(config):
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    from .srft_config import describe
    from .data_check import preflight_data_check
    from .integration.trainer import check_verl_config, srft_config_from

    auto_set_device(config)
    srft = srft_config_from(config)  # fail fast, before Ray starts, on an inconsistent srft section
    check_verl_config(config, srft)
    preflight_data_check(config, srft)  # srft.data_check=error stops here, before Ray, when the files are here
    print("SRFT:", describe(srft), flush=True)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    run_ppo(config, task_runner_class=TaskRunnerV1)


if __name__ == "__main__":
    main()
