"""PhaseWatchdog and its Ray report, without a Ray cluster: on_timeout and the diagnosis are injected."""

from __future__ import annotations

import threading
import time

import pytest

from recipe_srft.integration.watchdog import PhaseWatchdog, format_ray_diagnosis, ray_diagnosis


@pytest.fixture
def watched():
    fired = []
    event = threading.Event()

    def on_timeout(message):
        fired.append(message)
        event.set()

    dog = PhaseWatchdog(on_timeout=on_timeout, diagnosis=lambda: "fake diagnosis\nsecond line", poll_s=0.02)
    dog.start()
    yield dog, fired, event
    dog.stop()


def test_overrun_phase_fires_with_its_name(watched, capsys):
    dog, fired, event = watched
    with dog.phase("rollout servers", 0.3):
        assert event.wait(3)
    assert len(fired) == 1  # once per phase, not once per poll
    message = fired[0]
    assert message.startswith("SRFT watchdog: phase 'rollout servers' did not finish within 0.3 s")
    assert "SRFT watchdog: fake diagnosis\nSRFT watchdog: second line" in message
    out, err = capsys.readouterr()
    assert message in out and message in err


def test_phase_finished_in_time_does_not_fire(watched):
    dog, fired, _ = watched
    for _ in range(3):  # sequential phases, each within its own deadline
        with dog.phase("step", 0.3):
            time.sleep(0.1)
    time.sleep(0.4)  # past every deadline, with no phase open
    assert fired == [] and dog.current() == []


def test_nested_phases_keep_their_own_deadlines(watched):
    dog, fired, event = watched
    with dog.phase("setup", 0.3):
        with dog.phase("worker groups", 10):
            assert dog.current() == ["setup", "worker groups"]
            assert event.wait(3)
    assert len(fired) == 1
    assert fired[0].startswith("SRFT watchdog: phase 'setup' did not finish within 0.3 s")

    event.clear()
    with dog.phase("training", 10):
        with dog.phase("step 1", 0.3):
            assert event.wait(3)
    assert fired[1].startswith("SRFT watchdog: phase 'step 1' did not finish within 0.3 s")
    assert "SRFT watchdog: inside: 'training'" in fired[1]


def test_enter_done_and_no_deadline(watched):
    dog, fired, _ = watched
    token = dog.enter("unbounded", None)
    inner = dog.enter("quick", 5)
    dog.done()  # the innermost
    assert dog.current() == ["unbounded"]
    time.sleep(0.2)
    dog.done(token)
    assert fired == [] and dog.current() == []
    dog.done(inner)  # already closed: ignored


def test_stop_ends_the_thread():
    dog = PhaseWatchdog(on_timeout=lambda m: None, diagnosis=lambda: "", poll_s=0.02).start()
    assert dog.running
    dog.stop()
    assert not dog.running
    assert not [t for t in threading.enumerate() if t.name == "srft-watchdog" and t.is_alive()]


def test_broken_diagnosis_still_reports(capsys):
    fired = []

    def broken():
        raise RuntimeError("GCS unreachable")

    dog = PhaseWatchdog(on_timeout=fired.append, diagnosis=broken, poll_s=0.02).start()
    try:
        with dog.phase("setup", 0.1):
            time.sleep(0.5)
    finally:
        dog.stop()
    assert "diagnosis failed: RuntimeError('GCS unreachable')" in fired[0]


def test_ray_diagnosis_without_ray():
    import ray

    assert not ray.is_initialized()  # this test process never starts Ray
    assert ray_diagnosis() == "Ray not initialised in this process"


def test_format_ray_diagnosis_names_what_waits():
    # Shapes as Ray 2.60 returns them: placement_group_table() and the GCS actor table (see _waiting_actors)
    text = format_ray_diagnosis(
        cluster={"CPU": 8.0, "GPU": 2.0, "memory": 1e9, "node:127.0.0.1": 1.0},
        available={"CPU": 1.0, "GPU": 0.0},
        placement_groups={
            "aa": {"name": "global_pool_verl_group_2:0", "state": "PENDING", "strategy": "STRICT_PACK",
                   "bundles": {0: {"CPU": 3.0, "GPU": 1.0}, 1: {"CPU": 3.0, "GPU": 1.0}}},
            "bb": {"name": "done", "state": "CREATED", "strategy": "PACK", "bundles": {0: {"CPU": 1.0}}},
        },
        actors=[{"class_name": "HFRolloutServer", "name": "hf_rollout_server_1", "state": "PENDING_CREATION",
                 "required_resources": {"CPU": 1.0}, "placement_group_id": ""}],
    )
    lines = text.splitlines()
    assert lines[0] == "cluster resources: {CPU: 8, GPU: 2}"
    assert lines[1] == "available resources: {CPU: 1, GPU: 0}"
    assert "placement groups: 2, not placed: 1" in lines
    assert ("  PENDING global_pool_verl_group_2:0 (STRICT_PACK): 2 bundles {CPU: 3, GPU: 1}, {CPU: 3, GPU: 1}"
            in lines)
    assert "  PENDING_CREATION HFRolloutServer hf_rollout_server_1: asks {CPU: 1}" in lines
    assert lines[-1].startswith("hint: verl places each FSDP rank")


def test_format_ray_diagnosis_survives_failed_queries():
    text = format_ray_diagnosis(cluster={"CPU": 4.0}, available=RuntimeError("x"),
                                placement_groups=RuntimeError("y"), actors=RuntimeError("z"))
    assert "available resources: unavailable (RuntimeError('x'))" in text
    assert "placement groups: unavailable (RuntimeError('y'))" in text
    assert "actors not alive: unavailable (RuntimeError('z'))" in text


def test_default_on_timeout_ends_the_process():
    # What the trainer gets: the report on both streams, then exit code 1 (the Ray driver sees the actor die).
    import subprocess
    import sys

    code = ("import time; from recipe_srft.integration.watchdog import PhaseWatchdog\n"
            "dog = PhaseWatchdog(poll_s=0.02).start()\n"
            "with dog.phase('setup', 0.2):\n    time.sleep(30)\n")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert time.monotonic() - start < 20
    for stream in (proc.stdout, proc.stderr):
        assert "SRFT watchdog: phase 'setup' did not finish within 0.2 s" in stream
        assert "SRFT watchdog: Ray not initialised in this process" in stream


def test_a_watched_actor_that_dies_fails_the_open_phase():
    """Liveness: while a phase is open, a watched actor reported dead ends the run naming the phase and the actor;
    nothing fires while every watched actor is alive, while no phase is open, or for actors not watched."""
    fired, event, queries = [], threading.Event(), []
    dead_now: set[str] = set()

    def dead_actors(watched):
        queries.append(dict(watched))
        return [f"Ray actor {watched[a]} died (killed)" for a in sorted(dead_now) if a in watched]

    dog = PhaseWatchdog(on_timeout=lambda m: (fired.append(m), event.set()), diagnosis=lambda: "",
                        poll_s=0.01, dead_actors=dead_actors, liveness_s=0.05)
    dog.start()
    try:
        dead_now.add("x9")                                  # not watched: ignored
        with dog.phase("set-up", None):
            time.sleep(0.2)
        assert queries == [] and fired == []                # nothing watched yet: no query at all
        dog.watch({"a1": "vLLMHttpServer server_0", "b2": "WorkerDict"})
        time.sleep(0.2)
        assert queries == [] and fired == []                # no phase open: no query
        with dog.phase("training step 1", None):
            time.sleep(0.3)
        assert queries and fired == []                      # all watched alive
        with dog.phase("training step 2", None):
            with dog.phase("generation", None):
                dead_now.add("a1")
                assert event.wait(3)
                time.sleep(0.2)
    finally:
        dog.stop()
    assert len(fired) == 1                                  # reported once
    assert fired[0] == ("SRFT watchdog: phase 'generation' cannot finish: Ray actor vLLMHttpServer server_0 died "
                        "(killed)\nSRFT watchdog: inside: 'training step 2'")


def test_a_failing_liveness_query_is_not_a_death():
    fired = []

    def broken(_):
        raise RuntimeError("GCS unavailable")

    dog = PhaseWatchdog(on_timeout=fired.append, diagnosis=lambda: "", poll_s=0.01, dead_actors=broken,
                        liveness_s=0.02)
    dog.watch({"a1": "vLLMHttpServer"})
    dog.start()
    try:
        with dog.phase("training step 1", None):
            time.sleep(0.2)
    finally:
        dog.stop()
    assert fired == []
