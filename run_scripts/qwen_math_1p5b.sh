#!/usr/bin/env bash
# SRFT on Qwen2.5-Math-1.5B with 4 GPUs: the main run's recipe (run_scripts/qwen_math.sh) scaled down.
#
# Differences from the 7B run, and why:
#   * model Qwen/Qwen2.5-Math-1.5B: its config has max_position_embeddings 4096, so prompt + response must fit
#     in 4096 positions (srft_method.md pitfall 4; vLLM would otherwise cap every response at the window).
#     Chosen: MAX_PROMPT_LENGTH 1024 + MAX_RESPONSE_LENGTH 3072 = 4096. To train with 8192-token responses use a
#     base with a longer window (MODEL_PATH=<long-context 1.5B> MAX_RESPONSE_LENGTH=8192); the dry run checks
#     the sum against the model's config.json (or its known limit) and fails when it does not fit.
#   * OpenR1 demonstrations are up to 8192 tokens: with 3072 most long ones would be truncated, score 0 and
#     turn into negative examples (pitfall 2). Drop them at data-prep time: PREP_FIX=drop with a local
#     MODEL_PATH runs `python -m data_prep.validate <converted> --tokenizer $MODEL_PATH --max-prompt-length 1024
#     --max-response-length 3072 --fix drop --output $TRAIN_FILE` after the conversion.
#   * the base model's chat template does not open "<think>": the LUFFY system prompt asks for
#     <think> ... </think> and the reward (THINK_FORMAT=true) requires "</think>" (pitfall 3). Set
#     THINK_FORMAT=false together with a "boxed" data template if you do not want that rule.
#   * 4 GPUs, vLLM TP 1 (4 rollout replicas), 16384 tokens per GPU for the dynamic batches.
#   Batch sizes stay the paper's (128 prompts, mini-batch 64, 8 rollouts + the preset's demos).
#
# Usage: as run_scripts/qwen_math.sh, e.g.
#   RAW_TRAIN_FILE=/data/luffy/openr1.parquet MODEL_PATH=/models/Qwen2.5-Math-1.5B PREP_FIX=drop \
#       bash run_scripts/qwen_math_1p5b.sh
#   DRY_RUN=1 PRESET=luffy bash run_scripts/qwen_math_1p5b.sh
# Environment: see run_scripts/qwen_math.sh and run_scripts/_common.sh (same variables, defaults below).
#   MAX_CKPT_TO_KEEP [3]: one FSDP checkpoint of the 1.5B actor is ~18.5 GB (1,543,714,304 parameters x 12 B:
#   6.2 GB fp32 weights + 12.3 GB Adam moments); the last 3 of the 10 saves are ~56 GB, all 10 ~185 GB
#   (DRY_RUN=1 prints the estimate for the settings given).
set -euo pipefail
SRFT_CALLER_PWD="$PWD"
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

: "${MODEL_PATH:=Qwen/Qwen2.5-Math-1.5B}"
: "${TRAIN_FILE:=${_root}/data/openr1_46k_1p5b_3072.parquet}"
: "${PRESET:=srft}"
: "${NNODES:=1}"
: "${GPUS_PER_NODE:=4}"
: "${ROLLOUT_TP:=1}"
: "${GPU_MEMORY_UTILIZATION:=0.6}"
: "${MAX_PROMPT_LENGTH:=1024}"
: "${MAX_RESPONSE_LENGTH:=3072}"
: "${TOKENS_PER_GPU:=16384}"
: "${TRAIN_BATCH_SIZE:=128}"
: "${PPO_MINI_BATCH_SIZE:=64}"
: "${PPO_EPOCHS:=1}"
case "${PRESET}" in luffy | srft_code) : "${N_ROLLOUTS:=7}" ;; esac  # LUFFY's mix_src layout: 7 rollouts + 1 demo
case "${PRESET}" in chord) : "${ENTROPY_COEFF:=0}" ;; esac  # CHORD's example config: no entropy bonus
: "${N_ROLLOUTS:=8}"
: "${TEMPERATURE:=1.0}"
: "${LR:=1e-6}"
: "${ENTROPY_COEFF:=0.001}"
: "${TOTAL_STEPS:=500}"
: "${TEST_FREQ:=25}"
: "${SAVE_FREQ:=50}"
: "${MAX_CKPT_TO_KEEP:=3}"  # ~18.5 GB per checkpoint of the 1.5B actor (see above): ~56 GB kept, not ~185 GB
: "${LOGGER:=[console,tensorboard]}"
: "${PROJECT_NAME:=srft}"
: "${EXPERIMENT_PREFIX:=qwen2.5-math-1.5b}"
: "${STRATEGY:=fsdp2}"
: "${THINK_FORMAT:=true}"

# shellcheck source=run_scripts/_common.sh
source "${_root}/run_scripts/_common.sh"
srft_launch "$@"
