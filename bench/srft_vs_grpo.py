"""Cost of SRFT over GRPO on the same CPU configuration, measured in one run.

    python bench/srft_vs_grpo.py [--rounds 2 --steps 4 --n 4 --prompts 4]

Alternates full training runs of ``srft.preset=srft`` (m = 1 demo per group) and ``srft.preset=grpo``
(m = 0) with verl's real trainer on the tiny model (tiny_model.py, ``rollout.n`` rollouts per prompt).
Step time: median of ``timing_s/step`` over steps 2..N (step 1 warms up). Memory: peak RSS of the
whole process tree (driver, Ray, workers, rollout server), sampled every 0.2 s. Prints both ratios
(goals: time <= 1.10, memory <= 1.2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recipe_srft.console_metrics import read_console_metrics  # noqa: E402
from recipe_srft.cpu.env import CONFIG_DIR, apply_cpu_env  # noqa: E402
from recipe_srft.cpu.smoke_data import write_smoke_data  # noqa: E402
from recipe_srft.cpu.tiny_model import build_tiny_model  # noqa: E402


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(preset: str, model: Path, train: Path, val: Path, out: Path, steps: int, n: int, prompts: int):
    out.mkdir(parents=True, exist_ok=True)
    overrides = [
        "+runtime=cpu", f"srft.preset={preset}",
        f"data.train_files={train}", f"data.val_files={val}", f"data.train_batch_size={prompts}",
        "data.max_prompt_length=64", "data.max_response_length=32",
        f"actor_rollout_ref.model.path={model}", f"actor_rollout_ref.rollout.n={n}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={prompts}",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
        f"trainer.total_training_steps={steps}", "trainer.save_freq=-1", "trainer.test_freq=-1",
        "trainer.val_before_train=false", "trainer.project_name=bench", f"trainer.experiment_name={preset}",
    ]
    cmd = [sys.executable, "-m", "recipe_srft.main_srft", *overrides]
    log_path = out / "train.log"
    peak = 0
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=out, env=apply_cpu_env(dict(os.environ)), stdout=log,
                                stderr=subprocess.STDOUT)
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak = max(peak, tree_rss(ps))
            time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"{preset} run failed, see {log_path}")
    rows = {}
    for row in read_console_metrics(log_path):
        rows.setdefault(row["step"], {}).update(row)
    times = [rows[s]["timing_s/step"] for s in sorted(rows) if s >= 2 and "timing_s/step" in rows[s]]
    return statistics.median(times), peak


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2, help="SRFT/GRPO pairs (alternating)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--prompts", type=int, default=4)
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="srft_bench_"))
    model = build_tiny_model(tmp / "model")
    train, val = write_smoke_data(tmp / "data", n_train=32, n_val=4)
    results = {"srft": [], "grpo": []}
    for r in range(args.rounds):
        for preset in ("srft", "grpo"):
            t, rss = run(preset, model, train, val, tmp / f"{preset}_{r}", args.steps, args.n, args.prompts)
            results[preset].append((t, rss))
            print(f"round {r} {preset:5s}: step {t:.3f} s, peak RSS {rss / 2**30:.2f} GiB", flush=True)
    t_srft = statistics.median(t for t, _ in results["srft"])
    t_grpo = statistics.median(t for t, _ in results["grpo"])
    m_srft = max(m for _, m in results["srft"])
    m_grpo = max(m for _, m in results["grpo"])
    print(f"tiny model, n={args.n} rollouts/prompt, {args.prompts} prompts/step, SRFT m=1 demo/group")
    print(f"step time  SRFT {t_srft:.3f} s / GRPO {t_grpo:.3f} s = ratio {t_srft / t_grpo:.3f}  (goal <= 1.10)")
    print(f"peak RSS   SRFT {m_srft / 2**30:.2f} GiB / GRPO {m_grpo / 2**30:.2f} GiB = ratio {m_srft / m_grpo:.3f}"
          "  (goal <= 1.2)")


if __name__ == "__main__":
    main()
