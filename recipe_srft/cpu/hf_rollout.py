"""``actor_rollout_ref.rollout.name=hf``: a rollout server built on HF ``generate``.

verl 0.9.1 generates only through rollout *servers* (vLLM, SGLang, TRT-LLM), all of
which need a GPU. This module gives verl the same token-in/token-out server on a CPU:

* :class:`HFRolloutServer` (a Ray actor) holds its own copy of the policy and answers
  ``generate(prompt_ids, sampling_params, request_id) -> TokenOutput`` with response
  token ids and their log-probs. Concurrent requests are **batched**: requests that
  arrive while a batch is running, or before the queue has been quiet for ``batch_window_s``
  (at most ``max_batch_wait_s`` after the first one), are
  left-padded into a single ``model.generate`` call, grouped by sampling parameters.
* :class:`HFReplica` is the verl ``RolloutReplica`` that starts one server per replica.
* :class:`HFServerAdapter` is the ``BaseRollout`` living inside verl's actor worker; it
  receives the FSDP state dict on every weight sync and ships it to its server, so the
  rollout policy equals the trained policy after each update.

Log-probs follow verl's actor convention: ``log_softmax(logits / temperature)`` of the
sampled token (raw logits when decoding greedily), so rollout and actor log-probs agree.

Registration (``rollout.name=hf``) happens in :mod:`recipe_srft.cpu`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Generator, Optional

import ray
import torch

from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

logger = logging.getLogger(__name__)

#: Quiet period: a batch is cut once no request has arrived for this many seconds. A fixed window counted
#: from the first request was too short: verl's agent loop sends a step's requests over 20-45 ms (longer when
#: SRFT demonstration sessions share its event loop), which split one batch into two and doubled the
#: generation time of a step.
DEFAULT_BATCH_WINDOW_S = float(os.environ.get("SRFT_HF_BATCH_WINDOW_S", "0.02"))
#: Upper bound on how long the first request of a batch waits for others (a steady trickle of requests
#: must not starve it).
DEFAULT_MAX_BATCH_WAIT_S = float(os.environ.get("SRFT_HF_MAX_BATCH_WAIT_S", "0.25"))
#: Upper bound on sequences per ``generate`` call.
DEFAULT_MAX_BATCH = int(os.environ.get("SRFT_HF_MAX_BATCH", "64"))


def server_actor_name(replica_rank: int, name_suffix: str = "") -> str:
    return f"hf_rollout_server_{replica_rank}{name_suffix}"


@dataclass
class _Request:
    prompt_ids: list[int]
    max_new_tokens: int
    future: asyncio.Future
    want_logprobs: bool


@dataclass
class _SamplingKey:
    """Requests with equal keys can share one ``generate`` call."""

    do_sample: bool
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float

    def astuple(self):
        return (self.do_sample, self.temperature, self.top_p, self.top_k, self.repetition_penalty)


def sampling_key(sampling_params: dict[str, Any]) -> _SamplingKey:
    temperature = float(sampling_params.get("temperature", 1.0) or 0.0)
    top_k = sampling_params.get("top_k", -1)
    top_k = 0 if top_k is None or int(top_k) <= 0 else int(top_k)
    top_p = sampling_params.get("top_p", 1.0)
    top_p = 1.0 if top_p is None else float(top_p)
    rep = float(sampling_params.get("repetition_penalty", 1.0) or 1.0)
    return _SamplingKey(temperature > 0.0, temperature, top_p, top_k, rep)


#: verl's ``rollout.dtype`` values (``verl/workers/config/rollout.py``: "bfloat16" by default) as torch dtypes.
ROLLOUT_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                  "float16": torch.float16, "fp16": torch.float16, "half": torch.float16}


def rollout_torch_dtype(dtype) -> torch.dtype:
    """``actor_rollout_ref.rollout.dtype`` as a torch dtype; an unknown value is refused, not ignored."""
    key = str(dtype).replace("torch.", "")
    if key not in ROLLOUT_DTYPES:
        raise ValueError(f"actor_rollout_ref.rollout.dtype={dtype!r}: the HF rollout server supports "
                         f"{sorted(ROLLOUT_DTYPES)}")
    return ROLLOUT_DTYPES[key]


def load_hf_model(path: str, attn_implementation: str = "eager", trust_remote_code: bool = False,
                  dtype: torch.dtype = torch.float32):
    """Loads a causal LM in ``dtype`` (verl's ``rollout.dtype``) on the CPU, in eval mode."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        path, torch_dtype=dtype, attn_implementation=attn_implementation, trust_remote_code=trust_remote_code
    )
    model.eval()
    return model


@torch.no_grad()
def batched_generate(
    model,
    prompts: list[list[int]],
    max_new_tokens: list[int],
    key: _SamplingKey,
    pad_token_id: int,
    eos_token_ids: list[int],
) -> list[tuple[list[int], list[float]]]:
    """One left-padded ``generate`` call for ``prompts``; returns (token_ids, log_probs) per prompt.

    Each response stops after its first EOS (which it keeps, like vLLM) or at its own
    ``max_new_tokens``. Log-probs are ``log_softmax(logits / T)`` of the chosen tokens
    (T = 1 when greedy), the quantity verl's actor recomputes as ``old_log_probs``.
    """
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        input_ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        attention_mask[i, width - len(p):] = 1
    gen_kwargs: dict[str, Any] = dict(
        max_new_tokens=max(max_new_tokens),
        do_sample=key.do_sample,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_ids,
        return_dict_in_generate=True,
        output_logits=True,
        repetition_penalty=key.repetition_penalty,
    )
    if key.do_sample:
        gen_kwargs.update(temperature=key.temperature, top_p=key.top_p, top_k=key.top_k)
    else:
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    out = model.generate(
        input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), **gen_kwargs
    )
    sequences = out.sequences[:, width:].cpu()
    logits = torch.stack(out.logits, dim=1).float().cpu()  # [B, T, V], raw (unprocessed) logits
    scale = key.temperature if key.do_sample else 1.0
    logp = torch.log_softmax(logits / scale, dim=-1)
    token_logp = torch.gather(logp, -1, sequences.unsqueeze(-1)).squeeze(-1)
    eos = set(eos_token_ids)
    results = []
    for i in range(len(prompts)):
        ids = sequences[i].tolist()[: max_new_tokens[i]]
        n = len(ids)
        for t, tok in enumerate(ids):
            if tok in eos:
                n = t + 1
                break
        results.append((ids[:n], token_logp[i, :n].tolist()))
    return results


class HFRolloutServer:
    """Token-in/token-out generation server (Ray actor) over HF ``generate``, with batching."""

    def __init__(self, config, model_config, replica_rank: int = 0, batch_window_s: float = DEFAULT_BATCH_WINDOW_S,
                 max_batch: int = DEFAULT_MAX_BATCH, max_batch_wait_s: float = DEFAULT_MAX_BATCH_WAIT_S):
        from verl.utils.config import omega_conf_to_dataclass

        self.config = omega_conf_to_dataclass(config)
        self.model_config = model_config
        self.replica_rank = replica_rank
        self.batch_window_s = batch_window_s
        self.max_batch_wait_s = max(batch_window_s, max_batch_wait_s)
        self.max_batch = max_batch
        path = getattr(model_config, "local_path", None) or model_config.path
        override = dict(getattr(model_config, "override_config", {}) or {})
        attn = override.get("attn_implementation", "eager")
        if attn == "flash_attention_2":
            attn = "eager"
        # verl's rollout.seed ("the seed for vLLM sampling"): this server process samples with torch's global RNG,
        # seeded once per replica as vLLM seeds its engine
        seed = getattr(self.config, "seed", None)
        if seed is not None:
            torch.manual_seed(int(seed) + replica_rank)
        self.model = load_hf_model(path, attn_implementation=attn,
                                   trust_remote_code=getattr(model_config, "trust_remote_code", False),
                                   dtype=rollout_torch_dtype(getattr(self.config, "dtype", "float32")))
        tokenizer = getattr(model_config, "tokenizer", None)
        gen_cfg = getattr(self.model, "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None)
        if eos is None and tokenizer is not None:
            eos = tokenizer.eos_token_id
        self.eos_token_ids = [eos] if isinstance(eos, int) else list(eos or [])
        pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
        self.pad_token_id = pad if pad is not None else (self.eos_token_ids[0] if self.eos_token_ids else 0)
        self._queue: dict[tuple, list[_Request]] = {}
        self._keys: dict[tuple, _SamplingKey] = {}
        self._wakeup: Optional[asyncio.Event] = None
        self._worker: Optional[asyncio.Task] = None
        self._lock = None
        self.global_steps = None
        self.stats = {"batches": 0, "requests": 0, "generated_tokens": 0, "max_batch_size": 0}

    # ---- generation ---------------------------------------------------------------------------
    def _max_new_tokens(self, prompt_len: int, sampling_params: dict[str, Any]) -> int:
        room = self.config.prompt_length + self.config.response_length - prompt_len
        if "max_tokens" in sampling_params:
            wanted = int(sampling_params["max_tokens"])
        elif "max_new_tokens" in sampling_params:
            wanted = int(sampling_params["max_new_tokens"])
        else:
            wanted = self.config.response_length
        return max(1, min(wanted, self.config.response_length, room))

    async def generate(self, prompt_ids: list[int], sampling_params: dict[str, Any], request_id: str,
                       image_data=None, video_data=None, audio_data=None, mm_processor_kwargs=None,
                       priority: int = 0, **kwargs) -> TokenOutput:
        if image_data or video_data or audio_data:
            raise NotImplementedError("the hf CPU rollout is text-only")
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._batch_loop())
        prompt_ids = [int(t) for t in prompt_ids]
        key = sampling_key(sampling_params)
        fut = asyncio.get_running_loop().create_future()
        req = _Request(prompt_ids, self._max_new_tokens(len(prompt_ids), sampling_params), fut,
                       bool(sampling_params.get("logprobs", True)))
        self._keys.setdefault(key.astuple(), key)
        self._queue.setdefault(key.astuple(), []).append(req)
        self._wakeup.set()
        token_ids, log_probs = await fut
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs if req.want_logprobs else None,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    async def _batch_loop(self):
        while True:
            await self._wakeup.wait()
            # Let concurrent callers enqueue before the batch is cut: wait until the queue has been quiet
            # for batch_window_s, but no longer than max_batch_wait_s in all.
            waited, queued = 0.0, -1
            while waited < self.max_batch_wait_s:
                now_queued = sum(len(v) for v in self._queue.values())
                if now_queued == queued or now_queued >= self.max_batch:
                    break
                queued = now_queued
                step = min(self.batch_window_s, self.max_batch_wait_s - waited)
                await asyncio.sleep(step)
                waited += step
            self._wakeup.clear()
            while any(self._queue.values()):
                k = next(k for k, v in self._queue.items() if v)
                batch, self._queue[k] = self._queue[k][: self.max_batch], self._queue[k][self.max_batch:]
                try:
                    results = await asyncio.to_thread(
                        batched_generate, self.model, [r.prompt_ids for r in batch],
                        [r.max_new_tokens for r in batch], self._keys[k], self.pad_token_id, self.eos_token_ids,
                    )
                except Exception as exc:  # a failed batch fails its requests, never the server
                    logger.exception("hf rollout batch failed")
                    for r in batch:
                        if not r.future.done():
                            r.future.set_exception(exc)
                    continue
                self.stats["batches"] += 1
                self.stats["requests"] += len(batch)
                self.stats["max_batch_size"] = max(self.stats["max_batch_size"], len(batch))
                for r, res in zip(batch, results):
                    self.stats["generated_tokens"] += len(res[0])
                    if not r.future.done():
                        r.future.set_result(res)

    def get_stats(self) -> dict:
        return dict(self.stats)

    # ---- weights --------------------------------------------------------------------------------
    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> int:
        """Copies trained weights into the generation model; returns the number of tensors loaded."""
        # state_dict names every alias of a tied weight (lm_head.weight and embed_tokens.weight); named_parameters
        # would list the shared tensor once, and the trainer sends both names.
        params = dict(self.model.state_dict(keep_vars=True))
        params.update(dict(self.model.named_buffers()))
        unknown = [k for k in state_dict if k not in params]
        if unknown:
            raise KeyError(f"weights unknown to the rollout model: {unknown[:5]} (of {len(unknown)})")
        with torch.no_grad():
            for name, tensor in state_dict.items():
                params[name].copy_(tensor.to(params[name].dtype))
        return len(state_dict)

    def compute_log_probs(self, prompt_ids: list[int], response_ids: list[int], temperature: float = 1.0):
        """Log-probs of ``response_ids`` given ``prompt_ids`` from one plain forward (for tests)."""
        ids = torch.tensor([prompt_ids + response_ids])
        with torch.no_grad():
            logits = self.model(input_ids=ids).logits[0, len(prompt_ids) - 1: -1].float()
        logp = torch.log_softmax(logits / temperature, dim=-1)
        return torch.gather(logp, -1, torch.tensor(response_ids).unsqueeze(-1)).squeeze(-1).tolist()

    # ---- lifecycle no-ops (no KV cache to free on the CPU) ------------------------------------
    async def set_global_steps(self, global_steps: int):
        self.global_steps = global_steps

    async def wake_up(self, tags=None):
        return None

    async def sleep(self):
        return None

    async def clear_kv_cache(self):
        return None

    async def release_kv_cache(self):
        return None

    async def resume_kv_cache(self):
        return None

    async def wait_for_requests_to_drain(self):
        while any(self._queue.values()):
            await asyncio.sleep(0.01)

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False):
        return {"aborted_count": 0, "request_ids": []}

    async def abort_request(self, request_id: str, reset_prefix_cache: bool = True):
        return {"aborted": False, "request_id": request_id}

    async def resume_generation(self):
        return None

    async def resume_engine_generation(self):
        return None

    async def open_submission_gate(self):
        return None

    async def start_profile(self, **kwargs):
        return None

    async def stop_profile(self):
        return None

    def ping(self) -> bool:
        return True


class HFReplica(RolloutReplica):
    """A rollout replica served by one :class:`HFRolloutServer` actor."""

    def rollout_worker_use_gpu(self) -> bool:
        return False

    async def launch_servers(self):
        name = server_actor_name(self.replica_rank, self.name_suffix)
        server_cls = ray.remote(HFRolloutServer)
        server = server_cls.options(name=name, num_cpus=1, max_concurrency=self.max_concurrency).remote(
            config=self.config, model_config=self.model_config, replica_rank=self.replica_rank
        )
        await server.ping.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = name

    async def sleep(self):
        return None

    async def wake_up(self):
        return None


class HFServerAdapter(BaseRollout):
    """Lives in verl's actor worker: forwards weight updates to this replica's HF server."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        world = (self.config.tensor_model_parallel_size * self.config.data_parallel_size
                 * self.config.pipeline_model_parallel_size)
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self.rollout_rank = rank % world
        self.is_leader_rank = self.rollout_rank == 0
        self.sleep_level = 1
        self._server = None

    def _server_handle(self):
        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]):
        return None

    async def release(self):
        return None

    async def update_weights(self, weights: Generator[tuple[str, torch.Tensor], None, None],
                             wire_format: str = "named_tensors", **kwargs):
        if wire_format != "named_tensors":
            raise NotImplementedError(f"hf rollout accepts full named tensors only, got {wire_format!r}")
        state = {}
        for name, tensor in weights:
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            state[name] = tensor.detach().to("cpu", copy=True)
        if kwargs.get("peft_config") is not None:
            raise NotImplementedError("LoRA adapters are not supported by the hf rollout; set model.lora.merge=True")
        if not self.is_leader_rank:
            return
        server = self._server_handle()
        t0 = time.time()
        await server.load_weights.remote(state)
        if kwargs.get("global_steps") is not None:
            await server.set_global_steps.remote(kwargs["global_steps"])
        logger.debug("hf rollout weights updated in %.3fs", time.time() - t0)
