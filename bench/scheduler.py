"""Work through a suite's runs on a store that other runners may share: the loop every runner (a local worker, a
plain ``progbench run``) goes through.

A runner takes the first run, teachers first, that is not done, whose teacher's record is written and which nobody
holds: it claims the run with a lease (``progbench.lease``), trains it (resuming its checkpoint) and releases the lease.
Runs held by others are skipped; runs waiting for a teacher another runner trains are revisited every few seconds,
so a student starts as soon as its teacher's record lands. A held run is waited for too (the runner ends when the
runs are done, and takes over one whose holder died), unless the runner leaves held runs to their holders: then it
ends once every run left is held, so runners walking the same list one part after another (one per core, a cell at a
time) never idle on a run another is training. A run that fails leaves ``work/failed.json`` (what
happened, the log), is not retried by this session, and its students are skipped; a later session tries it again.
"""
from __future__ import annotations

import json
import secrets
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError, storage_error
from .lease import Lease
from .store import Store, atomic_write_text
from .suite import RunSpec

POLL_S = 2.0


@dataclass
class Outcome:
    trained: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # run id -> one line
    skipped: dict[str, str] = field(default_factory=dict)  # run id -> why (its teacher failed)
    deferred: dict[str, str] = field(default_factory=dict)  # run id -> why not started (it would end too late)
    left: dict[str, str] = field(default_factory=dict)  # run id -> who holds it (left to its holder)
    interrupted: bool = False
    minutes: float = 0.0


def new_session() -> str:
    """Names one invocation (a driver and its workers): failures within it are not retried by it."""
    return f"{socket.gethostname()}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def failure_path(store: Store, rid: str) -> Path:
    return store.work_dir(rid) / "failed.json"


def read_failure(store: Store, rid: str) -> dict | None:
    try:
        return json.loads(failure_path(store, rid).read_text())
    except (OSError, ValueError):
        return None


def mark_failed(store: Store, rid: str, session: str, message: str, log: str | None) -> None:
    path = failure_path(store, rid)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"session": session, "message": message, "log": log, "host":
                                        socket.gethostname(), "time": time.time()}, sort_keys=True) + "\n")


def progress_path(store: Store, rid: str) -> Path:
    return store.work_dir(rid) / "progress.json"


def epoch_progress(store: Store, rid: str, emit: Callable[[dict], None] | None = None):
    """An ``on_epoch`` callback for the trainer: writes the run's progress file (``progbench status`` reads it) and
    emits an ``epoch`` event."""
    def on_epoch(row: dict, epochs: int) -> None:
        progress = {"phase": row["phase"], "epoch": row["epoch"], "epochs": epochs, "val": row.get("val_top1"),
                    "seconds": row["epoch_s"], "time": time.time()}
        try:
            atomic_write_text(progress_path(store, rid), json.dumps(progress, sort_keys=True) + "\n")
        except OSError:
            pass  # progress is for display only
        if emit is not None:
            emit({"event": "epoch", "run": rid, **progress})
    return on_epoch


def ordered(runs: list[RunSpec]) -> list[RunSpec]:
    return [r for r in runs if r.is_teacher] + [r for r in runs if not r.is_teacher]


def work_through(runs: list[RunSpec], train: Callable[[RunSpec, Lease], None], store: Store, session: str,
                 emit: Callable[[dict], None], stop: Callable[[], bool] = lambda: False,
                 log_path: Callable[[str], str | None] = lambda rid: None,
                 too_late: Callable[[RunSpec], str | None] = lambda run: None, leave_held: bool = False) -> Outcome:
    """Claim and train runs until none is left that this runner can take; ``train(run, lease)`` trains one (it
    raises :class:`~progbench.train.Interrupted` when asked to stop, anything else is a failure of that run).
    ``too_late(run)`` says why a run must not start now (its estimate ends after a deadline; None: start it): it is
    left for a later invocation, and, as time only moves on, not looked at again by this one. ``leave_held``: a run
    another runner holds is left to it, not waited for."""
    from .train import Interrupted  # torch is imported only by runners that train

    out = Outcome()
    remaining = ordered(runs)
    by_id = {r.run_id: r for r in runs}
    announced: set[str] = set()
    while remaining and not stop():
        progressed = waiting = False
        for run in list(remaining):
            rid = run.run_id
            if stop():
                break
            found = store.check(rid)
            if found.status == "done":
                remaining.remove(run)
                if rid not in out.trained:
                    out.cached.append(rid)
                    emit({"event": "cached", "run": rid})
                continue
            failure = read_failure(store, rid)
            if failure and failure.get("session") == session:  # another worker of this session failed it
                remaining.remove(run)
                out.failed.setdefault(rid, failure["message"])
                continue
            teacher = run.depends_on
            if teacher and teacher in by_id and (teacher in out.failed or teacher in out.skipped or (
                    (read_failure(store, teacher) or {}).get("session") == session)):
                remaining.remove(run)
                out.skipped[rid] = f"its teacher {teacher} failed"
                emit({"event": "skipped", "run": rid, "why": out.skipped[rid]})
                continue
            if teacher in out.deferred:
                remaining.remove(run)
                out.deferred[rid] = f"its teacher {teacher} was not started"
                emit({"event": "deferred", "run": rid, "why": out.deferred[rid]})
                continue
            if teacher and store.status(teacher) != "done":
                if teacher not in by_id:
                    raise UserError(f"run {rid} needs teacher run {teacher}, which is neither in the store nor among "
                                    f"the runs selected; select it too (e.g. drop --only)")
                waiting = True
                continue
            lease, note = Lease.acquire(store.leases, rid)
            if lease is None and leave_held:
                remaining.remove(run)
                out.left[rid] = note
                emit({"event": "left", "run": rid, "why": note})
                continue
            if lease is None:
                waiting = True
                if rid not in announced:
                    announced.add(rid)
                    emit({"event": "held", "run": rid, "why": note})
                continue
            try:
                found = store.check(rid)  # it may have finished between our look and our claim
                if found.status == "done":
                    continue
                late = too_late(run)
                if late:  # asked only of a run this runner holds: one another runner trains is not deferred
                    remaining.remove(run)
                    out.deferred[rid] = late
                    emit({"event": "deferred", "run": rid, "why": late})
                    continue
                if found.status == "corrupt":
                    dest = store.quarantine(rid, found.reason)
                    note += f"; its corrupt record ({found.reason}) moved to {dest}"
                failure_path(store, rid).unlink(missing_ok=True)
                resumed = store.work_dir(rid).is_dir() and (store.work_dir(rid) / "checkpoint.pt").exists()
                emit({"event": "started", "run": rid, "label": run.label, "resumed": resumed, "note": note,
                      "where": lease.holder.where(), "log": log_path(rid)})
                t0 = time.perf_counter()
                try:
                    train(run, lease)
                except Interrupted as exc:
                    out.interrupted = True
                    emit({"event": "stopped", "run": rid, "why": str(exc)})
                    return out
                except UserError:
                    raise  # the input is wrong (missing data, a bad method): one line for the whole invocation
                except OSError as exc:  # the store's disk (full, read-only): every other run would hit it too
                    raise storage_error(exc) from None
                except Exception as exc:  # noqa: BLE001 -- the run failed; the others go on
                    message = failure_line(exc, run)
                    mark_failed(store, rid, session, message, log_path(rid))
                    out.failed[rid] = message
                    emit({"event": "failed", "run": rid, "why": message, "log": log_path(rid)})
                else:
                    out.trained.append(rid)
                    emit({"event": "done", "run": rid, "minutes": (time.perf_counter() - t0) / 60})
            finally:
                lease.release()
            remaining.remove(run)
            progressed = True
            break  # back to the top: teachers first, and a finished teacher frees its students
        if not progressed and waiting and remaining:
            time.sleep(POLL_S)
    out.interrupted = out.interrupted or bool(remaining and stop())
    return out


def deadline_check(estimates: dict[str, float], deadline: float | None) -> Callable[[RunSpec], str | None]:
    """``too_late`` for :func:`work_through`: a run whose estimated training minutes (``estimates``: the plan's) would
    end after ``deadline`` (a time.time()) is not started."""
    def too_late(run: RunSpec) -> str | None:
        if deadline is None:
            return None
        minutes = estimates.get(run.run_id, 0.0)
        if time.time() + minutes * 60 <= deadline:
            return None
        return (f"its ~{minutes:.0f} min would end after the deadline "
                f"({time.strftime('%H:%M', time.localtime(deadline))})")
    return too_late


def failure_line(exc: BaseException, run: RunSpec | None = None) -> str:
    """A run's failure in one line: the harness's own message, or the exception with where it was raised; when the
    method's own code raised it, the method is named with the line of its source that did."""
    from .errors import RunFailed
    from .protocol import describe_exception, get_method, raised_in
    if isinstance(exc, (UserError, RunFailed)):
        return str(exc).strip().splitlines()[0]
    try:
        ours = raised_in(exc, get_method(run.method_ref)) if run is not None else None
    except Exception:  # noqa: BLE001 -- naming the method is a courtesy; the failure is reported either way
        ours = None
    if ours:
        return f"run {run.run_id}: method {run.method} raised {describe_exception(exc)} at {ours}"
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    return f"{describe_exception(exc)}{at}"
