"""verl's colocated vLLM worker extension, plus the CPU weight-retention shim.

``config/runtime/cpu.yaml`` names this class in ``actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls``;
verl passes ``engine_kwargs`` after its own ``worker_extension_cls`` (``verl/workers/rollout/vllm_rollout/
vllm_async_server.py:330,349``), so vLLM's CPU worker inherits this class instead of verl's
``vLLMColocateWorkerExtension`` -- everything verl's extension does (weight sync over shared memory + ZMQ,
logit masking, LoRA) is inherited unchanged. The one addition runs in the vLLM worker process before the model
loads: :func:`recipe_srft.cpu.vllm_shims.keep_cpu_linear_weights`.

Only GPU-free runs name this class; ``+runtime=cpu`` is the only config that does.
"""

from __future__ import annotations

from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension

from .vllm_shims import keep_cpu_linear_weights


class CPUColocateWorkerExtension(vLLMColocateWorkerExtension):
    """verl's ``vLLMColocateWorkerExtension`` whose CPU linear layers keep their weight for the next sync."""

    def __new__(cls, **kwargs):
        keep_cpu_linear_weights()
        return super().__new__(cls, **kwargs)
