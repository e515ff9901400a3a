"""CPU runtime for verl 0.9.1: a ``cpu`` platform and an ``hf`` rollout.

Infrastructure only: the SRFT algorithm never imports this package. Importing it
registers

* the verl platform ``cpu`` (selected with ``VERL_PLATFORM=cpu``),
* the rollout ``actor_rollout_ref.rollout.name=hf`` (replica + worker-side adapter), and
* under ``VERL_PLATFORM=cpu`` only, the alias that lets verl find the CPU build of vLLM
  (:mod:`recipe_srft.cpu.vllm_shims`), so that ``rollout.name=vllm`` runs verl's own vLLM rollout.

verl imports it in every Ray process through the ``verl.plugins`` entry point of this
package (``pip install -e .``) or through ``VERL_USE_EXTERNAL_MODULES=recipe_srft.cpu``.
All CPU settings (environment and hydra overrides) live in :mod:`recipe_srft.cpu.env`.
"""

import functools
import os

from .vllm_shims import install_vllm_distribution_alias

if os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu":
    # before anything imports verl's vLLM modules (vllm_shims.install_vllm_distribution_alias says why)
    install_vllm_distribution_alias()

from ..tools.quiet import quiet_verl_imports  # noqa: E402

quiet_verl_imports()  # before verl is imported here (SRFT_VERL_WARNINGS=1 shows its import warnings)

from verl.workers.rollout.base import _ROLLOUT_REGISTRY  # noqa: E402
from verl.workers.rollout.replica import RolloutReplicaRegistry

from . import platform  # noqa: E402,F401  (registers the "cpu" platform)
from .resources import register_resolvers  # noqa: E402

register_resolvers()  # ${srft_cpu_num_gpus:...}/${srft_cpu_num_cpus:...} in config/runtime/cpu.yaml


def _load_hf_replica():
    from .hf_rollout import HFReplica

    return HFReplica


RolloutReplicaRegistry.register("hf", _load_hf_replica)
# verl looks worker-side rollout classes up by (name, mode) in this table.
_ROLLOUT_REGISTRY[("hf", "async")] = "recipe_srft.cpu.hf_rollout.HFServerAdapter"


def _dedup_backend(backend):
    """verl builds ``f"cpu:gloo,{device}:{backend}"``; on the CPU that is ``cpu:gloo,cpu:gloo``,
    which torch rejects as a duplicate device type. Keep the first entry per device."""
    if not backend or "," not in backend:
        return backend
    seen, parts = set(), []
    for part in backend.split(","):
        device = part.split(":", 1)[0] if ":" in part else None
        if device in seen:
            continue
        seen.add(device)
        parts.append(part)
    return ",".join(parts)


def _install_gloo_process_group_fix():
    """Only under VERL_PLATFORM=cpu: de-duplicate the backend string given to ``torch.distributed.init_process_group``.

    Both of verl's process-group initialisers (``initialize_global_process_group_ray`` in the Ray workers,
    ``initialize_global_process_group`` under torchrun, e.g. verl's SFT trainer) pass
    ``f"cpu:gloo,{device}:{backend}"``. This is the one place the CPU runtime wraps a function outside its own
    code (the platform API has no hook for the backend string); it only rewrites a string torch would reject, and
    GPU runs never reach it.
    """
    import torch.distributed as dist

    original = dist.init_process_group
    if getattr(original, "_srft_cpu", False):
        return

    @functools.wraps(original)
    def init_process_group(*args, **kwargs):
        if args and isinstance(args[0], str):
            args = (_dedup_backend(args[0]),) + args[1:]
        elif isinstance(kwargs.get("backend"), str):
            kwargs["backend"] = _dedup_backend(kwargs["backend"])
        return original(*args, **kwargs)

    init_process_group._srft_cpu = True
    dist.init_process_group = init_process_group


if os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu":
    _install_gloo_process_group_fix()
    from .verl_shims import compute_logit_statistics_in_fp32

    compute_logit_statistics_in_fp32()  # bf16 runs: entropy and log-probs from fp32 logits, as on a GPU
