"""The Slurm executor: every run is one job submitted with submitit (DeiT's ``run_with_submitit.py`` pattern).

The job calls the same code a local worker does (claim the run's lease, train, write the record); the trainer
neither knows nor cares that Slurm started it. A teacher's job id is an ``afterok`` dependency of its students.
A job preempted, or warned of its time limit (submitit asks Slurm for ``USR2`` before it; ``scancel --signal USR2``
does the same), is requeued by submitit and resumes from its last finished epoch. ``<store>/slurm/jobs/<run id>.json``
names each run's job, so submitting again skips runs whose job is queued or running (and runs that are done).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import submitit

from ..errors import UserError
from ..scheduler import epoch_progress, failure_line, mark_failed, new_session, ordered, read_failure
from ..store import Store, atomic_write_text
from ..suite import RunSpec

ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
          "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "PREEMPTED"}


def jobs_dir(store: Store) -> Path:
    return store.root / "slurm" / "jobs"


def job_record(store: Store, rid: str) -> dict | None:
    try:
        return json.loads((jobs_dir(store) / f"{rid}.json").read_text())
    except (OSError, ValueError):
        return None


def _need(command: str) -> None:
    if shutil.which(command) is None:
        raise UserError(f"{command} not found: Slurm's client commands are not on PATH; load Slurm (e.g. `module load "
                        f"slurm`) or use --executor local")


def job_states(job_ids: list[str]) -> dict[str, str]:
    """Slurm's state of each job still known to the controller (squeue); jobs it has forgotten are absent."""
    if not job_ids:
        return {}
    _need("squeue")
    proc = subprocess.run(["squeue", "-h", "-o", "%i %T %r", "-j", ",".join(job_ids)], capture_output=True,
                          text=True, timeout=60)
    if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
        raise UserError(f"squeue failed ({proc.stderr.strip() or proc.returncode}); is the Slurm controller "
                        f"reachable (`sinfo`)?")
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) >= 2:
            states[parts[0]] = parts[1] + (f" ({parts[2]})" if len(parts) > 2 and parts[2] != "None" else "")
    return states


class SlurmRun(submitit.helpers.Checkpointable):
    """The submitted callable: one run, in every task of its job (task = data-parallel rank). On a preemption or a
    time-limit warning, ``checkpoint`` resubmits the same call, which resumes from ``work/``."""

    def __init__(self, run: RunSpec, store_root: str, device: str, data_root: str | None, session: str):
        self.run, self.store_root, self.device, self.data_root, self.session = run, store_root, device, data_root, \
            session

    def __call__(self) -> str:
        import torch

        from .. import distributed
        from ..lease import Lease
        from ..runner import Runtime, execute

        env = submitit.JobEnvironment()
        rank, size = env.global_rank, env.num_tasks
        store = Store(self.store_root)
        rid = self.run.run_id
        rt = Runtime(store, torch.device(self.device), self.data_root, progress=False)
        world = distributed.init(rank, size, f"file://{store.work_dir(rid)}/.rendezvous-{env.job_id}", rt.device) \
            if size > 1 else distributed.SINGLE
        lease = None
        try:
            if rank == 0:
                store.work_dir(rid).mkdir(parents=True, exist_ok=True)
                while store.status(rid) != "done":  # another runner may hold it: wait for it to finish or go stale
                    lease, note = Lease.acquire(store.leases, rid)
                    if lease is not None:
                        print(f"{rid}: {note} ({lease.holder.where()})", flush=True)
                        break
                    print(f"{rid}: {note}; waiting", flush=True)
                    time.sleep(30)
            if not world.any(lease is not None):
                return f"{rid}: done by another runner"
            try:
                execute(self.run, rt, world, on_epoch=epoch_progress(store, rid) if rank == 0 else None,
                        should_stop=(lambda: lease.lost.is_set()) if lease else None)
            except Exception as exc:
                if rank == 0:
                    mark_failed(store, rid, self.session, failure_line(exc, self.run), str(Path(env.paths.stdout)))
                raise
            return f"{rid}: done"
        finally:
            if lease is not None:
                lease.release()
            distributed.shutdown(world)

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on preemption or a time-limit warning: requeue the same call (it resumes)."""
        return submitit.helpers.DelayedSubmission(self)


def _parameters(config, run: RunSpec, device: str) -> dict:
    s = config.slurm
    task = run.task
    params = {"job_name": f"pb-{run.label or run.run_id}"[:64], "ntasks_per_node": task.world_size,
              "cpus_per_task": s.get("cpus_per_task", task.threads), "time": _minutes(s.get("time", 60 * 24)),
              "signal_delay_s": int(os.environ.get("PROGBENCH_SLURM_SIGNAL_DELAY_S", 120))}
    for key in ("partition", "account", "qos", "constraint"):
        if s.get(key):
            params[key] = s[key]
    if s.get("mem_gb"):
        params["mem"] = f"{s['mem_gb']}G"
    gpus = s.get("gpus_per_task", 1 if device == "cuda" else 0)
    if gpus:
        params["gpus_per_task"] = gpus
    if s.get("sbatch"):
        params["additional_parameters"] = dict(s["sbatch"])
    return params


def _minutes(value) -> int:
    """A time limit in minutes: a number, or Slurm's [D-]HH:MM[:SS] / MM form."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return max(1, int(value))
    text = str(value)
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")] if rest.replace(":", "").isdigit() else None
    if not parts or len(parts) > 3:
        raise UserError(f"executor.slurm.time {value!r}: give minutes or [D-]HH:MM[:SS]")
    h, m = (parts[0], parts[1]) if len(parts) >= 2 else (0, parts[0])
    return max(1, (int(days) if days else 0) * 1440 + h * 60 + m)


def submit(runs: list[RunSpec], store: Store, config, device: str, data_root: str | None, write=print) -> dict:
    """Submit one job per run the store lacks; returns run id -> job id (new or already active)."""
    _need("sbatch")
    session = new_session()
    folder = store.root / "slurm"
    jobs_dir(store).mkdir(parents=True, exist_ok=True)
    known = {r.run_id: job_record(store, r.run_id) for r in runs}
    states = job_states(sorted({j["job_id"] for j in known.values() if j}))
    executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=int(config.slurm.get("max_requeues", 3)))
    job_ids: dict[str, str] = {}
    for run in ordered(runs):
        rid = run.run_id
        if store.status(rid) == "done":
            continue
        held = known.get(rid)
        state = states.get(held["job_id"], "") if held else ""
        if state.split(" ")[0] in ACTIVE:
            job_ids[rid] = held["job_id"]
            write(f"{rid}: already {states[held['job_id']].lower()} as job {held['job_id']}; not submitted again")
            continue
        params = _parameters(config, run, device)
        teacher_job = job_ids.get(run.depends_on) if run.depends_on else None
        if run.depends_on and teacher_job is None and store.status(run.depends_on) != "done":
            raise UserError(f"run {rid} needs teacher run {run.depends_on}, which is neither done nor submitted; "
                            f"select it too")
        if teacher_job:
            params["dependency"] = f"afterok:{teacher_job}"
        executor.update_parameters(**params)
        with _stderr_captured() as captured:  # sbatch writes its complaints to our stderr: one line instead
            try:
                job = executor.submit(SlurmRun(run, str(store.root), device, data_root, session))
                error = None
            except Exception as exc:  # sbatch's own message: an unknown partition, an unreachable controller, ...
                error = exc
        if error is not None:
            raise UserError(f"sbatch refused run {rid}: {_sbatch_error(captured.text + chr(10) + str(error))}")
        job_ids[rid] = str(job.job_id)
        atomic_write_text(jobs_dir(store) / f"{rid}.json",
                          json.dumps({"job_id": str(job.job_id), "session": session, "submitted": time.time(),
                                      "log": str(job.paths.stdout)}, sort_keys=True) + "\n")
        write(f"{rid}: submitted as job {job.job_id}" + (f" (after teacher job {teacher_job})" if teacher_job else ""))
    return job_ids


class _stderr_captured:
    """Collect what sbatch says on stderr: submitit copies it to ``sys.stderr``, a child may write to fd 2."""

    def __enter__(self):
        import io
        import tempfile
        sys.stderr.flush()
        self.file = tempfile.TemporaryFile(mode="w+")
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        self.python, self.buffer = sys.stderr, io.StringIO()
        sys.stderr = self.buffer
        self.text = ""
        return self

    def __exit__(self, *exc):
        sys.stderr = self.python
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.buffer.getvalue() + self.file.read()
        self.file.close()


def _sbatch_error(text: str) -> str:
    for line in text.splitlines():
        if "error" in line.lower():
            return line.strip()
    return text.strip().splitlines()[-1] if text.strip() else "no message"


def wait(job_ids: dict[str, str], store: Store, poll_s: float = 5.0, write=print) -> dict[str, str]:
    """Block until none of the jobs is queued or running; returns run id -> final status (done / failed / ...)."""
    while True:
        states = job_states(sorted(set(job_ids.values())))
        if not any(s.split()[0] in ACTIVE for s in states.values()):
            break
        time.sleep(poll_s)
    final = {}
    for rid in job_ids:
        status = store.status(rid)
        final[rid] = status if status == "done" else ("failed" if read_failure(store, rid) else "missing")
    return final
