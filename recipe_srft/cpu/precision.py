"""Training and rollout precision of CPU runs: bf16 mixed precision where the host runs bf16 fast, fp32 otherwise.

GPU runs of this recipe train with verl's defaults: FSDP2 keeps fp32 master weights, computes forward and backward
in bf16 (``MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)``, ``verl/workers/engine/fsdp/
transformer_impl.py:455``, under ``torch.autocast(bf16)``, ``:1559-1565``), and vLLM generates in bf16.
``config/runtime/cpu.yaml`` runs fp32 everywhere, which the tests keep (rollout/actor log-probs agree to ~1e-8 there,
so a broken weight sync stands out). The demo and the comparison ask for ``bf16`` when the CPU has native bf16
arithmetic, which oneDNN uses for bf16 matrix products: AMX tiles (``amx_bf16``, Intel Sapphire Rapids and later) or
AVX-512 BF16 (``avx512_bf16``, e.g. AMD Zen 4). A bf16-autocast forward+backward of SmolLM2-135M on 8 x 300 tokens
took 4.3 s against 9.0 s in fp32 on an AMX machine, and 1.7x less than fp32 on this project's AVX-512 BF16 CI-class
machine (AMD EPYC); without either, bf16 is emulated and slower. The same split as on a GPU: reductions, buffers and
master weights stay fp32.
"""

from __future__ import annotations

PRECISIONS = ("auto", "bf16", "fp32")

#: The overrides of a bf16 mixed-precision run on top of ``+runtime=cpu`` (which sets fp32 for all of these).
BF16_OVERRIDES = (
    "actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=bf16",   # compute dtype; master weights fp32
    "actor_rollout_ref.actor.fsdp_config.mixed_precision.reduce_dtype=fp32",  # gradient reductions
    "actor_rollout_ref.actor.fsdp_config.mixed_precision.buffer_dtype=fp32",
    "actor_rollout_ref.actor.fsdp_config.model_dtype=fp32",                   # the parameters the optimizer updates
    "actor_rollout_ref.rollout.dtype=bfloat16",                               # vLLM (the HF server honours it too)
)


#: CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic, and what they are.
NATIVE_BF16_FLAGS = {"amx_bf16": "AMX bf16 tiles", "avx512_bf16": "AVX-512 BF16 instructions"}


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_is_fast(flags: set[str] | None = None) -> tuple[bool, str]:
    """(fast, why): bf16 pays on this CPU when it has native bf16 arithmetic (AMX or AVX-512 BF16)."""
    import torch

    flags = cpu_flags() if flags is None else flags
    try:
        if torch.cpu._is_amx_tile_supported():
            flags = flags | {"amx_bf16"}
    except AttributeError:  # older torch
        pass
    native = [name for flag, name in NATIVE_BF16_FLAGS.items() if flag in flags]
    if native:
        return True, f"{' and '.join(native)}: native bf16 matrix products"
    return False, "no AMX or AVX-512 BF16: bf16 would be emulated, slower than fp32"


def resolve_precision(choice: str, log=print) -> str:
    """``auto`` -> ``bf16`` when :func:`bf16_is_fast`, else ``fp32``; the choice and the reason are printed."""
    if choice not in PRECISIONS:
        raise ValueError(f"precision {choice!r}: expected one of {PRECISIONS}")
    if choice == "auto":
        fast, why = bf16_is_fast()
        choice = "bf16" if fast else "fp32"
    else:
        why = "asked for"
    log(f"precision: {choice} ({why}; {'bf16 compute, fp32 master weights and reductions' if choice == 'bf16' else 'fp32 everywhere'})")
    return choice


def precision_overrides(precision: str) -> list[str]:
    """Hydra overrides for ``precision`` (``bf16`` or ``fp32``) on top of ``+runtime=cpu``."""
    if precision == "bf16":
        return list(BF16_OVERRIDES)
    if precision == "fp32":
        return []
    raise ValueError(f"precision {precision!r}: resolve 'auto' first (resolve_precision)")
