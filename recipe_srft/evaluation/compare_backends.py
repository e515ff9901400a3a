r"""Greedy answers of the two back ends side by side: every prompt where vLLM and HF ``generate`` disagree.

    python -m recipe_srft.evaluation.compare_backends --model PATH --data FILE[,FILE] [--out DIR] \
        [--limit N] [--max-new-tokens 1024] [--dtype auto] [--batch-size 16] [--think-format auto|on|off] \
        [--kv-cache-memory-bytes B] [--max-model-len L]

Both back ends decode greedily (temperature 0, one sample per prompt, rows as they are) the same prompts,
rendered the same way (``generators.render_prompt``), in the dtype that ``--dtype`` resolves to for both
(``generators.resolve_dtype``: ``auto`` = the checkpoint's own dtype on the CPU, bf16 on a GPU). Each completion
is graded with the reward (``recipe_srft.reward.compute_score``, as the evaluation does).

Output (``DIR/compare_backends.json`` and ``.md``; stdout): the dtype each back end ran, how many completions
are identical, how many answers (the reward's extracted ``pred``) and scores agree, the accuracy of each back end,
and EVERY prompt whose completion differs, with both answers, the first token where the two completions part
and, to explain it, HF's two best next tokens at that point (the logit gap: a near tie is a rounding
difference between the two kernels, not a bug). ``--model`` may be a verl checkpoint (merged into
``DIR/merged_model`` as the evaluation does).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .data import build_plan, load_rows
from .generators import HFGenerator, SamplingConfig, VLLMGenerator, decode_completions, render_prompt

GREEDY = dict(temperature=0.0, top_p=1.0, seed=0)


def _generate(gen, prompts: list, max_new_tokens: int, batch_size: int) -> list[list[int]]:
    """Greedy completion token ids (cut at the end-of-sequence token), one per prompt."""
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, **GREEDY)
    out: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        out += [ids[0] for ids in gen.generate_ids(prompts[start:start + batch_size], 1, sampling)]
    return out


def _first_divergence(a: list[int], b: list[int]) -> int:
    """Index of the first token where two completions differ (the shorter length when one extends the other)."""
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return i


def _hf_top2(hf: HFGenerator, prompt_ids: list[int], prefix: list[int]) -> dict:
    """HF's two most likely next tokens after ``prompt + prefix`` and their logit gap."""
    torch = hf.torch
    ids = torch.tensor([prompt_ids + prefix], dtype=torch.long, device=hf.device)
    with torch.no_grad():
        logits = hf.model(input_ids=ids).logits[0, -1].float()
    top = torch.topk(logits, 2)
    toks = [int(t) for t in top.indices]
    return {"tokens": [hf.tokenizer.decode([t]) for t in toks], "token_ids": toks,
            "logit_gap": float(top.values[0] - top.values[1])}


def compare_backends(model_path: str, items: list, max_new_tokens: int = 1024, dtype: str = "auto",
                     batch_size: int = 16, think_format: bool | None = None, device: str | None = None,
                     kv_cache_memory_bytes: int | None = None, max_model_len: int | None = None,
                     explain: bool = True, log=print) -> dict:
    """Greedy completions of ``items`` (objects with ``source, prompt_index, prompt, ground_truth, extra_info``)
    with both back ends; returns the report (see the module docstring)."""
    from recipe_srft.reward import compute_score

    prompts = [it.prompt for it in items]
    t0 = time.time()
    vllm_gen = VLLMGenerator(model_path, seed=0, dtype=dtype, max_model_len=max_model_len,
                             kv_cache_memory_bytes=kv_cache_memory_bytes)
    t1 = time.time()
    vllm_ids = _generate(vllm_gen, prompts, max_new_tokens, max(len(prompts), 1))
    t2 = time.time()
    vllm_info = {"dtype": vllm_gen.dtype, "dtype_reason": vllm_gen.dtype_reason, "start_s": round(t1 - t0, 1),
                 "generate_s": round(t2 - t1, 1),
                 "engine_kwargs": {k: v for k, v in vllm_gen.engine_kwargs.items() if k != "model"}}
    vllm_gen.close()
    hf = HFGenerator(model_path, dtype=dtype, device=device)
    t3 = time.time()
    hf_ids = _generate(hf, prompts, max_new_tokens, batch_size)
    hf_out = [t[0] for t in decode_completions(hf.tokenizer, [[x] for x in hf_ids])]
    vllm_out = [t[0] for t in decode_completions(hf.tokenizer, [[x] for x in vllm_ids])]
    hf_info = {"dtype": hf.dtype, "dtype_reason": hf.dtype_reason, "device": str(hf.device),
               "generate_s": round(time.time() - t3, 1)}
    kwargs = {} if think_format is None else {"think_format": think_format}

    def grade(it, text: str) -> dict:
        r = compute_score(data_source=it.source, solution_str=text, ground_truth=it.ground_truth,
                          extra_info=it.extra_info, **kwargs)
        return {"pred": r.get("pred", ""), "score": float(r["score"])}

    rows, differences = [], []
    for it, h, v, hi, vi in zip(items, hf_out, vllm_out, hf_ids, vllm_ids):
        gh, gv = grade(it, h), grade(it, v)
        row = {"source": it.source, "prompt_index": it.prompt_index, "ground_truth": it.ground_truth,
               "identical": hi == vi, "same_answer": gh["pred"] == gv["pred"], "same_score": gh["score"] == gv["score"],
               "hf": {**gh, "response": h, "num_tokens": len(hi)}, "vllm": {**gv, "response": v, "num_tokens": len(vi)}}
        rows.append(row)
        if hi != vi:
            at = _first_divergence(hi, vi)
            row["first_different_token"] = at
            if explain:
                row["hf_top2_at_divergence"] = _hf_top2(hf, render_prompt(hf.tokenizer, it.prompt), hi[:at])
            differences.append(row)
    n = len(rows)
    report = {
        "model": model_path, "num_prompts": n, "max_new_tokens": max_new_tokens, "dtype_requested": dtype,
        "hf": {**hf_info, "accuracy": sum(r["hf"]["score"] for r in rows) / n if n else None},
        "vllm": {**vllm_info, "accuracy": sum(r["vllm"]["score"] for r in rows) / n if n else None},
        "same_dtype": hf_info["dtype"] == vllm_info["dtype"],
        "identical_completions": sum(r["identical"] for r in rows),
        "same_answers": sum(r["same_answer"] for r in rows),
        "same_scores": sum(r["same_score"] for r in rows),
        "differences": differences,
        "hf_completions": hf_out, "vllm_completions": vllm_out,
        "hf_token_ids": hf_ids, "vllm_token_ids": vllm_ids,
    }
    log(render_markdown(report))
    return report


def _short(text: str, n: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 3] + "..."


def render_markdown(r: dict) -> str:
    n = r["num_prompts"]
    lines = [f"# Greedy answers, vLLM vs HF generate: `{r['model']}`", "",
             f"{n} prompts, up to {r['max_new_tokens']} new tokens, --dtype {r['dtype_requested']}: HF ran "
             f"`{r['hf']['dtype']}` on {r['hf']['device']} ({r['hf']['dtype_reason']}), vLLM ran `{r['vllm']['dtype']}` "
             f"({r['vllm']['dtype_reason']}).", "",
             f"- identical completions: {r['identical_completions']} / {n}",
             f"- same extracted answer: {r['same_answers']} / {n}; same score: {r['same_scores']} / {n}",
             f"- accuracy: HF {100 * (r['hf']['accuracy'] or 0):.1f}%, vLLM {100 * (r['vllm']['accuracy'] or 0):.1f}%",
             f"- time: vLLM start {r['vllm']['start_s']} s, generate {r['vllm']['generate_s']} s; HF generate "
             f"{r['hf']['generate_s']} s", ""]
    if r["differences"]:
        lines += ["| benchmark | prompt | ground truth | HF answer (score) | vLLM answer (score) | answers differ | "
                  "first different token | HF top-2 there (logit gap) |", "|---|---|---|---|---|---|---|---|"]
        for d in r["differences"]:
            top = d.get("hf_top2_at_divergence")
            top_s = "" if not top else f"{' / '.join(repr(t) for t in top['tokens'])} ({top['logit_gap']:.3g})"
            lines.append(f"| {d['source']} | {d['prompt_index']} | {_short(d['ground_truth'], 20)} | "
                         f"{_short(d['hf']['pred'], 20)} ({d['hf']['score']:g}) | "
                         f"{_short(d['vllm']['pred'], 20)} ({d['vllm']['score']:g}) | "
                         f"{'yes' if not d['same_answer'] else 'no'} | {d['first_different_token']} | {top_s} |")
    else:
        lines.append("Every completion is identical.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recipe_srft.evaluation.compare_backends", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HF model dir, or a verl checkpoint directory")
    p.add_argument("--data", required=True, action="append", help="verl parquet file(s), comma separated")
    p.add_argument("--out", default=None, help="output directory (compare_backends.json/.md; merged_model/)")
    p.add_argument("--limit", type=int, default=None, help="first N prompts of each benchmark")
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--batch-size", type=int, default=16, help="HF prompts per generate call")
    p.add_argument("--think-format", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--device", default=None, help="HF device (default: cuda if available)")
    p.add_argument("--kv-cache-memory-bytes", type=int, default=None)
    p.add_argument("--max-model-len", type=int, default=None)
    args = p.parse_args(argv)
    data = [f.strip() for spec in args.data for f in spec.split(",") if f.strip()]
    items = [it for plan in build_plan(load_rows(data), protocol="avg1", limit=args.limit) for it in plan.items]
    model = args.model
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    from .checkpoint import prepare_model

    info = prepare_model(model, Path(args.out or "."), log=print)
    report = compare_backends(info["eval_path"], items, max_new_tokens=args.max_new_tokens, dtype=args.dtype,
                              batch_size=args.batch_size,
                              think_format={"auto": None, "on": True, "off": False}[args.think_format],
                              device=args.device, kv_cache_memory_bytes=args.kv_cache_memory_bytes,
                              max_model_len=args.max_model_len, log=print)
    report["data"] = [str(Path(d).resolve()) for d in data]
    if args.out:
        out = Path(args.out)
        (out / "compare_backends.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
        (out / "compare_backends.md").write_text(render_markdown(report))
        print(f"[compare] wrote {out}/compare_backends.json, compare_backends.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
