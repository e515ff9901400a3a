"""recipe_srft/cpu/verl_shims.py: in CPU runs verl takes entropies and log-probs from fp32 logits, as on a GPU.
Fails when verl changes under the shim (the padded path no longer calls these functions, or computes in fp32 itself)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch


def _engine_source() -> str:
    verl_dir = importlib.util.find_spec("verl").submodule_search_locations[0]
    return Path(verl_dir, "workers", "engine", "fsdp", "transformer_impl.py").read_text()


def _logits(seed=0):
    torch.manual_seed(seed)
    return (4 * torch.randn(3, 7, 321)).to(torch.bfloat16).requires_grad_(True)


def test_upstream_padded_path_computes_in_the_logits_dtype():
    """The reason for the shim: verl's padded path calls these two on the logits as they are, and they stay in bf16."""
    import verl.utils.torch_functional as verl_F

    src = _engine_source()
    assert "entropy = verl_F.entropy_from_logits(logits)" in src
    assert "log_probs = logprobs_from_logits(logits=logits_rmpad, labels=input_ids_rmpad_rolled)" in src
    assert "from verl.utils.torch_functional import logprobs_from_logits" in src
    original_entropy = getattr(verl_F.entropy_from_logits, "__wrapped__", verl_F.entropy_from_logits)
    original_logprobs = getattr(verl_F.logprobs_from_logits, "__wrapped__", verl_F.logprobs_from_logits)
    logits = _logits()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert original_entropy(logits).dtype == torch.bfloat16
    labels = torch.randint(0, 321, (3, 7))
    assert original_logprobs(logits, labels).dtype == torch.bfloat16


def test_shim_gives_fp32_values_and_gradients_and_leaves_fp32_untouched():
    from recipe_srft.cpu.verl_shims import _upcast_logits

    import verl.utils.torch_functional as verl_F

    entropy = _upcast_logits(getattr(verl_F.entropy_from_logits, "__wrapped__", verl_F.entropy_from_logits))
    logprobs = _upcast_logits(getattr(verl_F.logprobs_from_logits, "__wrapped__", verl_F.logprobs_from_logits))
    logits, labels = _logits(), torch.randint(0, 321, (3, 7))
    ref = logits.detach().double()
    naive_h = torch.logsumexp(ref, -1) - (torch.softmax(ref, -1) * ref).sum(-1)     # independent, float64
    naive_lp = torch.log_softmax(ref, -1).gather(-1, labels[..., None]).squeeze(-1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h, lp = entropy(logits), logprobs(logits, labels)
    assert h.dtype == lp.dtype == torch.float32
    torch.testing.assert_close(h.double(), naive_h, rtol=0, atol=1e-4)
    torch.testing.assert_close(lp.double(), naive_lp, rtol=0, atol=1e-4)
    (h.sum() + lp.sum()).backward()
    x = ref.clone().requires_grad_(True)
    (torch.logsumexp(x, -1) - (torch.softmax(x, -1) * x).sum(-1) +
     torch.log_softmax(x, -1).gather(-1, labels[..., None]).squeeze(-1)).sum().backward()
    torch.testing.assert_close(logits.grad.double(), x.grad, rtol=0, atol=2e-2)  # the grad itself is bf16
    # fp32 logits: the very same function result (fp32 runs are unchanged by the shim)
    f32 = torch.randn(2, 5, 50)
    original = getattr(verl_F.entropy_from_logits, "__wrapped__", verl_F.entropy_from_logits)
    assert torch.equal(entropy(f32), original(f32))


def test_cpu_plugin_installs_it_before_the_engine_binds_the_name(plugin_probe):
    """A fresh process that imports verl (and with it the package's verl.plugins entry point) under
    VERL_PLATFORM=cpu has both functions wrapped, including the name the FSDP engine bound; without it, neither."""
    assert ["fp32_logits", "True", "True"] in plugin_probe["cpu"]
    assert ["fp32_logits", "False", "False"] in plugin_probe["none"]
