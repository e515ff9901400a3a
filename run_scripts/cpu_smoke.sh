#!/usr/bin/env bash
# SRFT through verl's real V1 trainer (python -m recipe_srft.main_srft), 2 steps on a tiny random model on the CPU:
# demonstrations in the GRPO groups, validation, batched HF rollout server, FSDP2 update over gloo, checkpoint.
# TRAINER=grpo runs verl's stock GRPO (python -m verl.trainer.main_ppo) instead. ~1.5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export VERL_PLATFORM="${VERL_PLATFORM:-cpu}"  # this launcher is CPU-only (no "No supported accelerator" probe)
exec "$PY" -m recipe_srft.cpu.smoke --out "${OUT:-runs/cpu_smoke}" --steps "${STEPS:-2}" --trainer "${TRAINER:-srft}" "$@"
