"""Negative controls of the weight sync (tests/test_vllm_e2e.py): vLLM worker extensions named in
``actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls``; the vLLM worker process imports them from
``tests/`` (put on ``PYTHONPATH`` by the test)."""

from recipe_srft.cpu.vllm_worker import CPUColocateWorkerExtension


class StaleWeightsWorkerExtension(CPUColocateWorkerExtension):
    """Receives every weight sync from the actor and drops it: the engine keeps generating with the weights it
    loaded at start-up."""

    def _update_weights(self, weights, peft_config, base_sync_done):  # verl/workers/rollout/vllm_rollout/utils.py:367
        return None


class StaleThenFailingWorkerExtension(StaleWeightsWorkerExtension):
    """Drops the first ``DROPPED`` syncs (after set-up, after step 1, after step 2), then fails the next one: verl's
    sender is left waiting on its socket (bucketed_weight_transfer.py:164). One launch shows both the stale-engine
    control (step 2's log-probs off) and the bounded failure of the sync after step 3. One call per sync: 1 rank,
    tensor parallel 1."""

    DROPPED = 3

    def update_weights_from_ipc(self, *args, **kwargs):  # verl/workers/rollout/vllm_rollout/utils.py:248
        self._srft_syncs = getattr(self, "_srft_syncs", 0) + 1
        if self._srft_syncs > self.DROPPED:
            raise RuntimeError(f"vllm_sync_control: this receiver fails weight sync {self._srft_syncs}")
        return super().update_weights_from_ipc(*args, **kwargs)


class ServerKilledAtSyncWorkerExtension(CPUColocateWorkerExtension):
    """At the weight sync after step 2 (the third: after set-up, step 1, step 2), SIGKILLs verl's vLLMHttpServer
    actor process and fails the receive, so the trainer is inside that sync with verl's sender waiting on a peer
    that will never answer. Killing from here, not from a thread in the test watching the log, fixes the moment: a
    kill that lands between two of verl's calls to the server instead surfaces as Ray's own ActorDiedError from the
    next call (seen in CI), which does not exercise the liveness watch. Writes the kill's wall-clock time to
    ``$SRFT_TEST_KILL_STAMP``."""

    KILL_AT_SYNC = 3

    def update_weights_from_ipc(self, *args, **kwargs):  # verl/workers/rollout/vllm_rollout/utils.py:248
        import os
        import signal
        import time

        import psutil

        self._srft_syncs = getattr(self, "_srft_syncs", 0) + 1
        if self._srft_syncs < self.KILL_AT_SYNC:
            return super().update_weights_from_ipc(*args, **kwargs)
        servers = [p for p in psutil.process_iter(["cmdline"])
                   if " ".join(p.info["cmdline"] or []).startswith("ray::vLLMHttpServer")]
        if len(servers) != 1:
            raise RuntimeError(f"vllm_sync_control: expected one vLLMHttpServer process, found {len(servers)}")
        with open(os.environ["SRFT_TEST_KILL_STAMP"], "w") as stamp:
            stamp.write(repr(time.time()))
        os.kill(servers[0].pid, signal.SIGKILL)
        raise RuntimeError(f"vllm_sync_control: killed vLLMHttpServer pid {servers[0].pid} at sync {self._srft_syncs}")
