r"""Evaluate a model on the SRFT benchmarks (paper section 6): sample, grade, report avg@n / pass@k / 95% CI.

    python -m recipe_srft.evaluation --model PATH --data FILE[,FILE] --out DIR \
        [--protocol paper|avg1] [--n N] [--n-per-source aime=32,amc=32] \
        [--temperature 0.6] [--top-p 1.0] [--max-new-tokens 8192] [--seed 0] \
        [--limit N] [--batch-size B] [--backend auto|vllm|hf] [--think-format auto|on|off] \
        [--regrade] [--report-only]

(``python -m recipe_srft.eval`` is an alias.) PATH: an HF model directory (or hub id), or a verl checkpoint (``.../global_step_N/actor`` with FSDP
shards + ``huggingface/``, the ``global_step_N`` directory, or the checkpoint root with
``latest_checkpointed_iteration.txt``), merged into ``DIR/merged_model`` with ``verl.model_merger``.

Protocol ``paper`` (default): n=32 samples per prompt for AIME and AMC (identical rows, e.g. LUFFY's
8x / 4x copies, merged into one prompt), n=1 elsewhere; ``avg1``: n=1 everywhere, rows as they are.
``--n`` sets n for every benchmark, ``--n-per-source`` per benchmark (it wins over ``--n``).
``--limit N``: the first N prompts of each benchmark. ``--batch-size``: completions per generator call
(default 32 for HF, 4096 for vLLM); samples are saved after each call.

Writes DIR/samples.jsonl (one graded sample a line), DIR/results.json and DIR/results.md. Rerunning the
same command resumes: stored samples of the same generation config are not generated again, and the
report is recomputed from samples.jsonl. See ``recipe_srft/evaluation/`` for the details.
"""

from __future__ import annotations

import argparse
import sys

from .data import PROTOCOLS, parse_n_per_source
from .runner import EvalConfig, run_eval


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m recipe_srft.evaluation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HF model dir / hub id, or a verl checkpoint directory")
    p.add_argument("--data", required=True, action="append",
                   help="verl parquet file(s), comma separated (the option may be repeated)")
    p.add_argument("--out", required=True, help="output directory (samples.jsonl, results.json, results.md)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="paper")
    p.add_argument("--n", type=int, default=None, help="samples per prompt for every benchmark")
    p.add_argument("--n-per-source", default=None, help="per benchmark, e.g. aime=32,amc=32 (wins over --n)")
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=8192)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="first N prompts of each benchmark")
    p.add_argument("--batch-size", type=int, default=None, help="completions per generator call")
    p.add_argument("--backend", choices=("auto", "vllm", "hf"), default="auto")
    p.add_argument("--think-format", choices=("auto", "on", "off"), default="auto",
                   help="LUFFY think-format rule of the grader: auto = per row (extra_info.template)")
    p.add_argument("--regrade", action="store_true", help="grade every stored sample again")
    p.add_argument("--report-only", action="store_true", help="generate nothing, report what samples.jsonl holds")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU for HF), bfloat16, float16, float32")
    p.add_argument("--device", default=None, help="HF back end: cuda, cpu, cuda:1, ... (default: cuda if available)")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM")
    p.add_argument("--max-model-len", type=int, default=None, help="vLLM")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM")
    p.add_argument("--grade-workers", type=int, default=8, help="threads grading in parallel")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    data = [f.strip() for spec in args.data for f in spec.split(",") if f.strip()]
    for name, val in (("--n", args.n), ("--limit", args.limit), ("--batch-size", args.batch_size),
                      ("--max-new-tokens", args.max_new_tokens)):
        if val is not None and val < (0 if name == "--limit" else 1):
            raise SystemExit(f"{name} must be positive, got {val}")
    return EvalConfig(
        model=args.model, data=data, out=args.out, protocol=args.protocol, n=args.n,
        n_per_source=parse_n_per_source(args.n_per_source), temperature=args.temperature, top_p=args.top_p,
        max_new_tokens=args.max_new_tokens, limit=args.limit, batch_size=args.batch_size, backend=args.backend,
        seed=args.seed, think_format={"auto": None, "on": True, "off": False}[args.think_format],
        regrade=args.regrade, report_only=args.report_only, dtype=args.dtype, device=args.device,
        tensor_parallel_size=args.tensor_parallel_size, max_model_len=args.max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization, grade_workers=args.grade_workers,
        progress=not args.no_progress,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    results = run_eval(cfg)
    print(f"[eval] wrote {cfg.out}/results.json, results.md, samples.jsonl ({results['num_samples']} samples"
          f"{'' if results['complete'] else ', INCOMPLETE'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
