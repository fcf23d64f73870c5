"""``progbench status SUITE``: where each run stands, read from the store, its leases and the Slurm queue.

done (record verified) / running (a live lease: host, pid or job, epoch) / queued (a Slurm job waiting) / failed
(``work/failed.json``: the message, the log and its last line) / partial (interrupted: resumes from its checkpoint)
/ missing.
"""
from __future__ import annotations

import json
import time

from . import lease as leases
from .scheduler import progress_path, read_failure
from .store import Store
from .suite import Suite


def _last_line(path: str | None) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").replace("\r", "\n").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else ""


def _progress(store: Store, rid: str) -> str:
    try:
        p = json.loads(progress_path(store, rid).read_text())
    except (OSError, ValueError):
        return ""
    return f"{p['phase']} epoch {p['epoch']}/{p['epochs']}"


def suite_status(suite: Suite, store: Store, only: str | None = None) -> list[dict]:
    runs = suite.select(only)
    held = leases.holders(store.leases)
    jobs = {}
    slurm_dir = store.root / "slurm" / "jobs"
    if slurm_dir.is_dir():
        from .executors.slurm import job_record, job_states
        jobs = {r.run_id: job_record(store, r.run_id) for r in runs}
        jobs = {k: v for k, v in jobs.items() if v}
        try:
            states = job_states(sorted({j["job_id"] for j in jobs.values()}))
        except Exception as exc:  # noqa: BLE001 -- the queue is extra information; the store still answers
            states = {}
            print(f"note: the Slurm queue could not be read ({str(exc).splitlines()[0]})")
    rows = []
    for run in runs:
        rid = run.run_id
        entry = run.label.rsplit(f"-{run.family}-s", 1)[0]  # the runs entry's name: a ladder rung, an ablation
        row = {"run": rid, "status": "missing", "detail": "",
               "entry": "" if run.is_teacher or entry == run.method else entry}
        found = store.check(rid)
        job = jobs.get(rid)
        state = states.get(job["job_id"], "") if job else ""
        failure = read_failure(store, rid)
        if found.status == "done":
            row["status"] = "done"
        elif rid in held and held[rid][1] is None:
            holder = held[rid][0]
            row.update(status="running", detail=f"{holder.where()}, {_progress(store, rid) or 'starting'}, for "
                                                f"{(time.time() - holder.started) / 60:.0f} min")
        elif state.startswith(("PENDING", "REQUEUED", "CONFIGURING")):
            row.update(status="queued", detail=f"Slurm job {job['job_id']} {state.lower()}")
        elif state.startswith("RUNNING"):
            row.update(status="running", detail=f"Slurm job {job['job_id']}, {_progress(store, rid) or 'starting'}")
        elif failure:
            log = failure.get("log")
            last = _last_line(log)
            row.update(status="failed", detail=failure["message"] + (f"; log {log}" if log else "")
                       + (f" (last line: {last})" if last else ""))
        elif found.status in ("partial", "corrupt"):
            row.update(status=found.status, detail=(_progress(store, rid) + "; resumes") if found.status == "partial"
                       else found.reason)
        if rid in held and held[rid][1] is not None:
            row["detail"] += f"{'; ' if row['detail'] else ''}stale lease ({held[rid][1]}): the next runner takes over"
        rows.append(row)
    return rows


def format_status(suite: Suite, rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines = [f"suite {suite.name}: {len(rows)} runs: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))]
    width = max((len(r["run"]) for r in rows), default=10)
    named = max((len(r.get("entry", "")) for r in rows), default=0)
    for r in rows:
        name = f"{r.get('entry', ''):{named}s}  " if named else ""
        lines.append(f"{r['run']:{width}s}  {name}{r['status']:8s} {r['detail']}".rstrip())
    return "\n".join(lines)

