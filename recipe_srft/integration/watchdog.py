"""Phase watchdog: a phase of the trainer that overruns its deadline fails the run with a diagnosis.

A Ray job that waits for resources it will never get (a placement group larger than the cluster, an
actor asking for a CPU that is taken) blocks in ``ray.get`` without a word. The watchdog runs in a
daemon thread of the process that waits (verl's task runner), so it still runs while the main thread
is blocked. When the current phase passes its deadline it prints one report, beginning with
``SRFT watchdog: phase '<name>' did not finish within <t> s``, with what Ray has and what is waiting,
and then ends the process (by default) so that the Ray driver sees the actor die and the run fails.

It also watches actors the run cannot lose (:meth:`PhaseWatchdog.watch`: the rollout servers, worker groups,
agent-loop and reward workers once set-up is done): one that dies (a killed or crashed rollout server) leaves verl
waiting on it forever, with no deadline to end the wait by default. Every ``liveness_s`` while a phase is open the
watchdog reads Ray's actor table and, when a watched actor is dead, reports ``SRFT watchdog: phase '<name>' cannot
finish: Ray actor <class> <name> died`` with Ray's cause and ends the process as on a timeout::

    watchdog = PhaseWatchdog().start()
    with watchdog.phase("setup", 600):
        ...

Pure infrastructure (GPU runs too); it imports Ray only to describe it, and only if Ray is running.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable

REPORT_PREFIX = "SRFT watchdog:"

#: What a stalled placement usually means; each statement checked in verl 0.9.1 / this recipe.
RESOURCE_HINT = (
    "hint: verl places each FSDP rank in a placement-group bundle {'CPU': 3, 'GPU': 1} "
    "(ResourcePoolManager.max_colocate_count=3, RayResourcePool.get_placement_groups, STRICT_PACK per "
    "node); a PENDING group or actor above asks for more than Ray has available. On the CPU runtime "
    "Ray's logical CPUs/GPUs come from ray_kwargs.ray_init.num_cpus/num_gpus (config/runtime/cpu.yaml, "
    "sized by recipe_srft.cpu.resources: one GPU and 3+1 CPUs per rank plus 8 for single actors)."
)


def _exit_process(message: str) -> None:
    """Default ``on_timeout``: end the process so that Ray reports the actor dead instead of waiting."""
    time.sleep(2.0)  # let Ray's log monitor forward the report to the driver first
    os._exit(1)


class PhaseWatchdog:
    """Deadlines for named phases, checked by a daemon thread.

    ``on_timeout(message)`` runs in the watchdog thread once per overrun phase (default: exit the
    process); ``diagnosis()`` gives the report's body (default :func:`ray_diagnosis`). A phase with
    ``timeout_s`` None or <= 0 has no deadline. Phases nest: each keeps its own deadline.
    """

    def __init__(self, on_timeout: Callable[[str], None] | None = None,
                 diagnosis: Callable[[], str] | None = None, poll_s: float = 0.1,
                 dead_actors: Callable[[dict], list[str]] | None = None, liveness_s: float = 5.0):
        self.on_timeout = on_timeout or _exit_process
        self.diagnosis = diagnosis or ray_diagnosis
        self.poll_s = poll_s
        self.dead_actors = dead_actors or dead_ray_actors
        self.liveness_s = liveness_s
        self._watched: dict[str, str] = {}  # actor id -> "Class name"
        self._next_liveness = 0.0
        self._lost = False
        self._lock = threading.Lock()
        self._phases: dict[int, tuple[str, float, float]] = {}  # token -> (name, timeout_s, deadline); entry order
        self._fired: set[int] = set()
        self._tokens = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "PhaseWatchdog":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="srft-watchdog", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def enter(self, name: str, timeout_s: float | None) -> int:
        """Starts phase ``name``; returns the token for :meth:`done`."""
        deadline = time.monotonic() + timeout_s if timeout_s and timeout_s > 0 else float("inf")
        with self._lock:
            token = next(self._tokens)
            self._phases[token] = (name, timeout_s or 0, deadline)
        return token

    def done(self, token: int | None = None) -> None:
        """Ends the phase of ``token`` (default: the innermost one)."""
        with self._lock:
            if token is None and self._phases:
                token = next(reversed(self._phases))
            self._phases.pop(token, None)
            self._fired.discard(token)

    @contextmanager
    def phase(self, name: str, timeout_s: float | None):
        token = self.enter(name, timeout_s)
        try:
            yield
        finally:
            self.done(token)

    def watch(self, actors: dict[str, str]) -> None:
        """Adds actors (id -> description) whose death fails the open phase (checked every ``liveness_s``)."""
        with self._lock:
            self._watched.update(actors)

    def current(self) -> list[str]:
        """Names of the open phases, outermost first."""
        with self._lock:
            return [name for name, _, _ in self._phases.values()]

    def _overrun(self):
        """The innermost open phase past its deadline that has not been reported yet."""
        now = time.monotonic()
        with self._lock:
            open_phases = list(self._phases.items())
            for i in range(len(open_phases) - 1, -1, -1):
                token, (name, timeout_s, deadline) = open_phases[i]
                if now > deadline and token not in self._fired:
                    self._fired.add(token)
                    return name, timeout_s, [n for _, (n, _, _) in open_phases[:i]]
        return None

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            overrun = self._overrun()
            if overrun is not None:
                self._report(*overrun)
            self._check_liveness()

    def _check_liveness(self) -> None:
        now = time.monotonic()
        with self._lock:
            watched, phases = dict(self._watched), [name for name, _, _ in self._phases.values()]
        if self._lost or not watched or not phases or now < self._next_liveness:
            return
        self._next_liveness = now + self.liveness_s
        try:
            dead = self.dead_actors(watched)
        except Exception:  # a failed query is not a death; the phase deadlines still hold
            return
        if dead:
            self._lost = True
            lines = [f"{REPORT_PREFIX} phase '{phases[-1]}' cannot finish: {d}" for d in dead]
            if len(phases) > 1:
                lines.append(f"{REPORT_PREFIX} inside: " + " > ".join(f"'{n}'" for n in phases[:-1]))
            self._emit("\n".join(lines))

    def _report(self, name: str, timeout_s: float, outer: list[str]) -> None:
        lines = [f"{REPORT_PREFIX} phase '{name}' did not finish within {timeout_s:g} s"]
        if outer:
            lines.append(f"{REPORT_PREFIX} inside: " + " > ".join(f"'{n}'" for n in outer))
        try:
            body = self.diagnosis()
        except Exception as exc:  # the report must come out even if the diagnosis breaks
            body = f"diagnosis failed: {exc!r}"
        lines += [f"{REPORT_PREFIX} {line}" for line in body.splitlines()]
        self._emit("\n".join(lines))

    def _emit(self, message: str) -> None:
        # Both streams: Ray forwards each to the driver, and either may be the one a user reads.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.write(message + "\n")
                stream.flush()
            except Exception:
                pass
        self.on_timeout(message)


def ray_diagnosis() -> str:
    """What Ray has and what waits for it, from the GCS (works without Ray's dashboard)."""
    try:
        import ray
    except ImportError:
        return "Ray not installed"
    if not ray.is_initialized():
        return "Ray not initialised in this process"
    return format_ray_diagnosis(**_ray_snapshot(ray))


def _ray_snapshot(ray) -> dict:
    """Each query separately: one failing must not hide the others (its error stands in for it)."""

    def query(fn):
        try:
            return fn()
        except Exception as exc:
            return exc

    return dict(
        cluster=query(ray.cluster_resources),
        available=query(ray.available_resources),
        placement_groups=query(ray.util.placement_group_table),
        actors=query(_waiting_actors),
    )


def _waiting_actors() -> list[dict]:
    """Actors not yet alive, with the resources they ask for.

    ``ray.util.state`` needs the dashboard and ``ray._private.state.actors()`` drops the resources, so
    the GCS actor table is read directly (Ray 2.60: GlobalState accessor + ActorTableData proto).
    """
    from ray.core.generated import gcs_pb2

    names = gcs_pb2.ActorTableData.ActorState.DESCRIPTOR.values_by_number
    waiting = []
    for actor in _actor_table():
        status = names[actor.state].name
        if status in ("ALIVE", "DEAD"):
            continue
        waiting.append(dict(class_name=actor.class_name, name=actor.name, state=status,
                            required_resources=dict(actor.required_resources),
                            placement_group_id=actor.placement_group_id.hex()))
    return waiting


def _actor_table() -> list:
    """Ray's GCS actor table (every actor, dead ones too) as ActorTableData protos (Ray 2.60 GlobalState accessor)."""
    from ray._private.state import state
    from ray.core.generated import gcs_pb2

    table = state._connect_and_get_accessor().get_actor_table(None, None)
    return [gcs_pb2.ActorTableData.FromString(raw) for raw in table]


def alive_ray_actors(class_names: tuple[str, ...]) -> dict[str, str]:
    """Alive actors whose class name contains one of ``class_names``: id -> "Class name"."""
    from ray.core.generated import gcs_pb2

    alive = gcs_pb2.ActorTableData.ActorState.Value("ALIVE")
    return {a.actor_id.hex(): f"{a.class_name} {a.name}".strip() for a in _actor_table()
            if a.state == alive and any(c in a.class_name for c in class_names)}


def dead_ray_actors(watched: dict[str, str]) -> list[str]:
    """Of ``watched`` (id -> description), the actors Ray reports dead, each with its death cause."""
    from ray.core.generated import gcs_pb2

    dead = gcs_pb2.ActorTableData.ActorState.Value("DEAD")
    found = []
    for actor in _actor_table():
        key = actor.actor_id.hex()
        if key in watched and actor.state == dead:
            context = actor.death_cause.actor_died_error_context
            cause = (context.error_message or str(actor.death_cause)).strip().replace("\n", " ")[:400]
            found.append(f"Ray actor {watched[key]} died ({cause or 'no cause recorded'})")
    return found


def _fmt_resources(resources: dict) -> str:
    # Ray's memory counts are bytes and node:<ip> markers are noise here
    keep = {k: v for k, v in sorted(resources.items()) if not k.startswith("node:") and "memory" not in k}
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in keep.items()) + "}"


def format_ray_diagnosis(cluster, available, placement_groups, actors) -> str:
    """The report body; each argument is Ray's answer or the exception its query raised."""
    lines = []
    for label, value in (("cluster resources", cluster), ("available resources", available)):
        lines.append(f"{label}: " + (f"unavailable ({value!r})" if isinstance(value, Exception)
                                      else _fmt_resources(value)))
    if isinstance(placement_groups, Exception):
        lines.append(f"placement groups: unavailable ({placement_groups!r})")
    else:
        pending = {pg_id: pg for pg_id, pg in placement_groups.items() if pg.get("state") not in ("CREATED", "REMOVED")}
        lines.append(f"placement groups: {len(placement_groups)}, not placed: {len(pending)}")
        for pg_id, pg in pending.items():
            bundles = [_fmt_resources(b) for _, b in sorted(pg.get("bundles", {}).items())]
            lines.append(f"  {pg.get('state')} {pg.get('name') or pg_id} ({pg.get('strategy')}): "
                         f"{len(bundles)} bundles {', '.join(bundles)}")
    if isinstance(actors, Exception):
        lines.append(f"actors not alive: unavailable ({actors!r})")
    else:
        lines.append(f"actors not alive: {len(actors)}")
        for actor in actors:
            where = f" in placement group {actor['placement_group_id']}" if actor.get("placement_group_id") else ""
            lines.append(f"  {actor['state']} {actor['class_name']}{' ' + actor['name'] if actor.get('name') else ''}: "
                         f"asks {_fmt_resources(actor['required_resources'])}{where}")
    lines.append(RESOURCE_HINT)
    return "\n".join(lines)
