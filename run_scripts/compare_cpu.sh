#!/usr/bin/env bash
# Same-budget comparison on the CPU demo task: SRFT vs GRPO vs SFT-only (SmolLM2-135M-Instruct), with a results
# table (runs/cpu_compare/results.md) and a figure of reward, response length, entropy and the SRFT weights per step
# (runs/cpu_compare/figure.png). Options: see `python -m recipe_srft.experiments.compare --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export VERL_PLATFORM="${VERL_PLATFORM:-cpu}"  # this launcher is CPU-only (no "No supported accelerator" probe)
exec "$PY" -m recipe_srft.experiments.compare --out "${OUT:-runs/cpu_compare}" "$@"
