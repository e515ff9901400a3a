"""Soak benchmark: a long SRFT run on the tiny model through verl's real trainer (CPU runtime), watched for leaks.

    flock /tmp/srft_ray.lock .venv/bin/python bench/soak.py [--steps 200] [--window 25] [--save-freq 25] [--keep 2]
        [--ranks 1] [--rollout auto|vllm|hf] [--interval 2] [--out runs/soak] [-- extra hydra overrides]

One fresh run (``trainer.resume_mode=disable``: nothing is resumed), ``--steps`` steps of 4 prompts x (4 rollouts +
1 demonstration), validation every 50 steps, a checkpoint every ``--save-freq`` steps of which verl keeps ``--keep``
(``trainer.max_actor_ckpt_to_keep``). A sampler thread reads ``/proc`` every ``--interval`` s while the trainer runs
and follows the steps in its log. Per window of ``--window`` steps it reports the peak RSS of the driver
(``python -m recipe_srft.main_srft``) and of each Ray process by name (``ray::TaskRunnerV1``, ``ray::WorkerDict``,
the rollout server, the agent-loop and reward workers, raylet, gcs_server, ...; the trainer's process group plus
every ``ray::`` process), the open file descriptors of those processes, ``/dev/shm`` in use, the checkpoint folder
and Ray's session folder (its logs) at the window's end. Then the least-squares slope of each series per 100
steps, the first window (warm-up: imports, first allocations) left out.

Writes ``OUT/soak.json`` (every window, every process) and ``OUT/soak.md`` (the table and the slopes, as pasted
into docs/results.md). It is a benchmark, not a test: run it alone (it starts a Ray cluster: hold the lock).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import threading
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recipe_srft.cpu.smoke import STEP_RE, prepare_assets, resolve_rollout_engine, run_trainer, smoke_overrides  # noqa: E402
from recipe_srft.experiments.smoke_data import write_smoke_data  # noqa: E402

MB = 1024 * 1024
#: columns of the table: (label, process names summed); the rest of the processes go to "other"
COLUMNS = (
    ("driver", ("driver",)),
    ("TaskRunner", ("ray::TaskRunnerV1", "ray::TaskRunner")),
    ("actor (WorkerDict)", ("ray::WorkerDict",)),
    ("rollout server", ("ray::HFRolloutServer", "ray::vLLMHttpServer", "ray::vLLMHttpServerForPartial")),
    ("agent loop", ("ray::AgentLoopWorkerTQ", "ray::AgentLoopWorker")),
    ("reward", ("ray::RewardLoopWorker", "ray::RewardLoopWorkerTQ")),
    ("raylet + gcs", ("raylet", "gcs_server")),
)


# ---------------------------------------------------------------------------------------------- /proc
def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, ValueError):
        return ""


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, pgrp) from /proc/PID/stat."""
    text = _read(Path(f"/proc/{pid}/stat"))
    if not text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[2])


def _cmdline(pid: int) -> list[str]:
    return [a for a in _read(Path(f"/proc/{pid}/cmdline")).split("\0") if a]


def _rss_mb(pid: int) -> float:
    m = re.search(r"^VmRSS:\s+(\d+) kB", _read(Path(f"/proc/{pid}/status")), re.M)
    return int(m.group(1)) / 1024 if m else 0.0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def process_name(pid: int, driver: int) -> str | None:
    """The table's name of a process (None: not one of the run's)."""
    if pid == driver:
        return "driver"
    argv = _cmdline(pid)
    if not argv:
        return None
    head = argv[0].split()[0]  # Ray sets the title "ray::Name" (sometimes "ray::Name.method")
    if head.startswith("ray::"):
        return head.split(".")[0]
    base = os.path.basename(head)
    if base.startswith("python"):
        script = next((a for a in argv[1:] if not a.startswith("-")), "")
        if "-m" in argv[:-1]:
            script = argv[argv.index("-m") + 1]
        elif "-c" in argv:
            script = "python -c"
        return os.path.basename(script) or base
    return base


def run_processes(driver: int) -> dict[int, str]:
    """pid -> name: the driver's process group (it leads its own session) and every Ray process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        st = _stat(pid)
        if st is None:
            continue
        in_group = st[1] == driver
        name = process_name(pid, driver) if in_group or pid == driver else None
        if name is None:  # Ray's own processes, in the group or not (one cluster at a time: the lock)
            argv = _cmdline(pid)
            if argv and (argv[0].startswith("ray::") or any("/site-packages/ray/" in a for a in argv[:3])):
                name = process_name(pid, driver)
        if name:
            out[pid] = name
    return out


def find_driver(parent: int, module: str = "recipe_srft.main_srft") -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st and st[0] == parent and module in _cmdline(int(entry.name)):
                return int(entry.name)
    return None


def dir_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total / MB


def last_step(log: Path, state: dict) -> int:
    """Latest ``step:N`` line of the log, read incrementally."""
    try:
        with open(log, "rb") as f:
            f.seek(state.get("offset", 0))
            chunk = f.read()
    except OSError:
        return state.get("step", 0)
    text = state.get("rest", b"") + chunk
    lines = text.split(b"\n")
    state["rest"] = lines.pop()
    state["offset"] = state.get("offset", 0) + len(chunk)
    for line in lines:
        m = STEP_RE.search(line.decode(errors="replace"))
        if m:
            state["step"] = int(m.group(1))
    return state.get("step", 0)


# ---------------------------------------------------------------------------------------------- sampler
class Sampler(threading.Thread):
    """Samples the run's processes until stopped; one record per window of ``window`` steps."""

    def __init__(self, out: Path, window: int, interval: float, ckpt: Path, session: Path = Path("/tmp/ray")):
        super().__init__(name="soak-sampler", daemon=True)
        self.out, self.window, self.interval, self.ckpt, self.session = out, window, interval, ckpt, session
        self.stop = threading.Event()
        self.windows: list[dict] = []
        self.samples = 0
        self.t0 = time.monotonic()

    def _new_window(self, index: int) -> dict:
        return {"window": index, "steps": [index * self.window + 1, (index + 1) * self.window], "peak_rss_mb": {},
                "peak_rss_by_name_mb": {}, "pids": {}}

    def run(self):
        driver = None
        log_state: dict = {}
        current = self._new_window(0)
        while not self.stop.is_set():
            if driver is None:
                driver = find_driver(os.getpid())
                if driver is None:
                    self.stop.wait(self.interval)
                    continue
            step = last_step(self.out / "train.log", log_state)
            procs = run_processes(driver)
            self.samples += 1
            by_name: dict[str, float] = {}
            for pid, name in procs.items():
                rss = _rss_mb(pid)
                current["pids"][str(pid)] = name
                current["peak_rss_mb"][str(pid)] = max(current["peak_rss_mb"].get(str(pid), 0.0), rss)
                by_name[name] = by_name.get(name, 0.0) + rss
            for name, rss in by_name.items():  # peak of the sum over same-named processes (ranks, replicas)
                current["peak_rss_by_name_mb"][name] = max(current["peak_rss_by_name_mb"].get(name, 0.0), rss)
            current["peak_total_rss_mb"] = max(current.get("peak_total_rss_mb", 0.0), sum(by_name.values()))
            if step >= (current["window"] + 1) * self.window:  # the window's last step is done: close it
                self._close(current, procs, step)
                self.windows.append(current)
                current = self._new_window(current["window"] + 1)
            self.stop.wait(self.interval)

    def _close(self, w: dict, procs: dict[int, str], step: int) -> None:
        fds: dict[str, int] = {}
        for pid, name in procs.items():
            fds[name] = fds.get(name, 0) + _fds(pid)
        shm = shutil.disk_usage("/dev/shm") if Path("/dev/shm").is_dir() else None
        session = self.session / "session_latest"
        w.update(
            at_step=step, wall_s=round(time.monotonic() - self.t0, 1), processes=len(procs),
            fds_by_name=fds, fds_total=sum(fds.values()),
            shm_used_mb=round(shm.used / MB, 2) if shm else None,
            shm_entries=len(os.listdir("/dev/shm")) if shm else None,
            ckpt_mb=round(dir_mb(self.ckpt), 2), ckpt_folders=sorted(p.name for p in self.ckpt.glob("global_step_*")),
            ray_session_mb=round(dir_mb(session.resolve()), 2) if session.exists() else None,
        )


# ---------------------------------------------------------------------------------------------- report
def series(windows: list[dict]) -> dict[str, list[float]]:
    """Column -> value per window (peak RSS columns summed over their processes' names)."""
    out: dict[str, list[float]] = {}
    for label, names in COLUMNS:
        out[f"{label} peak RSS MB"] = [sum(w["peak_rss_by_name_mb"].get(n, 0.0) for n in names) for w in windows]
    out["all processes peak RSS MB"] = [w.get("peak_total_rss_mb", 0.0) for w in windows]
    out["open fds"] = [float(w["fds_total"]) for w in windows]
    out["/dev/shm MB"] = [w["shm_used_mb"] or 0.0 for w in windows]
    out["checkpoints MB"] = [w["ckpt_mb"] for w in windows]
    out["Ray session MB"] = [w["ray_session_mb"] or 0.0 for w in windows]
    return out


def slope_per_100(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return None if den == 0 else 100 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


def report(windows: list[dict], meta: dict) -> str:
    cols = series(windows)
    steps = [w["at_step"] for w in windows]
    short = {"driver peak RSS MB": "driver", "TaskRunner peak RSS MB": "TaskRunner",
             "actor (WorkerDict) peak RSS MB": "actor", "rollout server peak RSS MB": "rollout",
             "agent loop peak RSS MB": "agent loop", "reward peak RSS MB": "reward",
             "raylet + gcs peak RSS MB": "raylet+gcs", "all processes peak RSS MB": "all procs"}
    head = ["steps", "wall min"] + [short.get(k, k) for k in cols]
    lines = [f"Peak RSS in MB over each window (sampled every {meta['interval']} s; same-named processes summed); "
             "fds, /dev/shm, checkpoints and Ray's session folder at the window's last step.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, w in enumerate(windows):
        row = [f"{w['steps'][0]}-{w['steps'][1]}", f"{w['wall_s'] / 60:.1f}"]
        row += [f"{cols[k][i]:.0f}" if k == "open fds" else f"{cols[k][i]:.1f}" for k in cols]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Slopes per 100 steps (least squares over windows 2..N, the first is warm-up):", ""]
    for k, ys in cols.items():
        s = slope_per_100(steps[1:], ys[1:])
        unit = "fds" if k == "open fds" else "MB"
        lines.append(f"- {k}: {'n/a' if s is None else f'{s:+.2f} {unit}'} / 100 steps "
                     f"(first window {ys[0]:.1f}, last {ys[-1]:.1f})" if ys else f"- {k}: no data")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--window", type=int, default=25)
    p.add_argument("--save-freq", type=int, default=25)
    p.add_argument("--keep", type=int, default=2, help="trainer.max_actor_ckpt_to_keep")
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--rollout", choices=("auto", "vllm", "hf"), default="auto")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between /proc samples")
    p.add_argument("--out", default="runs/soak")
    p.add_argument("--cache", default=os.environ.get("SRFT_CACHE", str(REPO / ".cache")))
    p.add_argument("overrides", nargs="*", help="extra hydra overrides (after --)")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    if out.exists():
        shutil.rmtree(out)  # resume-free: a fresh run every time
    out.mkdir(parents=True)
    model, _, val = prepare_assets(Path(args.cache).resolve())
    train, _ = write_smoke_data(out / "data", n_train=64, n_val=4)  # 16 steps per epoch: the loader wraps around
    engine = resolve_rollout_engine(args.rollout)
    batch, n = 4, 4
    drop = ("algorithm.adv_estimator", "trainer.save_freq", "trainer.test_freq", "trainer.experiment_name",
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", "actor_rollout_ref.rollout.log_prob_micro")
    overrides = [o for o in smoke_overrides(str(model), str(train), str(val), str(out), args.steps, batch_size=batch,
                                            n=n, rollout=engine) if not o.startswith(drop)]
    per_rank = batch * (n + 1) // args.ranks  # SRFT groups: n rollouts + 1 demonstration
    overrides += [
        f"trainer.n_gpus_per_node={args.ranks}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={per_rank}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={per_rank}",
        f"trainer.save_freq={args.save_freq}", f"trainer.max_actor_ckpt_to_keep={args.keep}",
        "trainer.test_freq=50", "trainer.val_before_train=false", "trainer.total_epochs=100000",
        "trainer.resume_mode=disable", "trainer.logger=[console]", "trainer.experiment_name=soak",
        *args.overrides,
    ]
    sampler = Sampler(out, args.window, args.interval, out / "ckpt")
    sampler.start()
    start = time.monotonic()
    result = run_trainer(overrides, out, entry="recipe_srft.main_srft", config_name="srft_trainer", echo=False,
                         timeout=max(1800, 90 * args.steps))
    sampler.stop.set()
    sampler.join(timeout=30)
    meta = dict(date=str(date.today()), steps=args.steps, window=args.window, save_freq=args.save_freq,
                keep=args.keep, ranks=args.ranks, rollout=engine, interval=args.interval, returncode=result.returncode,
                wall_min=round((time.monotonic() - start) / 60, 1), samples=sampler.samples, overrides=overrides)
    (out / "soak.json").write_text(json.dumps({"meta": meta, "windows": sampler.windows}, indent=1))
    text = (f"Soak, {meta['date']}: {args.steps} steps, tiny model, SRFT, {args.ranks} rank(s), rollout {engine}, "
            f"checkpoint every {args.save_freq} (keep {args.keep}); exit {result.returncode}, "
            f"{meta['wall_min']} min.\n\n" + report(sampler.windows, meta))
    (out / "soak.md").write_text(text + "\n")
    print(text)
    sys.exit(0 if result.returncode == 0 else 1)


if __name__ == "__main__":
    main()
