#!/usr/bin/env bash
# Same-budget comparison on the CPU demo task (SmolLM2-135M-Instruct): srft, luffy, grpo, sft (verl's SFT trainer)
# and sft_rl (SFT then GRPO), K seeds each (--seeds K, --seeds-for srft=3,...), with runs/cpu_compare/runs.jsonl (one
# record per run), results.md (mean and 95% interval over seeds; srft_code against srft problem by problem), figure.png
# (per-seed accuracy), entropy.png (rollout entropy per update, mean over seeds) and curves.png
# (training metrics of seed 0). Budget rules and options: `python -m recipe_srft.experiments.compare --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export VERL_PLATFORM="${VERL_PLATFORM:-cpu}"  # this launcher is CPU-only (no "No supported accelerator" probe)
exec "$PY" -m recipe_srft.experiments.compare --out "${OUT:-runs/cpu_compare}" "$@"
