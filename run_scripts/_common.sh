# Shared launch logic of run_scripts/qwen_math*.sh (sourced, not run). The calling script sets its
# defaults with `: "${VAR:=value}"` and then calls `srft_launch "$@"`.
#
# Environment (every one has a default in the calling script):
#   MODEL_PATH            local folder or Hugging Face id of the policy
#   TRAIN_FILE            training parquet in LUFFY format (prompt + `target` demonstration)
#   RAW_TRAIN_FILE        optional raw LUFFY/OpenR1 file (openr1.parquet): converted into TRAIN_FILE with
#                         `python -m data_prep.luffy --template luffy_think` when TRAIN_FILE is absent
#                         (PREP_FORCE=1 re-converts). PREP_FIX=drop|truncate also runs data_prep.validate
#                         with the model's tokenizer (MODEL_PATH must then be a local folder) to drop or cut
#                         demonstrations longer than MAX_RESPONSE_LENGTH (srft_method.md pitfall 2).
#   VAL_FILE              validation parquet (LUFFY's valid.parquet)
#   PRESET                srft | grpo | luffy | sft_plus_rl | no_w_sft | no_w_rl | no_demo_sft | no_demo_rl |
#                         sft_only | srft_code | hpt | chord | custom (-> srft.preset). The presets that reproduce
#                         published code also get its verl settings (srft_config.PRESET_VERL): luffy, srft_code and
#                         hpt the mix_src RL aggregation (loss_agg_mode=seq-mean-token-sum-norm, loss_scale_factor =
#                         MAX_RESPONSE_LENGTH / 64, / 16 for srft_code's 32 GPUs), chord a token-mean and, in the
#                         calling scripts, ENTROPY_COEFF=0; luffy and srft_code also N_ROLLOUTS=7 there (LUFFY's
#                         groups of 7 rollouts + 1 demonstration). no_demo_sft / no_demo_rl: Table 3 without the SFT
#                         term / without the RL term on demonstrations (demos stay in the group statistics;
#                         docs/method.md). srft_code, hpt, chord: docs/method.md#methods-as-switches.
#                         sft: the SFT baseline with verl's own trainer (torchrun -m verl.trainer.sft_trainer), not an
#                         srft.preset; its variables are listed under "PRESET=sft" below. sft_rl: that SFT run
#                         (CKPT_DIR/stage1_sft), then the grpo run from its final HF model (CKPT_DIR/stage2_grpo);
#                         a rerun resumes whichever stage was interrupted; arguments stage1.<key>=<v> go to stage 1
#                         (docs/config.md#sft-rl-two-stages)
#   NNODES, GPUS_PER_NODE cluster size (-> trainer.nnodes, trainer.n_gpus_per_node); NNODES>1 joins the running
#                         Ray cluster (+ray_kwargs.ray_init.address=auto, see the multi-node notes below)
#   ROLLOUT_TP            vLLM tensor parallel size;  GPU_MEMORY_UTILIZATION: vLLM's share of GPU memory
#   MAX_PROMPT_LENGTH, MAX_RESPONSE_LENGTH
#   TOKENS_PER_GPU        dynamic-batch token budget of the actor update (ppo_max_token_len_per_gpu);
#   LOGPROB_TOKENS_PER_GPU  same for the log-prob passes (default: TOKENS_PER_GPU)
#   TRAIN_BATCH_SIZE, PPO_MINI_BATCH_SIZE (prompts), PPO_EPOCHS, N_ROLLOUTS, LR, ENTROPY_COEFF, TEMPERATURE
#   TOTAL_STEPS, TEST_FREQ, SAVE_FREQ, LOGGER ('[console,tensorboard]'), PROJECT_NAME, EXPERIMENT_NAME,
#   MAX_CKPT_TO_KEEP      checkpoints kept (trainer.max_actor_ckpt_to_keep; verl deletes the older ones; 0 = keep
#                         all; default 3). Disk (model fp32 + 2 fp32 Adam moments = 12 B per parameter): 7B ~91.4 GB
#                         per checkpoint, 3 kept ~274 GB (all 10 of 500 steps at SAVE_FREQ=50: ~0.91 TB); 1.5B
#                         ~18.5 GB, ~56 GB kept. DRY_RUN=1 prints the estimate (recipe_srft.tools.dry_run
#                         checkpoint_budget: parameters from config.json or the known models, x max kept or saves)
#   CKPT_DIR, TENSORBOARD_DIR, STRATEGY (fsdp2), THINK_FORMAT (true: LUFFY's <think> rule in the reward)
#   PYTHON                interpreter (default: .venv/bin/python of the repository, else python)
#   DRY_RUN               1: run `python -m recipe_srft.tools.dry_run` with the same overrides instead of training
#                         (no GPU, no Ray, no model or data needed); `overrides`: print the overrides, NUL-separated
# Extra arguments of the script are appended as hydra overrides (they win over the script's values).
#
# PRESET=sft (the SFT baseline of Table 2; docs/config.md#the-sft-baseline): verl's SFT trainer on the training
# file's demonstrations, converted once by `python -m data_prep.sft` (same chat template and <think> handling as
# the RL run; needs the model's tokenizer). MODEL_PATH, TRAIN_FILE, RAW_TRAIN_FILE, PREP_FIX, NNODES,
# GPUS_PER_NODE, MAX_PROMPT_LENGTH, MAX_RESPONSE_LENGTH, TOKENS_PER_GPU, STRATEGY, LOGGER, PROJECT_NAME,
# EXPERIMENT_NAME, CKPT_DIR, PYTHON and DRY_RUN keep their meaning; the RL ones (rollouts, PPO, reward, VAL_FILE)
# are not used. Defaults = LUFFY's SFT baseline (README of ElliottYan/LUFFY, "Other Off-Policy Baselines / SFT":
# OpenRLHF train_sft on the same openr1 data, --train_batch_size 64 --max_epochs 3 --learning_rate 5e-5
# --lr_warmup_ratio 0.1 --max_len 16384 --zero_stage 2 --bf16 --packing_samples --gradient_checkpointing
# --save_hf_ckpt, with OpenRLHF's defaults for what it does not pass: cosine_with_min_lr to 0.1 x lr, Adam betas
# (0.9, 0.95), weight decay 0, gradient clipping 1.0). The SRFT paper gives no SFT settings (it compares with
# LUFFY's reported baselines); the OpenRLHF version LUFFY used is not pinned.
#   SFT_TRAIN_FILE        verl SFT parquet (messages); default <TRAIN_FILE without .parquet>.sft.parquet, written
#                         from TRAIN_FILE by data_prep.sft when absent (PREP_FORCE=1 rewrites it)
#   SFT_BATCH_SIZE [64]   global batch in sequences (data.train_batch_size); SFT_EPOCHS [3]; SFT_LR [5e-5];
#   SFT_WARMUP_RATIO [0.1]; SFT_MIN_LR_RATIO [0.1]; SFT_MAX_LENGTH [MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH: the
#                         RL run's window; LUFFY: 16384, the model's]; SFT_TOKENS_PER_GPU [TOKENS_PER_GPU];
#   SFT_SAVE_FREQ [200]   (LUFFY saved at the end only; a checkpoint every 200 steps lets a run resume. An
#                         epoch-boundary checkpoint would make verl 0.9.1 skip an epoch on resume, verl #7401:
#                         `python -m recipe_srft.integration.sft_stage resume-guard` runs before every start and handles it)
#   NODE_RANK [0], MASTER_ADDR [127.0.0.1], MASTER_PORT [29500]   torchrun's rendezvous (NNODES>1: run the script
#                         on every node with its NODE_RANK and the head's MASTER_ADDR; no Ray)
#
# Multi-node (NNODES>1): start Ray yourself before running the script on the head node:
#   head:    ray start --head --port=6379
#   workers: ray start --address=<head-ip>:6379
# Install this package (`pip install -e .`) in the same Python environment on every node: verl imports its
# `verl.plugins` entry point (recipe_srft.plugin) in every Ray process, which registers the SRFT trainer
# and the srft_agent agent loop there (do not set VERL_USE_EXTERNAL_PLUGINS=none). Ray workers inherit the
# environment of `ray start`, not of this shell: export what the workers need (HF_HOME, NCCL_*, ...) before
# `ray start` on each node, or pass it as +ray_kwargs.ray_init.runtime_env.env_vars.NAME=value (verl merges
# it into the runtime_env of every worker; this script does that for TENSORBOARD_DIR).

SRFT_PRESETS="srft grpo luffy sft_plus_rl no_w_sft no_w_rl no_demo_sft no_demo_rl sft_only srft_code hpt chord custom"
# presets of the run scripts that are other trainers, not srft.preset values
SRFT_STAGE_PRESETS="sft sft_rl"

_srft_die() { echo "$(basename "${0}"): $*" >&2; exit 2; }

# absolute path: relative paths are relative to the directory the script was started from
_srft_abs() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        "~"/*) printf '%s\n' "${HOME}/${1#\~/}" ;;
        *) printf '%s\n' "${SRFT_CALLER_PWD}/$1" ;;
    esac
}

_srft_is_int() { case "$1" in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }

_srft_prepare_data() {
    [ -n "${RAW_TRAIN_FILE:-}" ] || return 0
    local raw unfiltered
    raw="$(_srft_abs "${RAW_TRAIN_FILE}")"
    if [ -e "${TRAIN_FILE}" ] && [ "${PREP_FORCE:-0}" != 1 ]; then
        echo "data: ${TRAIN_FILE} exists, not re-converting ${raw} (PREP_FORCE=1 to redo)"
        return 0
    fi
    unfiltered="${TRAIN_FILE}"
    [ -n "${PREP_FIX:-}" ] && unfiltered="${TRAIN_FILE%.parquet}.unfiltered.parquet"
    local convert=("${PYTHON}" -m data_prep.luffy --input "${raw}" --output "${unfiltered}" --template luffy_think)
    local fix=("${PYTHON}" -m data_prep.validate "${unfiltered}" --tokenizer "${MODEL_PATH}"
        --max-prompt-length "${MAX_PROMPT_LENGTH}" --max-response-length "${MAX_RESPONSE_LENGTH}"
        --fix "${PREP_FIX:-drop}" --output "${TRAIN_FILE}")
    if [ "${DRY_RUN:-0}" != 0 ]; then
        echo "DRY RUN: would prepare the data: ${convert[*]}"
        [ -n "${PREP_FIX:-}" ] && echo "DRY RUN: then: ${fix[*]}"
        return 0
    fi
    echo "data: ${convert[*]}"
    "${convert[@]}" || _srft_die "data_prep.luffy failed"
    if [ -n "${PREP_FIX:-}" ]; then
        [ -d "${MODEL_PATH}" ] || _srft_die "PREP_FIX needs a local tokenizer: MODEL_PATH=${MODEL_PATH} is not a folder"
        echo "data: ${fix[*]}"
        "${fix[@]}" || _srft_die "data_prep.validate --fix ${PREP_FIX} failed"
    fi
}

srft_launch() {
    SRFT_CALLER_PWD="${SRFT_CALLER_PWD:-$PWD}"
    SRFT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    cd "${SRFT_ROOT}" || exit 2
    if [ -z "${PYTHON:-}" ]; then
        if [ -x "${SRFT_ROOT}/.venv/bin/python" ]; then PYTHON="${SRFT_ROOT}/.venv/bin/python"; else PYTHON=python; fi
    fi

    case " ${SRFT_PRESETS} ${SRFT_STAGE_PRESETS} " in
        *" ${PRESET} "*) ;;
        *) _srft_die "PRESET=${PRESET} is not one of: ${SRFT_PRESETS} ${SRFT_STAGE_PRESETS}" ;;
    esac
    local v
    for v in NNODES GPUS_PER_NODE ROLLOUT_TP TRAIN_BATCH_SIZE PPO_MINI_BATCH_SIZE PPO_EPOCHS N_ROLLOUTS \
        MAX_PROMPT_LENGTH MAX_RESPONSE_LENGTH TOKENS_PER_GPU TOTAL_STEPS; do
        _srft_is_int "${!v}" || _srft_die "${v}=${!v} must be a non-negative integer"
    done
    : "${MAX_CKPT_TO_KEEP:=3}"
    _srft_is_int "${MAX_CKPT_TO_KEEP}" || _srft_die "MAX_CKPT_TO_KEEP=${MAX_CKPT_TO_KEEP} must be a non-negative integer"
    : "${LOGPROB_TOKENS_PER_GPU:=${TOKENS_PER_GPU}}"
    : "${EXPERIMENT_NAME:=${EXPERIMENT_PREFIX}_${PRESET}}"
    : "${CKPT_DIR:=${SRFT_ROOT}/checkpoints/${PROJECT_NAME}/${EXPERIMENT_NAME}}"
    : "${TENSORBOARD_DIR:=${SRFT_ROOT}/runs/tensorboard/${PROJECT_NAME}/${EXPERIMENT_NAME}}"

    TRAIN_FILE="$(_srft_abs "${TRAIN_FILE}")"
    if [ -z "${VAL_FILE:-}" ]; then  # LUFFY's evaluation file from ../shared when present, else data/
        if [ -e "${SRFT_ROOT}/../shared/data/luffy_eval/valid.parquet" ]; then
            VAL_FILE="$(cd "${SRFT_ROOT}/.." && pwd)/shared/data/luffy_eval/valid.parquet"
        else
            VAL_FILE="${SRFT_ROOT}/data/valid.parquet"
        fi
    fi
    VAL_FILE="$(_srft_abs "${VAL_FILE}")"
    CKPT_DIR="$(_srft_abs "${CKPT_DIR}")"
    TENSORBOARD_DIR="$(_srft_abs "${TENSORBOARD_DIR}")"
    # a local model folder becomes absolute; anything else is a hub id
    case "${MODEL_PATH}" in /*) ;; *) [ -e "${SRFT_CALLER_PWD}/${MODEL_PATH}" ] && MODEL_PATH="$(_srft_abs "${MODEL_PATH}")" ;; esac
    export TENSORBOARD_DIR

    if [ "${PRESET}" = sft ]; then
        _srft_launch_sft "$@"
    fi
    if [ "${PRESET}" = sft_rl ]; then
        # stage 1 (SFT) runs or is found finished here; stage 2 is the grpo run below, from stage 1's model
        _srft_sft_rl_stage1 "$@"
        set -- "${SRFT_STAGE2_ARGS[@]+"${SRFT_STAGE2_ARGS[@]}"}"
    fi

    local reward_py="${SRFT_ROOT}/recipe_srft/reward.py"
    OVERRIDES=(
        # model, data
        "actor_rollout_ref.model.path=${MODEL_PATH}"
        "data.train_files=${TRAIN_FILE}"
        "data.val_files=${VAL_FILE}"
        "data.train_batch_size=${TRAIN_BATCH_SIZE}"
        "data.max_prompt_length=${MAX_PROMPT_LENGTH}"
        "data.max_response_length=${MAX_RESPONSE_LENGTH}"
        "data.filter_overlong_prompts=true"
        "data.truncation=error"
        # SRFT (the preset sets demos_per_prompt and the loss switches)
        "srft.preset=${PRESET}"
        "algorithm.adv_estimator=grpo"
        "algorithm.use_kl_in_reward=false"
        # actor: FSDP, lr constant, one PPO epoch, no KL, entropy bonus, dynamic batch size
        "actor_rollout_ref.actor.strategy=${STRATEGY}"
        "actor_rollout_ref.actor.optim.lr=${LR}"
        "actor_rollout_ref.actor.optim.lr_scheduler_type=constant"
        "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio=0.0"
        "actor_rollout_ref.actor.ppo_mini_batch_size=${PPO_MINI_BATCH_SIZE}"
        "actor_rollout_ref.actor.ppo_epochs=${PPO_EPOCHS}"
        "actor_rollout_ref.actor.use_kl_loss=false"
        "actor_rollout_ref.actor.entropy_coeff=${ENTROPY_COEFF}"
        # the entropy in w_sft = exp(-H) and w_rl = exp(+H): softmax/logsumexp in fp32, not in the logits' bf16
        "actor_rollout_ref.actor.entropy_from_logits_with_chunking=true"
        "actor_rollout_ref.actor.use_dynamic_bsz=true"
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=${TOKENS_PER_GPU}"
        "actor_rollout_ref.model.use_remove_padding=true"
        "actor_rollout_ref.model.enable_gradient_checkpointing=true"
        # rollout: vLLM
        "actor_rollout_ref.rollout.name=vllm"
        "actor_rollout_ref.rollout.n=${N_ROLLOUTS}"
        "actor_rollout_ref.rollout.temperature=${TEMPERATURE}"
        "actor_rollout_ref.rollout.tensor_model_parallel_size=${ROLLOUT_TP}"
        "actor_rollout_ref.rollout.gpu_memory_utilization=${GPU_MEMORY_UTILIZATION}"
        "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true"
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=${LOGPROB_TOKENS_PER_GPU}"
        # validation decoding: the paper's temperature 0.6, top-p 1.0 (one sample; the full avg@32 protocol
        # is recipe_srft.evaluation / run_scripts/eval.sh)
        "actor_rollout_ref.rollout.val_kwargs.do_sample=true"
        "actor_rollout_ref.rollout.val_kwargs.temperature=0.6"
        "actor_rollout_ref.rollout.val_kwargs.top_p=1.0"
        "actor_rollout_ref.rollout.val_kwargs.n=1"
        # reward: math-verify with LUFFY's think-format rule
        "reward.custom_reward_function.path=${reward_py}"
        "reward.custom_reward_function.name=compute_score"
        "+reward.custom_reward_function.reward_kwargs.think_format=${THINK_FORMAT}"
        # trainer
        "trainer.total_training_steps=${TOTAL_STEPS}"
        "trainer.test_freq=${TEST_FREQ}"
        "trainer.save_freq=${SAVE_FREQ}"
        "trainer.max_actor_ckpt_to_keep=$([ "${MAX_CKPT_TO_KEEP}" = 0 ] && echo null || echo "${MAX_CKPT_TO_KEEP}")"
        "trainer.val_before_train=true"
        "trainer.logger=${LOGGER}"
        "trainer.project_name=${PROJECT_NAME}"
        "trainer.experiment_name=${EXPERIMENT_NAME}"
        "trainer.default_local_dir=${CKPT_DIR}"
        "trainer.nnodes=${NNODES}"
        "trainer.n_gpus_per_node=${GPUS_PER_NODE}"
        "+ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR=${TENSORBOARD_DIR}"
    )
    # the verl settings a preset reproduces (recipe_srft.srft_config.PRESET_VERL; tests/test_run_scripts.py checks
    # they agree). mix_src's aggregation: each token-budget micro-batch's token sum / T, gradient accumulation 1,
    # averaged over the GPUs = verl's seq-mean-token-sum-norm with loss_scale_factor = T / (rows of an optimizer
    # mini-batch per GPU): 64 for LUFFY's and HPT's 8 GPUs, 16 for the SRFT code's 32 (MIX_SRC_ROWS_PER_GPU).
    # chord's entropy_coeff=0 comes from ENTROPY_COEFF's default in the calling scripts.
    local mix_src_rows=""
    case "${PRESET}" in
        luffy | hpt) mix_src_rows=64 ;;
        srft_code) mix_src_rows=16 ;;
        chord) OVERRIDES+=("actor_rollout_ref.actor.loss_agg_mode=token-mean") ;;
    esac
    if [ -n "${mix_src_rows}" ]; then
        local scale=$((MAX_RESPONSE_LENGTH / mix_src_rows))
        [ "${scale}" -ge 1 ] || scale=1
        OVERRIDES+=("actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm"
            "actor_rollout_ref.actor.loss_scale_factor=${scale}")
    fi
    if [ "${NNODES}" -gt 1 ]; then
        OVERRIDES+=("+ray_kwargs.ray_init.address=${RAY_ADDRESS:-auto}")
    fi
    OVERRIDES+=("$@")

    if [ "${DRY_RUN:-0}" = overrides ]; then
        printf '%s\0' "${OVERRIDES[@]}"
        exit 0
    fi

    _srft_prepare_data

    if [ "${DRY_RUN:-0}" != 0 ]; then
        echo "DRY RUN: would run: ${PYTHON} -m recipe_srft.main_srft ${OVERRIDES[*]}"
        exec "${PYTHON}" -m recipe_srft.tools.dry_run "${OVERRIDES[@]}"
    fi

    [ -e "${TRAIN_FILE}" ] || _srft_die "TRAIN_FILE=${TRAIN_FILE} not found: set TRAIN_FILE, or RAW_TRAIN_FILE=<openr1.parquet> to convert it (python -m data_prep.luffy --input openr1.parquet --output ${TRAIN_FILE} --template luffy_think)"
    [ -e "${VAL_FILE}" ] || _srft_die "VAL_FILE=${VAL_FILE} not found (LUFFY's valid.parquet; python -m data_prep.eval_sets --format luffy --input valid.parquet --output data/valid.parquet)"
    mkdir -p "${CKPT_DIR}" "${TENSORBOARD_DIR}"
    echo "run: ${PYTHON} -m recipe_srft.main_srft ${OVERRIDES[*]}"
    exec "${PYTHON}" -m recipe_srft.main_srft "${OVERRIDES[@]}"
}

# verl's engine-based SFT trainer with LUFFY's SFT settings (see the header): sets SFT_OVERRIDES (extra arguments
# appended) and SFT_TORCHRUN.
_srft_sft_config() {
    local v
    : "${SFT_TRAIN_FILE:=${TRAIN_FILE%.parquet}.sft.parquet}"
    : "${SFT_BATCH_SIZE:=64}"
    : "${SFT_EPOCHS:=3}"
    : "${SFT_LR:=5e-5}"
    : "${SFT_WARMUP_RATIO:=0.1}"
    : "${SFT_MIN_LR_RATIO:=0.1}"
    : "${SFT_MAX_LENGTH:=$((MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH))}"
    : "${SFT_TOKENS_PER_GPU:=${TOKENS_PER_GPU}}"
    : "${SFT_SAVE_FREQ:=200}"
    : "${NODE_RANK:=0}"
    : "${MASTER_ADDR:=127.0.0.1}"
    : "${MASTER_PORT:=29500}"
    for v in SFT_BATCH_SIZE SFT_EPOCHS SFT_MAX_LENGTH SFT_TOKENS_PER_GPU SFT_SAVE_FREQ NODE_RANK MASTER_PORT; do
        _srft_is_int "${!v}" || _srft_die "${v}=${!v} must be a non-negative integer"
    done
    SFT_TRAIN_FILE="$(_srft_abs "${SFT_TRAIN_FILE}")"
    SFT_OVERRIDES=(
        # model, data: data_prep.sft's messages column, read by verl's MultiTurnSFTDataset
        "model.path=${MODEL_PATH}"
        "model.use_remove_padding=true"
        "model.enable_gradient_checkpointing=true"
        "data.train_files=${SFT_TRAIN_FILE}"
        "data.val_files=null"
        "data.messages_key=messages"
        # verl's yaml default is the string 'none', which its dataset turns into enable_thinking=True for every
        # template call; null passes nothing, as the RL run's agent loop does (data_prep.sft's token check too)
        "data.enable_thinking_default=null"
        # LUFFY: --train_batch_size 64 (global, sequences), --packing_samples (here: no padding, dynamic batches)
        "data.train_batch_size=${SFT_BATCH_SIZE}"
        "data.pad_mode=no_padding"
        "data.use_dynamic_bsz=true"
        "data.max_token_len_per_gpu=${SFT_TOKENS_PER_GPU}"
        # LUFFY: --max_len 16384 with truncation (OpenRLHF); here the RL run's prompt + response window
        "data.max_length=${SFT_MAX_LENGTH}"
        "data.truncation=right"
        # LUFFY: --learning_rate 5e-5 --lr_warmup_ratio 0.1, OpenRLHF's cosine_with_min_lr (min 0.1 x lr),
        # betas (0.9, 0.95), l2 0, max_norm 1.0
        "optim.lr=${SFT_LR}"
        "optim.lr_warmup_steps_ratio=${SFT_WARMUP_RATIO}"
        "optim.lr_scheduler_type=cosine"
        "optim.min_lr_ratio=${SFT_MIN_LR_RATIO}"
        "optim.betas=[0.9,0.95]"
        "optim.weight_decay=0.0"
        "optim.clip_grad=1.0"
        # LUFFY: DeepSpeed ZeRO-2, bf16, gradient checkpointing; here FSDP (STRATEGY, as the RL runs), bf16
        "engine.strategy=${STRATEGY}"
        # LUFFY: --max_epochs 3, no evaluation during training (--eval_steps -1), --save_hf_ckpt
        "trainer.total_epochs=${SFT_EPOCHS}"
        "trainer.total_training_steps=null"
        "trainer.test_freq=-1"
        "trainer.save_freq=${SFT_SAVE_FREQ}"
        "checkpoint.save_contents=[model,optimizer,extra,hf_model]"
        "checkpoint.load_contents=[model,optimizer,extra]"
        "trainer.resume_mode=auto"
        "trainer.logger=${LOGGER}"
        "trainer.project_name=${PROJECT_NAME}"
        "trainer.experiment_name=${EXPERIMENT_NAME}"
        "trainer.default_local_dir=${CKPT_DIR}"
        "trainer.nnodes=${NNODES}"
        "trainer.n_gpus_per_node=${GPUS_PER_NODE}"
    )
    SFT_OVERRIDES+=("$@")
    local rendezvous=(--standalone)
    if [ "${NNODES}" -gt 1 ]; then
        rendezvous=(--node_rank="${NODE_RANK}" --master_addr="${MASTER_ADDR}" --master_port="${MASTER_PORT}")
    fi
    # torchrun, from the interpreter's own torch
    SFT_TORCHRUN=("${PYTHON}" -m torch.distributed.run --nnodes="${NNODES}" --nproc_per_node="${GPUS_PER_NODE}"
        "${rendezvous[@]}" -m verl.trainer.sft_trainer)
}

# data_prep.sft: TRAIN_FILE's demonstrations -> SFT_TRAIN_FILE, once (PREP_FORCE=1 redoes it); printed in a dry run
_srft_sft_data() {
    local convert=("${PYTHON}" -m data_prep.sft --input "${TRAIN_FILE}" --output "${SFT_TRAIN_FILE}"
        --tokenizer "${MODEL_PATH}")
    if [ ! -e "${SFT_TRAIN_FILE}" ] || [ "${PREP_FORCE:-0}" = 1 ]; then
        if [ "${DRY_RUN:-0}" != 0 ]; then
            echo "DRY RUN: would prepare the SFT data: ${convert[*]}"
            return 0
        fi
        [ -e "${TRAIN_FILE}" ] || _srft_die "TRAIN_FILE=${TRAIN_FILE} not found: PRESET=${PRESET} converts its demonstrations into SFT_TRAIN_FILE=${SFT_TRAIN_FILE} (set RAW_TRAIN_FILE=<openr1.parquet> to convert the raw file first)"
        echo "data: ${convert[*]}"
        "${convert[@]}" || _srft_die "data_prep.sft failed"
    elif [ "${DRY_RUN:-0}" = 0 ]; then
        echo "data: ${SFT_TRAIN_FILE} exists, not re-converting (PREP_FORCE=1 to redo)"
    fi
}

# PRESET=sft: the SFT baseline; execs or exits.
_srft_launch_sft() {
    _srft_sft_config "$@"
    if [ "${DRY_RUN:-0}" = overrides ]; then
        printf '%s\0' "${SFT_OVERRIDES[@]}"
        exit 0
    fi
    _srft_prepare_data
    _srft_sft_data
    if [ "${DRY_RUN:-0}" != 0 ]; then
        echo "DRY RUN: would run: ${SFT_TORCHRUN[*]} ${SFT_OVERRIDES[*]}"
        exec "${PYTHON}" -m recipe_srft.integration.sft_stage dry-run "${SFT_OVERRIDES[@]}"
    fi
    mkdir -p "${CKPT_DIR}"
    "${PYTHON}" -m recipe_srft.integration.sft_stage resume-guard "${SFT_OVERRIDES[@]}" || _srft_die "resume guard failed"
    echo "run: ${SFT_TORCHRUN[*]} ${SFT_OVERRIDES[*]}"
    exec "${SFT_TORCHRUN[@]}" "${SFT_OVERRIDES[@]}"
}

# PRESET=sft_rl, stage 1: the SFT baseline into CKPT_DIR/stage1_sft, unless its final model is already there; then
# sets what stage 2 (GRPO from that model, into CKPT_DIR/stage2_grpo) needs: MODEL_PATH, PRESET=grpo, CKPT_DIR,
# EXPERIMENT_NAME, TENSORBOARD_DIR and SRFT_STAGE2_ARGS (the script's arguments without the stage1.* ones).
# A rerun resumes whichever stage was interrupted: stage 1 through verl's SFT resume (+ the resume guard), stage 2
# through verl's RL resume (trainer.resume_mode=auto) in its own folder.
_srft_sft_rl_stage1() {
    local arg stage1_args=() root="${CKPT_DIR}" experiment="${EXPERIMENT_NAME}" tensorboard="${TENSORBOARD_DIR}"
    SRFT_STAGE2_ARGS=()
    for arg in "$@"; do
        case "${arg}" in
            stage1.*) stage1_args+=("${arg#stage1.}") ;;
            *) SRFT_STAGE2_ARGS+=("${arg}") ;;
        esac
    done
    CKPT_DIR="${root}/stage1_sft" EXPERIMENT_NAME="${experiment}_stage1_sft" \
        _srft_sft_config "${stage1_args[@]+"${stage1_args[@]}"}"
    if [ "${DRY_RUN:-0}" = overrides_stage1 ]; then
        printf '%s\0' "${SFT_OVERRIDES[@]}"
        exit 0
    fi
    local final=() stage1_model rc=0
    final=("${PYTHON}" -m recipe_srft.integration.sft_stage final-model "${SFT_OVERRIDES[@]}")
    if [ "${DRY_RUN:-0}" = 1 ]; then
        _srft_prepare_data
        _srft_sft_data
        echo "DRY RUN: stage 1 of 2 (SFT): would run: ${SFT_TORCHRUN[*]} ${SFT_OVERRIDES[*]}"
        "${PYTHON}" -m recipe_srft.integration.sft_stage dry-run "${SFT_OVERRIDES[@]}" || exit $?
        stage1_model="$("${final[@]}" 2>/dev/null)" || stage1_model="${root}/stage1_sft/global_step_N/huggingface"
        echo "DRY RUN: stage 2 of 2 (GRPO) starts from stage 1's model: ${stage1_model}"
    elif [ "${DRY_RUN:-0}" = 0 ]; then
        _srft_prepare_data
        _srft_sft_data
        stage1_model="$("${final[@]}")" || rc=$?
        if [ "${rc}" = 3 ]; then
            mkdir -p "${root}/stage1_sft"
            "${PYTHON}" -m recipe_srft.integration.sft_stage resume-guard "${SFT_OVERRIDES[@]}" || _srft_die "resume guard failed"
            echo "stage 1 of 2 (SFT): ${SFT_TORCHRUN[*]} ${SFT_OVERRIDES[*]}"
            "${SFT_TORCHRUN[@]}" "${SFT_OVERRIDES[@]}" || _srft_die "stage 1 (SFT) failed; rerun the same command to resume it"
            stage1_model="$("${final[@]}")" || _srft_die "stage 1 (SFT) ended without its final model (see above)"
        elif [ "${rc}" != 0 ]; then
            _srft_die "cannot tell whether stage 1 (SFT) has finished (see above)"
        else
            echo "stage 1 of 2 (SFT) finished earlier: ${stage1_model}"
        fi
        echo "stage 2 of 2 (GRPO) from ${stage1_model}"
    else
        stage1_model="${root}/stage1_sft/global_step_N/huggingface"  # DRY_RUN=overrides: nothing is looked at
    fi
    MODEL_PATH="${stage1_model}"
    PRESET=grpo
    CKPT_DIR="${root}/stage2_grpo"
    EXPERIMENT_NAME="${experiment}_stage2_grpo"
    TENSORBOARD_DIR="${tensorboard}/stage2_grpo"
    export TENSORBOARD_DIR
}
