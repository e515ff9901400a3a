"""Process environment of the CPU runtime (the hydra half lives in ``config/runtime/cpu.yaml``).

``CPU_ENV`` must be in the environment of the process that starts Ray (Ray's local
workers inherit it; the yaml also passes it through ``runtime_env`` for multi-node).

    eval "$(python -m recipe_srft.cpu.env)"      # export CPU_ENV in a shell
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

#: verl platform "cpu" (recipe_srft.cpu.platform); FSDP engine lookup under the "cuda" key
#: (verl registers engines for cuda/npu only; the engine itself asks the platform for its device).
CPU_ENV = {
    "VERL_PLATFORM": "cpu",
    "VERL_ENGINE_DEVICE": "cuda",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_DEDUP_LOGS": "0",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}

#: Directory holding the recipe's hydra configs (``srft_trainer.yaml``, ``runtime/cpu.yaml``).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def apply_cpu_env(environ: dict | None = None) -> dict:
    """Sets CPU_ENV in ``environ`` (default ``os.environ``) and returns it, with verl's optional-engine import
    warnings filtered (``recipe_srft.tools.quiet``; ``SRFT_VERL_WARNINGS=1`` keeps them)."""
    from ..tools.quiet import quiet_verl_imports

    environ = os.environ if environ is None else environ
    environ.update(CPU_ENV)
    # ray.init() without an address joins the cluster named in /tmp/ray/ray_current_cluster (ray/_private/services.py:
    # 413-440), written by `ray start` and by Ray's cluster_utils, and left behind when either is killed: the CPU run
    # then fails ("When connecting to an existing cluster, num_cpus and num_gpus must not be provided"). The CPU
    # launchers start their own cluster; joining one is explicit (+ray_kwargs.ray_init.address=HOST:PORT, which Ray
    # takes over this variable). A RAY_ADDRESS of the caller's own is kept.
    environ.setdefault("RAY_ADDRESS", "local")
    # TransferQueue asks for 8 threads and warns on every put/get when the host has fewer cores
    environ.setdefault("TQ_NUM_THREADS", str(max(1, min(8, _physical_cores()))))
    quiet_verl_imports(environ)
    return environ


def _physical_cores() -> int:
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


def main() -> None:
    for key, value in CPU_ENV.items():
        print(f"export {key}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
