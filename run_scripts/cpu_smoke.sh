#!/usr/bin/env bash
# verl's own trainer (python -m verl.trainer.main_ppo), GRPO, 2 steps on a tiny random model on the CPU:
# validation, rollout through the batched HF server, FSDP2 update over gloo, checkpoint. ~1.5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exec "$PY" -m recipe_srft.cpu.smoke --out "${OUT:-runs/cpu_smoke}" --steps "${STEPS:-2}" "$@"
