"""run_trainer's deadline: a hung or silent trainer is killed with its process group and the error says
which phase did not finish. A fake entry module stands in for the trainer (no Ray)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from recipe_srft.cpu import smoke
from recipe_srft.cpu.smoke import PhaseTracker, TrainerTimeout, run_trainer

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def ray_stops(monkeypatch):
    calls = []
    monkeypatch.setattr(smoke, "_ray_stop", lambda: calls.append(1))  # unit tests never touch Ray
    return calls


def run_fake(tmp_path, mode, timeout, **env):
    env = {"PYTHONPATH": str(FIXTURES), "FAKE_TRAINER_MODE": mode,
           "FAKE_TRAINER_PIDFILE": str(tmp_path / "pids"), **env}
    return run_trainer([], tmp_path / "out", entry="fake_trainer", timeout=timeout, echo=False, env=env)


def group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


def wait_gone(pgid: int, seconds: float = 5.0) -> list[int]:
    end = time.monotonic() + seconds
    while (alive := group_alive(pgid)) and time.monotonic() < end:
        time.sleep(0.1)
    return alive


def test_fast_run_returns_completed_process(tmp_path, ray_stops):
    result = run_fake(tmp_path, "fast", timeout=60)
    assert result.returncode == 0
    log = (tmp_path / "out" / "train.log").read_text()
    assert "step:2 - actor/loss:0.4" in log and log == result.stdout
    assert not ray_stops


def test_hung_trainer_is_killed_and_named(tmp_path, ray_stops):
    start = time.monotonic()
    with pytest.raises(TrainerTimeout) as info:
        run_fake(tmp_path, "hang", timeout=3)
    assert time.monotonic() - start < 3 + 10
    message = str(info.value)
    assert "within 3 s" in message
    assert "last phase reached: datasets loaded; did not finish: FSDP worker group placed" in message
    assert "SRFT watchdog: phase 'setup' did not finish within 1 s" in message  # quoted verbatim
    assert str(tmp_path / "out" / "train.log") in message
    assert "(TaskRunner pid=1) dataset len: 16" in message  # the log's tail
    trainer_pid, grandchild_pid = map(int, (tmp_path / "pids").read_text().split())
    assert not wait_gone(trainer_pid), "the trainer's process group survived"
    assert grandchild_pid not in group_alive(trainer_pid)
    assert not ray_stops  # the log never showed ray.init


def test_ray_stop_runs_once_ray_was_started(tmp_path, ray_stops):
    with pytest.raises(TrainerTimeout, match="last phase reached: datasets loaded"):
        run_fake(tmp_path, "hang", timeout=3, FAKE_TRAINER_RAY="1")
    assert ray_stops == [1]


def test_silent_trainer_times_out(tmp_path, ray_stops):
    start = time.monotonic()
    with pytest.raises(TrainerTimeout) as info:
        run_fake(tmp_path, "silent", timeout=2)
    assert time.monotonic() - start < 2 + 10
    message = str(info.value)
    assert "last phase reached: none (no phase marker printed yet); did not finish: ray.init called" in message
    assert "(the trainer printed nothing)" in message
    assert (tmp_path / "out" / "train.log").read_text() == ""


def test_tracker_follows_verl_console_lines():
    tracker = PhaseTracker()
    ray_prefix = "\x1b[36m(TaskRunnerV1 pid=5587)\x1b[0m "
    for line in ("ray init kwargs: {'num_cpus': 16}",
                 "2026-12-01 21:40:38,644\tINFO worker.py:2038 -- Started a local Ray instance.",
                 ray_prefix + "INFO:2026-12-01 21:41:06,444:actor and ref model engine initialized",
                 ray_prefix + "INFO:2026-12-01 21:41:06,494:reward loop manager initialized"):
        tracker.feed(line + "\n")
    assert tracker.ray_started
    assert (tracker.reached(), tracker.pending()) == ("reward workers up", "rollout servers up")
    tracker.feed(ray_prefix + "dataset len: 8\n")  # an earlier phase's marker does not move it back
    assert tracker.reached() == "reward workers up"
    tracker.feed(ray_prefix + "saved global_step:3 - not a console step line\n")
    assert tracker.step is None
    tracker.feed(ray_prefix + "step:3 - global_seqlen/min:652.0 - timing_s/step:np.float64(1.5)\n")
    assert (tracker.reached(), tracker.pending()) == ("step 3 finished", "step 4")


def test_phase_markers_are_in_the_installed_sources():
    # The table is only as good as its markers: each must still be printed by verl / Ray / this recipe.
    import ray
    import verl

    files = [*Path(verl.__file__).parent.rglob("*.py"), *(Path(ray.__file__).parent / "_private").rglob("*.py"),
             Path(smoke.__file__).resolve().parents[1] / "integration" / "trainer.py"]  # not smoke.py: it holds the table
    sources = "".join(p.read_text(errors="ignore") for p in files)
    for pattern, _ in smoke.PHASES:
        for marker in pattern.split("|"):
            assert marker in sources, marker
    assert 'f"step:{step}"' in sources


def test_kill_when_preempts_the_group_after_the_patterns(tmp_path, ray_stops):
    """kill_when: once step 2's metrics and step 3's start were printed, the whole group gets SIGKILL (a preempted
    node): returncode -9, the grandchild is gone, Ray is stopped, the /dev/shm entry the run left is swept."""
    start = time.monotonic()
    result = run_trainer([], tmp_path / "out", entry="fake_trainer", timeout=60, echo=False,
                         kill_when=smoke.step_begun(2, 3),
                         env={"PYTHONPATH": str(FIXTURES), "FAKE_TRAINER_MODE": "steps", "FAKE_TRAINER_RAY": "1",
                              "FAKE_TRAINER_PIDFILE": str(tmp_path / "pids")})
    assert time.monotonic() - start < 30  # not the 600 s "step 3" nor the 60 s deadline
    assert result.returncode == -9
    assert result.killed_at.startswith("Training Progress:  67%") and "2/3" in result.killed_at
    log = (tmp_path / "out" / "train.log").read_text()
    assert "step:2 - actor/loss:0.4" in log and "step:3" not in log
    trainer_pid, grandchild_pid, shm = (tmp_path / "pids").read_text().split()
    assert not wait_gone(int(trainer_pid)), "the trainer's process group survived"
    assert int(grandchild_pid) not in group_alive(int(trainer_pid))
    assert ray_stops == [1]
    assert not Path(shm).exists(), "the killed run's /dev/shm entry was not swept"


@pytest.mark.parametrize("patterns", [smoke.step_begun(3, 3),  # never printed
                                      (smoke.step_begun(2, 3)[0], r"never printed")])  # one of two only
def test_kill_when_needs_every_pattern(tmp_path, ray_stops, patterns):
    """Negative control: a run whose output does not match every pattern ends on its own (fast: exit 0)."""
    result = run_trainer([], tmp_path / "out", entry="fake_trainer", timeout=60, echo=False, kill_when=patterns,
                         env={"PYTHONPATH": str(FIXTURES), "FAKE_TRAINER_MODE": "fast"})
    assert result.returncode == 0 and result.killed_at is None
    assert not ray_stops


def test_step_begun_matches_verl_console_lines():
    import re

    step_line, progress = map(re.compile, smoke.step_begun(2, 3))
    ray_prefix = "\x1b[36m(TaskRunnerV1 pid=5587)\x1b[0m "
    assert step_line.search(ray_prefix + "step:2 - global_seqlen/min:652.0 - timing_s/step:1.5")
    assert not step_line.search(ray_prefix + "step:12 - global_seqlen/min:652.0")
    assert not step_line.search(ray_prefix + "global_step:2 - x")
    assert progress.search("Training Progress:  67%|██████▋   | 2/3 [00:15<00:07,  7.15s/it]")
    assert not progress.search("Training Progress:  33%|███▎      | 1/3 [00:05<00:10,  5.07s/it]")
    assert not progress.search("Training Progress:  10%|█         | 2/20 [00:05<00:10,  5.07s/it]")
    # the progress bar is verl's: its description and the update after the step's metrics are logged
    import verl.trainer.ppo.v1.trainer_base as base

    source = Path(base.__file__).read_text()
    assert 'desc="Training Progress"' in source
    logged = source.index("self.logger.log(data=metrics, step=self.global_steps)")
    assert logged < source.index("progress_bar.update(1)")
