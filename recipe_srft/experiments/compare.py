"""Same-budget comparison on the CPU demo task, several seeds per method (the paper's Table 2 in miniature).

    python -m recipe_srft.experiments.compare [--out runs/cpu_compare] [--methods srft,luffy,grpo,sft,sft_rl]
        [--steps 8] [--seeds 3] [--seeds-for srft=3,sft_rl=3] [--results docs/results/cpu_compare.jsonl]

Methods: any ``srft.preset`` (``srft``, ``luffy``, ``grpo``, ``sft_only``, ``srft_code``, ``hpt``, ``chord``, ...)
trained through verl's real RL trainer on the CPU runtime, each with the verl settings its preset ties
(``srft_config.PRESET_VERL``, e.g. chord's entropy coefficient 0); ``sft``, verl's own SFT trainer on the demonstrations (torchrun, 2 gloo ranks,
:mod:`recipe_srft.experiments.sft_rl`); ``sft_rl``, that SFT then ``grpo`` from its Hugging Face model.

Budget rules (the same for every method and seed):

* the same model (SmolLM2-135M-Instruct), training file (so the same pool of demonstrations: ``sft`` and
  ``sft_rl`` train on exactly the demonstrations that ``srft`` and ``luffy`` put in their groups), prompts per
  step, rollouts per prompt, learning rate, optimizer (AdamW, constant lr, no weight decay) and held-out problems;
* the same number of optimizer updates, ``--steps`` (one rollout batch = one mini-batch = one update in the RL
  runs; one batch of ``--prompts`` demonstrations = one update in SFT). ``sft_rl`` splits them:
  ``round(steps * --sft-rl-split)`` SFT updates, the rest GRPO. Equal wall clock was not chosen: on the CPU an SFT
  update costs a few seconds and an RL update over a minute, so equal time would give SFT some twenty times more
  updates and many passes over the demonstrations, which measures the CPU rather than the methods. The paper's
  SFT->RL is not budget-matched either (a full SFT stage before the RL run); here it is, which is stricter.

Seeds: seed ``s`` sets ``data.seed`` (prompt order) and ``actor_rollout_ref.rollout.seed`` (rollout sampling) of
the RL runs, and the row order of the SFT file (verl 0.9.1's SFT trainer has no data seed). CPU kernels are not
bit-deterministic, so two runs with one seed may still differ slightly.

Issue 19's comparison (the SFT+RL methods on one stack): ``--methods srft,srft_code,hpt,chord,luffy,sft_rl
--seeds 3 --results docs/results/cpu_compare.jsonl``. Each record then also holds ``hpt_sft_frac`` (hpt: the mean
share of groups in SFT mode) and ``final_mu`` (chord: mu at the last step) when the run logs them.

Each finished run appends one JSON line to ``OUT/runs.jsonl`` (and to ``--results`` when given): method, seed,
steps, held-out greedy accuracy with its Wilson 95% interval, the paired difference to the base model with its
95% CI, mean rollout entropy, minutes, date and the command. A rerun skips the (method, seed) pairs already
recorded with the same settings and resumes an interrupted run from its checkpoints. ``OUT/results.md`` holds the
per-run table and the per-method mean with a 95% interval over seeds (Student t), then ``srft_code`` against
``srft`` problem by problem (:func:`compare_two`); ``OUT/figure.png`` the per-seed
accuracies; ``OUT/entropy.png`` the rollouts' own entropy per update for every method (mean over seeds, band:
seed range; the paper's central claim is about entropy); ``OUT/curves.png`` the training metrics of seed 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

from ..tools.console_metrics import read_console_metrics
from ..cpu.precision import resolve_precision
from ..cpu.smoke import add_rollout_argument, resolve_rollout_engine
from .demo import REPO, _log, add_precision_argument, evaluate, paired_difference, read_samples, train_overrides
from .demo_task import write_demo_task
from ..cpu.smoke import run_trainer

#: methods that are not an srft.preset
STAGE_METHODS = ("sft", "sft_rl")
DEFAULT_METHODS = "srft,luffy,grpo,sft,sft_rl"


def check_methods(methods: list[str]) -> None:
    """Refuses an unknown method before anything runs, naming the known ones (every srft.preset but custom, plus
    the stage methods)."""
    from ..srft_config import PRESETS  # imports torch: not at module import

    known = [p for p in PRESETS if p != "custom"] + list(STAGE_METHODS)
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise SystemExit(f"--methods: unknown {unknown or 'none given'}; choose from {', '.join(known)}")
RUN_STAMP = "compare_overrides.json"
#: two-sided 97.5% quantiles of Student's t for 1..10 degrees of freedom (the interval over seeds)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def mean_metric(rows: list[dict], key: str):
    values = [r[key] for r in rows if key in r]
    return statistics.fmean(values) if values else None


def last_metric(rows: list[dict], key: str):
    values = [r[key] for r in rows if key in r]
    return values[-1] if values else None


def finished_run(run_dir: Path, steps: int, overrides: list[str]) -> bool:
    """True when ``run_dir`` holds a finished training run made with exactly ``overrides``."""
    stamp = run_dir / RUN_STAMP
    if not stamp.exists() or not (run_dir / "ckpt" / f"global_step_{steps}").is_dir():
        return False
    return json.loads(stamp.read_text()) == overrides


def seed_interval(values: list[float]) -> dict:
    """Mean over seeds and its 95% interval (Student t with K-1 degrees of freedom; none for one seed)."""
    k = len(values)
    m = statistics.fmean(values)
    if k < 2:
        return {"seeds": k, "mean": m, "low": None, "high": None}
    half = T975.get(k - 1, 1.96) * statistics.stdev(values) / math.sqrt(k)
    return {"seeds": k, "mean": m, "low": m - half, "high": m + half}


def wilson(successes: float, total: int) -> list[float]:
    from ..evaluation.metrics import wilson_ci

    ci = wilson_ci(successes, total)
    return [ci["low"], ci["high"]]


def settings_key(args) -> str:
    """What makes two records comparable: the budget and task settings (not the seed, method or output folder)."""
    keys = ("steps", "prompts", "n", "lr", "train_rows", "val_rows", "max_prompt_length", "max_new_tokens",
            "sft_rl_split", "sft_nproc", "rollout_engine", "precision")
    blob = json.dumps({k: getattr(args, k) for k in keys}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------- one run
def _rl_run(model: Path, train: Path, val: Path, run_dir: Path, args, preset: str, steps: int, seed: int) -> Path:
    """An RL run of ``preset`` (resumed or reused); returns its final checkpoint."""
    import copy

    a = copy.copy(args)
    a.preset, a.steps = preset, steps
    overrides = train_overrides(model, train, val, run_dir, a) + [
        f"data.seed={seed}", f"actor_rollout_ref.rollout.seed={seed}", "trainer.resume_mode=auto"]
    if finished_run(run_dir, steps, overrides):
        _log(f"{run_dir.name}: reusing the finished run in {run_dir}")
    else:
        _log(f"training {preset} (seed {seed}): {steps} steps, log {run_dir / 'train.log'}")
        res = run_trainer(overrides, run_dir, entry="recipe_srft.main_srft", config_name="srft_trainer", timeout=5400)
        if res.returncode != 0:
            raise SystemExit(f"{preset} failed, see {run_dir / 'train.log'}")
        (run_dir / RUN_STAMP).write_text(json.dumps(overrides, indent=1))
    return run_dir / "ckpt" / f"global_step_{steps}"


def _sft_run(model: Path, train: Path, run_dir: Path, args, steps: int, seed: int) -> Path:
    from .sft_rl import run_sft_stage, sft_data, sft_overrides

    data = sft_data(train, run_dir / "data" / "train.sft.parquet", model, shuffle_seed=seed)
    overrides = sft_overrides(model, data, run_dir, nproc=args.sft_nproc, batch_size=args.prompts, steps=steps,
                              lr=args.lr, max_length=args.max_prompt_length + args.max_new_tokens)
    _log(f"SFT (seed {seed}): {steps} steps of {args.prompts} demonstrations, log {run_dir / 'sft.log'}")
    return run_sft_stage(overrides, run_dir, nproc=args.sft_nproc, timeout=3600)


def run_method(method: str, seed: int, model: Path, train: Path, val: Path, base: dict, out: Path, args) -> dict:
    """Trains and evaluates one (method, seed); returns its record."""
    t0 = time.time()
    run_dir = out / method / f"seed{seed}"
    if method == "sft":
        trained_model = _sft_run(model, train, run_dir, args, args.steps, seed)
        stages = {"sft": args.steps}
    elif method == "sft_rl":
        sft_steps = max(1, min(args.steps - 1, round(args.steps * args.sft_rl_split)))
        stage1 = _sft_run(model, train, run_dir / "stage1_sft", args, sft_steps, seed)
        trained_model = _rl_run(stage1, train, val, run_dir / "stage2_grpo", args, "grpo", args.steps - sft_steps,
                                seed)
        stages = {"sft": sft_steps, "grpo": args.steps - sft_steps}
    else:
        trained_model = _rl_run(model, train, val, run_dir, args, method, args.steps, seed)
        stages = {method: args.steps}
    log = None if method == "sft" else rl_log(out, method, seed)  # sft has no rollouts
    trained = evaluate(trained_model, val, run_dir / "eval", args.max_new_tokens)
    diff = paired_difference(base, trained)
    rows = read_console_metrics(log) if log is not None else []
    correct = round(diff["trained_acc"] * diff["prompts"])
    return {
        "method": method, "seed": seed, "steps": args.steps, "stages": stages,
        "heldout_acc": diff["trained_acc"], "heldout_ci95": wilson(correct, diff["prompts"]),
        "prompts": diff["prompts"], "base_acc": diff["base_acc"], "diff_vs_base": diff["diff"],
        "diff_ci95": diff["diff_ci95"],
        # the rollouts' own entropy (verl's actor/entropy mixes in the demonstrations); SFT has no rollouts
        "mean_entropy": mean_metric(rows, "srft/onpolicy/entropy"),
        "final_entropy": last_metric(rows, "srft/onpolicy/entropy"),
        "onpolicy_solve_rate": mean_metric(rows, "srft/onpolicy_solve_rate"),
        # the per-group gate and the scheduled mix (None for the methods without them)
        "hpt_sft_frac": mean_metric(rows, "srft/hpt_sft_frac"),
        "final_mu": last_metric(rows, "srft/mu"),
        "model": "SmolLM2-135M-Instruct", "prompts_per_step": args.prompts, "rollouts_per_prompt": args.n,
        "lr": args.lr, "rollout_engine": args.rollout_engine, "precision": args.precision,
        "settings": settings_key(args), "minutes": round((time.time() - t0) / 60, 1),
        "date": time.strftime("%Y-%m-%d"), "command": args.command,
    }


# ------------------------------------------------------------------------------------------------- report
def report(records: list[dict], methods: list[str]) -> str:
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}"  # noqa: E731
    lines = ["| method | seeds | mean held-out acc | 95% interval over seeds (t, clipped to [0, 100]) | "
             "per-seed acc [Wilson 95% CI] | "
             "mean rollout entropy |", "|---|---|---|---|---|---|"]
    if records:
        lines.append(f"| base | | {pct(records[0]['base_acc'])}% | | | |")
    for method in methods:
        rs = sorted((r for r in records if r["method"] == method), key=lambda r: r["seed"])
        if not rs:
            continue
        s = seed_interval([r["heldout_acc"] for r in rs])
        # an accuracy lies in [0, 1]: the t interval is shown clipped to it
        interval = "" if s["low"] is None else f"[{pct(max(0.0, s['low']))}, {pct(min(1.0, s['high']))}]"
        per_seed = "; ".join(f"s{r['seed']}: {pct(r['heldout_acc'])} [{pct(r['heldout_ci95'][0])}, "
                             f"{pct(r['heldout_ci95'][1])}]" for r in rs)
        ents = [r["mean_entropy"] for r in rs if r.get("mean_entropy") is not None]
        ent = f"{statistics.fmean(ents):.3f}" if ents else "n/a (no rollouts)"
        lines.append(f"| `{method}` | {len(rs)} | {pct(s['mean'])}% | {interval} | {per_seed} | {ent} |")
    return "\n".join(lines) + "\n"


def _save_figure(fig, ax, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_seeds(records: list[dict], methods: list[str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.4 * max(3, len(methods)) + 1.5, 3.6))
    present = [m for m in methods if any(r["method"] == m for r in records)]
    for i, method in enumerate(present):
        accs = [100 * r["heldout_acc"] for r in records if r["method"] == method]
        ax.scatter([i] * len(accs), accs, color="tab:blue", alpha=0.6, zorder=3, label="one seed" if i == 0 else None)
        s = seed_interval(accs)
        if s["low"] is not None:
            low, high = max(0.0, s["low"]), min(100.0, s["high"])
            ax.errorbar(i + 0.15, s["mean"], yerr=[[s["mean"] - low], [high - s["mean"]]], fmt="o",
                        color="black", capsize=4, zorder=4, label="mean, 95% interval over seeds" if i == 0 else None)
        else:
            ax.scatter([i + 0.15], [s["mean"]], color="black", zorder=4)
    if records:
        ax.axhline(100 * records[0]["base_acc"], color="gray", linestyle="--", label="base model")
    ax.set_xticks(range(len(present)), present)
    ax.set_ylabel("held-out accuracy (%, greedy)")
    ax.set_ylim(bottom=0)
    return _save_figure(fig, ax, path, title)


def compare_two(out: Path, a: str, b: str, seeds: list[int]) -> dict:
    """``b`` against ``a`` on the held-out problems, seed by seed (the same seed gives both the same prompt order
    and rollout seed): the accuracy difference, the problems one solves and the other does not, and how many
    greedy responses are identical token for token; plus the mean difference over seeds with its 95% interval
    (Student t). Tells whether two methods differ at all, not only whether their means do."""
    per_seed = []
    for seed in seeds:
        ra, rb = (read_samples(out / m / f"seed{seed}" / "eval") for m in (a, b))
        keys = sorted(set(ra) & set(rb))
        per_seed.append({
            "seed": seed, "problems": len(keys),
            "diff": statistics.fmean(rb[k][0] - ra[k][0] for k in keys),
            "only_a": sum(ra[k][0] > rb[k][0] for k in keys), "only_b": sum(rb[k][0] > ra[k][0] for k in keys),
            "identical_responses": sum(ra[k][1] == rb[k][1] for k in keys)})
    return {"a": a, "b": b, "per_seed": per_seed, "over_seeds": seed_interval([r["diff"] for r in per_seed])}


#: pairs of methods compared problem by problem in results.md (issue 19: do the paper's and the code's SRFT differ?)
PAIRS = (("srft", "srft_code"),)


def pair_report(pair: dict) -> str:
    a, b = pair["a"], pair["b"]
    lines = [f"`{b}` against `{a}`, the same seeds (prompt order and rollout seed):", "",
             f"| seed | problems | {b} - {a} (points) | solved only by {a} | solved only by {b} | identical greedy "
             "responses |", "|---|---|---|---|---|---|"]
    for r in pair["per_seed"]:
        lines.append(f"| {r['seed']} | {r['problems']} | {100 * r['diff']:+.1f} | {r['only_a']} | {r['only_b']} | "
                     f"{r['identical_responses']} |")
    o = pair["over_seeds"]
    interval = "" if o["low"] is None else f", 95% interval over seeds [{100 * o['low']:+.1f}, {100 * o['high']:+.1f}]"
    lines += ["", f"Mean difference {100 * o['mean']:+.1f} points over {o['seeds']} seeds{interval}."]
    return "\n".join(lines) + "\n"


def rl_log(out: Path, method: str, seed: int) -> Path:
    """The train.log of a run's RL stage (``sft_rl``: its GRPO stage)."""
    run_dir = out / method / f"seed{seed}"
    return run_dir / "stage2_grpo" / "train.log" if method == "sft_rl" else run_dir / "train.log"


def entropy_curves(records: list[dict], out: Path, key: str = "srft/onpolicy/entropy") -> dict:
    """Per method, the rollouts' own entropy (``key``, logged by the SRFT trainer for the rollouts alone) at each
    optimizer update, over the recorded seeds: ``{method: [(update, mean, min, max, seeds), ...]}``. An ``sft_rl``
    run's GRPO steps are shifted by its SFT updates, so every method's x axis counts the same updates. Methods
    without rollouts (``sft``) or without logs are left out."""
    by_update: dict[str, dict[int, list[float]]] = {}
    for r in records:
        log = rl_log(out, r["method"], r["seed"])
        if not log.exists():
            continue
        offset = r.get("stages", {}).get("sft", 0) if r["method"] == "sft_rl" else 0
        for row in read_console_metrics(log):
            if key in row:
                by_update.setdefault(r["method"], {}).setdefault(offset + row["step"], []).append(row[key])
    return {m: [(u, statistics.fmean(v), min(v), max(v), len(v)) for u, v in sorted(steps.items())]
            for m, steps in by_update.items()}


def plot_entropy_curves(curves: dict, path: Path, title: str) -> Path:
    """The rollouts' entropy per update, one line per method (mean over seeds) and its seed range as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for method, points in curves.items():
        x = [p[0] for p in points]
        line, = ax.plot(x, [p[1] for p in points], marker="o", markersize=3, label=method)
        ax.fill_between(x, [p[2] for p in points], [p[3] for p in points], color=line.get_color(), alpha=0.15)
    ax.set_xlabel("optimizer update")
    ax.set_ylabel("rollout entropy (nats, per token)")
    return _save_figure(fig, ax, path, title)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/cpu_compare")
    p.add_argument("--cache", default=os.environ.get("SRFT_CACHE", str(REPO / ".cache")))
    p.add_argument("--methods", "--presets", dest="methods", default=DEFAULT_METHODS,
                   help=f"comma-separated srft.preset values and/or {', '.join(STAGE_METHODS)}")
    p.add_argument("--steps", type=int, default=8, help="optimizer updates per run (all methods)")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..K-1 for every method")
    p.add_argument("--seeds-for", default="", help="per-method seed counts overriding --seeds, e.g. srft=3,sft_rl=3")
    p.add_argument("--prompts", type=int, default=8, help="prompts (RL) / demonstrations (SFT) per update")
    p.add_argument("--n", type=int, default=4, help="rollouts per prompt")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--sft-rl-split", type=float, default=0.5, help="share of the updates sft_rl spends in SFT")
    p.add_argument("--sft-nproc", type=int, default=2, help="data-parallel ranks of the SFT runs")
    p.add_argument("--train-rows", type=int, default=256)
    p.add_argument("--val-rows", type=int, default=64)
    p.add_argument("--max-prompt-length", type=int, default=128)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--results", default=None, help="also append each new record to this JSON-lines file")
    add_rollout_argument(p)
    add_precision_argument(p)
    args = p.parse_args(argv)
    args.rollout_engine = resolve_rollout_engine(args.rollout, _log)
    args.precision = resolve_precision(args.precision, _log)
    args.command = "python -m recipe_srft.experiments.compare " + shlex.join(sys.argv[1:] if argv is None else argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    check_methods(methods)
    seeds = {m: args.seeds for m in methods}
    for item in filter(None, (x.strip() for x in args.seeds_for.split(","))):
        name, _, k = item.partition("=")
        if name not in seeds or not k.isdigit():
            raise SystemExit(f"--seeds-for {item!r}: expected METHOD=K with METHOD in {methods}")
        seeds[name] = int(k)
    if args.steps < 2 and "sft_rl" in methods:
        raise SystemExit("--steps must be >= 2 for sft_rl (at least one SFT and one GRPO update)")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    from .smollm2 import ensure_smollm2

    model = ensure_smollm2(args.cache)
    train, val = write_demo_task(out / "data", n_train=args.train_rows, n_val=args.val_rows)
    _log("evaluating the base model")
    base = evaluate(model, val, out / "eval_base", args.max_new_tokens)
    runs_file = out / "runs.jsonl"
    key = settings_key(args)
    results_file = Path(args.results).resolve() if args.results else None
    # seed-major order: a comparison stopped early still has every method at its first seeds
    todo = [(m, s) for s in range(max(seeds.values())) for m in methods if s < seeds[m]]
    for method, seed in todo:
        done = {(r["method"], r["seed"]) for r in read_records(runs_file) if r["settings"] == key}
        if (method, seed) in done:
            _log(f"{method} seed {seed}: recorded in {runs_file}, skipping")
            continue
        record = run_method(method, seed, model, train, val, base, out, args)
        line = json.dumps(record) + "\n"
        with open(runs_file, "a") as f:
            f.write(line)
        if results_file is not None:
            results_file.parent.mkdir(parents=True, exist_ok=True)
            with open(results_file, "a") as f:
                f.write(line)
        _log(f"{method} seed {seed}: held-out {100 * record['heldout_acc']:.1f}% ({record['minutes']} min)")

    records = [r for r in read_records(runs_file) if r["settings"] == key]
    table = report(records, methods)
    for a, b in PAIRS:
        seeds_ab = sorted({r["seed"] for r in records if r["method"] == a} & {r["seed"] for r in records
                                                                          if r["method"] == b})
        if seeds_ab:
            table += "\n" + pair_report(compare_two(out, a, b, seeds_ab))
    (out / "results.md").write_text(table)
    figure = plot_seeds(records, methods, out / "figure.png",
                        f"SmolLM2-135M, CPU demo task, {args.steps} updates per run")
    entropy = entropy_curves(records, out)
    if entropy:
        plot_entropy_curves(entropy, out / "entropy.png", f"SmolLM2-135M, CPU: rollout entropy, mean over seeds "
                                                          "(band: seed range)")
    from ..tools.plot import load_run, plot_runs

    curves = [load_run(log.parent, label=m) for m in methods
              for log in [rl_log(out, m, 0)] if m != "sft" and log.exists()]
    if curves:
        plot_runs(curves, out / "curves.png", title=f"SmolLM2-135M, CPU, seed 0 ({args.steps} updates)")
    print(table)
    _log(f"figure: {figure}; table: {out / 'results.md'}; {round((time.time() - t0) / 60, 1)} min")


if __name__ == "__main__":
    main()
