"""A workaround for verl 0.9.1 on the CPU: log-probs and entropies from fp32 logits in bf16 runs, as on a GPU.

Infrastructure only, applied only under ``VERL_PLATFORM=cpu`` (by :mod:`recipe_srft.cpu`). Checked by
``tests/test_verl_shims.py``, which fails when verl changes under it.

Why. Without flash-attn the CPU runtime runs verl's padded path (``use_remove_padding=false``), where verl takes the
entropy and the log-probs straight from the model's logits: ``verl_F.entropy_from_logits(logits)``
(``verl/workers/engine/fsdp/transformer_impl.py:1491``) and ``logprobs_from_logits(logits_rmpad, ...)`` (``:1522``,
which falls back to ``logprobs_from_logits_v2``, row-wise ``log_softmax`` in the logits' dtype,
``verl/utils/torch_functional.py:173-210``). Under bf16 mixed precision those logits are bf16, and CPU autocast keeps
softmax, logsumexp and log_softmax in bf16 (CUDA autocast runs them in fp32). On a GPU verl computes both in fp32:
flash-attn's cross entropy for the log-probs, ``entropy_from_logits_with_chunking`` (``.float()``, ``:266``) for the
entropy, which ``run_scripts/_common.sh`` selects. Measured on SmolLM2-135M, the same bf16 logits: token entropy off by
up to 0.25 nats in bf16 against fp32, ``exp(-H)`` (the SFT weight, Eq. 8) off by 2.6%.

What. :func:`compute_logit_statistics_in_fp32` wraps the two functions so that half-precision logits are upcast to fp32
first (the gradient flows through the cast). fp32 logits pass through untouched, so fp32 runs are bit-identical with
or without it. It must run before verl's FSDP engine module is imported (which binds ``logprobs_from_logits`` by
name); the ``verl.plugins`` entry point imports this package at the end of ``import verl``, before any worker module.
"""

from __future__ import annotations

import functools

import torch

_HALF = (torch.bfloat16, torch.float16)


def _upcast_logits(fn):
    if getattr(fn, "_srft_fp32_logits", False):
        return fn

    @functools.wraps(fn)
    def wrapper(logits, *args, **kwargs):
        if isinstance(logits, torch.Tensor) and logits.dtype in _HALF:
            logits = logits.float()
        return fn(logits, *args, **kwargs)

    wrapper._srft_fp32_logits = True
    return wrapper


def compute_logit_statistics_in_fp32() -> None:
    """Idempotent. Wraps ``verl.utils.torch_functional.{entropy_from_logits, logprobs_from_logits}`` (and the name
    the FSDP engine bound, if it was imported already)."""
    import sys

    import verl.utils.torch_functional as verl_F

    verl_F.entropy_from_logits = _upcast_logits(verl_F.entropy_from_logits)
    verl_F.logprobs_from_logits = _upcast_logits(verl_F.logprobs_from_logits)
    engine = sys.modules.get("verl.workers.engine.fsdp.transformer_impl")
    if engine is not None:
        engine.logprobs_from_logits = _upcast_logits(engine.logprobs_from_logits)
