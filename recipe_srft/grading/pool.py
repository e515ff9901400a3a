"""The time bound of math-verify: a pool of grading worker subprocesses, and the memo of results.

math-verify (sympy) can hang on short inputs: ``\\boxed{10^{10^{10}}}`` never returns (a C-level
big-integer power that no Python signal can interrupt), and its own ``parsing_timeout`` /
``timeout_seconds`` use ``signal.alarm``, which raises ``ValueError`` outside the main thread (where
verl calls the reward).  Therefore:

* Cheap guards in-process, before any sympy work (:mod:`.graders`): extracted answers longer than
  ``MAX_ANSWER_CHARS`` or with bracket nesting deeper than ``MAX_NESTING`` score 0 immediately;
  extraction is linear-time (no nested quantifiers; the multiple-choice box scan is capped at 400
  chars per box); GSM8K and multiple-choice grading never touch sympy and need no time bound.
* ``timeout_mode="process"`` (default): every math-verify comparison (:mod:`.verify`) runs in a
  small pool of long-lived worker subprocesses (``python -c _WORKER_BOOT grading/loader.py``: the
  loader loads this package by path from its folder and runs :func:`_serve`, speaking JSON lines
  over pipes; started lazily, 0.5-1 s each, at most ``max_workers`` per process, shared by all
  threads).  The caller waits with ``poll`` (works in any thread) for at most ``timeout_s``
  (default 5 s); on expiry the worker is SIGKILLed, the answer scores 0 and a fresh worker is
  started on the next call.  Inside the worker, math-verify's signal timeouts are disabled and an
  ``RLIMIT_CPU`` budget per request makes the kernel kill a worker whose parent died mid-request.
  Results (including timeouts) are memoised per process (``_CACHE_SIZE`` entries), so repeated
  identical rollouts cost one call.  Bound per call: ``timeout_s`` + queueing when more threads than
  workers grade at once (+ up to ``STARTUP_TIMEOUT_S`` the first time a worker starts).
* ``timeout_mode="inline"``: math-verify in the calling process (no IPC, no extra processes).  In
  the main thread math-verify's own signal timeouts are used; in other threads they are disabled
  (they would raise), so only the guards protect.  NOT a hard bound -- for debugging / trusted
  input only.
* If worker processes cannot be started, the call falls back to ``inline`` (a warning is logged;
  starting workers is retried after 60 s).

Each copy of this module (``recipe_srft.grading.pool``, or the package loaded by path under its
private name) has its own pool and memo; a forked child drops the parent's workers and starts its own.
Standard library only at import time.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import math
import os
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict

from .loader import WORKER_RUN_NAME as _WORKER_RUN_NAME
from .verify import _mv_call, _mv_equal

logger = logging.getLogger("recipe_srft.reward")

#: How long a newly started worker may take to import math-verify.
STARTUP_TIMEOUT_S = 60.0
_CACHE_SIZE = 100_000

# --------------------------------------------------------------------------------------
# worker processes
# --------------------------------------------------------------------------------------

#: The file a worker runs: the loader, which loads this package from its folder (see loader.py).
_WORKER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loader.py")
_WORKER_BOOT = (
    "import sys, runpy; sys.path = [p for p in sys.path if p not in ('', '.')]; "
    f"runpy.run_path(sys.argv[1], run_name={_WORKER_RUN_NAME!r})"
)


class _WorkerDied(Exception):
    pass


class _Worker:
    """One grading subprocess (``python -c _WORKER_BOOT loader.py``) answering JSON-line requests."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_BOOT, _WORKER_FILE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            close_fds=True,
            bufsize=0,
        )
        self.fd = self.proc.stdout.fileno()
        # poll, not select: select() fails for descriptors >= 1024 (common in Ray workers)
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.buf = b""
        self.next_id = 0
        try:
            ready = self._read_line(STARTUP_TIMEOUT_S)
        except BaseException:
            self.kill()
            raise
        if ready is None or json.loads(ready).get("ready") is not True:
            self.kill()
            raise _WorkerDied("worker did not start")

    def _read_line(self, timeout: float) -> bytes | None:
        """One line, or None on timeout; ``_WorkerDied`` on EOF."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not self.poller.poll(max(1, int(math.ceil(left * 1000)))):
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise _WorkerDied("worker exited")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def request(self, gold: str, pred: str, timeout: float, text_mode: bool = False) -> tuple[bool, str] | None:
        """``(equal, extracted string)``, or None when the worker timed out (it is killed then)."""
        self.next_id += 1
        rid = self.next_id
        req = {"id": rid, "g": gold, "p": pred, "cpu": timeout + 2.0}
        if text_mode:
            req["t"] = True
        msg = json.dumps(req) + "\n"
        try:
            self.proc.stdin.write(msg.encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise _WorkerDied(str(exc)) from exc
        line = self._read_line(timeout)
        if line is None:
            self.kill()
            return None
        reply = json.loads(line)
        if reply.get("id") != rid:
            raise _WorkerDied("out-of-sync reply")
        return bool(reply.get("ok")), str(reply.get("x") or "")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except Exception:
            pass
        self.close_pipes()

    def close_pipes(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:
                pass


class _Pool:
    """Worker subprocesses shared by the threads of one process."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.idle: list[_Worker] = []
        self.count = 0  # started or starting workers
        self.spawn_failed_at = -math.inf

    def acquire(self, max_workers: int) -> _Worker | None:
        """A worker, or None when workers cannot be started (caller goes inline)."""
        with self.cond:
            while True:
                while self.idle:
                    w = self.idle.pop()
                    if w.alive():
                        return w
                    w.kill()
                    self.count -= 1
                if time.monotonic() - self.spawn_failed_at < 60.0:
                    return None
                if self.count < max_workers:
                    self.count += 1
                    break
                self.cond.wait()
        try:
            return _Worker()
        except Exception as exc:
            with self.cond:
                self.count -= 1
                self.spawn_failed_at = time.monotonic()
                self.cond.notify()
            logger.warning("recipe_srft.reward: cannot start a grading worker (%s); grading inline", exc)
            return None

    def release(self, w: _Worker, healthy: bool) -> None:
        with self.cond:
            if healthy:
                self.idle.append(w)
            else:
                self.count -= 1
            self.cond.notify()

    def shutdown(self) -> None:
        with self.cond:
            workers, self.idle = self.idle, []
            self.count -= len(workers)
        for w in workers:
            w.close_pipes()  # EOF on stdin: the worker exits by itself
            try:
                w.proc.wait(timeout=2)
            except Exception:
                w.kill()

    def forget_after_fork(self) -> None:
        """In a forked child: the workers belong to the parent; drop our copies of their pipes."""
        for w in self.idle:
            try:
                os.close(w.proc.stdin.fileno())
            except Exception:
                pass
            try:
                os.close(w.fd)
            except Exception:
                pass
        self.__init__()


_POOL = _Pool()
atexit.register(_POOL.shutdown)


def _serve() -> None:  # pragma: no cover - runs in the worker subprocess
    """Worker main loop: one JSON request per stdin line, one JSON reply per stdout line."""
    import resource

    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # stray prints of libraries go to stderr, never into the protocol
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    try:
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    except (OSError, ValueError):
        hard = None
    _mv_equal("1", "1", None)  # warm up imports and caches
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if hard is not None:
            used = resource.getrusage(resource.RUSAGE_SELF)
            soft = int(used.ru_utime + used.ru_stime + float(req.get("cpu", 10.0))) + 1
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            try:
                resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
            except (OSError, ValueError):
                pass
        try:
            ok, extracted = _mv_call(req["g"], req["p"], bool(req.get("t")), None)
        except Exception:
            ok, extracted = False, ""
        reply = {"id": req.get("id"), "ok": bool(ok)}
        if extracted:
            reply["x"] = extracted
        out.write(json.dumps(reply) + "\n")
        out.flush()


# --------------------------------------------------------------------------------------
# memo of math-verify results
# --------------------------------------------------------------------------------------

# (gold, pred, text mode) -> (equal, extracted string); a whole answer region is keyed by its digest
_cache: OrderedDict[tuple[str, str, bool], tuple[bool, str]] = OrderedDict()
_cache_lock = threading.Lock()


def _clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _after_fork_in_child() -> None:
    global _cache_lock
    _cache_lock = threading.Lock()  # another thread may have held it at fork time
    _POOL.forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _math_equal(gold: str, pred: str, timeout_s: float, mode: str, max_workers: int) -> bool:
    """math-verify equivalence of two cleaned answers, time-bounded and memoised."""
    return _bounded_mv(gold, pred, False, timeout_s, mode, max_workers)[0]


def _math_equal_text(gold: str, text: str, timeout_s: float, mode: str, max_workers: int) -> tuple[bool, str]:
    """LUFFY's fallback: math-verify extracts the answer from ``text`` itself; ``(equal, extracted)``."""
    return _bounded_mv(gold, text, True, timeout_s, mode, max_workers)


def _bounded_mv(gold: str, pred: str, text_mode: bool, timeout_s: float, mode: str,
                max_workers: int) -> tuple[bool, str]:
    # answer regions can be long: memoise them by digest, not by value
    key = (gold, hashlib.blake2b(pred.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
           if text_mode else pred, text_mode)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    result: tuple[bool, str] | None = None
    if mode == "process":
        w = _POOL.acquire(max_workers)
        if w is not None:
            healthy = False
            try:
                result = w.request(gold, pred, timeout_s, text_mode)
                healthy = result is not None
                if result is None:
                    logger.warning("recipe_srft.reward: math-verify exceeded %.1fs; scored 0", timeout_s)
                    result = (False, "")
            except Exception:  # worker died (e.g. killed by its CPU limit) or garbled reply
                w.kill()
                result = (False, "")
            finally:
                _POOL.release(w, healthy)
    if result is None:  # inline mode, or no worker could be started
        in_main = threading.current_thread() is threading.main_thread()
        try:
            result = _mv_call(gold, pred, text_mode, max(1, int(math.ceil(timeout_s))) if in_main else None)
        except Exception:
            result = (False, "")
    with _cache_lock:
        _cache[key] = result
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


