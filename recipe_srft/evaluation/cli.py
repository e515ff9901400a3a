r"""Evaluate a model on the SRFT benchmarks (paper section 6): sample, grade, report avg@n / pass@k / 95% CI.

    python -m recipe_srft.evaluation --model PATH --data FILE[,FILE] --out DIR [--suite paper|hpt] \
        [--protocol paper|hpt|avg1] [--n N] [--n-per-source aime=32,amc=32] \
        [--temperature T] [--top-p P] [--max-new-tokens M] [--seed 0] \
        [--limit N] [--batch-size B] [--backend auto|vllm|hf] [--think-format suite|auto|on|off] \
        [--dtype auto] [--kv-cache-memory-bytes B] [--regrade] [--report-only]

(``python -m recipe_srft.eval`` is an alias.) PATH: an HF model directory (or hub id), or a verl checkpoint (``.../global_step_N/actor`` with FSDP
shards + ``huggingface/``, the ``global_step_N`` directory, or the checkpoint root with
``latest_checkpointed_iteration.txt``), merged into ``DIR/merged_model`` with ``verl.model_merger``.

Suite (``--suite``, default ``paper``; recipe_srft/evaluation/suites.py): the protocol, sampling, grading switch
and macro averages of a published table. ``paper``: SRFT's Table 2, temperature 0.6, top-p 1.0, 8192 new
tokens, graded per row; ``hpt``: HPT's table (six math benchmarks with AIME25, ARC-C and GPQA), n=16 on every
benchmark, temperature 0.6, top-p 0.95, 8192 new tokens, answer read from the whole response. An explicit
option wins over the suite's value; results.json records the suite under ``suite``.

Protocol (the suite's unless ``--protocol``): ``paper``: n=32 samples per prompt for AIME24, AIME25 and AMC
(identical rows, e.g. LUFFY's 8x / 4x copies, merged into one prompt), n=1 elsewhere; ``hpt``: n=16
everywhere; ``avg1``: n=1 everywhere, rows as they are.
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
from .suites import SUITE_NAMES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m recipe_srft.evaluation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HF model dir / hub id, or a verl checkpoint directory")
    p.add_argument("--data", required=True, action="append",
                   help="verl parquet file(s), comma separated (the option may be repeated)")
    p.add_argument("--out", required=True, help="output directory (samples.jsonl, results.json, results.md)")
    p.add_argument("--suite", choices=SUITE_NAMES, default="paper",
                   help="protocol, sampling and averages of a published table (default: paper)")
    p.add_argument("--protocol", choices=PROTOCOLS, default=None, help="samples per prompt (default: the suite's)")
    p.add_argument("--n", type=int, default=None, help="samples per prompt for every benchmark")
    p.add_argument("--n-per-source", default=None, help="per benchmark, e.g. aime=32,amc=32 (wins over --n)")
    p.add_argument("--temperature", type=float, default=None, help="default: the suite's (0.6)")
    p.add_argument("--top-p", type=float, default=None, help="default: the suite's (paper 1.0, hpt 0.95)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the suite's (8192)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="first N prompts of each benchmark")
    p.add_argument("--batch-size", type=int, default=None, help="completions per generator call")
    p.add_argument("--backend", choices=("auto", "vllm", "hf"), default="auto")
    p.add_argument("--think-format", choices=("suite", "auto", "on", "off"), default="suite",
                   help="LUFFY think-format rule of the grader: auto = per row (extra_info.template); "
                        "suite = the suite's (paper: auto, hpt: off)")
    p.add_argument("--regrade", action="store_true", help="grade every stored sample again")
    p.add_argument("--report-only", action="store_true", help="generate nothing, report what samples.jsonl holds")
    p.add_argument("--dtype", default="auto",
                   help="bfloat16, float16, float32, or auto (the default): bfloat16 on a GPU, the checkpoint's own "
                        "dtype (config.json; float32 if none) on the CPU; the same for both back ends")
    p.add_argument("--device", default=None, help="HF back end: cuda, cpu, cuda:1, ... (default: cuda if available)")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM")
    p.add_argument("--max-model-len", type=int, default=None, help="vLLM")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM")
    p.add_argument("--kv-cache-memory-bytes", type=int, default=None,
                   help="vLLM KV cache size in bytes (on the CPU default 1 GiB; on a GPU vLLM's own sizing)")
    p.add_argument("--grade-workers", type=int, default=8, help="threads grading in parallel")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    data = [f.strip() for spec in args.data for f in spec.split(",") if f.strip()]
    for name, val in (("--n", args.n), ("--limit", args.limit), ("--batch-size", args.batch_size),
                      ("--max-new-tokens", args.max_new_tokens), ("--kv-cache-memory-bytes", args.kv_cache_memory_bytes)):
        if val is not None and val < (0 if name == "--limit" else 1):
            raise SystemExit(f"{name} must be positive, got {val}")
    return EvalConfig(
        model=args.model, data=data, out=args.out, protocol=args.protocol, n=args.n,
        n_per_source=parse_n_per_source(args.n_per_source), temperature=args.temperature, top_p=args.top_p,
        max_new_tokens=args.max_new_tokens, limit=args.limit, batch_size=args.batch_size, backend=args.backend,
        seed=args.seed, think_format={"suite": "suite", "auto": None, "on": True, "off": False}[args.think_format],
        regrade=args.regrade, report_only=args.report_only, dtype=args.dtype, device=args.device,
        tensor_parallel_size=args.tensor_parallel_size, max_model_len=args.max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization, grade_workers=args.grade_workers,
        progress=not args.no_progress, suite=args.suite, kv_cache_memory_bytes=args.kv_cache_memory_bytes,
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
