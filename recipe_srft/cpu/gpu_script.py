"""A GPU run script (``run_scripts/qwen_math.sh``) itself, on the CPU runtime, with verl's vLLM rollout.

    python -m recipe_srft.cpu.gpu_script [--script qwen_math.sh] [--preset srft|luffy|sft_rl|...] [--steps 2]
        [--gpus 1|2] [--model PATH] [--out runs/gpu_script] [--list-only] [-- extra hydra overrides]

The script composes its verl config exactly as on a cluster: it runs with ``DRY_RUN=overrides``, which prints the
overrides it would pass to ``python -m recipe_srft.main_srft`` (for ``PRESET=sft_rl``: the stage-2 GRPO launch).
What changes for the CPU, and nothing else:

1. **model and data** (``MODEL_PATH``, ``TRAIN_FILE``, ``VAL_FILE``): the tiny random model and the smoke data,
   or ``--model``; ``THINK_FORMAT=false`` because the smoke data has no ``<think>`` format;
2. **sizes**, through the script's own variables (:data:`CPU_SIZES`): batch, mini-batch (two optimizer mini-batches
   per step, as on the cluster), rollouts, lengths, token budgets, GPUs, TP 1, steps, frequencies, logger, folders;
3. ``+runtime=cpu`` in front (``config/runtime/cpu.yaml``; every key and why: ``docs/config.md``, "CPU runtime
   keys"), and after the script's own overrides the keys the script sets that cannot hold on a CPU
   (:data:`CUDA_ONLY_OVERRIDES`).

:func:`config_changes` composes the GPU and the CPU configs and lists every key whose value differs, each with its
reason; the run prints that list, and ``tests/test_gpu_script_cpu.py`` fails if a key changes without a reason.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG_MD = REPO / "docs" / "config.md"

#: The keys the GPU script sets that must change on a CPU, set after the script's overrides, each with why.
CUDA_ONLY_OVERRIDES = {
    "actor_rollout_ref.model.use_remove_padding": (
        "false", "packed (remove-padding) sequences need flash-attn's varlen kernels; eager attention on the CPU "
                 "would let packed sequences attend to each other"),
}

#: The run script's size variables on the CPU (two optimizer mini-batches per step, as the cluster run has).
CPU_SIZES = {
    "NNODES": "1", "GPUS_PER_NODE": "1", "ROLLOUT_TP": "1", "TRAIN_BATCH_SIZE": "4", "PPO_MINI_BATCH_SIZE": "2",
    "N_ROLLOUTS": "3", "MAX_PROMPT_LENGTH": "64", "MAX_RESPONSE_LENGTH": "16", "TOKENS_PER_GPU": "512",
    "TOTAL_STEPS": "2", "TEST_FREQ": "2", "SAVE_FREQ": "2", "LOGGER": "[console]", "THINK_FORMAT": "false",
}
#: Hydra keys those variables (and the model/data/folder variables) set: a difference there is a size, not a change
#: of the algorithm or the engine.
SIZE_KEYS = {
    "data.train_batch_size", "actor_rollout_ref.actor.ppo_mini_batch_size", "actor_rollout_ref.rollout.n",
    "data.max_prompt_length", "data.max_response_length", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu",
    "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu", "trainer.total_training_steps", "trainer.test_freq",
    "trainer.save_freq", "trainer.logger", "trainer.nnodes", "trainer.n_gpus_per_node",
    "actor_rollout_ref.rollout.tensor_model_parallel_size", "actor_rollout_ref.actor.loss_scale_factor",
    "trainer.save_freq", "trainer.default_local_dir", "trainer.experiment_name", "trainer.project_name",
    "ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR", "actor_rollout_ref.model.path", "data.train_files",
    "data.val_files", "reward.custom_reward_function.reward_kwargs.think_format",
}


def script_overrides(script: str, env: dict) -> list[str]:
    """The overrides ``bash run_scripts/<script>`` passes to the trainer under ``env`` (``DRY_RUN=overrides``)."""
    proc = subprocess.run(["bash", str(REPO / "run_scripts" / script)], env={**os.environ, **env, "DRY_RUN": "overrides"},
                          capture_output=True, text=False, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} (DRY_RUN=overrides) failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    return [item.decode() for item in proc.stdout.split(b"\0") if item]


def script_env(preset: str, model: str, train: str, val: str, out: Path, gpus: int = 1, steps: int = 2,
               **variables: str) -> dict:
    """The script's variables for a CPU run: :data:`CPU_SIZES`, model, data, folders, then ``variables``."""
    env = dict(CPU_SIZES, PRESET=preset, MODEL_PATH=str(model), TRAIN_FILE=str(train), VAL_FILE=str(val),
               CKPT_DIR=str(out / "ckpt"), TENSORBOARD_DIR=str(out / "tensorboard"), PYTHON=sys.executable,
               GPUS_PER_NODE=str(gpus), TOTAL_STEPS=str(steps), TEST_FREQ=str(steps), SAVE_FREQ=str(steps),
               N_ROLLOUTS=CPU_SIZES["N_ROLLOUTS"])  # also for luffy, whose script default is 7
    env.update({k: str(v) for k, v in variables.items()})
    return env


def cpu_overrides(gpu_overrides: list[str], extra: list[str] = ()) -> list[str]:
    """``+runtime=cpu``, the script's overrides, then :data:`CUDA_ONLY_OVERRIDES` and ``extra`` (which win)."""
    return (["+runtime=cpu"] + list(gpu_overrides)
            + [f"{key}={value}" for key, (value, _) in CUDA_ONLY_OVERRIDES.items()] + list(extra))


def script_config(script: str, preset: str, model, train, val, out: Path, *, gpus: int = 1, steps: int = 2,
                  extra: list[str] = (), **variables: str) -> tuple[list[str], list[str], dict]:
    """(the script's overrides as on a cluster, the CPU run's overrides, the script's variables) for ``preset``.

    ``sft_rl``: the stage-2 launch; ``DRY_RUN=overrides`` names a placeholder for stage 1's model, ``model`` is used.
    """
    env = script_env(preset, model, train, val, out, gpus, steps, **variables)
    gpu = script_overrides(script, env)
    if preset == "sft_rl":
        gpu = [o for o in gpu if not o.startswith("actor_rollout_ref.model.path=")] + \
              [f"actor_rollout_ref.model.path={model}"]
    return gpu, cpu_overrides(gpu, extra), env


def _flatten(node, prefix: str = "") -> dict:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    out = {}
    if isinstance(node, DictConfig):
        for key in node.keys():
            value = node._get_node(key)
            path = f"{prefix}{key}"
            if isinstance(value, DictConfig):
                out.update(_flatten(value, path + "."))
            else:
                out[path] = OmegaConf.to_container(value, resolve=False) if isinstance(value, ListConfig) \
                    else value._value()
    return out


def runtime_reasons(config_md: Path = CONFIG_MD) -> dict[str, str]:
    """``docs/config.md``'s "CPU runtime keys" table: key -> why (the home of those reasons)."""
    text = config_md.read_text()
    start = text.index("## CPU runtime keys")
    end = text.find("\n## ", start + 3)
    reasons = {}
    for line in text[start:end if end > 0 else None].splitlines():
        match = re.match(r"^\|\s*`([^`]+)`\s*\|[^|]*\|\s*(.*?)\s*\|\s*$", line)
        if match:
            reasons[match.group(1)] = match.group(2) or "(see docs/cpu_runtime.md)"
    return reasons


def _reason(key: str, reasons: dict[str, str]) -> tuple[str, str] | None:
    if key in CUDA_ONLY_OVERRIDES:
        return "CUDA-only", CUDA_ONLY_OVERRIDES[key][1]
    if key in SIZE_KEYS:
        return "size", "set through the script's own variables (model, data, sizes, folders)"
    for prefix in sorted(reasons, key=len, reverse=True):  # a table row covers its subtree
        if key == prefix or key.startswith(prefix + "."):
            return "CPU runtime", reasons[prefix]
    return None


def config_changes(gpu_overrides: list[str], cpu: list[str]) -> list[dict]:
    """Every key whose value differs between the GPU composition and the CPU one, with its reason (None if none)."""
    from ..tools.dry_run import compose_config

    gpu_cfg, cpu_cfg = _flatten(compose_config(gpu_overrides)), _flatten(compose_config(cpu))
    reasons = runtime_reasons()
    changes = []
    for key in sorted(set(gpu_cfg) | set(cpu_cfg)):
        if key.startswith("hydra."):
            continue
        before, after = gpu_cfg.get(key, "<absent>"), cpu_cfg.get(key, "<absent>")
        if before == after:
            continue
        kind, why = _reason(key, reasons) or (None, None)
        changes.append({"key": key, "gpu": before, "cpu": after, "kind": kind, "why": why})
    return changes


def format_changes(changes: list[dict]) -> str:
    lines = [f"GPU script on the CPU: {len(changes)} keys differ from the cluster config"]
    for kind in ("CUDA-only", "CPU runtime", "size", None):
        rows = [c for c in changes if c["kind"] == kind]
        if not rows:
            continue
        lines.append(f"  [{kind or 'NO REASON'}]")
        for c in rows:
            why = "" if kind == "size" else f"  -- {c['why']}" if c["why"] else ""
            lines.append(f"    {c['key']}: {c['gpu']!r} -> {c['cpu']!r}{why}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--script", default="qwen_math.sh")
    parser.add_argument("--preset", default="srft", help="the script's PRESET (sft_rl: its stage-2 launch)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--gpus", type=int, default=1, help="GPUS_PER_NODE: FSDP ranks and vLLM engines (1 or 2)")
    parser.add_argument("--model", default=None, help="model folder (default: the tiny random model)")
    parser.add_argument("--out", default="runs/gpu_script")
    parser.add_argument("--cache", default=os.environ.get("SRFT_CACHE", str(REPO / ".cache")))
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--list-only", action="store_true", help="print the changed keys, do not train")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="another variable of the script (e.g. LR=1e-3), repeatable")
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides (after everything else)")
    args = parser.parse_args(argv)
    from .env import apply_cpu_env
    from .smoke import prepare_assets, run_trainer

    apply_cpu_env()
    out = Path(args.out).resolve()
    model, train, val = prepare_assets(Path(args.cache).resolve())
    model = Path(args.model).resolve() if args.model else model
    gpu, cpu, env = script_config(args.script, args.preset, model, train, val, out, gpus=args.gpus, steps=args.steps,
                                  extra=args.overrides, **dict(v.split("=", 1) for v in args.var))
    print(f"{args.script} on the CPU, with the script's own variables: " + " ".join(f"{k}={v}" for k, v in env.items()
                                                                                 if k != "PYTHON"), flush=True)
    changes = config_changes(gpu, cpu)
    print(format_changes(changes), flush=True)
    if args.list_only:
        return
    result = run_trainer(cpu, out, entry="recipe_srft.main_srft", config_name="srft_trainer", timeout=args.timeout)
    print(f"log: {out / 'train.log'} (exit code {result.returncode})")
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
