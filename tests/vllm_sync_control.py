"""Negative control of the weight sync (tests/test_vllm_e2e.py): a vLLM worker extension that receives every
weight sync from the actor and drops it, so the engine keeps generating with the weights it loaded at start-up.
Named in ``actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls``; the vLLM worker process imports it
from ``tests/`` (put on ``PYTHONPATH`` by the test)."""

from recipe_srft.cpu.vllm_worker import CPUColocateWorkerExtension


class StaleWeightsWorkerExtension(CPUColocateWorkerExtension):
    def _update_weights(self, weights, peft_config, base_sync_done):  # verl/workers/rollout/vllm_rollout/utils.py:367
        return None


class FailingSyncWorkerExtension(CPUColocateWorkerExtension):
    """A receiver that fails at the first weight sync: verl's sender is left waiting on its socket."""

    def update_weights_from_ipc(self, *args, **kwargs):  # verl/workers/rollout/vllm_rollout/utils.py:248
        raise RuntimeError("vllm_sync_control: this receiver fails every weight sync")
