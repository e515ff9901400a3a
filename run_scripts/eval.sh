#!/usr/bin/env bash
# Evaluate MODEL on a published table's benchmarks with its protocol (recipe_srft/evaluation/suites.py).
# Resumable: rerun the same command after a crash. results.json records the suite and its protocol.
#
#   bash run_scripts/eval.sh MODEL [OUT] [--suite paper|hpt] [extra python -m recipe_srft.evaluation options...]
#
# --suite paper (default): SRFT's Table 2. avg@32 on AIME24 and AMC, avg@1 on MATH-500, Minerva, OlympiadBench,
#   GPQA-Diamond, ARC-C (and MMLU-Pro when its file exists); temperature 0.6, top_p 1.0, up to 8192 new tokens.
# --suite hpt: HPT's table (TsinghuaC3I/Unify-Post-Training): AIME24, AIME25, AMC23, MATH-500, Minerva,
#   OlympiadBench from HPT's own data/*/test.json, GPQA-Diamond (HPT's file) and ARC-C (LUFFY's); avg@16
#   everywhere, temperature 0.6, top_p 0.95, up to 8192 new tokens, answer read from the whole response.
# MODEL: an HF model directory, or a verl checkpoint (.../global_step_N/actor, .../global_step_N, or the
# checkpoint root), merged into OUT/merged_model first. OUT defaults to runs/eval/<name of MODEL>[-hpt].
# Data files (env vars; a missing file is skipped with a warning):
#   EVAL_MATH     paper: data/eval/valid.parquet, else ../shared/data/luffy_eval/valid.parquet
#                 (AIME24 x8, AMC x4, MATH-500, Minerva, OlympiadBench with LUFFY's prompt)
#   EVAL_GPQA     paper: data/eval/valid.gpqa.parquet, else ../shared/data/luffy_eval/valid.gpqa.parquet
#   EVAL_ARC_C    both: data/eval/valid.arc_c.parquet, else ../shared/data/luffy_eval/valid.arc_c.parquet
#   EVAL_MMLU_PRO paper: data/eval/mmlu_pro.parquet (python -m data_prep.eval_sets --format mmlu_pro ...)
#   HPT_DATA      hpt: a copy of HPT's data/ folder (AIME24/test.json, ..., GPQA/test.json), default
#                 data/eval/hpt; each file is converted into OUT/data/ with data_prep.eval_sets --format qa
#                 and the template HPT_TEMPLATE (default luffy_think, LUFFY's prompt, as the paper suite)
# Other env: PY (python), BACKEND (auto|vllm|hf), SUITE (paper|hpt), EVAL_OPTS (more options, e.g. "--limit 5").
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
    exit $(( $# < 1 ? 2 : 0 ))
fi
MODEL=$1
shift
OUT=
if [[ $# -ge 1 && "$1" != -* ]]; then
    OUT=$1
    shift
fi
SUITE=${SUITE:-paper}
PASS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --suite) [[ $# -ge 2 ]] || { echo "[eval.sh] --suite needs a value (paper|hpt)" >&2; exit 2; }
                 SUITE=$2; shift 2 ;;
        --suite=*) SUITE=${1#--suite=}; shift ;;
        *) PASS+=("$1"); shift ;;
    esac
done
case "$SUITE" in
    paper|hpt) ;;
    *) echo "[eval.sh] unknown suite '$SUITE' (paper|hpt)" >&2; exit 2 ;;
esac
if [[ -z "$OUT" ]]; then
    name=$(basename "${MODEL%/}")
    [[ "$name" == actor ]] && name=$(basename "$(dirname "${MODEL%/}")")
    OUT=runs/eval/$name
    [[ "$SUITE" == paper ]] || OUT=$OUT-$SUITE
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
EVAL_ARC_C=${EVAL_ARC_C:-$(pick data/eval/valid.arc_c.parquet $SHARED/valid.arc_c.parquet)}

CANDIDATES=()
if [[ "$SUITE" == paper ]]; then
    EVAL_MATH=${EVAL_MATH:-$(pick data/eval/valid.parquet $SHARED/valid.parquet)}
    EVAL_GPQA=${EVAL_GPQA:-$(pick data/eval/valid.gpqa.parquet $SHARED/valid.gpqa.parquet)}
    EVAL_MMLU_PRO=${EVAL_MMLU_PRO:-data/eval/mmlu_pro.parquet}
    CANDIDATES=("$EVAL_MATH" "$EVAL_GPQA" "$EVAL_ARC_C" "$EVAL_MMLU_PRO")
else
    # HPT's folders (data/preprocess.py of TsinghuaC3I/Unify-Post-Training) -> the data_source the reward grades
    HPT_DATA=${HPT_DATA:-data/eval/hpt}
    mkdir -p "$OUT/data"
    for pair in AIME24:aime24 AIME25:aime25 AMC23:amc23 MATH-500:math500 Minerva:minerva \
                Olympiad-Bench:olympiad_bench GPQA:gpqa; do
        folder=${pair%%:*}
        source=${pair#*:}
        src=$HPT_DATA/$folder/test.json
        dst=$OUT/data/$source.parquet
        if [[ -f "$src" ]]; then
            "$PY" -m data_prep.eval_sets --format qa --data-source "$source" --template "${HPT_TEMPLATE:-luffy_think}" \
                --input "$src" --output "$dst" | sed -n 's/^ *\(written: .*\)/[eval.sh] '"$folder"': \1/p'
        fi
        CANDIDATES+=("$dst")
    done
    CANDIDATES+=("$EVAL_ARC_C")
fi

DATA=()
for f in "${CANDIDATES[@]}"; do
    if [[ -f "$f" ]]; then DATA+=("$f"); else echo "[eval.sh] skipping missing data file: $f" >&2; fi
done
if [[ ${#DATA[@]} -eq 0 ]]; then
    if [[ "$SUITE" == paper ]]; then
        echo "[eval.sh] no data file found (set EVAL_MATH / EVAL_GPQA / EVAL_ARC_C / EVAL_MMLU_PRO)" >&2
    else
        echo "[eval.sh] no data file found (set HPT_DATA to HPT's data/ folder, EVAL_ARC_C)" >&2
    fi
    exit 1
fi
DATA_ARG=$(IFS=,; echo "${DATA[*]}")

# the suite sets the protocol, temperature, top_p, max new tokens and the grading switch; options after it win
# shellcheck disable=SC2086
exec "$PY" -m recipe_srft.evaluation --model "$MODEL" --out "$OUT" --data "$DATA_ARG" --suite "$SUITE" \
    --backend "${BACKEND:-auto}" ${EVAL_OPTS:-} ${PASS[@]+"${PASS[@]}"}
