"""A verl platform for machines without an accelerator.

verl 0.9.1 ships platforms for CUDA, NPU and ROCm only; on a CPU-only host it logs
"No supported accelerator detected" and falls back to ``nvidia`` (device ``cuda``,
backend ``nccl``), which fails as soon as a worker touches a tensor. This platform
is selected with ``VERL_PLATFORM=cpu`` (see :mod:`recipe_srft.cpu.env`) and makes
``get_device_name() == "cpu"``, ``get_nccl_backend() == "gloo"`` and turns every
memory/synchronisation call into a no-op, so verl's FSDP2 engine trains in fp32 over
gloo on the CPU.
"""

from __future__ import annotations

import os
import types
from contextlib import contextmanager
from typing import Any, Optional

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry


def _noop(*args, **kwargs):
    return None


def _zero(*args, **kwargs):
    return 0


class _CPUDeviceModule(types.ModuleType):
    """Stands in for ``torch.cuda`` wherever verl calls ``get_torch_device().<fn>``.

    Memory statistics are reported as 0 and synchronisation/cache calls do nothing:
    on the CPU there is no separate device memory to manage. Unknown attributes fall
    back to ``torch.cpu`` so that e.g. ``torch.cpu.Stream`` keeps working.
    """

    def __init__(self):
        super().__init__("recipe_srft_cpu_device")
        for name in ("synchronize", "empty_cache", "reset_peak_memory_stats", "ipc_collect",
                     "set_device", "manual_seed", "manual_seed_all", "reset_max_memory_allocated"):
            setattr(self, name, _noop)
        for name in ("memory_allocated", "memory_reserved", "max_memory_allocated",
                     "max_memory_reserved", "current_device"):
            setattr(self, name, _zero)
        self.device_count = lambda: 1
        self.is_available = lambda: True
        self.mem_get_info = lambda *a, **k: (0, 0)
        self.memory_stats = lambda *a, **k: {}
        self.get_device_name = lambda *a, **k: "cpu"
        self.get_rng_state = lambda *a, **k: torch.get_rng_state()
        self.set_rng_state = lambda state, *a, **k: torch.set_rng_state(state)

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cpu, name)


@PlatformRegistry.register(platform="cpu")
class PlatformCPU(PlatformBase):
    """verl platform for CPU-only hosts (device ``cpu``, backend ``gloo``)."""

    _device_module = _CPUDeviceModule()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return self._device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check=False) -> bool:
        # Never auto-detected: a GPU host must keep verl's own platform. The CPU
        # runtime is switched on explicitly with VERL_PLATFORM=cpu.
        return os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu"

    def current_device(self):
        # A torch.device, not an int: an int means "accelerator 0" to torch and FSDP.
        return torch.device("cpu")

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: Optional[int] = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0):
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray sets this for its logical "GPU" resource; harmless on a CPU host.
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        # Workers ask Ray for logical "GPU"s; recipe_srft.cpu.env starts Ray with
        # num_gpus set to the number of CPU training workers.
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None
