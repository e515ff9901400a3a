"""Training curves of one or more runs in one PNG (the paper's Figure 6 in miniature).

    python -m recipe_srft.tools.plot RUN_DIR [RUN_DIR ...] [--labels A,B] [--out FIG.png]
                               [--metrics KEY [KEY ...]] [--csv OUT.csv]

Each RUN_DIR is a run's output directory (or a single metrics file). Its per-step metrics are
collected from every source found there, merged by step:

* tensorboard event files (``events.out.tfevents.*``) anywhere below RUN_DIR, as verl's
  ``tensorboard`` logger writes them (``$TENSORBOARD_DIR`` or ``tensorboard_log/<project>/<experiment>``);
* verl's ``console`` logger output saved as a text log: ``RUN_DIR/train.log`` (else the ``*.log`` files
  directly in RUN_DIR), lines ``step:N - key:value - ...``;
* ``RUN_DIR/metrics.jsonl`` (one JSON dict per step with a ``step`` key, see ``write_metrics_jsonl``)
  and the ``*.jsonl`` files of verl's ``file`` logger (``{"step": N, "data": {...}}``) up to two levels down.

Where two sources give the same metric at the same step, metrics.jsonl wins over the console log,
which wins over tensorboard (which stores float32).

Default panels: reward (``critic/score/mean``; for SRFT runs it includes the demonstrations), the
rollouts' own solve rate (``srft/onpolicy_solve_rate``, when logged), response length (``response_length/mean``), policy
entropy (``actor/entropy``), the rollouts' own response length and entropy (``srft/onpolicy/response_length_mean``, ``srft/onpolicy/entropy``, when logged), the SRFT weights (``actor/srft/w_sft_mean`` and ``actor/srft/w_rl_mean``),
and validation accuracy (``val-core/*/acc/mean@*``) when any run logged it. ``--metrics`` replaces them:
one panel per argument; an argument may be a glob (``val-core/*/acc/mean@*``) and may join several
metrics into one panel with ``+`` (``actor/srft/w_sft_mean+actor/srft/w_rl_mean``). A panel whose
metrics no run logged says "not logged". Prints the path of the PNG.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recipe_srft.tools.console_metrics import read_console_metrics

__all__ = [
    "DEFAULT_PANELS",
    "NoMetricsError",
    "Panel",
    "RunMetrics",
    "find_sources",
    "load_run",
    "main",
    "merged_table",
    "plot_runs",
    "read_jsonl_metrics",
    "read_tensorboard_metrics",
    "rows_to_frame",
    "write_csv",
    "write_metrics_jsonl",
]

TB_GLOB = "events.out.tfevents.*"
VAL_ACC_PATTERN = "val-core/*/acc/mean@*"


class NoMetricsError(RuntimeError):
    """A run directory (or file) in which no per-step metrics were found."""


@dataclass(frozen=True)
class Panel:
    title: str
    patterns: tuple[str, ...]  # metric names or fnmatch globs
    ylabel: str = ""
    optional: bool = False  # left out of the figure when no run logged any of its metrics


DEFAULT_PANELS: tuple[Panel, ...] = (
    Panel("Reward", ("critic/score/mean",), "mean score"),
    # critic/score/mean of an SRFT run counts the demonstrations (they score 1); this is the rollouts' own rate
    Panel("On-policy solve rate", ("srft/onpolicy_solve_rate",), "fraction solved", optional=True),
    Panel("Response length", ("response_length/mean",), "tokens"),
    Panel("Policy entropy", ("actor/entropy",), "entropy (nats)"),
    # verl's response_length and actor/entropy of an SRFT run mix demonstrations with rollouts; the paper's
    # Figure 6 curves are the rollouts' own (logged by the SRFT trainer)
    Panel("Rollout response length", ("srft/onpolicy/response_length_mean",), "tokens", optional=True),
    Panel("Rollout entropy", ("srft/onpolicy/entropy",), "entropy (nats)", optional=True),
    Panel("SRFT weights", ("actor/srft/w_sft_mean", "actor/srft/w_rl_mean"), "weight"),
    Panel("Validation accuracy", (VAL_ACC_PATTERN,), "accuracy", optional=True),
)


@dataclass
class RunMetrics:
    label: str
    path: Path
    table: pd.DataFrame  # index: step (int, sorted); columns: metric names; NaN where not logged
    sources: list[Path] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- reading


def _number(value):
    """A finite-or-not float from a JSON/numpy scalar, or None for anything non-numeric."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "item") and getattr(value, "shape", None) in ((), None):
        try:
            return _number(value.item())
        except (TypeError, ValueError):
            return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _jsonable(value):
    v = _number(value)
    if v is None:
        raise TypeError(f"not a number: {value!r}")
    if not math.isfinite(v):
        return None if math.isnan(v) else (math.inf if v > 0 else -math.inf)
    return v


def write_metrics_jsonl(rows, path) -> Path:
    """Writes one JSON dict per step (each row must have ``step``); numpy scalars become floats, NaN null."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fp:
        for row in rows:
            if "step" not in row:
                raise ValueError(f"metrics row without 'step': {row!r}")
            out = {"step": int(row["step"])}
            for key, value in row.items():
                if key != "step":
                    out[str(key)] = _jsonable(value)
            fp.write(json.dumps(out, allow_nan=True) + "\n")
    return path


def _jsonl_row(obj):
    if not isinstance(obj, dict) or "step" not in obj:
        return None
    data = obj["data"] if isinstance(obj.get("data"), dict) else obj  # verl's file logger nests the metrics
    step = _number(obj["step"])
    if step is None:
        return None
    row = {"step": int(step)}
    for key, value in data.items():
        if key == "step":
            continue
        if value is None:
            row[key] = math.nan
            continue
        v = _number(value)
        if v is not None:
            row[key] = v
    return row


def read_jsonl_metrics(path) -> list[dict]:
    """Rows of a metrics.jsonl (flat dicts with ``step``, or verl file-logger ``{"step", "data"}``)."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text(errors="replace").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not JSON ({e})") from None
        row = _jsonl_row(obj)
        if row is not None:
            rows.append(row)
    return rows


def _is_file_logger_jsonl(path: Path) -> bool:
    """True for verl's file-logger output (first record ``{"step": N, "data": {...}}``)."""
    try:
        with open(path, errors="replace") as fp:
            for line in fp:
                if line.strip():
                    obj = json.loads(line)
                    return isinstance(obj, dict) and set(obj) == {"step", "data"} and isinstance(obj["data"], dict)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return False


def read_tensorboard_metrics(path) -> list[dict]:
    """Scalar rows from tensorboard event files: ``path`` is one event file or a directory searched recursively."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob(TB_GLOB))
    by_step: dict[int, dict] = {}
    for f in files:  # sorted names carry the creation time: later files (a resumed run) win
        acc = ea.EventAccumulator(str(f), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
        acc.Reload()
        tags = acc.Tags()
        for tag in tags.get(ea.SCALARS, []):
            for ev in acc.Scalars(tag):
                by_step.setdefault(int(ev.step), {})[tag] = float(ev.value)
        for tag in tags.get(ea.TENSORS, []):  # tf.summary v2 scalars are stored as rank-0 tensors
            from tensorboard.util import tensor_util

            for ev in acc.Tensors(tag):
                try:
                    arr = tensor_util.make_ndarray(ev.tensor_proto)
                except Exception:  # noqa: BLE001 - not a numeric tensor
                    continue
                if arr.shape == () and arr.dtype.kind in "fiub":
                    by_step.setdefault(int(ev.step), {}).setdefault(tag, float(arr))
    return [{"step": step, **metrics} for step, metrics in sorted(by_step.items())]


def rows_to_frame(rows) -> pd.DataFrame:
    """Merges rows by step (a later row's value wins) into a step-indexed table with sorted columns."""
    by_step: dict[int, dict] = {}
    for row in rows:
        step = int(row["step"])
        by_step.setdefault(step, {}).update({k: float(v) for k, v in row.items() if k != "step"})
    steps = sorted(by_step)
    frame = pd.DataFrame([by_step[s] for s in steps], index=pd.Index(steps, name="step"), dtype=float)
    return frame.reindex(columns=sorted(frame.columns))


def find_sources(path) -> tuple[list[tuple[str, Path]], list[Path]]:
    """(kind, path) of the metric sources of a run, in increasing precedence, and every path looked at."""
    path = Path(path)
    if path.is_file():
        name = path.name
        if name.startswith("events.out.tfevents."):
            kind = "tensorboard"
        elif name.endswith(".jsonl"):
            kind = "jsonl"
        else:  # *.log, *.txt, any saved console output
            kind = "console"
        return [(kind, path)], [path]
    if not path.is_dir():
        return [], [path]
    sources: list[tuple[str, Path]] = []
    looked = []
    tb_files = sorted(path.rglob(TB_GLOB))
    looked.append(path / "**" / TB_GLOB)
    sources += [("tensorboard", f) for f in tb_files]
    train_log = path / "train.log"
    looked.append(train_log)
    if train_log.is_file():
        logs = [train_log]
    else:
        looked.append(path / "*.log")
        logs = sorted(p for p in path.glob("*.log") if p.is_file())
    sources += [("console", f) for f in logs]
    file_logger = [p for p in sorted(path.glob("*.jsonl")) + sorted(path.glob("*/*.jsonl"))
                   if p.name != "metrics.jsonl" and p.is_file() and _is_file_logger_jsonl(p)]
    looked.append(path / "*.jsonl")
    looked.append(path / "*" / "*.jsonl")
    sources += [("jsonl", f) for f in file_logger]
    metrics_jsonl = path / "metrics.jsonl"
    looked.append(metrics_jsonl)
    if metrics_jsonl.is_file():
        sources.append(("jsonl", metrics_jsonl))
    return sources, looked


_READERS = {"tensorboard": read_tensorboard_metrics, "console": read_console_metrics, "jsonl": read_jsonl_metrics}


def load_run(path, label: str | None = None) -> RunMetrics:
    """Every per-step metric of one run; raises NoMetricsError naming the paths looked at when there is none."""
    path = Path(path)
    sources, looked = find_sources(path)
    rows, used = [], []
    for kind, src in sources:
        got = _READERS[kind](src)
        if got:
            rows += got
            used.append(src)
    if not rows:
        found = ", ".join(f"{s} ({k}: no step metrics)" for k, s in sources) or "none"
        raise NoMetricsError(
            f"no per-step metrics found for run {str(path)!r}; looked at: {', '.join(map(str, looked))}; "
            f"sources found: {found}. Expected a console log with 'step:N - key:value' lines (train.log), "
            f"tensorboard event files ({TB_GLOB}), or metrics.jsonl."
        )
    return RunMetrics(label=label or _default_label(path), path=path, table=rows_to_frame(rows), sources=used)


def _default_label(path: Path) -> str:
    path = Path(path).resolve() if Path(path).exists() else Path(path)
    if path.is_file():
        return path.parent.name if path.stem in ("train", "metrics") or path.name.startswith("events.") else path.stem
    return path.name or str(path)


def _unique_labels(labels: list[str]) -> list[str]:
    out = []
    for i, label in enumerate(labels):
        if labels.count(label) > 1:
            label = f"{label} ({labels[:i + 1].count(label)})"
        out.append(label)
    return out


def merged_table(runs: list[RunMetrics]) -> pd.DataFrame:
    """All runs in one long table: columns ``run``, ``step``, then every metric (sorted)."""
    frames = [r.table.reset_index().assign(run=r.label) for r in runs]
    table = pd.concat(frames, ignore_index=True, sort=False)
    metrics = sorted(c for c in table.columns if c not in ("run", "step"))
    return table[["run", "step", *metrics]]


def write_csv(runs: list[RunMetrics], path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    merged_table(runs).to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------------------------------- plotting


def _matching(columns, patterns) -> list[str]:
    keys = []
    for pattern in patterns:
        for col in (sorted(fnmatch.filter(columns, pattern)) if any(c in pattern for c in "*?[") else
                    [pattern] if pattern in columns else []):
            if col not in keys:
                keys.append(col)
    return keys


def _panel_from_arg(arg: str) -> Panel:
    patterns = tuple(p.strip() for p in arg.split("+") if p.strip())
    for default in DEFAULT_PANELS:
        if default.patterns == patterns:
            return Panel(default.title, patterns, default.ylabel)
    return Panel(patterns[0] if len(patterns) == 1 else " + ".join(patterns), patterns)


def _short(key: str, keys: list[str]) -> str:
    """The shortest tail of ``key`` (by '/' parts) that tells it apart from the other keys of its panel."""
    parts = key.split("/")
    for n in range(1, len(parts) + 1):
        tail = "/".join(parts[-n:])
        if sum(k == tail or k.endswith("/" + tail) for k in keys) == 1:
            return tail
    return key


def plot_runs(runs: list[RunMetrics], out, panels=None, title: str | None = None) -> Path:
    """Draws one panel per metric group (several runs overlaid) and saves a PNG at ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    if not runs:
        raise ValueError("no runs to plot")
    panels = list(DEFAULT_PANELS if panels is None else panels)
    columns = sorted({c for r in runs for c in r.table.columns})
    panels = [p for p in panels if not (p.optional and not _matching(columns, p.patterns))]
    if not panels:
        raise ValueError("no panels to draw")

    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.6 * nrows + 0.8), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    run_color = [colors[i % len(colors)] for i in range(len(runs))]

    for ax, panel in zip(axes.flat, panels):
        keys = _matching(columns, panel.patterns)
        # a lone glob that matched one metric is named by that metric
        subtitle = keys[0] if len(panel.patterns) == 1 and len(keys) == 1 else " + ".join(panel.patterns)
        ax.set_title(panel.title + ("" if panel.title == subtitle else f"\n{subtitle}"), fontsize=10)
        ax.set_xlabel("training step")
        if panel.ylabel:
            ax.set_ylabel(panel.ylabel)
        drawn, missing, values = 0, [], []
        for r_idx, run in enumerate(runs):
            run_keys = [k for k in keys if k in run.table.columns and run.table[k].notna().any()]
            if not run_keys:
                missing.append(run.label)
            for key in run_keys:
                series = run.table[key].dropna()
                ax.plot(series.index, series.values, color=run_color[r_idx],
                        linestyle=styles[keys.index(key) % len(styles)], linewidth=1.6,
                        marker="o" if len(series) <= 30 else None, markersize=3.5)
                drawn += 1
                values += [v for v in series.values if math.isfinite(v)]
        if not drawn:
            ax.text(0.5, 0.5, "not logged", transform=ax.transAxes, ha="center", va="center",
                    fontsize=13, color="0.45")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="y", useOffset=False)
        if values:
            lo, hi = min(values), max(values)
            if hi - lo <= 1e-4 * max(abs(lo), abs(hi)):  # flat up to noise: no 1e-8-wide axis
                pad = max(0.05 * abs(hi), 1e-3)
                ax.set_ylim(lo - pad, hi + pad)
        absent = [p for p in panel.patterns if not any(c in p for c in "*?[") and p not in keys]
        if len(keys) + len(absent) > 1:
            handles = [Line2D([], [], color="0.2", linestyle=styles[i % len(styles)], label=_short(k, keys))
                       for i, k in enumerate(keys)]
            handles += [Line2D([], [], color="none", label=f"{_short(k, keys + absent)}: not logged") for k in absent]
            ax.legend(handles=handles, fontsize=8, loc="best")
        if missing:
            ax.text(0.99, 0.01, "not logged: " + ", ".join(missing), transform=ax.transAxes, ha="right",
                    va="bottom", fontsize=7, color="0.4")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)

    handles = [Line2D([], [], color=run_color[i], linewidth=2.5, label=r.label) for i, r in enumerate(runs)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(runs), 6), frameon=False, fontsize=10,
               bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title or "Training dynamics: " + " vs ".join(r.label for r in runs), fontsize=12)
    fig.tight_layout(rect=(0, 0.06 if nrows == 1 else 0.04, 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, format="png")
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m recipe_srft.tools.plot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (or single metrics files)")
    p.add_argument("--labels", help="comma-separated legend labels, one per RUN_DIR (default: directory names)")
    p.add_argument("--out", default="srft_metrics.png", help="PNG to write (default: %(default)s)")
    p.add_argument("--metrics", nargs="+", metavar="KEY",
                   help="panels to draw instead of the defaults: one per KEY (globs allowed, 'a+b' shares a panel, "
                        "commas separate too)")
    p.add_argument("--csv", metavar="OUT.csv", help="also write the merged table (run, step, metrics...)")
    p.add_argument("--title", help="figure title")
    args = p.parse_args(argv)

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else [None] * len(args.runs)
    if len(labels) != len(args.runs):
        p.error(f"--labels has {len(labels)} labels for {len(args.runs)} runs")
    try:
        runs = [load_run(path, label) for path, label in zip(args.runs, labels)]
    except NoMetricsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    uniq = _unique_labels([r.label for r in runs])
    for run, label in zip(runs, uniq):
        run.label = label
        print(f"{run.label}: {len(run.table)} steps, {len(run.table.columns)} metrics from "
              f"{', '.join(map(str, run.sources))}", file=sys.stderr)
    panels = None
    if args.metrics:
        panels = [_panel_from_arg(a) for arg in args.metrics for a in arg.split(",") if a.strip()]
    if args.csv:
        print(f"wrote {write_csv(runs, args.csv)}", file=sys.stderr)
    out = plot_runs(runs, args.out, panels=panels, title=args.title)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
