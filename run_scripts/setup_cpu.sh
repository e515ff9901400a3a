#!/usr/bin/env bash
# Creates (or reuses) ./.venv and installs the CPU stack: torch 2.13.0 CPU wheel, verl[verl-core]==0.9.1,
# the recipe (editable, which registers its verl plugin). About 1-2 minutes and 2.2 GB on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q -e . --no-deps
.venv/bin/python - <<'PY'
import torch, verl
print(f"ready: torch {torch.__version__}, verl {verl.__version__}")
PY
