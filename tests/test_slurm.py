"""The Slurm executor on a real single-node cluster (tests/slurm/start.sh; .ci/run starts one): records identical to
the local executor's, teachers first by dependency, no second submission of a queued run, and a job preempted with
USR2 (what Slurm sends before a time limit or a preemption) requeued and finishing identically."""
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from progbench.executors import slurm
from progbench.store import Store
from tests.conftest import SUITES, assert_same_records, nontiming, run_cli

pytestmark = pytest.mark.slurm
RESUME = SUITES / "resume.yaml"
PREEMPT = SUITES / "preempt.yaml"  # 20 epochs: long enough to be preempted mid-training


def _why_no_cluster() -> str | None:
    if shutil.which("sbatch") is None:
        return "Slurm is not installed here (no sbatch on PATH); `apt-get install slurm-wlm munge` and " \
               "tests/slurm/start.sh give a single-node cluster (.ci/run does both)"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: no Slurm controller answers; start one with tests/slurm/start.sh"
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"no Slurm controller answers ({proc.stderr.strip()[:200]}); start one with tests/slurm/start.sh"
    return None


@pytest.fixture(scope="module")
def cluster():
    why = _why_no_cluster()
    if why:
        pytest.skip(why)


def _job(store: Path, rid: str) -> str:
    return json.loads((store / "slurm" / "jobs" / f"{rid}.json").read_text())["job_id"]


def test_smoke_on_slurm_matches_the_local_executor(cluster, smoke_store, tmp_path, capsys):
    store = tmp_path / "results"
    only = ("--only", "family=vgg,seed=0,method=kd")  # the teacher, then the KD student after it
    assert run_cli("run", "smoke", "--results", str(store), "--executor", "slurm", *only) == 0
    first = capsys.readouterr().out
    assert run_cli("run", "smoke", "--results", str(store), "--executor", "slurm", *only) == 0  # again, at once
    again = capsys.readouterr().out
    submitted = [line.split()[0].rstrip(":") for line in first.splitlines() if "submitted as job" in line]
    assert len(submitted) == 2 and submitted[0].startswith("teacher-") and submitted[1].startswith("kd-")
    # every job of a run that distils waited for the teacher's (afterok); scratch students only name the teacher
    teacher_job = _job(store, submitted[0])
    distilling = [line for line in first.splitlines()
                  if "submitted as job" in line and not line.startswith(("teacher-", "scratch-"))]
    assert distilling and all(f"after teacher job {teacher_job}" in line for line in distilling)
    # a second submission adds nothing that is queued, running or done
    assert "submitted as job" not in again
    assert again.count("not submitted again") + sum(Store(store).status(r) == "done" for r in submitted) >= \
        len(submitted)
    final = slurm.wait({rid: _job(store, rid) for rid in submitted}, Store(store), poll_s=2)
    assert set(final.values()) == {"done"}, final
    assert run_cli("run", "smoke", "--results", str(store), "--executor", "slurm", *only) == 0
    assert "submitted as job" not in capsys.readouterr().out
    # identical to the local executor's records of the same runs (every non-timing field, predictions by hash)
    local = {r.run_id: r for r in Store(smoke_store).records()}
    for rec in Store(store).records():
        other = local[rec.run_id]
        assert nontiming(rec.metrics) == nontiming(other.metrics), rec.run_id
        assert rec.files["predictions.safetensors"] == other.files["predictions.safetensors"], rec.run_id
    assert run_cli("status", "smoke", "--results", str(store), *only) == 0
    assert f"{len(submitted)} done" in capsys.readouterr().out


def test_a_preempted_job_is_requeued_and_finishes_identically(cluster, tmp_path):
    straight, requeued = tmp_path / "straight", tmp_path / "requeued"
    assert run_cli("run", str(PREEMPT), "--results", str(straight), "--no-progress") == 0
    assert run_cli("run", str(PREEMPT), "--results", str(requeued), "--executor", "slurm") == 0
    (rid,) = [p.stem for p in (requeued / "slurm" / "jobs").glob("*.json")]
    job = _job(requeued, rid)
    progress = requeued / "runs" / rid / "work" / "progress.json"
    deadline = time.time() + 300
    while time.time() < deadline and not (progress.exists() and json.loads(progress.read_text())["epoch"] >= 2):
        time.sleep(0.2)
    assert progress.exists(), "the job never trained an epoch"
    # USR2 is what Slurm sends ahead of a time limit or a preemption; submitit checkpoints and requeues
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    _start_requeued_now(job)
    final = slurm.wait({rid: job}, Store(requeued), poll_s=2)
    assert final == {rid: "done"}
    log = "\n".join(p.read_text() for p in (requeued / "slurm").glob(f"{job}/*.out"))
    assert "requeu" in log.lower() or "checkpoint" in log.lower(), log[-2000:]
    assert sum(f"{rid}: claimed" in line or f"{rid}: took over" in line for line in log.splitlines()) >= 2, \
        log[-2000:]  # two attempts of one job, the second resuming the first's checkpoint
    assert_same_records(straight, requeued)


def _start_requeued_now(job: str, timeout: float = 120) -> None:
    """Slurm holds a requeued job for two minutes (Reason=BeginTime); let it start at once, as a free cluster would."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True).stdout
        if "BeginTime" in state:
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
            return
        if not state.strip():
            return  # finished without being requeued: the assertions below say so
        time.sleep(0.5)


def test_an_unknown_partition_is_one_line(cluster, tmp_path, capsys):
    store = tmp_path / "results"
    assert run_cli("run", str(RESUME), "--results", str(store), "--executor", "slurm", "--partition", "nosuch") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sbatch refused run teacher-vgg" in err[0] and "partition" in err[0].lower(), err
    assert not list(store.glob("slurm/jobs/*.json"))  # nothing recorded as submitted
