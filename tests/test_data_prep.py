"""Tests of the data_prep converters and validator.

Small fixtures live in tests/fixtures/data_prep/; the REAL-DATA tests read
../shared/data (next to the project) and skip when it is absent.  The
validator tests build a tiny word-level tokenizer offline (nothing is
downloaded).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # plain `pytest` does not put the project root on sys.path
    sys.path.insert(0, str(ROOT))

from data_prep import answers, chat, eval_sets, gsm8k, luffy, schema, templates, validate  # noqa: E402
from data_prep import math as math_prep  # noqa: E402
from data_prep.common import DataPrepError, write_rows  # noqa: E402
from data_prep.schema import EXTRA_INFO_KEYS, Example, check_row, make_row  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "data_prep"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_skip_without_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"real data folder {SHARED_DATA} is absent (REAL-DATA test)"
)


def needs_real_data(test):
    """Mark a REAL-DATA test: ``realdata`` marker + skip with a reason when ../shared/data is absent."""
    return pytest.mark.realdata(_skip_without_data(test))

TRAIN_COLUMNS = ["data_source", "prompt", "ability", "reward_model", "extra_info", "target"]
EVAL_COLUMNS = TRAIN_COLUMNS[:-1]


# --------------------------------------------------------------------------- helpers


def cli(module: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -m data_prep.<module> args`` from the project root."""
    return subprocess.run(
        [sys.executable, "-m", f"data_prep.{module}", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )


def call(main, *args, capsys) -> tuple[int, str, str]:
    """Run a CLI ``main`` in-process; returns ``(status, stdout, stderr)``."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def read_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def jsonl_to_parquet(src: Path, dst: Path) -> Path:
    rows = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    pq.write_table(pa.Table.from_pylist(rows), dst)
    return dst


def user_text(row: dict) -> str:
    return [m for m in row["prompt"] if m["role"] == "user"][-1]["content"]


def options_in_prompt(row: dict) -> dict[str, str]:
    """``{letter: option text}`` parsed from the "A) ..." lines of a multiple-choice prompt."""
    return dict(re.findall(r"^([A-Z])\) (.*)$", user_text(row), flags=re.M))


def assert_schema(rows: list[dict], training: bool) -> None:
    for row in rows:
        assert list(row) == (TRAIN_COLUMNS if training else EVAL_COLUMNS)
        assert check_row(row, training=training) == []
        assert tuple(row["extra_info"]) == EXTRA_INFO_KEYS
        assert row["reward_model"]["style"] == "rule"
        assert row["reward_model"]["ground_truth"].strip()
        json.loads(row["extra_info"]["meta"])
        if training:
            assert row["target"][0]["role"] == "assistant" and row["target"][0]["content"].strip()


# --------------------------------------------------------------------------- answers and templates


def test_last_boxed_balanced_and_last():
    assert answers.last_boxed("so $\\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"
    assert answers.last_boxed("$\\boxed{-2}$ and $\\boxed{2}$, so $\\boxed{2}$") == "2"
    assert answers.last_boxed("x = \\boxed {17}.") == "17"
    assert answers.last_boxed("$x^2 = \\boxed 9$.") == "9"
    assert answers.last_boxed("\\fbox{3}") == "3"
    assert answers.last_boxed("\\boxed{\\{1,2\\}}") == "\\{1,2\\}"
    assert answers.last_boxed("there are $\\boxed{}$ primes") is None
    assert answers.last_boxed("\\boxed{unclosed") is None
    assert answers.last_boxed("no answer") is None


def test_number_rendering_and_gsm8k_parsing():
    assert answers.format_number(27.0) == "27"
    assert answers.format_number(2.5) == "2.5"
    assert answers.answer_to_str(" 025 ") == "025"
    with pytest.raises(ValueError):
        answers.answer_to_str(True)
    demo, truth = answers.parse_gsm8k_answer("It sells 1,000 * 30 = <<1000*30=30000>>30,000 pens.\n#### 30,000")
    assert truth == "30000"
    assert demo == "It sells 1,000 * 30 = 30,000 pens.\nThe answer is \\boxed{30000}."
    with pytest.raises(ValueError, match="####"):
        answers.parse_gsm8k_answer("no final line")


def test_templates():
    boxed = templates.render("boxed", "What is 1+1?")
    assert boxed == [{"role": "user",
                      "content": "What is 1+1?\nPlease reason step by step, and put your final answer within \\boxed{}."}]
    think = templates.render("luffy_think", "What is 1+1?")
    assert think == [{"role": "system", "content": templates.LUFFY_SYSTEM_PROMPT},
                     {"role": "user", "content": "What is 1+1?"}]
    mc = templates.render_multiple_choice("luffy_think", "Pick one.", ["x", "y", "z"])
    assert mc[1]["content"] == ("Pick one.\n\nA) x\nB) y\nC) z\n\n"
                                "Answer with the letter of the correct option (A, B or C) within \\boxed{}.")
    assert "\\boxed{}" in templates.render_multiple_choice("boxed", "Pick.", ["x", "y"])[0]["content"]
    assert templates.uses_think_format("luffy_think") and not templates.uses_think_format("as_is")
    with pytest.raises(ValueError):
        templates.render("nope", "x")


def test_data_prep_error_message():
    error = DataPrepError("missing field", file="a.jsonl", row=3, line=5, field="answer", reason="missing field")
    assert str(error) == "a.jsonl: row 3 (line 5), field 'answer': missing field"
    assert error.category == "missing field: answer"


def test_help_documents_every_option(capsys):
    expected = {
        gsm8k.main: ["--input", "--output", "--template", "--split", "--on-error", "--limit", "--list-skipped"],
        math_prep.main: ["--input", "--output", "--template", "--on-error", "--limit"],
        chat.main: ["--data-source", "--ability", "--template", "as_is"],
        luffy.main: ["--template", "as_is", "luffy_think", "boxed"],
        eval_sets.main: ["--format", "--seed", "aime24", "amc23", "math500", "minerva", "olympiadbench",
                         "gpqa", "arc_c", "mmlu_pro", "luffy", "answerKey", "answer_index"],
        validate.main: ["--tokenizer", "--max-prompt-length", "--max-response-length", "--fix", "--output",
                        "--list", "--answer-extraction", "luffy", "boxed"],
    }
    for main, words in expected.items():
        with pytest.raises(SystemExit) as exc:
            main(["--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        for word in words:
            assert word in text, (main.__module__, word)


# --------------------------------------------------------------------------- training converters


def test_gsm8k_cli(tmp_path):
    out = tmp_path / "gsm8k.parquet"
    result = cli("gsm8k", "--input", FIXTURES / "gsm8k.jsonl", "--output", out)
    assert result.returncode == 0, result.stderr
    assert "read:    3 rows" in result.stdout and "written: 3 rows" in result.stdout
    rows = read_rows(out)
    assert_schema(rows, training=True)
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["7", "30000", "-3"]
    assert {r["data_source"] for r in rows} == {"gsm8k"}
    demo = rows[1]["target"][0]["content"]
    assert "<<" not in demo and "####" not in demo
    assert demo.endswith("The answer is \\boxed{30000}.")
    assert rows[0]["extra_info"]["template"] == "boxed" and rows[0]["extra_info"]["split"] == "train"
    assert rows[0]["prompt"][-1]["content"].endswith("within \\boxed{}.")


def test_math_cli_training_and_math500_formats(tmp_path):
    out = tmp_path / "math.parquet"
    result = cli("math", "--input", FIXTURES / "math.jsonl", "--output", out, "--split", "test")
    assert result.returncode == 0, result.stderr
    rows = read_rows(out)
    assert_schema(rows, training=True)
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["\\frac{1}{2}", "2", "9"]
    assert rows[0]["target"][0]["content"].startswith("We add:")
    assert json.loads(rows[0]["extra_info"]["meta"])["level"] == "Level 1"
    assert rows[0]["extra_info"]["split"] == "test"

    out500 = tmp_path / "math500.parquet"
    assert math_prep.main(["--input", str(FIXTURES / "math500.jsonl"), "--output", str(out500)]) == 0
    rows = read_rows(out500)
    assert rows[0]["reward_model"]["ground_truth"] == "\\left( 3, \\frac{\\pi}{2} \\right)"  # the answer field
    assert {r["data_source"] for r in rows} == {"math"}


def test_chat_cli_both_shapes(tmp_path):
    out = tmp_path / "chat.parquet"
    result = cli("chat", "--input", FIXTURES / "chat.jsonl", "--output", out, "--data-source", "math")
    assert result.returncode == 0, result.stderr
    rows = read_rows(out)
    assert_schema(rows, training=True)
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["5", "42", "2.5"]
    assert [m["role"] for m in rows[0]["prompt"]] == ["system", "user"]  # as_is keeps the turns
    assert rows[1]["prompt"] == [{"content": "What is 7 * 6?", "role": "user"}]
    assert rows[2]["target"][0]["content"].startswith("10 / 4")
    assert {r["extra_info"]["template"] for r in rows} == {"as_is"}

    missing = cli("chat", "--input", FIXTURES / "chat.jsonl", "--output", out)
    assert missing.returncode == 2 and "--data-source" in missing.stderr


def test_chat_retemplate(tmp_path, capsys):
    out = tmp_path / "chat.parquet"
    status, _, _ = call(chat.main, "--input", FIXTURES / "chat.jsonl", "--output", out, "--data-source", "math",
                        "--template", "boxed", capsys=capsys)
    assert status == 0
    rows = read_rows(out)
    assert rows[0]["prompt"] == templates.render("boxed", "What is 2 + 3?")  # system turn replaced
    assert {r["extra_info"]["template"] for r in rows} == {"boxed"}


def test_luffy_cli_keeps_target_and_records_template(tmp_path):
    src = jsonl_to_parquet(FIXTURES / "luffy_train.jsonl", tmp_path / "openr1.parquet")
    original = read_rows(src)
    out = tmp_path / "train.parquet"
    result = cli("luffy", "--input", src, "--output", out)
    assert result.returncode == 0, result.stderr
    assert "--template luffy_think keeps them identical" in result.stdout
    rows = read_rows(out)
    assert_schema(rows, training=True)
    for before, after in zip(original, rows):
        assert after["target"] == before["target"]
        assert after["prompt"] == before["prompt"]
        assert after["extra_info"]["index"] == before["extra_info"]["index"]
        assert after["extra_info"]["template"] == "as_is"

    think = tmp_path / "think.parquet"
    assert cli("luffy", "--input", src, "--output", think, "--template", "luffy_think").returncode == 0
    rows = read_rows(think)
    assert [r["prompt"] for r in rows] == [r["prompt"] for r in original]  # already in LUFFY format
    assert {r["extra_info"]["template"] for r in rows} == {"luffy_think"}

    boxed = tmp_path / "boxed.parquet"
    assert cli("luffy", "--input", src, "--output", boxed, "--template", "boxed").returncode == 0
    rows = read_rows(boxed)
    assert rows[0]["prompt"] == templates.render("boxed", "What is $2+3$?")


def test_template_recording_and_think_mismatch_note(tmp_path, capsys):
    out = tmp_path / "g.parquet"
    status, stdout, _ = call(gsm8k.main, "--input", FIXTURES / "gsm8k.jsonl", "--output", out,
                             "--template", "luffy_think", capsys=capsys)
    assert status == 0
    rows = read_rows(out)
    assert {r["extra_info"]["template"] for r in rows} == {"luffy_think"}
    assert rows[0]["prompt"][0] == {"content": templates.LUFFY_SYSTEM_PROMPT, "role": "system"}
    assert "3 of 3 luffy_think demonstrations contain no '</think>'" in stdout


def test_limit(tmp_path, capsys):
    out = tmp_path / "g.parquet"
    status, stdout, _ = call(gsm8k.main, "--input", FIXTURES / "gsm8k.jsonl", "--output", out, "--limit", 2,
                             capsys=capsys)
    assert status == 0 and len(read_rows(out)) == 2 and "read:    2 rows" in stdout


# --------------------------------------------------------------------------- bad input

GOOD_GSM8K = {"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"}
GOOD_CHAT = {"prompt": "What is 1 + 1?", "response": "\\boxed{2}", "answer": "2"}

BAD_CASES = [
    # (converter main, extra args, bad row, field named in the error, reason)
    (gsm8k.main, [], {"question": "What is 3 + 3?"}, "answer", "missing field"),
    (gsm8k.main, [], {"question": 12, "answer": "#### 12"}, "question", "wrong type"),
    (gsm8k.main, [], {"question": "What?", "answer": "no final line"}, "answer", "no answer"),
    (math_prep.main, [], {"problem": "What?", "solution": "  "}, "solution", "empty value"),
    (chat.main, ["--data-source", "math"],
     {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}], "answer": "1"},
     "messages[1].content", "empty value"),
    (chat.main, ["--data-source", "math"], {"messages": "[{\"role\": oops", "answer": "1"}, "messages",
     "unparsable chat list"),
    (chat.main, ["--data-source", "math"], {"messages": [{"role": "user"}], "answer": "1"},
     "messages[0].content", "unparsable chat list"),
]


@pytest.mark.parametrize("main, extra, bad, field, reason", BAD_CASES,
                         ids=[f"{c[0].__module__}-{c[4]}-{c[3]}" for c in BAD_CASES])
def test_bad_row_fail_and_skip(tmp_path, capsys, main, extra, bad, field, reason):
    good = GOOD_CHAT if main is chat.main else (
        GOOD_GSM8K if main is gsm8k.main else {"problem": "1+1?", "solution": "\\boxed{2}"})
    src = write_jsonl(tmp_path / "in.jsonl", [good, "", bad, good])  # the bad row: row 1, line 3
    out = tmp_path / "out.parquet"
    status, _, err = call(main, "--input", src, "--output", out, *extra, capsys=capsys)
    assert status == 1
    assert str(src) in err and "row 1 (line 3)" in err and f"field '{field}'" in err
    assert not out.exists() and not list(tmp_path.glob(".out.parquet.tmp-*"))  # no partial output

    status, stdout, _ = call(main, "--input", src, "--output", out, "--on-error", "skip", *extra, capsys=capsys)
    assert status == 0
    assert "skipped: 1 rows" in stdout and f"{reason}: {field}" in stdout and "row 1 (line 3)" in stdout
    assert len(read_rows(out)) == 2


def test_invalid_json_line(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD_GSM8K, '{"question": "x", "answer": "#### 1"'])
    status, _, err = call(gsm8k.main, "--input", src, "--output", tmp_path / "o.parquet", capsys=capsys)
    assert status == 1 and str(src) in err and "row 1 (line 2)" in err and "invalid JSON" in err


def test_skip_report_counts_by_reason(tmp_path):
    out = tmp_path / "out.parquet"
    result = cli("gsm8k", "--input", FIXTURES / "gsm8k_bad.jsonl", "--output", out, "--on-error", "skip")
    assert result.returncode == 0, result.stderr
    assert "read:    6 rows" in result.stdout and "written: 2 rows" in result.stdout
    assert "skipped: 4 rows" in result.stdout
    for category in ("missing field: answer", "invalid JSON", "no answer: answer", "wrong type: question"):
        assert category in result.stdout
    assert "row 2 (line 4)" in result.stdout  # lines count the blank line, rows do not
    assert len(read_rows(out)) == 2

    listed = cli("gsm8k", "--input", FIXTURES / "gsm8k_bad.jsonl", "--output", out, "--on-error", "skip",
                 "--list-skipped", "1")
    assert "skipped rows (first 1 of 4)" in listed.stdout


def test_skip_report_chat_and_math(tmp_path, capsys):
    status, stdout, _ = call(chat.main, "--input", FIXTURES / "chat_bad.jsonl", "--output", tmp_path / "c.parquet",
                             "--data-source", "math", "--on-error", "skip", capsys=capsys)
    assert status == 0 and "written: 2 rows" in stdout and "skipped: 5 rows" in stdout
    assert "unparsable chat list: messages" in stdout and "missing field: answer" in stdout
    status, stdout, _ = call(math_prep.main, "--input", FIXTURES / "math_bad.jsonl", "--output", tmp_path / "m.parquet",
                             "--on-error", "skip", capsys=capsys)
    assert status == 0 and "written: 1 rows" in stdout
    assert "no answer: solution" in stdout and "missing field: problem" in stdout


def test_luffy_bad_rows(tmp_path, capsys):
    rows = [json.loads(line) for line in (FIXTURES / "luffy_train.jsonl").read_text().splitlines()]
    no_truth = json.loads(json.dumps(rows[1]))
    no_truth["reward_model"]["ground_truth"] = ""
    empty_demo = json.loads(json.dumps(rows[2]))
    empty_demo["target"][0]["content"] = ""
    cases = [(no_truth, "reward_model.ground_truth"), (empty_demo, "target[0].content")]
    for bad, field in cases:
        src = tmp_path / "bad.parquet"
        pq.write_table(pa.Table.from_pylist([rows[0], bad]), src)
        status, _, err = call(luffy.main, "--input", src, "--output", tmp_path / "o.parquet", capsys=capsys)
        assert status == 1 and str(src) in err and "row 1" in err and f"field '{field}'" in err

    src = write_jsonl(tmp_path / "bad.jsonl", [rows[0], {**rows[1], "prompt": "not a chat"}, {**rows[2], "target": None}])
    status, _, err = call(luffy.main, "--input", src, "--output", tmp_path / "o.parquet", capsys=capsys)
    assert status == 1 and "row 1 (line 2), field 'prompt'" in err
    status, stdout, _ = call(luffy.main, "--input", src, "--output", tmp_path / "o.parquet", "--on-error", "skip",
                             capsys=capsys)
    assert status == 0 and "unparsable chat list: prompt" in stdout and "missing field: target" in stdout


def test_empty_output_is_refused(tmp_path, capsys):
    src = write_jsonl(tmp_path / "bad.jsonl", [{"question": "x"}, {"question": "y"}])
    out = tmp_path / "out.parquet"
    status, _, err = call(gsm8k.main, "--input", src, "--output", out, "--on-error", "skip", capsys=capsys)
    assert status == 1 and "refusing to write an empty file" in err and "skipped 2" in err
    assert not out.exists() and not list(tmp_path.glob(".out.parquet.tmp-*"))

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    result = cli("eval_sets", "--format", "gsm8k", "--input", empty, "--output", out)
    assert result.returncode == 1 and "refusing to write an empty file" in result.stderr
    assert not out.exists()


def test_missing_input_and_bad_format(tmp_path, capsys):
    status, _, err = call(gsm8k.main, "--input", tmp_path / "nope.jsonl", "--output", tmp_path / "o.parquet",
                          capsys=capsys)
    assert status == 1 and "no such file" in err
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n")
    status, _, err = call(gsm8k.main, "--input", csv, "--output", tmp_path / "o.parquet", capsys=capsys)
    assert status == 1 and "unsupported input format" in err


# --------------------------------------------------------------------------- evaluation sets


EVAL_EXPECTED = {
    # format: (fixture, data_source, ground truths)
    "aime24": ("aime24.jsonl", "aime", ["204", "025"]),
    "amc23": ("amc23.jsonl", "amc", ["27", "2.5"]),
    "math500": ("math500.jsonl", "math", ["\\left( 3, \\frac{\\pi}{2} \\right)", "2"]),
    "minerva": ("minerva.jsonl", "minerva", ["1.6", "4.5e33"]),
    "olympiadbench": ("olympiadbench.jsonl", "olympiad_bench", ["$2$", "$(1,2)$, $(2,1)$", "$30$"]),
    "gsm8k": ("gsm8k.jsonl", "gsm8k", ["7", "30000", "-3"]),
    "arc_c": ("arc_c.jsonl", "arc_c", ["A", "C", "B", "B"]),
    "mmlu_pro": ("mmlu_pro.jsonl", "mmlu_pro", ["I", "B"]),
}


@pytest.mark.parametrize("fmt", sorted(EVAL_EXPECTED))
def test_eval_sets_formats(tmp_path, capsys, fmt):
    fixture, data_source, truths = EVAL_EXPECTED[fmt]
    out = tmp_path / f"{fmt}.parquet"
    status, stdout, _ = call(eval_sets.main, "--format", fmt, "--input", FIXTURES / fixture, "--output", out,
                             capsys=capsys)
    assert status == 0
    rows = read_rows(out)
    assert_schema(rows, training=False)
    assert [r["reward_model"]["ground_truth"] for r in rows] == truths
    assert {r["data_source"] for r in rows} == {data_source}
    assert {r["extra_info"]["template"] for r in rows} == {"luffy_think"}
    assert {r["extra_info"]["split"] for r in rows} == {"test"}
    assert rows[0]["prompt"][0]["content"] == templates.LUFFY_SYSTEM_PROMPT
    if fmt in ("arc_c", "mmlu_pro"):
        assert {r["ability"] for r in rows} == {"multiple_choice"}
        for row in rows:
            assert "\\boxed{}" in user_text(row) and row["reward_model"]["ground_truth"] in options_in_prompt(row)


def test_eval_sets_multiple_choice_letters_point_at_the_answer(tmp_path, capsys):
    out = tmp_path / "arc.parquet"
    assert call(eval_sets.main, "--format", "arc_c", "--input", FIXTURES / "arc_c.jsonl", "--output", out,
                "--template", "boxed", capsys=capsys)[0] == 0
    rows = read_rows(out)
    answers_text = ["the floor", "wind", "balance", "sunlight"]
    for row, text in zip(rows, answers_text):
        assert options_in_prompt(row)[row["reward_model"]["ground_truth"]] == text
    assert len(options_in_prompt(rows[3])) == 5 and "(A, B, C, D or E)" in user_text(rows[3])
    out = tmp_path / "mmlu.parquet"
    call(eval_sets.main, "--format", "mmlu_pro", "--input", FIXTURES / "mmlu_pro.jsonl", "--output", out, capsys=capsys)
    rows = read_rows(out)
    assert options_in_prompt(rows[0])["I"] == "nine" and options_in_prompt(rows[1])["B"] == "4"


def test_eval_sets_cli_luffy_passthrough(tmp_path):
    src = jsonl_to_parquet(FIXTURES / "luffy_valid.jsonl", tmp_path / "valid.parquet")
    out = tmp_path / "out.parquet"
    result = cli("eval_sets", "--format", "luffy", "--input", src, "--output", out)
    assert result.returncode == 0, result.stderr
    before, rows = read_rows(src), read_rows(out)
    assert_schema(rows, training=False)
    assert [r["prompt"] for r in rows] == [r["prompt"] for r in before]
    assert [r["data_source"] for r in rows] == ["aime", "aime", "math", "olympiad_bench"]
    assert {r["extra_info"]["template"] for r in rows} == {"as_is"}
    assert [r["extra_info"]["split"] for r in rows] == ["default"] * 4  # the file's own split is kept


def test_eval_sets_template_rules(tmp_path, capsys):
    out = tmp_path / "o.parquet"
    status, _, err = call(eval_sets.main, "--format", "aime24", "--input", FIXTURES / "aime24.jsonl", "--output", out,
                          "--template", "as_is", capsys=capsys)
    assert status == 1 and "as_is is only valid with --format luffy" in err
    status, _, _ = call(eval_sets.main, "--format", "aime24", "--input", FIXTURES / "aime24.jsonl", "--output", out,
                        "--template", "boxed", "--split", "train", capsys=capsys)
    rows = read_rows(out)
    assert status == 0 and {r["extra_info"]["template"] for r in rows} == {"boxed"}
    assert rows[0]["prompt"] == templates.render("boxed", "Find the number of minutes the walk takes.")
    assert {r["extra_info"]["split"] for r in rows} == {"train"}


def test_eval_sets_bad_multiple_choice(tmp_path, capsys):
    src = write_jsonl(tmp_path / "arc.jsonl", [
        {"question": "Q?", "choices": ["a", "b"], "answerKey": "A"},
        {"question": "Q?", "choices": ["a", "b"], "answerKey": "E"},
        {"question": "Q?", "answerKey": "A"},
    ])
    out = tmp_path / "o.parquet"
    status, _, err = call(eval_sets.main, "--format", "arc_c", "--input", src, "--output", out, capsys=capsys)
    assert status == 1 and "row 1 (line 2), field 'answerKey'" in err
    status, stdout, _ = call(eval_sets.main, "--format", "arc_c", "--input", src, "--output", out,
                             "--on-error", "skip", capsys=capsys)
    assert status == 0 and "invalid value: answerKey" in stdout and "missing field: choices" in stdout


# --------------------------------------------------------------------------- JSON arrays, --format qa, AIME25

HPT_FIXTURES = ROOT / "tests" / "fixtures" / "hpt"  # first rows of HPT's data/*/test.json (see its README.md)
# HPT folder -> (--data-source, grader family)
HPT_FILES = {
    "AIME24": ("aime24", "math"), "AIME25": ("aime25", "math"), "AMC23": ("amc23", "math"),
    "MATH-500": ("math500", "math"), "Minerva": ("minerva", "math"), "Olympiad-Bench": ("olympiad_bench", "math"),
    "GPQA": ("gpqa", "multiple_choice"),
}


def _check_qa_conversion(src: Path, out: Path, data_source: str, ability: str, stdout: str) -> None:
    """Rows = the file's elements, in order: ground truth = its ``answer``, question = its ``prompt``."""
    elements = json.loads(src.read_text())  # read independently of the converter
    rows = read_rows(out)
    assert_schema(rows, training=False)
    assert len(rows) == len(elements) and f"written: {len(elements)} rows" in stdout
    assert [r["reward_model"]["ground_truth"] for r in rows] == [e["answer"] for e in elements]
    assert [user_text(r) for r in rows] == [e["prompt"].strip() for e in elements]
    assert {r["data_source"] for r in rows} == {data_source} and {r["ability"] for r in rows} == {ability}
    assert [r["extra_info"]["source_row"] for r in rows] == list(range(len(elements)))
    for row, element in zip(rows, elements):
        meta = json.loads(row["extra_info"]["meta"])
        assert {k: element[k] for k in ("id", "source") if k in element} == meta


@pytest.mark.parametrize("folder", sorted(HPT_FILES))
def test_qa_converts_hpt_files(tmp_path, capsys, folder):
    data_source, ability = HPT_FILES[folder]
    src, out = HPT_FIXTURES / folder / "test.json", tmp_path / f"{data_source}.parquet"
    assert src.read_text().lstrip().startswith("[")  # a JSON array, as published
    status, stdout, err = call(eval_sets.main, "--format", "qa", "--data-source", data_source, "--input", src,
                               "--output", out, capsys=capsys)
    assert status == 0, err
    _check_qa_conversion(src, out, data_source, ability, stdout)
    rows = read_rows(out)
    assert rows[0]["prompt"][0]["content"] == templates.LUFFY_SYSTEM_PROMPT  # the same templates as other formats
    from recipe_srft.reward import compute_score

    for row in rows:  # the reward grades each ground truth, boxed, as correct (AIME24's are written \boxed{N})
        truth = row["reward_model"]["ground_truth"]
        inner = answers.last_boxed(truth) if "\\boxed" in truth else truth
        graded = compute_score(data_source=data_source, solution_str=f"</think> so \\boxed{{{inner}}}",
                               ground_truth=truth, extra_info={})
        assert graded["score"] == 1.0, (truth, graded)


HPT_DATA = Path(os.environ.get("SRFT_HPT_DATA", "/nonexistent"))


@pytest.mark.realdata
@pytest.mark.skipif(not (HPT_DATA / "AIME25" / "test.json").is_file(),
                    reason="set SRFT_HPT_DATA to a checkout of HPT's data/ folder (TsinghuaC3I/Unify-Post-Training)")
@pytest.mark.parametrize("folder", sorted(HPT_FILES))
def test_real_hpt_files_convert(tmp_path, capsys, folder):
    data_source, ability = HPT_FILES[folder]
    src, out = HPT_DATA / folder / "test.json", tmp_path / f"{data_source}.parquet"
    status, stdout, err = call(eval_sets.main, "--format", "qa", "--data-source", data_source, "--input", src,
                               "--output", out, capsys=capsys)
    assert status == 0, err
    _check_qa_conversion(src, out, data_source, ability, stdout)


def test_json_array_and_json_lines_give_the_same_rows(tmp_path, capsys):
    src = HPT_FIXTURES / "MATH-500" / "test.json"
    lines = write_jsonl(tmp_path / "math500.jsonl", json.loads(src.read_text()))
    outs = []
    for path in (src, lines):
        out = tmp_path / f"{path.suffix[1:]}.parquet"
        assert call(eval_sets.main, "--format", "qa", "--data-source", "math500", "--input", path, "--output", out,
                    capsys=capsys)[0] == 0
        outs.append(read_rows(out))
    assert outs[0] == outs[1]


def test_json_layout_errors_name_both_layouts(tmp_path, capsys):
    both = ("JSON lines", "JSON array")
    # a pretty-printed single object is neither layout: its first line is not a JSON object
    obj = tmp_path / "one.json"
    obj.write_text(json.dumps({"prompt": "1+1?", "answer": "2"}, indent=2))
    status, _, err = call(eval_sets.main, "--format", "qa", "--data-source", "math", "--input", obj,
                          "--output", tmp_path / "o.parquet", capsys=capsys)
    assert status == 1 and "row 0 (line 1)" in err and "invalid JSON" in err and all(x in err for x in both)
    # a broken array: a file error with the position, before any row is written
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"prompt": "1+1?", "answer": "2"},\n  {"prompt": "2+2?" "answer": "4"}\n]\n')
    status, _, err = call(eval_sets.main, "--format", "qa", "--data-source", "math", "--input", broken,
                          "--output", tmp_path / "o.parquet", "--on-error", "skip", capsys=capsys)
    assert status == 1 and "not a valid JSON array" in err and "line 3" in err and all(x in err for x in both)
    assert not (tmp_path / "o.parquet").exists()
    # an array element that is not an object is a row error, located by row and line, and can be skipped
    mixed = tmp_path / "mixed.json"
    mixed.write_text('[\n  {"prompt": "1+1?", "answer": "2"},\n  ["not", "an object"],\n  {"prompt": "3?", "answer": 3}\n]')
    status, _, err = call(eval_sets.main, "--format", "qa", "--data-source", "math", "--input", mixed,
                          "--output", tmp_path / "o.parquet", capsys=capsys)
    assert status == 1 and "row 1 (line 3)" in err and "expected a JSON object, got list" in err
    status, stdout, _ = call(eval_sets.main, "--format", "qa", "--data-source", "math", "--input", mixed,
                             "--output", tmp_path / "o.parquet", "--on-error", "skip", capsys=capsys)
    assert status == 0 and "skipped: 1 rows" in stdout and "invalid JSON" in stdout
    assert [r["reward_model"]["ground_truth"] for r in read_rows(tmp_path / "o.parquet")] == ["2", "3"]
    # a JSON lines row that is an array names both layouts too
    status, _, err = call(gsm8k.main, "--input", write_jsonl(tmp_path / "l.jsonl", [GOOD_GSM8K, "[1, 2]"]),
                          "--output", tmp_path / "g.parquet", capsys=capsys)
    assert status == 1 and "row 1 (line 2)" in err and all(x in err for x in both)


def test_qa_fields_errors_and_skip_report(tmp_path, capsys):
    rows = [{"q": "What is 2+3?", "a": 5}, {"q": "What is 1/2 + 1/2?"}, {"q": "", "a": "0"},
            {"q": "What is 0.5 * 3?", "a": 1.5}]
    src = tmp_path / "own.json"
    src.write_text(json.dumps(rows))
    out = tmp_path / "o.parquet"
    args = ["--format", "qa", "--data-source", "math", "--prompt-field", "q", "--answer-field", "a", "--input", src,
            "--output", out]
    status, _, err = call(eval_sets.main, *args, capsys=capsys)
    assert status == 1 and str(src) in err and "row 1 (line 1), field 'a': missing field" in err
    status, stdout, _ = call(eval_sets.main, *args, "--on-error", "skip", "--template", "boxed", capsys=capsys)
    assert status == 0 and "skipped: 2 rows" in stdout
    assert "missing field: a" in stdout and "empty value: q" in stdout
    written = read_rows(out)
    assert [r["reward_model"]["ground_truth"] for r in written] == ["5", "1.5"]
    assert [r["extra_info"]["source_row"] for r in written] == [0, 3]
    assert written[0]["prompt"] == templates.render("boxed", "What is 2+3?")
    # usage errors
    for extra, message in [([], "--format qa needs --data-source"),
                           (["--data-source", "no_such_benchmark"], "unknown data_source")]:
        status, _, err = call(eval_sets.main, "--format", "qa", "--input", src, "--output", out, *extra, capsys=capsys)
        assert status == 1 and message in err
    status, _, err = call(eval_sets.main, "--format", "aime24", "--data-source", "aime25", "--input",
                          FIXTURES / "aime24.jsonl", "--output", out, capsys=capsys)
    assert status == 1 and "only valid with --format qa" in err


def test_qa_multiple_choice_answers_must_be_letters(tmp_path, capsys):
    src = write_jsonl(tmp_path / "mc.jsonl", [
        {"prompt": "Pick one.\n\nA. red\nB. blue", "answer": "b"},
        {"prompt": "Pick one.\n\nA. red\nB. blue", "answer": "blue"},
    ])
    out = tmp_path / "o.parquet"
    status, _, err = call(eval_sets.main, "--format", "qa", "--data-source", "gpqa", "--input", src, "--output", out,
                          capsys=capsys)
    assert status == 1 and "row 1 (line 2), field 'answer'" in err and "option letter" in err
    status, stdout, _ = call(eval_sets.main, "--format", "qa", "--data-source", "gpqa", "--input", src,
                             "--output", out, "--on-error", "skip", capsys=capsys)
    row, = read_rows(out)
    assert status == 0 and row["reward_model"]["ground_truth"] == "B" and row["ability"] == "multiple_choice"
    from recipe_srft.reward import compute_score

    assert compute_score(data_source="gpqa", solution_str="\\boxed{B}", ground_truth="B", extra_info={})["score"] == 1
    assert compute_score(data_source="gpqa", solution_str="\\boxed{A}", ground_truth="B", extra_info={})["score"] == 0


def test_aime25_named_format(tmp_path, capsys):
    out = tmp_path / "aime25.parquet"
    status, _, err = call(eval_sets.main, "--format", "aime25", "--input", FIXTURES / "aime25.jsonl", "--output", out,
                          capsys=capsys)
    assert status == 0, err
    rows = read_rows(out)
    source = [json.loads(line) for line in (FIXTURES / "aime25.jsonl").read_text().splitlines()]
    assert {r["data_source"] for r in rows} == {"aime25"}
    assert [r["reward_model"]["ground_truth"] for r in rows] == [str(s["answer"]) for s in source]
    assert [user_text(r) for r in rows] == [s.get("problem") or s["question"] for s in source]


# --------------------------------------------------------------------------- GPQA shuffle


def _gpqa(tmp_path: Path, capsys, seed: int, name: str) -> list[dict]:
    out = tmp_path / name
    status, _, _ = call(eval_sets.main, "--format", "gpqa", "--input", FIXTURES / "gpqa.jsonl", "--output", out,
                        "--seed", seed, capsys=capsys)
    assert status == 0
    return read_rows(out)


def test_gpqa_shuffle_deterministic_and_letters_correct(tmp_path, capsys):
    source = [json.loads(line) for line in (FIXTURES / "gpqa.jsonl").read_text().splitlines()]
    first = _gpqa(tmp_path, capsys, 0, "a.parquet")
    again = _gpqa(tmp_path, capsys, 0, "b.parquet")
    other = _gpqa(tmp_path, capsys, 1, "c.parquet")
    assert first == again
    assert [user_text(r) for r in first] != [user_text(r) for r in other]
    for i, (row, src) in enumerate(zip(first, source)):
        options = options_in_prompt(row)
        assert list(options) == ["A", "B", "C", "D"]
        assert options[row["reward_model"]["ground_truth"]] == src["Correct Answer"].strip()
        wrong = {src[f"Incorrect Answer {k}"].strip() for k in (1, 2, 3)}
        assert {t for letter, t in options.items() if letter != row["reward_model"]["ground_truth"]} == wrong
        order = list(range(4))
        random.Random(0 * 100003 + i).shuffle(order)  # the documented per-row seed
        assert "ABCD"[order.index(0)] == row["reward_model"]["ground_truth"]
        assert row["data_source"] == "gpqa" and row["ability"] == "multiple_choice"
        assert json.loads(row["extra_info"]["meta"])["options"] == list(options.values())
    assert len({r["reward_model"]["ground_truth"] for r in first}) > 1


# --------------------------------------------------------------------------- validator


def _tiny_tokenizer(folder: Path, *, think: bool) -> Path:
    """A word-level tokenizer (every word or punctuation run = 1 token) with a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<pad>", "</s>", "what", "is", "the", "answer", "boxed", "think", "<", ">", "<|", "|>",
             "user", "assistant", "system"]
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>",
                                        pad_token="<pad>")
    suffix = "<think>\n" if think else ""
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n" + suffix + "{% endif %}"
    )
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("tokenizers")
    return _tiny_tokenizer(base / "think", think=True), _tiny_tokenizer(base / "plain", think=False)


def _row(i: int, problem: str, demo: str | None, *, truth: str = "1", template: str = "boxed") -> dict:
    example = Example(data_source="math", prompt=templates.render(template, problem), ground_truth=truth,
                      demonstration=demo)
    return make_row(example, index=i, split="train", template=template, source_row=i)


def _words(n: int) -> str:
    return " ".join(f"w{k}" for k in range(n))


@pytest.fixture()
def train_file(tmp_path):
    rows = [
        _row(0, "short problem", "a short demo \\boxed{1}"),
        _row(1, "second problem", _words(50) + " \\boxed{1}"),  # over-long demonstration
        _row(2, _words(200), "fine \\boxed{1}"),                # over-long prompt
        _row(3, "empty truth", "demo \\boxed{1}", truth=""),    # empty ground truth
        _row(4, "short problem", "duplicate prompt \\boxed{1}"),  # duplicate of row 0 (warning)
        _row(5, "no box", "no final answer here"),               # boxed demo without \boxed (warning)
    ]
    path = tmp_path / "train.parquet"
    write_rows(rows, path, training=True)
    return path


def test_validator_cli_reports_errors(train_file, tokenizer_dirs):
    think_tok, _ = tokenizer_dirs
    result = cli("validate", train_file, "--tokenizer", think_tok, "--max-prompt-length", 60,
                 "--max-response-length", 20)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert re.search(r"1 rows\s+demonstration too long: rows 1\b", out)
    assert re.search(r"1 rows\s+prompt too long: rows 2\b", out)
    assert re.search(r"1 rows\s+missing or empty ground truth: rows 3\b", out)
    assert re.search(r"1 rows\s+duplicate prompt .*: rows 4\b", out)
    assert re.search(r"1 rows\s+boxed demonstration without .*: rows 5\b", out)
    # row 5 has no answer at all: the reward rejects it, so it would be a negative in its group
    assert re.search(r"1 rows\s+demonstration rejected by the reward .*: rows 5\b", out)
    assert "e.g. row 5: the reward reads no answer; ground truth '1'" in out
    assert "FAILED (4 rows with errors)" in out
    assert len(out.splitlines()) < 25  # one screen


def test_validator_lengths_and_think_prefix(tokenizer_dirs):
    from data_prep.validate import check_rows, load_tokenizer

    think_tok, plain_tok = tokenizer_dirs
    rows = [_row(0, "what is", "<think>\nthe answer </think> is \\boxed{1}", template="luffy_think"),
            _row(1, "what", "the answer is \\boxed{1}", template="luffy_think")]
    columns = list(rows[0])
    tokenizer = load_tokenizer(str(think_tok))
    result = check_rows(rows, columns, tokenizer=tokenizer, max_prompt_length=1000, max_response_length=1000)
    # "the answer < / think > is \ boxed { 1 }" -> Whitespace pieces + EOS; the "<think>\n" prefix is not counted
    expected = len(tokenizer("the answer </think> is \\boxed{1}", add_special_tokens=False)["input_ids"]) + 1
    assert result.demo_lengths[0] == expected
    assert result.warnings[validate.THINK_DEMO] == [1]
    assert dict(result.errors) == {validate.DEMO_REJECTED: [1]}  # no </think>: the think-format reward gives 0
    assert not result.warnings.get(validate.THINK_PROMPT)

    plain = check_rows(rows, columns, tokenizer=load_tokenizer(str(plain_tok)))
    assert plain.warnings[validate.THINK_PROMPT] == [0, 1]  # generation prompt lacks <think>\n
    assert plain.demo_lengths[0] == expected + 3  # "<", "think", ">" counted now


def test_validator_fix_drop_and_truncate(train_file, tokenizer_dirs, tmp_path, capsys):
    think_tok, _ = tokenizer_dirs
    limits = ["--tokenizer", think_tok, "--max-prompt-length", 60, "--max-response-length", 20]
    dropped = tmp_path / "dropped.parquet"
    status, out, _ = call(validate.main, train_file, *limits, "--fix", "drop", "--output", dropped, capsys=capsys)
    assert status == 0 and "dropped 4, truncated 0" in out
    assert [r["extra_info"]["index"] for r in read_rows(dropped)] == [0, 4]
    assert call(validate.main, dropped, *limits, capsys=capsys)[0] == 0

    truncated = tmp_path / "truncated.parquet"
    status, out, _ = call(validate.main, train_file, *limits, "--fix", "truncate", "--output", truncated,
                          capsys=capsys)
    assert status == 0 and "dropped 3, truncated 1" in out and "usually score 0" in out
    rows = read_rows(truncated)
    assert [r["extra_info"]["index"] for r in rows] == [0, 1, 4]
    assert pq.read_schema(truncated) == pq.read_schema(train_file)
    demo = rows[1]["target"][0]["content"]
    assert demo == _words(19)  # 19 tokens + EOS = 20
    status, out, _ = call(validate.main, truncated, *limits, capsys=capsys)
    assert "max 20 (limit 20)" in out
    # the cut demonstration lost its \boxed{1}: the reward now rejects it (row 1 of the truncated file)
    assert status == 1 and re.search(r"1 rows\s+demonstration rejected by the reward .*: rows 1\b", out)


def test_validator_grades_demonstrations_with_the_reward(tmp_path, capsys):
    """Each demonstration is graded against its ground truth by recipe_srft.reward.compute_score."""
    rows = [
        _row(0, "empty last box", "so \\boxed{8} \\boxed{}", truth="8"),  # the last NON-empty box counts: passes
        _row(1, "wrong answer", "so \\boxed{9}", truth="8"),                # rejected: a negative in its group
        _row(2, "think row", "<think>\nhmm</think>\nSo \\boxed{8}.", truth="8", template="luffy_think"),
        _row(3, "spaced box", "thus \\boxed 8.", truth="8"),
    ]
    path = tmp_path / "demos.parquet"
    write_rows(rows, path, training=True)
    status, out, _ = call(validate.main, path, capsys=capsys)
    assert status == 1
    assert re.search(r"1 rows\s+demonstration rejected by the reward \(scores 0: a negative in its group\): "
                     r"rows 1\n", out)
    assert "e.g. row 1: the reward reads '9'; ground truth '8'" in out
    assert "FAILED (1 rows with errors)" in out

    dropped = tmp_path / "dropped.parquet"
    status, out, _ = call(validate.main, path, "--fix", "drop", "--output", dropped, capsys=capsys)
    assert status == 0 and "dropped 1, truncated 0" in out
    assert [r["extra_info"]["index"] for r in read_rows(dropped)] == [0, 2, 3]  # exactly the wrong one left out
    assert call(validate.main, dropped, capsys=capsys)[0] == 0

    # the row's template rules apply: a luffy_think demonstration without </think> scores 0
    think = [_row(0, "think row, no close", "So \\boxed{8}.", truth="8", template="luffy_think")]
    assert validate.check_rows(think, list(think[0])).errors[validate.DEMO_REJECTED] == [0]

    # a data_source the reward does not know would stop training: an error too
    odd = [_row(0, "a", "\\boxed{1}")]
    odd[0]["data_source"] = "squad"
    write_rows(odd, tmp_path / "odd.parquet", training=True)
    status, out, _ = call(validate.main, tmp_path / "odd.parquet", capsys=capsys)
    assert status == 1 and re.search(r"1 rows\s+row the reward cannot grade: rows 0\n.*unknown data_source 'squad'",
                                     out)


def test_validator_schema_errors_and_refusals(tmp_path, capsys):
    rows = [_row(0, "a", "b \\boxed{1}")]
    rows[0]["prompt"] = [{"content": "x", "role": "narrator"}]
    path = tmp_path / "broken.parquet"
    write_rows(rows, path, training=True)
    status, out, _ = call(validate.main, path, capsys=capsys)
    assert status == 1 and "schema violation" in out and "prompt[0].role" in out
    status, _, err = call(validate.main, path, "--fix", "drop", "--output", tmp_path / "o.parquet", capsys=capsys)
    assert status == 1 and "refusing to write an empty file" in err
    with pytest.raises(SystemExit) as exc:
        validate.main([str(path), "--fix", "drop"])
    assert exc.value.code == 2
    capsys.readouterr()
    missing = tmp_path / "missing.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": [{"content": "x", "role": "user"}]}]), missing)
    status, out, _ = call(validate.main, missing, capsys=capsys)
    assert status == 1 and "missing columns: data_source, ability, reward_model, extra_info" in out


# --------------------------------------------------------------------------- concatenation


def test_outputs_of_different_converters_concatenate(tmp_path, capsys):
    """verl concatenates val_files with datasets: every output must share the same features."""
    datasets = pytest.importorskip("datasets")
    files = []
    for fmt, (fixture, _, _) in [("aime24", EVAL_EXPECTED["aime24"]), ("arc_c", EVAL_EXPECTED["arc_c"])]:
        files.append(tmp_path / f"{fmt}.parquet")
        call(eval_sets.main, "--format", fmt, "--input", FIXTURES / fixture, "--output", files[-1], capsys=capsys)
    files.append(tmp_path / "luffy.parquet")
    call(eval_sets.main, "--format", "luffy", "--input", FIXTURES / "luffy_valid.jsonl", "--output", files[-1],
         capsys=capsys)
    parts = [datasets.load_dataset("parquet", data_files=str(f), cache_dir=str(tmp_path / "hf"))["train"]
             for f in files]
    assert len(datasets.concatenate_datasets(parts)) == 2 + 4 + 4


# --------------------------------------------------------------------------- REAL-DATA tests


REAL_EVAL = [
    ("gsm8k", "gsm8k/test.jsonl", 1319, "gsm8k"),
    ("math500", "math500/test.jsonl", 500, "math"),
    ("aime24", "qwen_eval/aime24/test.jsonl", 30, "aime"),
    ("amc23", "qwen_eval/amc23/test.jsonl", 40, "amc"),
    ("gpqa", "gpqa_diamond/test.jsonl", 198, "gpqa"),
    ("luffy", "luffy_eval/valid.parquet", 2019, None),
]


@needs_real_data
@pytest.mark.parametrize("fmt, rel, count, data_source", REAL_EVAL, ids=[r[0] for r in REAL_EVAL])
def test_real_eval_sets(tmp_path, capsys, fmt, rel, count, data_source):
    out = tmp_path / f"{fmt}.parquet"
    status, stdout, _ = call(eval_sets.main, "--format", fmt, "--input", SHARED_DATA / rel, "--output", out,
                             capsys=capsys)
    assert status == 0
    rows = read_rows(out)
    assert len(rows) == count and f"written: {count} rows" in stdout
    assert_schema(rows, training=False)
    if data_source:
        assert {r["data_source"] for r in rows} == {data_source}
    if fmt == "gpqa":
        source = [json.loads(line) for line in (SHARED_DATA / rel).read_text().splitlines()]
        letters = [r["reward_model"]["ground_truth"] for r in rows]
        assert set(letters) == set("ABCD") and max(letters.count(x) for x in "ABCD") < 80
        for row, src in zip(rows, source):
            letter, correct = row["reward_model"]["ground_truth"], src["Correct Answer"].strip()
            assert json.loads(row["extra_info"]["meta"])["options"]["ABCD".index(letter)] == correct
            assert f"\n{letter}) {correct}\n" in user_text(row)  # options may span several lines
    if fmt == "luffy":
        assert {r["data_source"] for r in rows} == {"aime", "amc", "math", "minerva", "olympiad_bench"}
        assert {r["extra_info"]["template"] for r in rows} == {"as_is"}


@needs_real_data
def test_real_training_converters(tmp_path, capsys):
    out = tmp_path / "gsm8k.parquet"
    assert call(gsm8k.main, "--input", SHARED_DATA / "gsm8k/test.jsonl", "--output", out, capsys=capsys)[0] == 0
    rows = read_rows(out)
    assert len(rows) == 1319
    assert_schema(rows, training=True)
    for row in rows:  # every demonstration satisfies the boxed rule with the ground truth
        assert answers.last_boxed(row["target"][0]["content"]) == row["reward_model"]["ground_truth"]
        assert "<<" not in row["target"][0]["content"]

    # MATH train has two rows whose only answer is an empty \boxed{}: they must be reported, not lost silently
    out = tmp_path / "math.parquet"
    status, _, err = call(math_prep.main, "--input", SHARED_DATA / "math_train/train.jsonl", "--output", out,
                          capsys=capsys)
    assert status == 1 and "row 5341 (line 5342), field 'solution'" in err
    status, stdout, _ = call(math_prep.main, "--input", SHARED_DATA / "math_train/train.jsonl", "--output", out,
                             "--on-error", "skip", capsys=capsys)
    assert status == 0 and "written: 7498 rows" in stdout and "no answer: solution" in stdout
    assert_schema(read_rows(out), training=True)


@needs_real_data
def test_real_luffy_system_prompt_and_answers_match(tmp_path, capsys):
    luffy_rows = read_rows(SHARED_DATA / "luffy_eval/valid.parquet")
    assert {r["prompt"][0]["content"] for r in luffy_rows} == {templates.LUFFY_SYSTEM_PROMPT}

    out = tmp_path / "think.parquet"
    assert call(eval_sets.main, "--format", "luffy", "--input", SHARED_DATA / "luffy_eval/valid.parquet",
                "--output", out, "--template", "luffy_think", capsys=capsys)[0] == 0
    assert [r["prompt"] for r in read_rows(out)] == [r["prompt"] for r in luffy_rows]

    truth = {user_text(r): r["reward_model"]["ground_truth"] for r in luffy_rows}
    # MATH-500 problems are verbatim in LUFFY's file; AIME texts differ in formatting for some problems
    for fmt, rel, min_shared in [("math500", "math500/test.jsonl", 500), ("aime24", "qwen_eval/aime24/test.jsonl", 15)]:
        out = tmp_path / f"{fmt}.parquet"
        call(eval_sets.main, "--format", fmt, "--input", SHARED_DATA / rel, "--output", out, capsys=capsys)
        rows = read_rows(out)
        shared = [r for r in rows if user_text(r) in truth]
        assert len(shared) >= min_shared
        assert all(r["reward_model"]["ground_truth"] == truth[user_text(r)] for r in shared)


@pytest.mark.parametrize("demo", ["<think>\nthe answer is boxed </think> what",
                                  "the answer is boxed",
                                  "<think>\n<think>\nthe answer"])
def test_validator_and_agent_loop_read_and_count_a_demo_the_same_way(tokenizer_dirs, demo):
    """One demonstration layer (recipe_srft.demos): the validator's demo length (think rule, EOS) is the number
    of response tokens the agent loop builds for the same row, with the think and the plain chat template."""
    from transformers import AutoTokenizer

    from recipe_srft.demos import extract_demos, tokenize_demo

    for folder in tokenizer_dirs:
        tok = AutoTokenizer.from_pretrained(folder)
        row = {"data_source": "math", "ability": "math", "prompt": [{"role": "user", "content": "what is the answer"}],
               "reward_model": {"style": "rule", "ground_truth": "5"}, "extra_info": {"index": 0},
               "target": [{"role": "assistant", "content": demo}]}
        result = validate.check_rows([row], list(row), tokenizer=tok)
        rendered = tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        (text,) = extract_demos(row)
        assert text == schema.demonstration_of(row)
        built = tokenize_demo(text, tok, max_response_length=10_000, prompt_text=rendered)
        assert result.demo_lengths[0] == len(built.response_ids), folder
        assert (0 in result.think_prefix_rows) == built.stripped_think
