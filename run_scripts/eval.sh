#!/usr/bin/env bash
# Evaluate MODEL with the paper's protocol (section 6): avg@32 on AIME24 and AMC, pass@1 on MATH-500,
# Minerva, OlympiadBench, GPQA-Diamond, ARC-C (and MMLU-Pro when its file exists); temperature 0.6,
# top_p 1.0, up to 8192 new tokens. Resumable: rerun the same command after a crash.
#
#   bash run_scripts/eval.sh MODEL [OUT] [extra python -m recipe_srft.evaluation options...]
#
# MODEL: an HF model directory, or a verl checkpoint (.../global_step_N/actor, .../global_step_N, or the
# checkpoint root), merged into OUT/merged_model first. OUT defaults to runs/eval/<name of MODEL>.
# Data files (env vars; a missing file is skipped with a warning):
#   EVAL_MATH     data/eval/valid.parquet, else ../shared/data/luffy_eval/valid.parquet
#                 (AIME24 x8, AMC x4, MATH-500, Minerva, OlympiadBench with LUFFY's prompt)
#   EVAL_GPQA     data/eval/valid.gpqa.parquet, else ../shared/data/luffy_eval/valid.gpqa.parquet
#   EVAL_ARC_C    data/eval/valid.arc_c.parquet, else ../shared/data/luffy_eval/valid.arc_c.parquet
#   EVAL_MMLU_PRO data/eval/mmlu_pro.parquet (python -m data_prep.eval_sets --format mmlu_pro ...)
# Other env: PY (python), BACKEND (auto|vllm|hf), EVAL_OPTS (more options, e.g. "--limit 5").
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit $(( $# < 1 ? 2 : 0 ))
fi
MODEL=$1
shift
if [[ $# -ge 1 && "$1" != -* ]]; then
    OUT=$1
    shift
else
    name=$(basename "${MODEL%/}")
    [[ "$name" == actor ]] && name=$(basename "$(dirname "${MODEL%/}")")
    OUT=runs/eval/$name
fi

if [[ -z "${PY:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python; fi
fi

pick() {  # first existing file among the arguments, else the first argument
    for f in "$@"; do
        if [[ -f "$f" ]]; then echo "$f"; return; fi
    done
    echo "$1"
}
SHARED=../shared/data/luffy_eval
EVAL_MATH=${EVAL_MATH:-$(pick data/eval/valid.parquet $SHARED/valid.parquet)}
EVAL_GPQA=${EVAL_GPQA:-$(pick data/eval/valid.gpqa.parquet $SHARED/valid.gpqa.parquet)}
EVAL_ARC_C=${EVAL_ARC_C:-$(pick data/eval/valid.arc_c.parquet $SHARED/valid.arc_c.parquet)}
EVAL_MMLU_PRO=${EVAL_MMLU_PRO:-data/eval/mmlu_pro.parquet}

DATA=()
for f in "$EVAL_MATH" "$EVAL_GPQA" "$EVAL_ARC_C" "$EVAL_MMLU_PRO"; do
    if [[ -f "$f" ]]; then DATA+=("$f"); else echo "[eval.sh] skipping missing data file: $f" >&2; fi
done
if [[ ${#DATA[@]} -eq 0 ]]; then
    echo "[eval.sh] no data file found (set EVAL_MATH / EVAL_GPQA / EVAL_ARC_C / EVAL_MMLU_PRO)" >&2
    exit 1
fi
DATA_ARG=$(IFS=,; echo "${DATA[*]}")

# shellcheck disable=SC2086
exec "$PY" -m recipe_srft.evaluation --model "$MODEL" --out "$OUT" --data "$DATA_ARG" \
    --protocol paper --temperature 0.6 --top-p 1.0 --max-new-tokens 8192 \
    --backend "${BACKEND:-auto}" ${EVAL_OPTS:-} "$@"
