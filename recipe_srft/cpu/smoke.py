"""CPU smoke run of verl's real trainer: a tiny random model, a few steps, validation, a checkpoint.

    python -m recipe_srft.cpu.smoke --out runs/smoke [--steps 2] [--trainer srft|grpo] [-- extra hydra overrides]

``--trainer srft`` (default) runs SRFT (``python -m recipe_srft.main_srft``, demonstrations in the
groups); ``--trainer grpo`` runs verl's stock GRPO (``python -m verl.trainer.main_ppo``).

It builds the tiny model and data offline (cached under ``--cache``), exports the CPU
environment and runs ``python -m <entry> --config-dir recipe_srft/config +runtime=cpu ...``
in a subprocess, teeing its output to ``OUT/train.log``. Tests and the scripts in
``run_scripts/`` share these overrides so that what CI checks is what users run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from .env import CONFIG_DIR, apply_cpu_env


def smoke_overrides(model: str, train_files: str, val_files: str, out_dir: str, steps: int = 2,
                    batch_size: int = 4, n: int = 4, max_prompt_length: int = 64,
                    max_response_length: int = 16) -> list[str]:
    """Hydra overrides of a small GRPO run on the CPU runtime (``+runtime=cpu``)."""
    return [
        "+runtime=cpu",
        "algorithm.adv_estimator=grpo",
        f"data.train_files={train_files}",
        f"data.val_files={val_files}",
        f"data.train_batch_size={batch_size}",
        f"data.max_prompt_length={max_prompt_length}",
        f"data.max_response_length={max_response_length}",
        f"actor_rollout_ref.model.path={model}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={batch_size}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={batch_size}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={batch_size}",
        f"actor_rollout_ref.rollout.n={n}",
        "actor_rollout_ref.actor.optim.lr=1e-3",
        f"trainer.total_training_steps={steps}",
        f"trainer.save_freq={steps}",
        f"trainer.test_freq={steps}",
        f"trainer.default_local_dir={out_dir}/ckpt",
        "trainer.project_name=srft_cpu",
        "trainer.experiment_name=smoke",
    ]


def prepare_assets(cache: Path) -> tuple[Path, Path, Path]:
    """Tiny model + smoke data under ``cache`` (built once)."""
    from .smoke_data import write_smoke_data
    from .tiny_model import build_tiny_model

    model = cache / "tiny_qwen2"
    if not (model / "model.safetensors").exists():
        build_tiny_model(model)
    data = cache / "smoke_data"
    if not (data / "val.parquet").exists():
        write_smoke_data(data)
    return model, data / "train.parquet", data / "val.parquet"


def run_trainer(overrides: list[str], out_dir: Path, entry: str = "verl.trainer.main_ppo",
                config_dir: Path = CONFIG_DIR, config_name: str | None = None, timeout: int = 900,
                echo: bool = True) -> subprocess.CompletedProcess:
    """Runs ``python -m entry`` with the CPU environment; output goes to ``out_dir/train.log``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", entry, "--config-dir", str(config_dir)]
    if config_name:
        cmd += ["--config-name", config_name]
    cmd += overrides
    env = apply_cpu_env(dict(os.environ))
    log_path = out_dir / "train.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=out_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        lines = []
        try:
            for line in proc.stdout:
                log.write(line)
                lines.append(line)
                if echo and ("step:" in line or "Training Progress" in line or "Error" in line):
                    sys.stdout.write(line)
            proc.wait(timeout=timeout)
        except BaseException:
            proc.kill()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/smoke", help="run directory (log, checkpoints)")
    parser.add_argument("--cache", default=os.environ.get("SRFT_CACHE", ".cache"), help="where the tiny model/data live")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--trainer", choices=("srft", "grpo"), default="srft",
                        help="srft: recipe_srft.main_srft (SRFT); grpo: verl.trainer.main_ppo (stock GRPO)")
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    model, train, val = prepare_assets(Path(args.cache).resolve())
    overrides = smoke_overrides(str(model), str(train), str(val), str(out), args.steps)
    if args.trainer == "srft":
        # SRFT counts mini-batches in prompts like verl; the algorithm settings come from srft_trainer.yaml
        overrides = [o for o in overrides if not o.startswith("algorithm.adv_estimator")]
        result = run_trainer(overrides + args.overrides, out, entry="recipe_srft.main_srft",
                             config_name="srft_trainer")
    else:
        result = run_trainer(overrides + args.overrides, out)
    print(f"log: {out / 'train.log'} (exit code {result.returncode})")
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
