"""Throughput of the HF rollout server vs one in-process batched ``generate``, measured in one run.

    python bench/rollout_throughput.py [--requests 16 --new-tokens 64 --hidden 256 --layers 4 --threads 2]

Both sides decode the same prompts greedily with the same model and the same number of torch threads;
the server runs as a Ray actor (as in training) and receives the requests concurrently (as verl's agent
loop sends them), so it must batch them itself. Prints tokens/s of each and their ratio (goal >= 0.7).

``--in-process`` serves from an asyncio loop in this process instead. It reads low (about 0.6 on 2
cores), most likely not because of the server: its batches run on an ``asyncio.to_thread`` worker, a
second OpenMP thread team in a process whose main team has just run the reference and still spins.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--in-process", dest="ray", action="store_false",
                   help="serve from an asyncio loop in this process instead of a Ray actor (see above)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help="torch intra-op threads on both sides (Ray sets OMP_NUM_THREADS=1 in actors: without "
                        "pinning both sides the comparison measures thread counts, not batching)")
    args = p.parse_args(argv)

    from verl.workers.config import HFModelConfig, RolloutConfig

    from recipe_srft.cpu.hf_rollout import HFRolloutServer, batched_generate, load_hf_model, sampling_key
    from recipe_srft.experiments.tiny_model import build_tiny_model

    tmp = tempfile.mkdtemp()
    model_dir = build_tiny_model(tmp, hidden_size=args.hidden, num_layers=args.layers, intermediate_size=4 * args.hidden,
                                 num_heads=8, num_kv_heads=4)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    prompts = [tok.apply_chat_template([{"role": "user", "content": f"Question {i}: what is {i} + {i * 7}?"}],
                                       add_generation_prompt=True, return_dict=False) for i in range(args.requests)]
    # No EOS so that every response has exactly new_tokens tokens on both sides.
    eos = [-1]
    key = sampling_key({"temperature": 0})
    model = load_hf_model(str(model_dir))

    def reference() -> int:
        out = batched_generate(model, prompts, [args.new_tokens] * len(prompts), key, tok.pad_token_id, eos)
        return sum(len(ids) for ids, _ in out)

    config = RolloutConfig(name="hf", prompt_length=256, response_length=args.new_tokens)
    mcfg = HFModelConfig(path=str(model_dir))
    params = {"temperature": 0, "max_tokens": args.new_tokens, "logprobs": True}
    if args.ray:
        import ray

        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
        server = ray.remote(HFRolloutServer).options(max_concurrency=1000).remote(config, mcfg)
        ray.get(server.ping.remote())

        def served() -> int:
            refs = [server.generate.remote(prompt_ids=pr, sampling_params=dict(params), request_id=str(i))
                    for i, pr in enumerate(prompts)]
            return sum(len(o.token_ids) for o in ray.get(refs))
    else:
        server = HFRolloutServer(config, mcfg)
        server.eos_token_ids = eos

        def served() -> int:
            async def go():
                return await asyncio.gather(*[server.generate(prompt_ids=pr, sampling_params=dict(params),
                                                              request_id=str(i)) for i, pr in enumerate(prompts)])
            return sum(len(o.token_ids) for o in asyncio.run(go()))

    torch.set_num_threads(args.threads)
    if args.ray:
        ray.get(server.__ray_call__.remote(lambda self: setattr(self, "eos_token_ids", eos)))
        ray.get(server.__ray_call__.remote(lambda self: torch.set_num_threads(args.threads)))
        server_threads = ray.get(server.__ray_call__.remote(lambda self: torch.get_num_threads()))
    else:
        server_threads = torch.get_num_threads()
    reference(), served()  # warm-up
    ref_tps, srv_tps = [], []
    for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
        t0 = time.perf_counter(); n_ref = reference(); ref_tps.append(n_ref / (time.perf_counter() - t0))
        t0 = time.perf_counter(); n_srv = served(); srv_tps.append(n_srv / (time.perf_counter() - t0))
    ref, srv = statistics.median(ref_tps), statistics.median(srv_tps)
    print(f"model: hidden={args.hidden} layers={args.layers}; {args.requests} requests x {args.new_tokens} new tokens;"
          f" server via {'Ray actor' if args.ray else 'in-process asyncio'};"
          f" torch threads: in-process {torch.get_num_threads()}, server {server_threads}")
    print(f"in-process batched generate: {ref:9.1f} tokens/s")
    print(f"HF rollout server          : {srv:9.1f} tokens/s")
    print(f"ratio server/in-process    : {srv / ref:.3f}   (goal >= 0.7)")


if __name__ == "__main__":
    main()
