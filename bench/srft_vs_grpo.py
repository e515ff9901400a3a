"""Cost of SRFT over GRPO on the same CPU configuration, measured in one run.

    python bench/srft_vs_grpo.py [--rounds 3 --steps 6 --n 4 --prompts 4 --dynamic-bsz 4096] [--rollout auto|vllm|hf]

Alternates full training runs of ``srft.preset=srft`` (m = 1 demo per group), ``srft.preset=grpo``
(m = 0) and GRPO with n+1 rollouts (as many trajectories as SRFT, all generated) with verl's real trainer
on the tiny model (tiny_model.py, ``rollout.n`` rollouts per prompt), rotating their order every round.
Step time: median of ``timing_s/step`` over steps 2..N (step 1 warms up) of all rounds pooled; the
per-phase medians (generation, old log-probs, actor update, ...) show where a difference comes from.
Memory: peak RSS of the whole process tree (driver, Ray, workers, rollout server), sampled every 0.2 s.
Prints the ratios (goals: time <= 1.10, memory <= 1.2).
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

from recipe_srft.tools.console_metrics import read_console_metrics  # noqa: E402
from recipe_srft.cpu.env import CONFIG_DIR, apply_cpu_env  # noqa: E402
from recipe_srft.cpu.smoke import add_rollout_argument, resolve_rollout_engine, shm_entries, sweep_shm  # noqa: E402
from recipe_srft.experiments.smoke_data import write_smoke_data  # noqa: E402
from recipe_srft.experiments.tiny_model import build_tiny_model  # noqa: E402


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


#: verl's per-phase timers, printed so that a ratio can be traced to where the time goes
PHASES = ("timing_s/gen", "timing_s/old_log_prob", "timing_s/adv", "timing_s/update_actor", "timing_s/update_weights")


def run(preset: str, model: Path, train: Path, val: Path, out: Path, steps: int, n: int, prompts: int,
        dynamic_bsz: int = 0, rollout: str = "vllm"):
    out.mkdir(parents=True, exist_ok=True)
    overrides = [
        "+runtime=cpu", f"srft.preset={preset}", f"actor_rollout_ref.rollout.name={rollout}",
        f"data.train_files={train}", f"data.val_files={val}", f"data.train_batch_size={prompts}",
        "data.max_prompt_length=64", "data.max_response_length=32",
        f"actor_rollout_ref.model.path={model}", f"actor_rollout_ref.rollout.n={n}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={prompts}",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
        f"trainer.total_training_steps={steps}", "trainer.save_freq=-1", "trainer.test_freq=-1",
        "trainer.val_before_train=false", "trainer.project_name=bench", f"trainer.experiment_name={preset}",
    ]
    if dynamic_bsz:  # token-budget micro-batches, as the GPU scripts (and the paper) use
        overrides += ["actor_rollout_ref.actor.use_dynamic_bsz=true",
                      f"actor_rollout_ref.actor.ppo_max_token_len_per_gpu={dynamic_bsz}",
                      "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",
                      f"actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu={dynamic_bsz}"]
    cmd = [sys.executable, "-m", "recipe_srft.main_srft", *overrides]
    log_path = out / "train.log"
    peak = 0
    shm_before = shm_entries()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=out, env=apply_cpu_env(dict(os.environ)), stdout=log,
                                stderr=subprocess.STDOUT)
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak = max(peak, tree_rss(ps))
            time.sleep(0.2)
    sweep_shm(shm_before)
    if proc.returncode != 0:
        raise SystemExit(f"{preset} run failed, see {log_path}")
    rows = {}
    for row in read_console_metrics(log_path):
        rows.setdefault(row["step"], {}).update(row)
    steady = [rows[s] for s in sorted(rows) if s >= 2 and "timing_s/step" in rows[s]]
    phases = {k: [r[k] for r in steady if k in r] for k in PHASES}
    return [r["timing_s/step"] for r in steady], phases, peak


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="runs of each arm (their order rotates)")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--dynamic-bsz", type=int, default=4096, metavar="TOKENS",
                   help="token budget per micro-batch (verl's use_dynamic_bsz, as the GPU scripts and the paper "
                        "use); 0: fixed micro-batches of 4 trajectories, where SRFT's 5th trajectory per group "
                        "costs a whole extra micro-batch (ratio about 1.2-1.4 on the tiny model)")
    p.add_argument("--no-equal-trajectories", action="store_true",
                   help="skip the third arm (GRPO with n+1 rollouts per prompt)")
    p.add_argument("--prompts", type=int, default=4)
    add_rollout_argument(p)
    args = p.parse_args(argv)
    rollout = resolve_rollout_engine(args.rollout)
    tmp = Path(tempfile.mkdtemp(prefix="srft_bench_"))
    model = build_tiny_model(tmp / "model")
    train, val = write_smoke_data(tmp / "data", n_train=32, n_val=4)
    # arm -> (preset, rollouts per prompt). "grpo_n+1" trains on as many trajectories as SRFT (n rollouts + 1
    # demonstration), all generated: it separates the cost of training on one more trajectory per group (which
    # SRFT pays) from the cost of generating it (which SRFT's demonstration avoids).
    arms = {"srft": ("srft", args.n), "grpo": ("grpo", args.n)}
    if not args.no_equal_trajectories:
        arms["grpo_n+1"] = ("grpo", args.n + 1)
    names = list(arms)
    steps = {a: [] for a in names}
    phases = {a: {k: [] for k in PHASES} for a in names}
    peaks = {a: [] for a in names}
    for r in range(args.rounds):
        # the arms' order rotates every round, so a slow first run (cold caches) or a drifting machine does not
        # always hit the same arm
        for arm in names[r % len(names):] + names[:r % len(names)]:
            preset, n = arms[arm]
            times, ph, rss = run(preset, model, train, val, tmp / f"{arm}_{r}", args.steps, n, args.prompts,
                                    args.dynamic_bsz, rollout)
            steps[arm] += times
            for k, v in ph.items():
                phases[arm][k] += v
            peaks[arm].append(rss)
            print(f"round {r} {arm:8s}: median step {statistics.median(times):.3f} s over {len(times)} steps, "
                  f"peak RSS {rss / 2**30:.2f} GiB", flush=True)
    # medians over the steady steps (2..N) of all rounds pooled: one slow round of a noisy machine moves them less
    t = {a: statistics.median(steps[a]) for a in names}
    m = {a: max(peaks[a]) for a in names}
    print(f"tiny model, rollout engine {rollout}, {args.prompts} prompts/step, n={args.n} rollouts/prompt, SRFT m=1 demo/group "
          f"(+{100 / args.n:.0f}% trajectories to score and train on); {args.rounds} rounds x {args.steps} steps; "
          + (f"dynamic micro-batches of {args.dynamic_bsz} tokens" if args.dynamic_bsz else "micro-batches of 4"))
    print(f"  {'phase (median s)':18s}" + "".join(f"{a:>10s}" for a in names) + "   srft/grpo")
    for k in PHASES:
        med = {a: statistics.median(phases[a][k]) for a in names}
        print(f"  {k.split('/', 1)[1]:18s}" + "".join(f"{med[a]:10.3f}" for a in names)
              + f"   {med['srft'] / med['grpo']:.3f}")
    print(f"step time  SRFT {t['srft']:.3f} s / GRPO {t['grpo']:.3f} s = ratio {t['srft'] / t['grpo']:.3f}"
          "  (goal <= 1.10)")
    if "grpo_n+1" in t:
        print(f"step time  SRFT {t['srft']:.3f} s / GRPO with n+1 rollouts {t['grpo_n+1']:.3f} s = ratio "
              f"{t['srft'] / t['grpo_n+1']:.3f}  (same number of trajectories; < 1 = the demonstration is cheaper "
              "than one more rollout)")
    print(f"peak RSS   SRFT {m['srft'] / 2**30:.2f} GiB / GRPO {m['grpo'] / 2**30:.2f} GiB = ratio "
          f"{m['srft'] / m['grpo']:.3f}  (goal <= 1.2)")


if __name__ == "__main__":
    main()
