"""One answer-extraction layer (recipe_srft/grading/extract.py): every caller reads the same answer.

The same tricky strings go through the extraction module, the reward (imported, and loaded by path
as verl does), data_prep's answer path (``answers.last_boxed`` and the MATH converter's ground
truth) and the validator's demonstration check, under both ``answer_extraction`` modes.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from data_prep import answers, validate  # noqa: E402
from data_prep import math as math_prep  # noqa: E402
from recipe_srft import reward as R  # noqa: E402
from recipe_srft.grading import extract  # noqa: E402

REWARD_FILE = ROOT / "recipe_srft" / "reward.py"

# (text, the boxed answer every caller reads (None: no box), ground truth, score luffy, score boxed)
TRICKY = [
    ("x \\boxed{3} \\boxed{}", "3", "3", 1.0, 1.0),  # empty last box skipped
    ("\\boxed 5.", "5", "5", 1.0, 1.0),  # trailing sentence punctuation is not the answer
    ("\\boxed{8} \\boxed{}", "8", "8", 1.0, 1.0),
    ("so \\boxed{\\frac{1}{2}}", "\\frac{1}{2}", "0.5", 1.0, 1.0),  # nested braces
    ("\\fbox{7}", "7", "7", 1.0, 1.0),
    ("so the answer is $\\frac{3}{4}$.", None, "\\frac{3}{4}", 1.0, 0.0),  # no box: LUFFY's fallback
    ("<think>\nmaybe \\boxed{2}</think>\nSo \\boxed{6}.", "6", "6", 1.0, 1.0),  # thought, then answer
]
IDS = ["empty_last", "spaced_dot", "eight_empty", "nested", "fbox", "no_box", "think"]


@pytest.fixture(scope="module")
def path_loaded_reward():
    """reward.py loaded by file path under an unrelated name, as verl's load_extern_object does."""
    spec = importlib.util.spec_from_file_location("custom_module_test_grading", REWARD_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module._ex is not extract  # its own copy of the extraction layer, loaded from the sibling file
    assert Path(module._ex.__file__).resolve() == Path(extract.__file__).resolve()
    return module


@pytest.mark.parametrize("text, boxed, gt, luffy, boxed_score", TRICKY, ids=IDS)
def test_every_extractor_reads_the_same_box(text, boxed, gt, luffy, boxed_score, path_loaded_reward):
    assert extract.last_boxed(text) == boxed
    assert R.extract_last_boxed(text) == boxed
    assert path_loaded_reward.extract_last_boxed(text) == boxed
    assert answers.last_boxed(text) == boxed
    assert answers.last_boxed is extract.last_boxed  # an alias, not a second implementation


@pytest.mark.parametrize("text, boxed, gt, luffy, boxed_score", TRICKY, ids=IDS)
def test_reward_scores_and_pred(text, boxed, gt, luffy, boxed_score, path_loaded_reward):
    for compute_score in (R.compute_score, path_loaded_reward.compute_score):
        out = compute_score("math", text, gt)
        assert out["score"] == luffy
        if boxed is not None:
            assert out["pred"] == boxed  # the reward grades exactly what data_prep reads
        assert compute_score("math", text, gt, answer_extraction="luffy")["score"] == luffy
        assert compute_score("math", text, gt, answer_extraction="boxed")["score"] == boxed_score
        # through the worker processes and inline: the same verdict
        assert compute_score("math", text, gt, shortcuts=False, timeout_mode="inline")["score"] == luffy
    assert R.compute_score("math", text, gt, shortcuts=False)["score"] == luffy
    if boxed is None:
        assert R.compute_score("math", text, gt)["pred"] == "\\frac{3}{4}"  # math-verify's extracted text


def test_think_region_decides_what_is_graded():
    """With the think format only the text after the last ``</think>`` is graded, box or not."""
    text = "<think>\nmaybe \\boxed{2}</think>\nThe answer is $6$."
    assert extract.answer_region(text, think=True) == "\nThe answer is $6$."
    assert extract.answer_region("no close", think=True) is None
    assert extract.answer_region(text, think=False) == text
    assert R.compute_score("math", text, "6", think_format=True)["score"] == 1.0  # luffy fallback on the region
    assert R.compute_score("math", text, "6", think_format=True, answer_extraction="boxed")["score"] == 0.0
    assert R.compute_score("math", text, "2", think_format=True)["score"] == 0.0  # the thought's box is not read
    assert R.compute_score("math", text, "2", think_format=False)["score"] == 1.0  # whole text: its only box
    assert R.compute_score("math", "reasoning \\boxed{6}", "6", think_format=True)["pred"] == ""  # no </think>


def test_box_scan_is_linear_on_unbalanced_boxes():
    """Many unclosed boxes: each earlier scan stops at the first box known to be unbalanced."""
    import time

    text = "\\boxed{{" * 20_000 + " tail"
    t0 = time.monotonic()
    assert extract.last_boxed(text) is None
    assert extract.last_boxed("\\boxed{1} " + text) == "1"
    assert time.monotonic() - t0 < 2.0


def test_may_hold_expression_is_exact_for_math_verify():
    for text in ["no final answer here", "", "The answer is (C)!", "x y z"]:
        assert not extract.may_hold_expression(text)
        assert extract.math_verify_extract(text)[0] == []
    for text in ["the answer is 5", "so $x$", "\\frac{1}{2}", "it is [x] here"]:
        assert extract.may_hold_expression(text)


# --------------------------------------------------------------------------- data_prep callers


def _math_rows(tmp_path: Path, template: str, capsys) -> tuple[list[dict], Path]:
    """The TRICKY texts as MATH solutions through ``python -m data_prep.math`` (ground truth = its box)."""
    records = []
    for text, boxed, gt, _, _ in TRICKY:
        record = {"problem": f"problem {len(records)}", "solution": text}
        if boxed is None:
            record["answer"] = gt  # no box to read the ground truth from
        records.append(record)
    src = tmp_path / "tricky.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / f"tricky_{template}.parquet"
    assert math_prep.main(["--input", str(src), "--output", str(out), "--template", template]) == 0
    capsys.readouterr()
    return pq.read_table(out).to_pylist(), out


@pytest.mark.parametrize("template", ["boxed", "luffy_think"])
def test_math_converter_ground_truth_is_the_box_the_reward_grades(template, tmp_path, capsys):
    rows, _ = _math_rows(tmp_path, template, capsys)
    for row, (text, boxed, gt, _, _) in zip(rows, TRICKY):
        assert row["reward_model"]["ground_truth"] == (boxed if boxed is not None else gt)


def test_validator_agrees_with_the_reward(tmp_path, capsys):
    """The validator grades each demonstration with the reward: boxed rows (no think format)."""
    rows, path = _math_rows(tmp_path, "boxed", capsys)
    columns = list(rows[0])
    luffy = validate.check_rows(rows, columns)
    assert not luffy.errors.get(validate.DEMO_REJECTED) and luffy.ok
    boxed = validate.check_rows(rows, columns, answer_extraction="boxed")
    assert boxed.errors[validate.DEMO_REJECTED] == [IDS.index("no_box")]
    for i, (text, _, gt, luffy_score, boxed_score) in enumerate(TRICKY):
        expected = R.compute_score("math", text, rows[i]["reward_model"]["ground_truth"],
                                   extra_info=rows[i]["extra_info"], answer_extraction="boxed")["score"]
        assert expected == boxed_score and (i in boxed.errors[validate.DEMO_REJECTED]) == (expected == 0.0)
    # the CLI switch
    status = validate.main([str(path), "--answer-extraction", "boxed"])
    out = capsys.readouterr().out
    assert status == 1
    assert f"{validate.DEMO_REJECTED}: rows {IDS.index('no_box')}\n" in out
    assert validate.main([str(path)]) == 0
    capsys.readouterr()


def test_validator_applies_the_think_format_of_luffy_think_rows(tmp_path, capsys):
    """luffy_think rows: the reward prepends ``<think>\\n`` and needs ``</think>``; only the think row passes."""
    rows, _ = _math_rows(tmp_path, "luffy_think", capsys)
    result = validate.check_rows(rows, list(rows[0]))
    think = IDS.index("think")
    assert sorted(set(range(len(TRICKY))) - set(result.errors[validate.DEMO_REJECTED])) == [think]
    assert result.warnings[validate.THINK_DEMO] == [i for i in range(len(TRICKY)) if i != think]
