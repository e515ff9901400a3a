"""Grading throughput of recipe_srft.reward.compute_score on MATH-500.

Items: every MATH-500 worked solution graded against its own answer (positive) and against
another problem's answer (negative): 1000 answers per pass.  Three workloads:

* ``default``          -- the production path (identical strings short-cut math-verify, so
                          most positives are cheap; every negative goes through math-verify);
* ``math-verify only`` -- ``shortcuts=False``: every answer is parsed and compared by
                          math-verify (the cost of a fresh, non-identical answer);
* ``inline``           -- as ``math-verify only`` but in-process (``timeout_mode="inline"``, no
                          worker subprocess, no hard time bound), to show the cost of the IPC.

Each runs in one process and in a multiprocessing pool of 2 processes; worker start-up is
excluded (every process grades a warm-up item first) and the result memo is cleared per chunk,
so no answer is served from the cache of an earlier pass.

    python bench/reward_throughput.py [--data ../shared/data] [--passes 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GOAL = 200.0  # answers/s on 2 cores
WORKLOADS = {
    "default": {},
    "math-verify only": {"shortcuts": False},
    "inline (no hard bound)": {"shortcuts": False, "timeout_mode": "inline"},
}


def _canon(a: str) -> str:
    """Textual canonical form, only to pick a negative that is not the same answer ("x=5" is "5")."""
    a = re.sub(r"\\left|\\right|\\!|\\,|\s", "", a).replace("\\dfrac", "\\frac")
    return re.sub(r"^[a-zA-Z]=", "", a)


def load_items(data: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in (data / "math500" / "test.jsonl").open(encoding="utf-8")]
    answers = [r["answer"] for r in rows]
    items = [(r["solution"], r["answer"]) for r in rows]
    for i, r in enumerate(rows):
        j = (i + 1) % len(rows)
        while _canon(answers[j]) == _canon(answers[i]):
            j = (j + 1) % len(rows)
        items.append((r["solution"], answers[j]))
    return items


def _warm(kwargs: dict) -> None:
    from recipe_srft.reward import compute_score

    compute_score("math500", "\\boxed{\\frac{1}{2}}", "0.5", **{**kwargs, "shortcuts": False})


_BARRIER = None


def _init_pool(barrier) -> None:
    global _BARRIER
    _BARRIER = barrier


def _warm_once_per_process(kwargs: dict) -> None:
    """Each pool process takes exactly one of these tasks: it blocks until all have started."""
    _warm(kwargs)
    _BARRIER.wait()


def grade_chunk(args: tuple[list[tuple[str, str]], dict]) -> float:
    from recipe_srft import reward

    chunk, kwargs = args
    reward._clear_cache()
    return sum(reward.compute_score("math500", sol, gt, **kwargs)["score"] for sol, gt in chunk)


def chunks(items, size):
    return [items[k : k + size] for k in range(0, len(items), size)]


def run_single(items, kwargs, passes) -> tuple[float, float]:
    from recipe_srft import reward

    reward._POOL.shutdown()  # fresh grading worker: no parse caches left over from another workload
    _warm(kwargs)
    t0 = time.perf_counter()
    total = 0.0
    for _ in range(passes):
        for c in chunks(items, 50):
            total += grade_chunk((c, kwargs))
    dt = time.perf_counter() - t0
    return len(items) * passes / dt, total / passes


def run_pool(items, kwargs, passes, procs) -> tuple[float, float]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(procs)
    with ctx.Pool(procs, initializer=_init_pool, initargs=(barrier,)) as pool:
        pool.map(_warm_once_per_process, [kwargs] * procs, chunksize=1)  # one grading worker per process
        work = [(c, kwargs) for _ in range(passes) for c in chunks(items, 25)]
        t0 = time.perf_counter()
        total = sum(pool.imap_unordered(grade_chunk, work, chunksize=1))
        dt = time.perf_counter() - t0
    return len(items) * passes / dt, total / passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args()
    if not (args.data / "math500" / "test.jsonl").is_file():
        sys.exit(f"MATH-500 not found under {args.data}")

    items = load_items(args.data)
    print(f"MATH-500: {len(items)} answers per pass (500 own answers + 500 other answers), "
          f"{args.passes} pass(es); {os.cpu_count()} CPU(s) visible; "
          f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    t0 = time.perf_counter()
    _warm({})
    print(f"cold start of the first grading worker: {time.perf_counter() - t0:.2f} s")

    results = {}
    for name, kwargs in WORKLOADS.items():
        one, acc1 = run_single(items, kwargs, args.passes)
        pool, acc2 = run_pool(items, kwargs, args.passes, args.procs)
        results[name] = (one, pool)
        print(f"{name:24s} 1 process: {one:8.1f} answers/s   pool of {args.procs}: {pool:8.1f} answers/s   "
              f"(correct per pass: {acc1:.0f} / {acc2:.0f}, expected 500)")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(other processes on the machine lower every number)")
    print(f"goal: >= {GOAL:.0f} answers/s on 2 cores (pool of 2)")
    for name in ("default", "math-verify only"):
        pool = results[name][1]
        print(f"  {name:22s} pool of {args.procs}: {pool:8.1f} answers/s -> {'MET' if pool >= GOAL else 'NOT MET'}")


if __name__ == "__main__":
    main()
