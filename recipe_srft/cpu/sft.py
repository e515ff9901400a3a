"""verl's own SFT trainer on the CPU runtime: ``torchrun -m verl.trainer.sft_trainer`` over gloo.

    python -m recipe_srft.cpu.sft --nproc 2 --log-dir runs/sft [verl SFT overrides ...]

The SFT baseline (``PRESET=sft``) and stage 1 of SFT->RL (``PRESET=sft_rl``) run verl 0.9.1's engine-based SFT
trainer, unchanged. On a CPU-only host it needs what the RL runs get from ``+runtime=cpu``: the ``cpu`` platform
(``VERL_PLATFORM=cpu`` in the environment, :data:`recipe_srft.cpu.env.CPU_ENV`; verl imports this package through
its ``verl.plugins`` entry point in every torchrun rank) and the overrides below (:data:`CPU_SFT_OVERRIDES`, their
one home). Each rank is one data-parallel FSDP2 rank; the rendezvous binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

#: What a CPU-only host needs in verl's SFT config (``sft_trainer_engine.yaml``); user overrides come after and win.
CPU_SFT_OVERRIDES = [
    "trainer.device=cpu",
    # flash-attn does not exist on the CPU, and without it packed sequences would attend across each other:
    # verl's engine pads the micro-batch instead (model.use_remove_padding=false)
    "model.use_remove_padding=false",
    "+model.override_config.attn_implementation=eager",
    "engine.strategy=fsdp2",  # FSDP1's sync_module_states needs a GPU
    "engine.use_torch_compile=false",
    # fp32 end to end, as the RL runs on the CPU (verl's default mixed precision computes in bf16)
    "engine.model_dtype=fp32",
    "engine.dtype=float32",
    "+engine.mixed_precision={param_dtype:fp32,reduce_dtype:fp32,buffer_dtype:fp32}",
    "data.num_workers=0",
    "trainer.logger=[console]",
]

_STEP_LINE = re.compile(r"step:(\d+) - ")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_sft_overrides(nproc: int) -> list[str]:
    """:data:`CPU_SFT_OVERRIDES` for ``nproc`` ranks on this host: what to put before the run's own overrides,
    also when composing its config (``recipe_srft.integration.sft_stage``)."""
    return [*CPU_SFT_OVERRIDES, "trainer.nnodes=1", f"trainer.n_gpus_per_node={nproc}"]


def sft_command(overrides: list[str], nproc: int, python: str = sys.executable) -> list[str]:
    """The torchrun command of verl's SFT trainer with ``nproc`` CPU ranks; ``overrides`` start with
    :func:`cpu_sft_overrides` (the same list then composes the run's config elsewhere)."""
    if list(overrides[:len(CPU_SFT_OVERRIDES)]) != CPU_SFT_OVERRIDES:
        raise ValueError("the overrides of a CPU SFT run must start with cpu_sft_overrides(nproc)")
    return [python, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={nproc}",
            "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_free_port()}",
            "-m", "verl.trainer.sft_trainer", *overrides]


def last_step(log: Path) -> Optional[int]:
    """The last ``step:N`` verl's SFT trainer printed to ``log`` (None before the first step)."""
    if not log.exists():
        return None
    steps = _STEP_LINE.findall(log.read_text(errors="replace"))
    return int(steps[-1]) if steps else None


def run_sft(overrides: list[str], log_dir, *, nproc: int = 2, timeout: float = 1800,
            python: str = sys.executable) -> subprocess.CompletedProcess:
    """Runs verl's SFT trainer on the CPU, output in ``log_dir/sft.log``; raises ``TimeoutError`` naming the phase.

    The wait is bounded: after ``timeout`` seconds the ranks are killed and the error says whether the trainer
    hung before its first step (start-up: rendezvous, model or data loading) or after step N.
    """
    from .env import apply_cpu_env

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "sft.log"
    cmd = sft_command(overrides, nproc, python)
    env = apply_cpu_env(dict(os.environ))
    env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            import signal

            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            step = last_step(log)
            phase = ("start-up (rendezvous, model or data loading; no step finished)" if step is None
                     else f"training after step {step}")
            raise TimeoutError(f"verl's SFT trainer did not finish within {timeout:.0f} s: it hung in {phase}; "
                               f"log: {log}") from None
    return subprocess.CompletedProcess(cmd, rc)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", type=int, default=2, help="data-parallel CPU ranks")
    p.add_argument("--log-dir", default="runs/sft")
    p.add_argument("--timeout", type=float, default=3600)
    args, overrides = p.parse_known_args(argv)
    t0 = time.time()
    res = run_sft(cpu_sft_overrides(args.nproc) + overrides, args.log_dir, nproc=args.nproc, timeout=args.timeout)
    print(f"verl SFT trainer: exit {res.returncode} after {time.time() - t0:.0f} s, last step "
          f"{last_step(Path(args.log_dir) / 'sft.log')}; log {Path(args.log_dir) / 'sft.log'}")
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
