"""The start-up data check (recipe_srft/data_check.py, srft.data_check): the rows it flags, what error / skip / keep do,
the bound on the reward's grading, the same rules as data_prep.validate, the per-step metrics. No Ray.

The broken file is the issue's: the smoke data with row 5's ground truth set to None, row 11's demonstration None and
row 13's "", plus row 2 with a wrong worked answer and row 7 with a demonstration longer than the response length.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from omegaconf import OmegaConf

from recipe_srft import data_check as D
from recipe_srft.cpu.smoke import smoke_overrides
from recipe_srft.experiments.smoke_data import make_rows, write_splits
from recipe_srft.integration.launch import srft_config_from
from recipe_srft.tools.dry_run import compose_config

REPO = Path(__file__).resolve().parents[1]
RESPONSE_LEN = 16
BROKEN = {D.NO_GROUND_TRUTH: [5], D.NO_DEMO: [11, 13], D.DEMO_REJECTED: [2], D.DEMO_TOO_LONG: [7]}


def broken_rows() -> list[dict]:
    rows = make_rows(20, "train", 0)
    rows[5]["reward_model"]["ground_truth"] = None
    rows[11]["demo"] = None
    rows[13]["demo"] = ""
    truth = rows[2]["reward_model"]["ground_truth"]
    rows[2]["demo"] = f"{truth}+1\n#### {int(truth) + 1}"
    rows[7]["demo"] = "1+1=2, " * 40 + f"\n#### {rows[7]['reward_model']['ground_truth']}"
    return rows


@pytest.fixture()
def data(tmp_path):
    return write_splits(tmp_path / "data", broken_rows(), make_rows(4, "test", 1))


def _config(model, train, val, out, *extra):
    overrides = [o for o in smoke_overrides(str(model), str(train), str(val), str(out), 1,
                                            max_response_length=RESPONSE_LEN)
                 if not o.startswith("algorithm.adv_estimator")]
    return compose_config(overrides + ["actor_rollout_ref.rollout.name=hf", *extra])


def _tokenizer(model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model))


def test_the_scan_finds_each_broken_row(data, tiny_model_dir):
    rows = pq.read_table(data[0]).to_pylist()
    tokenizer = _tokenizer(tiny_model_dir)
    from verl.utils.reward_score import default_compute_score

    report = D.scan_rows(rows, path=str(data[0]), tokenizer=tokenizer, max_response_length=RESPONSE_LEN,
                         score_fn=default_compute_score)
    assert {k: v for k, v in report.rows.items() if v} == BROKEN
    assert report.bad_rows() == [2, 5, 7, 11, 13]
    assert report.gradable == 20 - 3 and report.graded == 17 and report.lengths_checked
    # row 7 really is too long for the agent loop (recipe_srft.demos.tokenize_demo, the loop's own function)
    from recipe_srft.demos import tokenize_demo

    assert tokenize_demo(rows[7]["demo"], tokenizer, RESPONSE_LEN).truncated
    assert not any(tokenize_demo(r["demo"], tokenizer, RESPONSE_LEN).truncated for i, r in enumerate(rows)
                   if i not in (7, 11, 13))
    # no tokenizer: lengths are not checked (and said so); no reward: nothing graded
    bare = D.scan_rows(rows)
    assert bare.rows[D.DEMO_TOO_LONG] == [] and not bare.lengths_checked and bare.graded == 0
    assert "demonstration lengths not checked" in "\n".join(D.describe(bare, srft_config_from(compose_config([]))))


def test_reward_grading_is_a_seeded_sample(data):
    rows = pq.read_table(data[0]).to_pylist()
    calls = []

    def score(source, solution, truth, extra_info=None):
        calls.append(solution)
        return 1.0

    sample = D.scan_rows(rows, score_fn=score, reward_rows=5, seed=3)
    assert sample.graded == 5 and len(calls) == 5
    again = []
    D.scan_rows(rows, score_fn=lambda *a, **k: again.append(a[1]) or 1.0, reward_rows=5, seed=3)
    assert again == calls  # same seed, same rows
    assert D.scan_rows(rows, score_fn=score, reward_rows=None).graded == 17
    assert D.scan_rows(rows, score_fn=score, reward_rows=0).graded == 0
    # a reward that raises marks the row (it would stop training), with why
    failing = D.scan_rows(rows[:3], score_fn=lambda *a, **k: 1 / 0)
    assert failing.rows[D.DEMO_REJECTED] == [0, 1, 2] and "ZeroDivisionError" in failing.messages[(D.DEMO_REJECTED, 0)]


def test_error_names_rows_and_the_fix(data, tiny_model_dir, tmp_path):
    config = _config(tiny_model_dir, *data, tmp_path)
    srft = srft_config_from(config)
    assert srft.data_check == "error"  # the default
    with pytest.raises(ValueError) as err:
        D.check_training_data(config, srft, _tokenizer(tiny_model_dir), log=lambda line: None)
    text = str(err.value)
    for expected in ("1 row(s) without a ground truth (reward_model.ground_truth): rows 5",
                     "2 row(s) without a usable demonstration: rows 11, 13",
                     "with a demonstration over data.max_response_length", "rows 7",
                     "the reward rejects", "rows 2", "of 17 graded (all)",
                     f"python -m data_prep.validate {data[0]} --tokenizer {tiny_model_dir} --max-response-length 16 "
                     "--demo-fields target,demo --fix drop --output", "srft.data_check=skip", "srft.data_check=keep"):
        assert expected in text, (expected, text)
    assert OmegaConf.select(config, "data.train_files") == str(data[0])  # untouched


def test_the_printed_command_fixes_the_file(data, tiny_model_dir, tmp_path):
    """data_prep.validate applies the same rules: the command of the error message drops exactly the flagged rows."""
    config = _config(tiny_model_dir, *data, tmp_path)
    srft = srft_config_from(config)
    report = D.scan_training_files(config, srft, _tokenizer(tiny_model_dir), log=lambda line: None)[0]
    command = D.validate_command(report, config, srft).split()
    assert command[:3] == ["python", "-m", "data_prep.validate"]
    proc = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = Path(command[command.index("--output") + 1])
    kept = [r["extra_info"]["index"] for r in pq.read_table(out).to_pylist()]
    assert kept == [i for i in range(20) if i not in report.bad_rows()]
    clean = D.scan_rows(pq.read_table(out).to_pylist(), tokenizer=_tokenizer(tiny_model_dir),
                        max_response_length=RESPONSE_LEN, score_fn=D.reward_fn(config))
    assert clean.bad_rows() == []


def test_skip_trains_on_a_copy_without_them(data, tiny_model_dir, tmp_path):
    config = _config(tiny_model_dir, *data, tmp_path, "srft.data_check=skip")
    srft = srft_config_from(config)
    lines = []
    D.check_training_data(config, srft, _tokenizer(tiny_model_dir), log=lines.append)
    copy = OmegaConf.select(config, "data.train_files")
    assert copy != str(data[0]) and Path(copy).is_file()
    kept = [r["extra_info"]["index"] for r in pq.read_table(copy).to_pylist()]
    assert kept == [i for i in range(20) if i not in (2, 5, 7, 11, 13)]
    assert len(pq.read_table(data[0])) == 20  # the user's file is untouched
    assert any(f"dropped 5 of 20 rows of {data[0]}" in line for line in lines), lines
    # a resumed run gets the same copy
    again = _config(tiny_model_dir, *data, tmp_path, "srft.data_check=skip")
    D.check_training_data(again, srft_config_from(again), _tokenizer(tiny_model_dir), log=lambda line: None)
    assert OmegaConf.select(again, "data.train_files") == copy


def test_keep_trains_on_them_and_logs(data, tiny_model_dir, tmp_path):
    config = _config(tiny_model_dir, *data, tmp_path, "srft.data_check=keep")
    lines = []
    D.check_training_data(config, srft_config_from(config), _tokenizer(tiny_model_dir), log=lines.append)
    assert OmegaConf.select(config, "data.train_files") == str(data[0])
    assert any("rows 11, 13" in line for line in lines) and any("training on these rows" in line for line in lines)


def test_a_clean_file_passes_and_is_not_scanned_twice(tmp_path, tiny_model_dir):
    train, val = write_splits(tmp_path / "clean", make_rows(12, "train", 0), make_rows(4, "test", 1))
    config = _config(tiny_model_dir, train, val, tmp_path)
    srft = srft_config_from(config)
    D.preflight_data_check(config, srft, log=lambda line: None)  # main_srft, before Ray
    assert list(config[D.CHECKED_KEY]) == [str(train)]
    lines = []
    assert D.check_training_data(config, srft, None, log=lines.append) == []  # the trainer: not again
    assert "checked before start-up" in lines[0]


def test_bad_mode_is_refused(data, tiny_model_dir, tmp_path):
    config = _config(tiny_model_dir, *data, tmp_path, "srft.data_check=drop")
    with pytest.raises(ValueError, match="srft.data_check='drop': expected one of"):
        D.check_training_data(config, srft_config_from(config), None, log=lambda line: None)


def test_main_srft_stops_before_ray(data, tiny_model_dir, tmp_path):
    """The issue's broken-rows run stops at start-up with the row indices, before Ray starts (RAY_ADDRESS points
    nowhere, so a Ray start would fail instead of starting a cluster)."""
    overrides = [o for o in smoke_overrides(str(tiny_model_dir), str(data[0]), str(data[1]), str(tmp_path), 4,
                                            max_response_length=RESPONSE_LEN)
                 if not o.startswith("algorithm.adv_estimator")] + ["actor_rollout_ref.rollout.name=hf"]
    env = dict(os.environ, RAY_ADDRESS="127.0.0.1:1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", "recipe_srft.main_srft", "--config-dir",
                           str(REPO / "recipe_srft" / "config"), *overrides], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "srft.data_check=error" in out and "rows 5" in out and "rows 11, 13" in out and "--fix drop" in out
    assert "ray init kwargs" not in out and "Started a local Ray instance" not in out


def test_dry_run_reports_them(data, tiny_model_dir, tmp_path, capsys):
    from recipe_srft.tools import dry_run

    overrides = [o for o in smoke_overrides(str(tiny_model_dir), str(data[0]), str(data[1]), str(tmp_path), 1,
                                            max_response_length=RESPONSE_LEN)
                 if not o.startswith("algorithm.adv_estimator")] + ["actor_rollout_ref.rollout.name=hf"]
    assert dry_run.main(overrides) == 1
    err = capsys.readouterr().err
    assert "srft.data_check=error" in err and "rows 11, 13" in err
    summary = dry_run.dry_run(overrides + ["srft.data_check=keep"])
    assert any("the trainer would train on 5 flagged row(s)" in note for note in summary["notes"]), summary["notes"]


def test_batch_metrics_count_what_reached_the_batch():
    # 3 groups: a has its demo (scored 1), b has its demo (scored 0), c has none; one padding row (is_demo 0)
    uids = ["a", "a", "a", "b", "b", "b", "c", "c", "pad"]
    is_demo = torch.tensor([0, 0, 1, 0, 0, 1, 0, 0, 0])
    scores = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    valid = torch.tensor([1, 1, 1, 1, 1, 1, 1, 1, 0]).bool()
    assert D.batch_data_metrics(scores, uids, is_demo, valid) == {
        "srft/prompts_without_demo": 1.0, "srft/demos_scored_zero": 1.0}
