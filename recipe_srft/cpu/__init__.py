"""CPU runtime for verl 0.9.1: a ``cpu`` platform and an ``hf`` rollout.

Infrastructure only: the SRFT algorithm never imports this package. Importing it
registers

* the verl platform ``cpu`` (selected with ``VERL_PLATFORM=cpu``), and
* the rollout ``actor_rollout_ref.rollout.name=hf`` (replica + worker-side adapter).

verl imports it in every Ray process through the ``verl.plugins`` entry point of this
package (``pip install -e .``) or through ``VERL_USE_EXTERNAL_MODULES=recipe_srft.cpu``.
All CPU settings (environment and hydra overrides) live in :mod:`recipe_srft.cpu.env`.
"""

import os

from ..tools.quiet import quiet_verl_imports

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
    """Only under VERL_PLATFORM=cpu: de-duplicate the backend string of verl's process-group init.

    This is the one place the CPU runtime wraps a verl function (the platform API has no hook
    for the backend string); GPU runs never reach it.
    """
    import verl.utils.distributed as dist_utils
    import verl.workers.engine_workers as engine_workers

    original = dist_utils.initialize_global_process_group_ray
    if getattr(original, "_srft_cpu", False):
        return

    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        from verl.utils.device import get_device_name, get_nccl_backend

        backend = backend or f"cpu:gloo,{get_device_name()}:{get_nccl_backend()}"
        return original(timeout_second=timeout_second, backend=_dedup_backend(backend))

    initialize_global_process_group_ray._srft_cpu = True
    dist_utils.initialize_global_process_group_ray = initialize_global_process_group_ray
    engine_workers.initialize_global_process_group_ray = initialize_global_process_group_ray


if os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu":
    _install_gloo_process_group_fix()
