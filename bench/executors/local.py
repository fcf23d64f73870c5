"""The local executor: a pool of worker processes on this machine, each running the shared scheduler loop.

With one worker and one process per run the loop runs in this process (output straight to the terminal). Otherwise
each worker is a spawned process with its own torch threads; a run's training output goes to
``<store>/logs/<run id>.log`` and the driver prints one line per event plus a running summary. Ctrl-C once: the
workers stop at the next epoch end (checkpointed, leases released); twice: they stop now (the last epoch's
checkpoint stands). Either way ``progbench run`` resumes.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError, storage_error
from ..scheduler import Outcome, deadline_check, epoch_progress, new_session, work_through
from ..store import Store
from ..suite import RunSpec


@dataclass(frozen=True)
class Job:
    """Everything a worker process needs (picklable)."""
    runs: list[RunSpec]
    store_root: str
    device: str
    data_root: str | None
    session: str
    estimates: dict[str, float]  # run id -> the plan's estimated training minutes
    deadline: float | None = None  # start no run whose estimate ends after this time.time()
    leave_held: bool = False  # a run another runner holds is left to it, not waited for


def default_workers(runs: list[RunSpec], cores: int | None = None) -> int:
    """Fill the machine: cores / (threads x processes) of the hungriest run, at least one."""
    cores = cores or os.cpu_count() or 1
    need = max((r.task.threads * r.task.world_size for r in runs), default=1)
    return max(1, cores // need)


class Printer:
    """One line per event and a compact summary after each finished run."""

    def __init__(self, runs: list[RunSpec], workers: int, estimates: dict[str, float], write=print,
                 pool: bool = True):
        self.order = [r.run_id for r in runs]
        self.workers = workers
        self.estimates = estimates  # run id -> estimated training minutes of each run still to train
        self.pool = pool  # workers of one driver: their epochs are printed here, holding each other's runs is not
        self.running: dict[str, float] = {}
        # done at the start: cached; a run another worker finishes is reported by that worker's "done"
        self.finished: dict[str, str] = {r: "cached" for r in self.order if r not in estimates}
        self.write = write

    def __call__(self, ev: dict) -> None:
        kind, rid, who = ev["event"], ev.get("run", ""), ev.get("worker")
        tag = f"[w{who}] " if who is not None else ""
        if kind == "cached":
            self.finished.setdefault(rid, "cached")  # finished meanwhile by another runner on the same store
        elif kind == "started":
            self.running[rid] = time.time()
            how = "resuming" if ev.get("resumed") else "started"
            extra = "" if ev.get("note") == "claimed" else f" ({ev['note']})"
            self.write(f"{tag}{how} {rid}{extra}" + (f"; log {ev['log']}" if ev.get("log") else ""))
        elif kind == "epoch" and self.pool:
            val = f" val {ev['val']:.4f}" if ev.get("val") is not None else ""
            self.write(f"{tag}{rid}: {ev['phase']} epoch {ev['epoch']}/{ev['epochs']}{val} ({ev['seconds']:.0f} s)")
        elif kind in ("done", "failed", "skipped"):
            self.running.pop(rid, None)
            self.finished[rid] = kind
            if kind == "done":
                self.write(f"{tag}done {rid} in {ev['minutes']:.1f} min")
            else:
                self.write(f"{tag}{kind.upper()} {rid}: {ev['why']}" + (f" (log {ev['log']})" if ev.get("log")
                                                                        else ""))
            self.write(self.summary())
        elif kind == "held" and not self.pool:
            self.write(f"{tag}{rid} is {ev['why']}; taking others")
        elif kind == "left" and rid not in self.running and rid not in self.finished:
            self.write(f"{tag}leaving {rid} to its holder ({ev['why']})")
        elif kind == "deferred" and rid not in self.finished:
            self.finished[rid] = kind
            self.write(f"{tag}not starting {rid}: {ev['why']}")
        elif kind == "stopped":
            self.running.pop(rid, None)
            self.write(f"{tag}{ev['why']}")

    def summary(self) -> str:
        counts = {k: sum(v == k for v in self.finished.values()) for k in ("done", "cached", "failed", "skipped")}
        queued = [r for r in self.order if r not in self.finished and r not in self.running]
        now = time.time()
        left = sum(max(0.0, self.estimates.get(r, 0.0) - (now - t) / 60) for r, t in self.running.items())
        left += sum(self.estimates.get(r, 0.0) for r in queued)
        return (f"  -- done {counts['done'] + counts['cached']}/{len(self.order)} ({counts['cached']} cached), "
                f"running {len(self.running)}, queued {len(queued)}, failed {counts['failed'] + counts['skipped']}; "
                f"~{left / self.workers:.0f} min of training left")


def train_one(run: RunSpec, lease, rt, emit, stop: threading.Event | None, events=None,
              worker: int | None = None) -> None:
    """Train a run under ``lease``: in this process, or over ``world_size`` spawned processes (rank 0 writes)."""
    from ..runner import execute
    from ..train import Interrupted

    def should_stop() -> bool:
        return lease.lost.is_set() or (stop is not None and stop.is_set())

    size = run.task.world_size
    if size == 1:
        execute(run, rt, on_epoch=epoch_progress(rt.store, run.run_id, emit), should_stop=should_stop)
        return
    import torch.multiprocessing as tmp

    ctx = tmp.get_context("spawn")
    rank_stop, errors = ctx.Event(), ctx.Queue()
    watch_done = threading.Event()

    def watch() -> None:  # the ranks cannot see this process's lease: pass "stop" on to them
        while not watch_done.wait(0.5):
            if should_stop():
                rank_stop.set()
                return
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    rendezvous = rt.store.work_dir(run.run_id) / f".rendezvous-{lease.holder.token}"
    rendezvous.parent.mkdir(parents=True, exist_ok=True)
    for old in rendezvous.parent.glob(".rendezvous-*"):  # left by a killed attempt; the lease makes them ours
        old.unlink(missing_ok=True)
    try:
        tmp.start_processes(_rank_main, args=(size, run, rt.store.root, str(rt.device), rt.data_root, rt.progress,
                                              f"file://{rendezvous}", rank_stop, events, errors, worker),
                            nprocs=size, join=True, start_method="spawn")
    except tmp.ProcessRaisedException as exc:
        raise RuntimeError(f"a rank of run {run.run_id} failed: {str(exc).strip().splitlines()[-1]}") from None
    finally:
        watch_done.set()
        rendezvous.unlink(missing_ok=True)
    try:
        kind, message = errors.get_nowait()
    except queue_mod.Empty:
        return
    if kind == "interrupted":
        raise Interrupted(message)
    from ..errors import RunFailed
    raise RunFailed(message)


def _rank_main(rank: int, size: int, run: RunSpec, store_root, device: str, data_root, progress: bool,
               init_method: str, stop, events, errors, worker: int | None) -> None:
    """One rank of a data-parallel run (spawned): join the group, train, rank 0 evaluates and writes."""
    import torch

    from .. import distributed
    from ..runner import RunFailed, Runtime, execute
    from ..train import Interrupted

    rt = Runtime(Store(store_root), torch.device(device), data_root, progress=progress and rank == 0)
    world = distributed.init(rank, size, init_method, rt.device)

    def emit(ev: dict) -> None:
        if events is not None:
            events.put({**ev, "worker": worker})
    try:
        execute(run, rt, world, on_epoch=epoch_progress(rt.store, run.run_id, emit) if rank == 0 else None,
                should_stop=stop.is_set)
    except Interrupted as exc:
        if rank == 0:
            errors.put(("interrupted", str(exc)))
    except RunFailed as exc:
        if rank == 0:
            errors.put(("failed", str(exc)))
    finally:
        distributed.shutdown(world)


class _StopOrOrphaned:
    """The driver's stop event, set too once the driver is gone (killed): a worker never trains on alone."""

    def __init__(self, stop, driver: int):
        self.stop, self.driver = stop, driver

    def is_set(self) -> bool:
        return self.stop.is_set() or os.getppid() != self.driver


def _worker_main(number: int, job: Job, threads_hint: int, events, stop) -> None:
    """A worker process: the scheduler loop over the job's runs; each run's output to its log file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides: stop at the next epoch end, or terminate
    stop = _StopOrOrphaned(stop, os.getppid())
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_hint))
    for stream in (sys.stdout, sys.stderr):  # a run's log gets each line as it is written
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
    import torch

    from ..runner import Runtime

    store = Store(job.store_root)
    rt = Runtime(store, torch.device(job.device), job.data_root, progress=False)
    try:
        store.logs.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        events.put({"event": "error", "worker": number, "message": str(storage_error(exc, doing="create"))})
        events.put({"event": "exit", "worker": number, "outcome": Outcome().__dict__})
        return

    def emit(ev: dict) -> None:
        events.put({**ev, "worker": number})

    def train(run: RunSpec, lease) -> None:
        with _output_to(store.logs / f"{run.run_id}.log"):
            train_one(run, lease, rt, emit, stop, events=events if run.task.world_size > 1 else None, worker=number)

    try:
        outcome = work_through(job.runs, train, store, job.session, emit, stop=stop.is_set,
                               log_path=lambda rid: str(store.logs / f"{rid}.log"),
                               too_late=deadline_check(job.estimates, job.deadline), leave_held=job.leave_held)
    except UserError as exc:
        events.put({"event": "error", "worker": number, "message": str(exc)})
        outcome = Outcome()
    except OSError as exc:  # the store itself (read-only, full): the driver says it once
        events.put({"event": "error", "worker": number, "message": str(storage_error(exc, doing="use"))})
        outcome = Outcome()
    except Exception as exc:  # noqa: BLE001 -- a worker must report, not die with a traceback on the terminal
        from ..protocol import describe_exception
        events.put({"event": "error", "worker": number, "message": f"worker {number} failed: "
                                                                   f"{describe_exception(exc)}"})
        outcome = Outcome()
    events.put({"event": "exit", "worker": number, "outcome": outcome.__dict__})


class _output_to:
    """Send this process's stdout and stderr (file descriptors too: libraries' prints) to a log file."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = os.dup(1), os.dup(2)
        self.file = open(self.path, "a", buffering=1)
        os.dup2(self.file.fileno(), 1)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])
        self.file.close()


def run_local(runs: list[RunSpec], rt, workers: int, estimates: dict[str, float], write=print,
              deadline: float | None = None, leave_held: bool = False) -> Outcome:
    """Train what the store lacks of ``runs`` with ``workers`` concurrent runners; returns what happened. With a
    ``deadline`` (a time.time()), no run starts whose estimate would end after it; with ``leave_held``, a run another
    runner holds (another invocation, or a worker of this one) is left to it."""
    session = new_session()
    # runs the plan found done stay done (records are never undone): only the others are verified and claimed again
    todo = [r for r in runs if r.run_id in estimates]
    done = [r.run_id for r in runs if r.run_id not in estimates]
    in_process = workers == 1 and all(r.task.world_size == 1 for r in todo)
    workers = min(workers, len(todo) or 1)  # no more processes than runs to train
    printer = Printer(runs, workers, estimates, write, pool=not in_process)
    if in_process:
        def train(run: RunSpec, lease) -> None:
            train_one(run, lease, rt, printer, None)
        outcome = work_through(todo, train, rt.store, session, printer,
                               too_late=deadline_check(estimates, deadline), leave_held=leave_held)
        outcome.cached = done + outcome.cached
        return outcome
    ctx = mp.get_context("spawn")
    events, stop = ctx.Queue(), ctx.Event()
    job = Job(todo, str(rt.store.root), str(rt.device), rt.data_root, session, estimates, deadline, leave_held)
    threads = max(r.task.threads for r in todo)
    procs = [ctx.Process(target=_worker_main, args=(k, job, threads, events, stop), name=f"progbench-worker-{k}")
             for k in range(1, workers + 1)]
    for p in procs:
        p.start()
    outcome, exited, interrupts, error = Outcome(), 0, 0, None
    while exited < len(procs):
        try:
            ev = events.get(timeout=1.0)
        except queue_mod.Empty:
            if not any(p.is_alive() for p in procs):
                break  # a worker died without saying so (killed): nothing more will come
            continue
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts == 1:
                stop.set()
                write("interrupt: workers stop at the next epoch end (checkpointed); Ctrl-C again to stop now")
            else:
                write("interrupt: stopping the workers now; the last finished epoch of each run is checkpointed")
                for p in procs:
                    p.terminate()
                break
            continue
        if ev["event"] == "error":  # wrong input: stop the others too, and say it once
            error = error or ev["message"]
            stop.set()
            continue
        if ev["event"] == "exit":
            exited += 1
            got = ev["outcome"]
            outcome.trained += got["trained"]
            outcome.failed.update(got["failed"])
            outcome.skipped.update(got["skipped"])
            outcome.deferred.update(got["deferred"])
            outcome.left.update(got["left"])
            outcome.interrupted |= got["interrupted"]
            outcome.cached = sorted(set(outcome.cached) | set(got["cached"]))
            continue
        printer(ev)
    for p in procs:
        p.join()
    if error:
        raise UserError(error)
    outcome.interrupted |= stop.is_set() or interrupts > 0
    outcome.cached = done + [r for r in outcome.cached if r not in outcome.trained]
    ours = set(outcome.trained) | set(outcome.failed) | set(outcome.cached)  # a worker of this one trained it
    outcome.left = {rid: why for rid, why in outcome.left.items() if rid not in ours}
    return outcome
