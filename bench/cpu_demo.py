"""Minutes and held-out gain of the CPU demo (the README's main job) under different engines/precisions, in one run.

    python bench/cpu_demo.py [--arms vllm:bf16,hf:fp32] [--steps 10] [--out runs/bench_cpu_demo]

Each arm is ``ENGINE:PRECISION`` (``vllm``/``hf`` x ``bf16``/``fp32``) and runs ``run_scripts/cpu_demo.sh`` with
``--rollout ENGINE --precision PRECISION`` into its own folder (the base evaluation is shared: same model, same
prompts, greedy). Prints, per arm, the whole demo's minutes, the training minutes (verl's step times summed), the
median step time and its phases, the held-out accuracy before/after with the paired 95% CI, and the ratios of the
first arm to the others. A machine-noise caveat: one run per arm; rerun and compare before concluding on < 10%.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recipe_srft.tools.console_metrics import read_console_metrics  # noqa: E402

PHASES = ("timing_s/gen", "timing_s/old_log_prob", "timing_s/update_actor", "timing_s/update_weights")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arms", default="vllm:bf16,hf:fp32")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--out", default="runs/bench_cpu_demo")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    results = {}
    base_eval = None
    for arm in args.arms.split(","):
        engine, precision = arm.split(":")
        arm_out = out / arm.replace(":", "_")
        if base_eval is not None and not (arm_out / "eval_base").exists():
            shutil.copytree(base_eval, arm_out / "eval_base")
        cmd = ["bash", str(REPO / "run_scripts" / "cpu_demo.sh"), "--steps", str(args.steps), "--rollout", engine,
               "--precision", precision] + (["--skip-base-eval"] if base_eval is not None else [])
        print(f"== {arm}: {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, cwd=REPO, env=dict(os.environ, OUT=str(arm_out)), check=True)
        base_eval = base_eval or arm_out / "eval_base"
        summary = json.loads((arm_out / "summary.json").read_text())
        rows = {}
        for row in read_console_metrics(arm_out / "train" / "train.log"):
            rows.setdefault(row["step"], {}).update(row)
        steps = [rows[s] for s in sorted(rows) if s >= 1 and "timing_s/step" in rows[s]]
        summary["train_minutes"] = sum(r["timing_s/step"] for r in steps) / 60
        summary["median_step_s"] = statistics.median(r["timing_s/step"] for r in steps)
        summary["phases"] = {k: statistics.median(r[k] for r in steps if k in r) for k in PHASES}
        summary["entropy_mean"] = statistics.fmean(r["srft/onpolicy/entropy"] for r in steps
                                                   if "srft/onpolicy/entropy" in r)
        summary["rollout_probs_diff_max"] = max(r.get("training/rollout_probs_diff_max", 0.0) for r in steps)
        results[arm] = summary
    first = next(iter(results))
    print(f"\nCPU demo, {args.steps} steps, SmolLM2-135M-Instruct, 64 held-out problems (greedy)")
    print(f"  {'arm':10s} {'minutes':>8s} {'train min':>9s} {'step s':>7s} {'gen':>6s} {'logp':>6s} {'update':>7s}"
          f" {'base':>6s} {'trained':>8s}  diff [95% CI]                 entropy  diff_max")
    for arm, s in results.items():
        lo, hi = s["diff_ci95"]
        ph = s["phases"]
        print(f"  {arm:10s} {s['minutes']:8.1f} {s['train_minutes']:9.1f} {s['median_step_s']:7.1f}"
              f" {ph['timing_s/gen']:6.1f} {ph['timing_s/old_log_prob']:6.1f} {ph['timing_s/update_actor']:7.1f}"
              f" {100 * s['base_acc']:5.1f}% {100 * s['trained_acc']:7.1f}%  {100 * s['diff']:+5.1f} pts "
              f"[{100 * lo:+5.1f}, {100 * hi:+5.1f}]   {s['entropy_mean']:.3f}   {s['rollout_probs_diff_max']:.1e}")
    for arm, s in results.items():
        if arm != first:
            print(f"  ratio {first} / {arm}: whole demo {results[first]['minutes'] / s['minutes']:.2f}, "
                  f"training {results[first]['train_minutes'] / s['train_minutes']:.2f}, "
                  f"median step {results[first]['median_step_s'] / s['median_step_s']:.2f}")
    (out / "bench.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
