#!/usr/bin/env bash
# SRFT, the paper's main run (arXiv 2506.19767, srft_method.md section 5): Qwen2.5-Math-7B with a 16k window
# (Elliott/Qwen2.5-Math-7B-16k-think, whose chat template ends the generation prompt with "<think>\n") on
# OpenR1-Math-46k-8192 in LUFFY format; 500 steps, 128 prompts per step, PPO mini-batch 64 (two optimizer
# steps per rollout batch), 1 PPO epoch, lr 1e-6 constant, 8 rollouts + the preset's demonstrations per
# prompt at temperature 1.0, prompts <= 1024 and responses <= 8192 tokens, no KL, entropy coefficient 0.001,
# vLLM rollout with TP 2, FSDP2, dynamic batch size with 32768 tokens per GPU, math-verify reward with
# LUFFY's <think> format rule, validation every 25 steps, a checkpoint every 50 of which the last 3 are kept.
#
# Usage (from anywhere; relative paths are taken from the current directory):
#   MODEL_PATH=/models/Qwen2.5-Math-7B-16k-think TRAIN_FILE=data/openr1.parquet bash run_scripts/qwen_math.sh
#   RAW_TRAIN_FILE=/data/luffy/openr1.parquet bash run_scripts/qwen_math.sh        # converts it first:
#       python -m data_prep.luffy --input openr1.parquet --output $TRAIN_FILE --template luffy_think
#   PRESET=grpo bash run_scripts/qwen_math.sh                 # baselines: grpo luffy sft_plus_rl no_w_sft no_w_rl
#                                                             # no_demo_sft no_demo_rl (Table 3); srft_code (the
#                                                             # authors' released code), hpt, chord
#   PRESET=sft bash run_scripts/qwen_math.sh                  # SFT baseline: torchrun -m verl.trainer.sft_trainer on
#                                                             # the demonstrations (data_prep.sft), LUFFY's settings;
#                                                             # SFT_* variables in run_scripts/_common.sh
#   PRESET=sft_rl bash run_scripts/qwen_math.sh               # SFT->RL: that SFT, then grpo from its HF model;
#                                                             # rerun resumes either stage; stage1.<key>=<v> args
#   NNODES=4 bash run_scripts/qwen_math.sh                    # the published 4 x 8 GPUs (start Ray first, below)
#   DRY_RUN=1 bash run_scripts/qwen_math.sh [overrides]       # check the config only: no GPU, model or data
#   bash run_scripts/qwen_math.sh trainer.total_training_steps=10 ...   # extra hydra overrides win
#
# Environment (defaults in brackets); the full list and the multi-node notes are in run_scripts/_common.sh:
#   MODEL_PATH [Elliott/Qwen2.5-Math-7B-16k-think]   TRAIN_FILE [data/openr1_46k_8192.parquet]
#   RAW_TRAIN_FILE [unset]  VAL_FILE [../shared/data/luffy_eval/valid.parquet if present, else data/valid.parquet]
#   PRESET [srft]  NNODES [1]  GPUS_PER_NODE [8]  ROLLOUT_TP [2]  GPU_MEMORY_UTILIZATION [0.6]
#   TEST_FREQ [25]  SAVE_FREQ [50]  TOTAL_STEPS [500]  LOGGER ['[console,tensorboard]']  DRY_RUN [0]
#   MAX_CKPT_TO_KEEP [3]   checkpoints kept (-> trainer.max_actor_ckpt_to_keep; verl deletes older ones; 0 = all).
#                          Disk: one FSDP checkpoint of the 7B actor (model + optimizer + extra) is ~91.4 GB
#                          (7,615,616,512 parameters x 12 B: 30.5 GB fp32 weights + 60.9 GB Adam moments); all 10
#                          of a 500-step run at SAVE_FREQ=50 would be ~0.91 TB, the last 3 are ~274 GB. DRY_RUN=1
#                          prints the estimate for the settings given. verl counts the checkpoints its process
#                          wrote: after a resume, delete the older ones yourself
#
# Multi-node: on the head node `ray start --head --port=6379`, on every other node
# `ray start --address=<head-ip>:6379`, then run this script on the head node with NNODES set; it passes
# +ray_kwargs.ray_init.address=auto. Every node needs this package installed (`pip install -e .`): the SRFT
# trainer and agent loop reach the Ray workers through the package's `verl.plugins` entry point; environment
# variables reach them only if exported before `ray start` or passed as
# +ray_kwargs.ray_init.runtime_env.env_vars.NAME=value.
set -euo pipefail
SRFT_CALLER_PWD="$PWD"
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

: "${MODEL_PATH:=Elliott/Qwen2.5-Math-7B-16k-think}"
: "${TRAIN_FILE:=${_root}/data/openr1_46k_8192.parquet}"
: "${PRESET:=srft}"
: "${NNODES:=1}"
: "${GPUS_PER_NODE:=8}"
: "${ROLLOUT_TP:=2}"
: "${GPU_MEMORY_UTILIZATION:=0.6}"
: "${MAX_PROMPT_LENGTH:=1024}"
: "${MAX_RESPONSE_LENGTH:=8192}"
: "${TOKENS_PER_GPU:=32768}"
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
: "${MAX_CKPT_TO_KEEP:=3}"  # ~91.4 GB per checkpoint of the 7B actor (see above): ~274 GB kept, not ~0.91 TB
: "${LOGGER:=[console,tensorboard]}"
: "${PROJECT_NAME:=srft}"
: "${EXPERIMENT_PREFIX:=qwen2.5-math-7b-16k}"
: "${STRATEGY:=fsdp2}"
: "${THINK_FORMAT:=true}"

# shellcheck source=run_scripts/_common.sh
source "${_root}/run_scripts/_common.sh"
srft_launch "$@"
