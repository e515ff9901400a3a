"""recipe_srft.tools.plot: metrics from console logs / tensorboard / metrics.jsonl, merged table, PNG figure, CLI."""

from __future__ import annotations

import json
import math
import os
import pprint
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recipe_srft.tools.plot import (
    DEFAULT_PANELS,
    NoMetricsError,
    Panel,
    load_run,
    merged_table,
    plot_runs,
    read_jsonl_metrics,
    read_tensorboard_metrics,
    write_csv,
    write_metrics_jsonl,
)

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VAL_KEY = "val-core/openai/gsm8k/acc/mean@1"
STEPS = range(1, 7)


def srft_rows():
    rows = []
    for s in STEPS:
        row = {"step": s, "critic/score/mean": 0.1 * s, "response_length/mean": 200.0 + 12.5 * s,
               "actor/entropy": 2.3 - 0.15 * s, "actor/srft/w_sft_mean": 0.5 * math.exp(-(2.3 - 0.15 * s)),
               "actor/srft/w_rl_mean": 0.4 + 0.05 * s, "timing_s/step": 3.0 + s / 7}
        if s % 3 == 0:
            row[VAL_KEY] = 0.2 + 0.1 * s
        rows.append(row)
    return rows


def grpo_rows():  # values exactly representable in float32 (tensorboard stores float32)
    return [{"step": s, "critic/score/mean": 0.125 * s, "response_length/mean": 180.0 + 8 * s,
             "actor/entropy": 2.5 - 0.25 * s} for s in STEPS]


def sft_rows():  # an SFT-only run: no reward, no SRFT weights
    return [{"step": s, "response_length/mean": 240.0 - 4 * s, "actor/entropy": 1.5 - 0.0625 * s} for s in STEPS]


def console_line(row, ansi=True):
    """A line as verl's console logger prints it (values through pprint.pformat, numpy scalars included)."""
    items = [f"step:{row['step']}"]
    for i, (k, v) in enumerate(row.items()):
        if k == "step":
            continue
        v = np.float64(v) if i % 2 else v  # np.float64(...) on every other value, like real verl output
        items.append(f"{k}:{pprint.pformat(v)}")
    line = " - ".join(items)
    return f"\x1b[36m(TaskRunnerV1 pid=1)\x1b[0m {line}" if ansi else line


def write_console_run(run_dir: Path, rows) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = ["\x1b[36m(TaskRunnerV1 pid=1)\x1b[0m Training Progress:   0%|          | 0/6",
             "(WorkerDict pid=2) some warning without metrics",
             "Initial validation metrics: {'val-core/openai/gsm8k/acc/mean@1': 0.0}"]
    for i, row in enumerate(rows):
        lines.append(console_line(row, ansi=i % 2 == 0))
    (run_dir / "train.log").write_text("\n".join(lines) + "\n")
    return run_dir


def write_tensorboard_run(run_dir: Path, rows) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    tb_dir = run_dir / "tensorboard_log" / "proj" / "grpo"
    writer = SummaryWriter(str(tb_dir))
    for row in rows:
        for k, v in row.items():
            if k != "step":
                writer.add_scalar(k, v, row["step"])
    writer.close()
    return run_dir


def table_of(rows) -> dict:
    return {row["step"]: {k: v for k, v in row.items() if k != "step"} for row in rows}


def assert_table_equals(frame: pd.DataFrame, rows, rel=1e-12):
    expected = table_of(rows)
    assert list(frame.index) == sorted(expected)
    keys = sorted({k for m in expected.values() for k in m})
    assert list(frame.columns) == keys
    for step, metrics in expected.items():
        for k in keys:
            got = frame.loc[step, k]
            if k in metrics:
                assert got == pytest.approx(metrics[k], rel=rel), (step, k)
            else:
                assert math.isnan(got), (step, k)


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot_runs")
    write_console_run(root / "srft", srft_rows())
    write_tensorboard_run(root / "grpo", grpo_rows())
    (root / "sft").mkdir()
    write_metrics_jsonl(sft_rows(), root / "sft" / "metrics.jsonl")
    return root


def test_console_log_with_ansi_prefixes(runs_root):
    run = load_run(runs_root / "srft")
    assert run.label == "srft"
    assert run.sources == [runs_root / "srft" / "train.log"]
    assert_table_equals(run.table, srft_rows())
    # the log file given directly as the path reads the same
    assert_table_equals(load_run(runs_root / "srft" / "train.log").table, srft_rows())
    assert load_run(runs_root / "srft" / "train.log").label == "srft"


def test_tensorboard_event_dir(runs_root):
    run = load_run(runs_root / "grpo")
    assert len(run.sources) == 1 and run.sources[0].name.startswith("events.out.tfevents.")
    assert_table_equals(run.table, grpo_rows(), rel=0)
    assert read_tensorboard_metrics(runs_root / "grpo") == grpo_rows()


def test_metrics_jsonl_roundtrip(tmp_path):
    rows = [{"step": np.int64(1), "a": np.float32(0.5), "b": 2, "c": float("nan")},
            {"step": 2, "a": np.float64(0.25)}]
    path = write_metrics_jsonl(rows, tmp_path / "metrics.jsonl")
    for line in path.read_text().splitlines():
        assert "step" in json.loads(line)
    back = read_jsonl_metrics(path)
    assert back[0]["step"] == 1 and back[0]["a"] == 0.5 and back[0]["b"] == 2.0 and math.isnan(back[0]["c"])
    assert back[1] == {"step": 2, "a": 0.25}
    with pytest.raises(ValueError, match="step"):
        write_metrics_jsonl([{"a": 1.0}], tmp_path / "bad.jsonl")

    run = load_run(tmp_path)
    assert list(run.table.index) == [1, 2] and run.table.loc[2, "a"] == 0.25 and math.isnan(run.table.loc[2, "b"])


def test_sft_jsonl_run_and_verl_file_logger(runs_root, tmp_path):
    assert_table_equals(load_run(runs_root / "sft").table, sft_rows())
    # verl's `file` logger: <root>/<project>/<experiment>.jsonl with {"step": N, "data": {...}}
    (tmp_path / "proj").mkdir()
    with open(tmp_path / "proj" / "exp.jsonl", "w") as fp:
        for row in grpo_rows():
            fp.write(json.dumps({"step": row["step"], "data": {k: v for k, v in row.items() if k != "step"}}) + "\n")
    # a generation dump (one record per sample, also with "step") must not be mistaken for metrics
    (tmp_path / "val_gen.jsonl").write_text(json.dumps({"input": "q", "output": "a", "score": 1.0, "step": 1}) + "\n")
    run = load_run(tmp_path)
    assert run.sources == [tmp_path / "proj" / "exp.jsonl"]
    assert_table_equals(run.table, grpo_rows())


def test_sources_merge_by_step(tmp_path):
    write_console_run(tmp_path, [{"step": 1, "x": 1.0, "y": 2.0}, {"step": 2, "x": 3.0}])
    write_metrics_jsonl([{"step": 2, "x": 30.0, "z": 5.0}, {"step": 3, "z": 6.0}], tmp_path / "metrics.jsonl")
    table = load_run(tmp_path).table
    assert list(table.index) == [1, 2, 3]
    assert table.loc[1, "x"] == 1.0 and table.loc[2, "x"] == 30.0  # metrics.jsonl wins over the console log
    assert table.loc[2, "z"] == 5.0 and table.loc[3, "z"] == 6.0 and math.isnan(table.loc[3, "x"])


def check_png(path: Path, min_bytes=20_000):
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes, len(data)


def test_plot_three_runs_and_csv(runs_root, tmp_path):
    runs = [load_run(runs_root / "srft", "SRFT"), load_run(runs_root / "grpo", "GRPO"),
            load_run(runs_root / "sft", "SFT-only")]
    out = plot_runs(runs, tmp_path / "fig" / "curves.png")
    check_png(out)
    csv = write_csv(runs, tmp_path / "merged.csv")
    table = pd.read_csv(csv)
    assert list(table.columns[:2]) == ["run", "step"]
    assert len(table) == 3 * len(STEPS)
    assert set(table["run"]) == {"SRFT", "GRPO", "SFT-only"}
    srft = table[table["run"] == "SRFT"].set_index("step")
    assert srft.loc[4, "actor/entropy"] == pytest.approx(2.3 - 0.6)
    assert srft.loc[3, VAL_KEY] == pytest.approx(0.5) and math.isnan(srft.loc[4, VAL_KEY])
    assert table[table["run"] == "GRPO"]["actor/srft/w_sft_mean"].isna().all()
    assert merged_table(runs).shape == table.shape


def test_missing_metrics_do_not_crash(tmp_path):
    write_metrics_jsonl([{"step": s, "unrelated/metric": float(s), "flat": 1.0 + 1e-9 * s} for s in (1, 2)],
                        tmp_path / "r" / "metrics.jsonl")
    run = load_run(tmp_path / "r")
    check_png(plot_runs([run], tmp_path / "none.png"), min_bytes=5_000)  # every default panel: "not logged"
    panels = [Panel("nope", ("does/not/exist",)), Panel("glob", ("val-core/*/acc/mean@*",)),
              Panel("some", ("unrelated/metric", "also/missing")), Panel("flat up to noise", ("flat",))]
    check_png(plot_runs([run], tmp_path / "explicit.png", panels=panels), min_bytes=5_000)
    # the validation panel is optional: left out when no run logged validation accuracy
    assert DEFAULT_PANELS[-1].optional


def test_no_metrics_error_names_paths(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoMetricsError) as err:
        load_run(empty)
    msg = str(err.value)
    assert str(empty / "train.log") in msg and str(empty / "metrics.jsonl") in msg and "tfevents" in msg

    noisy = tmp_path / "noisy"
    noisy.mkdir()
    (noisy / "train.log").write_text("Traceback (most recent call last):\n  boom\n")
    with pytest.raises(NoMetricsError, match="train.log"):
        load_run(noisy)
    with pytest.raises(NoMetricsError, match="does_not_exist"):
        load_run(tmp_path / "does_not_exist")


def run_cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "recipe_srft.tools.plot", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli(runs_root, tmp_path):
    out, csv = tmp_path / "fig6.png", tmp_path / "merged.csv"
    res = run_cli(runs_root / "srft", runs_root / "grpo", runs_root / "sft", "--labels", "SRFT,GRPO,SFT-only",
                  "--out", out, "--csv", csv, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == str(out)
    check_png(out)
    assert set(pd.read_csv(csv)["run"]) == {"SRFT", "GRPO", "SFT-only"}

    # --metrics: one panel per argument ('+' joins, globs allowed, missing ones "not logged")
    out2 = tmp_path / "custom.png"
    res = run_cli(runs_root / "srft" / "train.log", "--out", out2, "--metrics", "critic/score/mean",
                  "actor/srft/w_sft_mean+actor/srft/w_rl_mean", "val-core/*/acc/mean@*,not/logged", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    check_png(out2, min_bytes=10_000)

    empty = tmp_path / "empty_run"
    empty.mkdir()
    res = run_cli(empty, "--out", tmp_path / "x.png", cwd=tmp_path)
    assert res.returncode == 2
    assert str(empty / "train.log") in res.stderr and "no per-step metrics" in res.stderr
    assert not (tmp_path / "x.png").exists()

    res = run_cli(runs_root / "srft", "--labels", "A,B", cwd=tmp_path)
    assert res.returncode != 0 and "--labels" in res.stderr
