"""Same-budget comparison on the CPU demo task: SRFT vs GRPO vs SFT-only (the paper's Figure 6 in miniature).

    python -m recipe_srft.experiments.compare [--out runs/cpu_compare] [--presets srft,grpo,sft_only] [--steps 12]

Each preset trains SmolLM2-135M-Instruct for the same number of steps on the same prompts (same rollouts
per prompt: ``grpo`` simply gets no demonstration) through verl's real trainer on the CPU runtime, then
is evaluated greedily on the same held-out problems. Writes ``OUT/results.md`` (accuracy, paired
difference to the base model with its 95% CI, mean entropy and reward over training) and
``OUT/figure.png`` (reward, response length, entropy, SRFT weights per step; :mod:`recipe_srft.tools.plot`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from ..tools.console_metrics import read_console_metrics
from .demo import REPO, _log, evaluate, paired_difference, train_overrides
from .demo_task import write_demo_task
from ..cpu.smoke import run_trainer


def mean_metric(rows: list[dict], key: str):
    values = [r[key] for r in rows if key in r]
    return statistics.fmean(values) if values else None


def last_metric(rows: list[dict], key: str):
    values = [r[key] for r in rows if key in r]
    return values[-1] if values else None


RUN_STAMP = "compare_overrides.json"


def finished_run(run_dir: Path, steps: int, overrides: list[str]) -> bool:
    """True when ``run_dir`` holds a finished training run made with exactly ``overrides``."""
    stamp = run_dir / RUN_STAMP
    if not stamp.exists() or not (run_dir / "ckpt" / f"global_step_{steps}").is_dir():
        return False
    return json.loads(stamp.read_text()) == overrides


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/cpu_compare")
    p.add_argument("--cache", default=os.environ.get("SRFT_CACHE", str(REPO / ".cache")))
    p.add_argument("--presets", default="srft,grpo,sft_only")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--train-rows", type=int, default=256)
    p.add_argument("--val-rows", type=int, default=64)
    p.add_argument("--max-prompt-length", type=int, default=128)
    p.add_argument("--max-new-tokens", type=int, default=48)
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    from ..tools.plot import load_run, plot_runs
    from .smollm2 import ensure_smollm2

    model = ensure_smollm2(args.cache)
    train, val = write_demo_task(out / "data", n_train=args.train_rows, n_val=args.val_rows)
    _log("evaluating the base model")
    base = evaluate(model, val, out / "eval_base", args.max_new_tokens)
    results, runs = {}, []
    for preset in [x.strip() for x in args.presets.split(",") if x.strip()]:
        run_dir = out / preset
        args.preset = preset
        overrides = train_overrides(model, train, val, run_dir, args)
        if finished_run(run_dir, args.steps, overrides):
            # A crashed or interrupted comparison continues where it stopped: a preset whose training finished
            # with exactly these overrides is not trained again (its evaluation below is resumable too).
            _log(f"{preset}: reusing the finished run in {run_dir}")
        else:
            _log(f"training {preset}: {args.steps} steps")
            res = run_trainer(overrides, run_dir, entry="recipe_srft.main_srft", config_name="srft_trainer",
                              timeout=3600)
            if res.returncode != 0:
                raise SystemExit(f"{preset} failed, see {run_dir / 'train.log'}")
            (run_dir / RUN_STAMP).write_text(json.dumps(overrides, indent=1))
        trained = evaluate(run_dir / "ckpt" / f"global_step_{args.steps}", val, run_dir / "eval", args.max_new_tokens)
        rows = read_console_metrics(run_dir / "train.log")
        results[preset] = dict(paired_difference(base, trained),
                               # the rollouts' own entropy (verl's actor/entropy mixes in the demonstrations)
                               entropy=mean_metric(rows, "srft/onpolicy/entropy"),
                               final_entropy=last_metric(rows, "srft/onpolicy/entropy"),
                               reward=mean_metric(rows, "critic/score/mean"),
                               onpolicy_solve=mean_metric(rows, "srft/onpolicy_solve_rate"),
                               step_s=mean_metric(rows, "timing_s/step"))
        runs.append(load_run(run_dir, label=preset))
    figure = plot_runs(runs, out / "figure.png", title=f"SmolLM2-135M, CPU, {args.steps} steps")

    # on-policy solve rate, not critic/score/mean: the latter counts the demonstrations (score 1) of SRFT runs
    lines = ["| run | held-out acc | diff vs base (95% CI) | mean rollout entropy | final rollout entropy | mean on-policy solve rate "
             "| s/step |", "|---|---|---|---|---|---|---|"]
    any_res = next(iter(results.values()))
    lines.append(f"| base | {100 * any_res['base_acc']:.1f}% | | | | | |")
    for preset, r in results.items():
        lo, hi = r["diff_ci95"]
        fmt = lambda v, f: "n/a" if v is None else f.format(v)  # noqa: E731
        lines.append(f"| {preset} | {100 * r['trained_acc']:.1f}% | {100 * r['diff']:+.1f} [{100 * lo:+.1f}, "
                     f"{100 * hi:+.1f}] | {fmt(r['entropy'], '{:.3f}')} | {fmt(r['final_entropy'], '{:.3f}')} | "
                     f"{fmt(r['onpolicy_solve'], '{:.3f}')} | "
                     f"{fmt(r['step_s'], '{:.1f}')} |")
    table = "\n".join(lines) + "\n"
    if results.get("srft", {}).get("entropy") is not None:
        e_s = results["srft"]["entropy"]
        for other in ("grpo", "sft_only"):
            e_o = results.get(other, {}).get("entropy")
            if e_o is not None:
                verdict = "higher" if e_s > e_o else "not higher"
                table += (f"\nSRFT's mean rollout entropy over training ({e_s:.3f}) is {verdict} than {other}'s "
                          f"({e_o:.3f}).")
        table += " The paper reports that SRFT keeps the policy's entropy higher than its baselines.\n"
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps({"results": results, "args": vars(args),
                                                  "minutes": round((time.time() - t0) / 60, 1)}, indent=2))
    print(table)
    _log(f"figure: {figure}; table: {out / 'results.md'}; {round((time.time() - t0) / 60, 1)} min")


if __name__ == "__main__":
    main()
