"""``python -m data_prep.sft``: training parquet -> verl's SFT ``messages`` data, read back by verl's own dataset.

Fixtures are built in tmp_path; the tokenizers are the tiny offline ChatML tokenizer of ``tests/conftest.py`` (one
token per byte, EOS ``<|im_end|>``), a copy whose generation prompt ends with ``<think>\\n`` (as
Qwen2.5-Math-7B-16k-think's), and a byte-level BPE with one merge (``\\n\\n``) to show the token check catching a
tokenizer that merges across the prompt/demonstration boundary. No Ray, no model weights.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from data_prep import sft  # noqa: E402
from data_prep.templates import LUFFY_SYSTEM_PROMPT  # noqa: E402
from recipe_srft.demos import THINK_PREFIX, extract_demos, tokenize_demo  # noqa: E402

THINK_GENERATION = "'<|im_start|>assistant\\n<think>\\n'"


# --------------------------------------------------------------------------- tokenizers and fixtures
@pytest.fixture(scope="module")
def tokenizers(tiny_model_dir, tmp_path_factory):
    """name -> folder: 'plain' (ChatML), 'think' (generation prompt + '<think>\\n')."""
    from transformers import AutoTokenizer

    base = tmp_path_factory.mktemp("sft_tokenizers")
    plain = base / "plain"
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.save_pretrained(plain)
    assert "'<|im_start|>assistant\\n'" in tok.chat_template
    tok.chat_template = tok.chat_template.replace("'<|im_start|>assistant\\n'", THINK_GENERATION)
    tok.save_pretrained(base / "think")
    return {"plain": plain, "think": base / "think"}


def _load(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def _prompt(problem: str) -> list[dict]:
    return [{"content": LUFFY_SYSTEM_PROMPT, "role": "system"}, {"content": problem, "role": "user"}]


def _luffy_row(i: int, problem: str, demo, **extra) -> dict:
    row = {"data_source": "openr1", "prompt": _prompt(problem), "ability": "math",
           "reward_model": {"ground_truth": "5", "style": "rule"}, "extra_info": {"index": 100 + i, "split": "default"}}
    if demo is not None:
        row["target"] = [{"content": demo, "role": "assistant"}] if isinstance(demo, str) else demo
    row.update(extra)
    return row


GOOD = [
    _luffy_row(0, "What is $2+3$?", "<think>\nTwo plus three is five.\n</think>\n\nThe answer is $\\boxed{5}$."),
    _luffy_row(1, "What is $1+4$?", "No think tag here. \\boxed{5}"),  # a demonstration without <think>\n
    # a `demo` string column instead of `target` (recipe_srft.demos.extract_demos reads both)
    {"data_source": "openr1", "prompt": _prompt("What is $10/2$?"), "demo": "<think>\nhalf of ten\n</think>\n5"},
]


def _parquet(path: Path, rows: list[dict]) -> Path:
    keys = list(dict.fromkeys(k for row in rows for k in row))  # from_pylist would keep the first row's keys only
    pq.write_table(pa.Table.from_pylist([{k: row.get(k) for k in keys} for row in rows]), path)
    return path


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _convert(capsys, *args) -> tuple[int, str, str]:
    status = sft.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def _rl_view(tokenizer, prompt: list[dict], demo: str) -> tuple[list[int], list[int]]:
    """The RL run's prompt ids and demonstration ids, built the way the agent loop builds them (independently of
    data_prep.sft): chat template with the generation prompt, then recipe_srft.demos.tokenize_demo."""
    from verl.utils.tokenizer.tokenizer import normalize_token_ids

    prompt_ids = normalize_token_ids(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True))
    prompt_text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    return prompt_ids, tokenize_demo(demo, tokenizer, 10 ** 6, prompt_text=prompt_text).response_ids


def _verl_dataset(path: Path, tokenizer):
    from omegaconf import OmegaConf
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    # the data settings PRESET=sft passes (run_scripts/_common.sh), with verl's own defaults for the rest
    config = OmegaConf.create({"messages_key": "messages", "pad_mode": "no_padding", "truncation": "right",
                               "max_length": 4096, "enable_thinking_default": None, "apply_chat_template_kwargs": {}})
    return MultiTurnSFTDataset(parquet_files=[str(path)], tokenizer=tokenizer, config=config)


# --------------------------------------------------------------------------- good rows
@pytest.mark.parametrize("template", ["plain", "think"])
def test_good_rows_convert_and_verl_trains_exactly_the_rl_demonstration(tmp_path, capsys, tokenizers, template):
    """Each row becomes prompt + one assistant turn; verl's MultiTurnSFTDataset reads it back with input_ids = the
    RL run's prompt ids + demonstration ids, and loss_mask = 1 exactly on the demonstration (EOS included) plus the
    template's one-token turn separator ('\\n' after <|im_end|>), 0 on the whole prompt (generation prompt and, with
    the think template, the '<think>\\n' the RL run drops from the demonstration)."""
    from verl.utils.tokenizer.chat_template import initialize_turn_separator

    src = _parquet(tmp_path / "train.parquet", GOOD)
    out = tmp_path / "train.sft.parquet"
    status, stdout, err = _convert(capsys, "--input", src, "--output", out, "--tokenizer", tokenizers[template])
    assert status == 0, err
    assert "written: 3 rows" in stdout and "token check: verl's MultiTurnSFTDataset reads the first 3 rows" in stdout
    assert "the RL run's EOS '<|im_end|>' plus the template's separator '\\n' (1 token(s)" in stdout

    rows = pq.read_table(out).to_pylist()
    assert [r["extra_info"]["source_row"] for r in rows] == [0, 1, 2]
    assert [r["extra_info"]["index"] for r in rows] == [100, 101, 2]  # LUFFY's index, else the input row
    think = [r["extra_info"]["think"] for r in rows]
    assert think == (["in_prompt", "added_to_prompt", "in_prompt"] if template == "think" else ["none"] * 3)
    for row, source in zip(rows, GOOD):
        assert row["messages"][:-1] == source["prompt"]
        (demo,) = extract_demos(source)
        content = row["messages"][-1]
        assert content["role"] == "assistant"
        # the demonstration text is kept; only a missing <think>\n is prepended under the think template
        expected = THINK_PREFIX + demo if template == "think" and not demo.startswith(THINK_PREFIX) else demo
        assert content["content"] == expected

    tok = _load(tokenizers[template])
    separator = initialize_turn_separator(tok)
    assert tok.decode(separator) == "\n"
    dataset = _verl_dataset(out, tok)
    assert len(dataset) == 3
    for i, source in enumerate(GOOD):
        item = dataset[i]
        input_ids, loss_mask = item["input_ids"].tolist(), item["loss_mask"].tolist()
        prompt_ids, demo_ids = _rl_view(tok, source["prompt"], extract_demos(source)[0])
        assert demo_ids[-1] == tok.eos_token_id
        assert input_ids == prompt_ids + demo_ids + separator
        assert loss_mask == [0] * len(prompt_ids) + [1] * (len(demo_ids) + len(separator))
        trained = tok.decode([t for t, m in zip(input_ids, loss_mask) if m])
        text = extract_demos(source)[0]
        if template == "think" and text.startswith(THINK_PREFIX):
            text = text[len(THINK_PREFIX):]  # in the RL run's prompt, not in its response
        assert trained == text + "<|im_end|>\n"


def test_demos_per_prompt_and_demo_fields(tmp_path, capsys, tokenizers):
    two = _luffy_row(0, "What is $2+3$?", [{"content": "first \\boxed{5}", "role": "assistant"},
                                           {"content": "second \\boxed{5}", "role": "assistant"}])
    src = _jsonl(tmp_path / "train.jsonl", [two, GOOD[2]])
    out = tmp_path / "out.parquet"
    status, stdout, _ = _convert(capsys, "--input", src, "--output", out, "--tokenizer", tokenizers["plain"])
    assert status == 0 and "written: 2 rows" in stdout and "1 rows hold more than 1 demonstration(s)" in stdout
    status, stdout, _ = _convert(capsys, "--input", src, "--output", out, "--tokenizer", tokenizers["plain"],
                                 "--demos-per-prompt", 2)
    assert status == 0 and "written: 3 rows" in stdout
    rows = pq.read_table(out).to_pylist()
    assert [(r["extra_info"]["source_row"], r["extra_info"]["demo_index"]) for r in rows] == [(0, 0), (0, 1), (1, 0)]
    assert [r["messages"][-1]["content"] for r in rows[:2]] == ["first \\boxed{5}", "second \\boxed{5}"]
    # --demo-fields demo: the row with only `target` has no demonstration there
    status, _, err = _convert(capsys, "--input", src, "--output", out, "--tokenizer", tokenizers["plain"],
                              "--demo-fields", "demo")
    assert status == 1 and "row 0 (line 1), field 'demo': no demonstration" in err


# --------------------------------------------------------------------------- bad rows
BAD = [
    ({"data_source": "x", "target": [{"content": "d", "role": "assistant"}]}, "prompt", "missing field"),
    ({"prompt": 5, "target": [{"content": "d", "role": "assistant"}]}, "prompt", "unparsable chat list"),
    ({"prompt": [{"role": "user", "content": 3}], "demo": "d"}, "prompt[0].content", "unparsable chat list"),
    ({"prompt": [{"role": "system", "content": "s"}], "demo": "d"}, "prompt", "invalid value"),
    ({"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "demo": "d"},
     "prompt[1].role", "invalid value"),
    ({"prompt": [{"role": "user", "content": "q"}]}, "target or demo", "missing demonstration"),
    ({"prompt": [{"role": "user", "content": "q"}], "target": [], "demo": "  "}, "target or demo",
     "missing demonstration"),
    ({"prompt": [{"role": "user", "content": "q"}], "target": [{"content": 7, "role": "assistant"}]},
     "target[0].content", "wrong type"),
    ({"prompt": [{"role": "user", "content": "q"}], "target": [3]}, "target[0]", "wrong type"),
    ({"prompt": [{"role": "user", "content": "q"}], "demo": 3}, "demo", "wrong type"),
]


@pytest.mark.parametrize("bad, field, reason", BAD, ids=[f"{f}:{r}" for _, f, r in BAD])
def test_bad_row_fails_with_its_row_and_field(tmp_path, capsys, tokenizers, bad, field, reason):
    src = _jsonl(tmp_path / "train.jsonl", [GOOD[0], bad])
    out = tmp_path / "out.parquet"
    status, _, err = _convert(capsys, "--input", src, "--output", out, "--tokenizer", tokenizers["plain"])
    assert status == 1
    assert err.startswith(f"error: {src}: row 1 (line 2), field '{field}': "), err
    assert not out.exists()


def test_bad_rows_skip_counts_by_reason_and_lists_rows(tmp_path, capsys, tokenizers):
    src = _jsonl(tmp_path / "train.jsonl", [GOOD[0], *(b for b, _, _ in BAD), "{not json", GOOD[1]])
    out = tmp_path / "out.parquet"
    status, stdout, _ = _convert(capsys, "--input", src, "--output", out, "--tokenizer", tokenizers["think"],
                                 "--on-error", "skip")
    assert status == 0
    assert f"read:    {len(BAD) + 3} rows" in stdout and "written: 2 rows" in stdout
    assert f"skipped: {len(BAD) + 1} rows" in stdout
    assert "missing demonstration: target or demo" in stdout and "invalid JSON" in stdout
    assert f"{src}: row 1 (line 2), field 'prompt': missing field" in stdout
    assert [r["extra_info"]["source_row"] for r in pq.read_table(out).to_pylist()] == [0, len(BAD) + 2]


def test_parquet_input_rows_are_row_indexed(tmp_path, capsys, tokenizers):
    src = _parquet(tmp_path / "train.parquet", [GOOD[0], _luffy_row(1, "q", None), GOOD[1]])
    status, _, err = _convert(capsys, "--input", src, "--output", tmp_path / "o.parquet", "--tokenizer",
                              tokenizers["plain"])
    assert status == 1 and f"error: {src}: row 1, field 'target or demo': no demonstration" in err


def test_refusals(tmp_path, capsys, tokenizers):
    src = _jsonl(tmp_path / "train.jsonl", [BAD[0][0]])
    status, _, err = _convert(capsys, "--input", src, "--output", tmp_path / "o.parquet", "--tokenizer",
                              tokenizers["plain"], "--on-error", "skip")
    assert status == 1 and "no rows to write" in err and not (tmp_path / "o.parquet").exists()
    status, _, err = _convert(capsys, "--input", src, "--output", src, "--tokenizer", tokenizers["plain"])
    assert status == 1 and "must not overwrite the input" in err
    status, _, err = _convert(capsys, "--input", tmp_path / "none.parquet", "--output", tmp_path / "o.parquet",
                              "--tokenizer", tokenizers["plain"])
    assert status == 1 and "no such file" in err
    status, _, err = _convert(capsys, "--input", src, "--output", tmp_path / "o.parquet", "--tokenizer",
                              tmp_path / "no_tokenizer")
    assert status == 1 and "cannot load tokenizer" in err


# --------------------------------------------------------------------------- templates the RL tokens cannot survive
def test_template_that_rewrites_the_assistant_turn_is_refused(tmp_path, capsys, tokenizers):
    """A template that drops the reasoning before </think> from assistant turns (as DeepSeek-R1-style templates do)
    would make SFT train on another text than the RL run."""
    tok = _load(tokenizers["think"])
    tok.chat_template = tok.chat_template.replace(
        "message['content']", "(message['content'].split('</think>')[-1] if message['role'] == 'assistant' "
                              "else message['content'])")
    folder = tmp_path / "r1_like"
    tok.save_pretrained(folder)
    src = _jsonl(tmp_path / "train.jsonl", [GOOD[0]])
    status, _, err = _convert(capsys, "--input", src, "--output", tmp_path / "o.parquet", "--tokenizer", folder)
    assert status == 1 and "row 0 (line 1), field 'prompt': chat template: the template rewrites" in err


def test_token_check_catches_a_merge_across_the_boundary(tmp_path, capsys, tokenizers):
    """With a BPE that merges '\\n\\n', '<think>\\n' + '\\nfoo' is one token more in the RL run (the prompt ends
    with '\\n', the demonstration starts with '\\n') than in verl's rendering of the whole assistant turn: the text
    is identical, the tokens are not, and the conversion fails instead of training on other tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    think = _load(tokenizers["think"])
    alphabet = sorted(ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab["ĊĊ"] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[("Ċ", "Ċ")]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    merged = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    merged.chat_template = think.chat_template
    folder = tmp_path / "merging"
    merged.save_pretrained(folder)
    src = _jsonl(tmp_path / "train.jsonl", [_luffy_row(0, "q", "<think>\n\nfoo")])
    out = tmp_path / "o.parquet"
    status, _, err = _convert(capsys, "--input", src, "--output", out, "--tokenizer", folder)
    assert status == 1 and "does not reproduce the RL run's tokens" in err and "row 0:" in err, err
    assert not out.exists()
    # --check-tokens 0 writes it anyway (the text-level check alone passes)
    status, stdout, _ = _convert(capsys, "--input", src, "--output", out, "--tokenizer", folder, "--check-tokens", 0)
    assert status == 0 and out.exists() and "token check" not in stdout


def test_help_documents_the_format(capsys):
    with pytest.raises(SystemExit):
        sft.main(["--help"])
    out = capsys.readouterr().out
    for option in ("--input", "--output", "--tokenizer", "--demo-fields", "--demos-per-prompt", "--check-tokens",
                   "--on-error", "--limit", "--list-skipped"):
        assert option in out
    assert "MultiTurnSFTDataset" in out and "<think>" in out


def test_limit(tmp_path, capsys, tokenizers):
    src = _parquet(tmp_path / "train.parquet", GOOD)
    status, stdout, _ = _convert(capsys, "--input", src, "--output", tmp_path / "o.parquet", "--tokenizer",
                                 tokenizers["plain"], "--limit", 2)
    assert status == 0 and "read:    2 rows" in stdout and "written: 2 rows" in stdout


def test_cli_module_runs(tmp_path, tokenizers):
    """`python -m data_prep.sft` as the run script calls it."""
    import subprocess

    src = _parquet(tmp_path / "train.parquet", GOOD)
    out = tmp_path / "sft" / "train.sft.parquet"
    proc = subprocess.run([sys.executable, "-m", "data_prep.sft", "--input", str(src), "--output", str(out),
                           "--tokenizer", str(tokenizers["think"])], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(out).num_rows == 3
    shutil.rmtree(out.parent)
