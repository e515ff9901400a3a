"""Sampling back ends behind one small interface.

``Generator.generate(prompts, n, sampling) -> list[list[str]]``: ``n`` completions for each prompt.
A prompt is either a chat list (``[{"role", "content"}, ...]``), rendered with the tokenizer's chat
template and ``add_generation_prompt=True``, or a string, taken as already rendered text. Both
back ends tokenise the rendered text the same way (``add_special_tokens=False``: the chat template
already holds every special token it wants) and decode completions with special tokens skipped,
as verl's reward manager does.

* :class:`VLLMGenerator` (``--backend vllm``; ``auto`` picks it when ``import vllm`` works):
  ``vllm.LLM.generate`` on token ids, ``SamplingParams(n, temperature, top_p, max_tokens, seed)``.
* :class:`HFGenerator` (``--backend hf``): batched ``model.generate`` with left padding; the model's
  own ``generation_config`` sampling defaults (Qwen instruct checkpoints ship ``top_k=20``,
  ``repetition_penalty=1.05``, ...) are dropped so that the only sampling parameters are the ones
  given (``top_k`` disabled, no repetition penalty), like vLLM with explicit ``SamplingParams``.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, Union, runtime_checkable

logger = logging.getLogger(__name__)

Prompt = Union[str, Sequence[dict]]


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
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
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
        self.model = model
        logger.info("HF generator: %s on %s (%s)", model_path, self.device, torch_dtype)

    def generate(self, prompts: list[Prompt], n: int, sampling: SamplingConfig) -> list[list[str]]:
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
        texts = self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]


class VLLMGenerator:
    """vLLM offline engine on pre-tokenised prompts (same rendering as :class:`HFGenerator`)."""

    name = "vllm"

    def __init__(self, model_path: str, seed: int = 0, dtype: str = "auto", tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, gpu_memory_utilization: float = 0.9):
        from transformers import AutoTokenizer
        from vllm import LLM

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        kwargs: dict[str, Any] = dict(model=model_path, seed=seed, dtype=dtype,
                                      tensor_parallel_size=tensor_parallel_size,
                                      gpu_memory_utilization=gpu_memory_utilization)
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        self.llm = LLM(**kwargs)

    def generate(self, prompts: list[Prompt], n: int, sampling: SamplingConfig) -> list[list[str]]:
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
        return [[c.text for c in out.outputs] for out in outputs]


def make_generator(backend: str, model_path: str, seed: int = 0, dtype: str = "auto", device: str | None = None,
                   tensor_parallel_size: int = 1, max_model_len: int | None = None,
                   gpu_memory_utilization: float = 0.9) -> Generator:
    backend = resolve_backend(backend)
    if backend == "vllm":
        return VLLMGenerator(model_path, seed=seed, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                             max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization)
    return HFGenerator(model_path, dtype=dtype, device=device)
