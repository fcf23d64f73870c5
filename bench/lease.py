"""Leases: how many runners share one store (one machine or a shared filesystem) without training a run twice.

A runner claims a run by creating ``<store>/leases/<run id>.json`` (hard-link of a finished temporary file: the
create is atomic, and exactly one of several claimants wins, on a local disk as on NFS). The file names the holder
(host, pid, the pid's start time, Slurm job id, start time, a random token); the holder refreshes its modification
time every ``HEARTBEAT_S`` seconds. Another runner skips a held run. A lease is *stale* when its holder's process is
gone (same host: pid dead or reused) or its heartbeat is older than ``ttl``; a stale or unreadable lease is taken
over: renamed to a unique name (one renamer wins), checked again, removed, and claimed as usual. A holder that finds
its lease gone or someone else's stops at its next safe point (:attr:`Lease.lost`).
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HEARTBEAT_S = float(os.environ.get("PROGBENCH_LEASE_HEARTBEAT_S", 10))
TTL_S = float(os.environ.get("PROGBENCH_LEASE_TTL_S", 120))  # a heartbeat older than this: the holder is gone


def _pid_started(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (tells a reused pid apart); None where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    now = _pid_started(pid)
    return started is None or now is None or now == started


def job_id() -> str | None:
    return os.environ.get("SLURM_JOB_ID")


@dataclass
class Holder:
    """What a lease file says about who holds the run."""
    host: str
    pid: int
    pid_started: str | None
    job_id: str | None
    started: float
    token: str

    @classmethod
    def me(cls) -> Holder:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _pid_started(pid), job_id(), time.time(), secrets.token_hex(8))

    def where(self) -> str:
        return f"{self.host} pid {self.pid}" + (f" job {self.job_id}" if self.job_id else "")


def read(path: Path) -> tuple[Holder | None, float | None]:
    """(holder, heartbeat time) of a lease file; (None, mtime) when it is garbage; (None, None) when absent."""
    try:
        mtime = path.stat().st_mtime
        raw = json.loads(path.read_text())
        return Holder(**raw), mtime
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, TypeError):
        try:
            return None, path.stat().st_mtime
        except FileNotFoundError:
            return None, None


def stale_reason(holder: Holder | None, heartbeat: float, ttl: float = TTL_S, now: float | None = None) -> str | None:
    """Why a present lease no longer protects its run (None: it does)."""
    if holder is None:
        return "unreadable lease file"
    age = (now or time.time()) - heartbeat
    if holder.host == socket.gethostname() and not (holder.job_id and holder.job_id == job_id()):
        if not _pid_alive(holder.pid, holder.pid_started):
            return f"holder {holder.where()} is gone"
    if holder.job_id and holder.job_id == job_id() and holder.pid != os.getpid():
        return f"held by an earlier attempt of this Slurm job ({holder.where()})"  # requeued: that attempt is over
    if age > ttl:
        return f"heartbeat {age:.0f} s old (limit {ttl:.0f} s)"
    return None


class Lease:
    """A claim on one run; use :meth:`acquire`, then :meth:`release` (or the context manager)."""

    def __init__(self, path: Path, holder: Holder):
        self.path, self.holder = path, holder
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def acquire(cls, leases_dir: Path, rid: str, ttl: float = TTL_S) -> tuple[Lease | None, str]:
        """Claim ``rid``: (the lease, what happened) or (None, who holds it). Takes over a stale lease."""
        leases_dir.mkdir(parents=True, exist_ok=True)
        path = leases_dir / f"{rid}.json"
        holder = Holder.me()
        note = "claimed"
        for _ in range(3):
            if _create(path, holder):
                lease = cls(path, holder)
                lease._start_heartbeat()
                return lease, note
            current, heartbeat = read(path)
            if heartbeat is None:
                continue  # released between our attempt and the read: try again
            why = stale_reason(current, heartbeat, ttl)
            if why is None:
                return None, f"held by {current.where()}"
            if _take_over(path, current, ttl):
                note = f"took over a stale lease ({why})"
        return None, "contended"

    def _start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.path.stem}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            if not self.refresh():
                self.lost.set()
                return

    def still_mine(self) -> bool:
        current, _ = read(self.path)
        return current is not None and current.token == self.holder.token

    def refresh(self) -> bool:
        """Renew the heartbeat; False when the lease is no longer ours (taken over after we stalled)."""
        if not self.still_mine():
            return False
        try:
            os.utime(self.path)
        except FileNotFoundError:
            return False
        return self.still_mine()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self.still_mine():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _create(path: Path, holder: Holder) -> bool:
    """Create ``path`` holding ``holder`` iff it does not exist (atomic: link of a complete temporary file)."""
    tmp = path.with_name(f".{path.name}.{holder.host}.{holder.pid}.{holder.token}")
    tmp.write_text(json.dumps(holder.__dict__, sort_keys=True) + "\n")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(path: Path, seen: Holder | None, ttl: float) -> bool:
    """Remove a stale lease so it can be claimed; only one of several runners doing this at once succeeds."""
    tomb = path.with_name(f".{path.name}.stale.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        os.rename(path, tomb)
    except FileNotFoundError:
        return False  # someone else moved it first
    moved, heartbeat = read(tomb)
    same = (moved is None and seen is None) or (moved is not None and seen is not None and moved.token == seen.token)
    if not same or heartbeat is None or stale_reason(moved, heartbeat, ttl) is None:
        # between our look and our rename the holder renewed it, or it was claimed afresh: put it back
        try:
            os.link(tomb, path)
        except FileExistsError:
            pass
        tomb.unlink(missing_ok=True)
        return False
    tomb.unlink(missing_ok=True)
    return True


def holders(leases_dir: Path, ttl: float = TTL_S) -> dict[str, tuple[Holder | None, str | None]]:
    """Every lease in the folder: run id -> (holder, why it is stale or None while it is live)."""
    out = {}
    if not leases_dir.is_dir():
        return out
    for path in sorted(leases_dir.glob("*.json")):
        holder, heartbeat = read(path)
        if heartbeat is not None:
            out[path.stem] = (holder, stale_reason(holder, heartbeat, ttl))
    return out
