"""Logical Ray resources of the CPU runtime, derived from the training world size.

Ray on a CPU host has no GPUs, and verl asks for one logical ``GPU`` per FSDP rank plus a
placement-group bundle of ``max_colocate_count`` (3 in verl 0.9.1's ``ResourcePoolManager``) CPUs
per rank. With a fixed ``num_cpus=8`` two ranks took 6 slots for their bundles, the task runner,
TransferQueue and the reward/agent-loop workers took the rest, and the two HF rollout servers
waited for a CPU forever (the "two ranks hang"). The counts here are logical: they do not
reserve cores, they only let every actor be scheduled.

``config/runtime/cpu.yaml`` uses them as OmegaConf resolvers:
``num_gpus: ${srft_cpu_num_gpus:${trainer.n_gpus_per_node},${trainer.nnodes}}``.
"""

from __future__ import annotations

from omegaconf import OmegaConf

#: CPU slots of one FSDP rank's placement-group bundle (verl's ResourcePoolManager.max_colocate_count).
CPUS_PER_RANK_BUNDLE = 3
#: CPU slots per rank outside its bundle: its HF rollout server (one replica per rank at TP 1).
CPUS_PER_RANK_SERVER = 1
#: Single actors: task runner, TransferQueue controller and storage unit, reward and agent-loop
#: workers (one each in cpu.yaml), plus headroom for verl's helper actors.
CPUS_FIXED = 8


def num_gpus(n_gpus_per_node, nnodes=1) -> int:
    """Logical GPUs: one per FSDP rank."""
    return int(n_gpus_per_node) * int(nnodes)


def num_cpus(n_gpus_per_node, nnodes=1) -> int:
    """Logical CPUs for a single-node Ray started by verl's ``ray.init``."""
    return num_gpus(n_gpus_per_node, nnodes) * (CPUS_PER_RANK_BUNDLE + CPUS_PER_RANK_SERVER) + CPUS_FIXED


def register_resolvers() -> None:
    for name, fn in (("srft_cpu_num_gpus", num_gpus), ("srft_cpu_num_cpus", num_cpus)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
