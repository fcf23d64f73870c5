"""Executors: where a suite's runs train. ``local`` (a pool of worker processes here) and ``slurm`` (one job per
run through submitit); both drive the same scheduler loop and store (``progbench.scheduler``, ``progbench.lease``)."""
from __future__ import annotations

import time


def train_missing(suite, rt, only: str | None = None, write=print, strict: bool = False,
                  deadline: float | None = None, leave_held: bool = False):
    """Train what the store lacks of the suite's selected runs with the local executor; returns the Outcome. Cached
    runs made with other code of their method are warned about (refused with ``strict``: ``progbench.preflight``).
    With a ``deadline`` (a time.time()), no run starts whose estimated training would end after it; with
    ``leave_held``, a run another runner holds is left to it (:func:`~progbench.scheduler.work_through`)."""
    from ..preflight import guard
    from ..runner import plan
    from .local import default_workers, run_local

    runs = suite.select(only)
    workers = suite.executor.workers or default_workers(runs)
    rows = plan(suite, rt.store, only)
    guard(runs, {r["run"]: r["record"] for r in rows if r["record"]}, strict)
    todo = {r["run"]: r["train_min"] for r in rows if r["status"] != "done"}
    threads = sorted({r.task.threads for r in runs})
    procs = sorted({r.task.world_size for r in runs})
    write(f"suite {suite.name}: {len(runs)} runs selected, {len(runs) - len(todo)} cached, {len(todo)} to train"
          + (f" with {workers} worker(s) x {'/'.join(map(str, threads))} thread(s)"
             + (f" x {'/'.join(map(str, procs))} process(es) per run" if procs != [1] else "") if todo else ""))
    if not todo:
        from ..scheduler import Outcome
        return Outcome(cached=[r.run_id for r in runs])
    t0 = time.perf_counter()
    outcome = run_local(runs, rt, workers, todo, write, deadline, leave_held)
    outcome.minutes = (time.perf_counter() - t0) / 60
    return outcome
