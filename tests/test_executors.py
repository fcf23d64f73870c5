"""Executors and a shared store: concurrent runners each train a run once, a dead runner's lease is taken over, a
local worker pool gives the records one process gives, Ctrl-C stops at an epoch end, data parallelism (P=2), and
the settings that enter a run's spec."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from progbench import lease
from progbench.store import Store
from progbench.suite import load_suite
from tests.conftest import SUITES, assert_same_records, run_cli

REPO = Path(__file__).resolve().parents[1]
POOL = SUITES / "pool.yaml"
RESUME = SUITES / "resume.yaml"


def _start(store: Path, *args: str, suite: Path = POOL) -> subprocess.Popen:
    """A runner as a script's background job (`progbench run ... &`), which starts with SIGINT ignored: a `kill -INT`
    must still stop it at the next epoch end."""
    cmd = [sys.executable, "-m", "progbench.cli", "run", str(suite), "--results", str(store), "--no-progress", *args]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def _trainings(outputs: list[str]) -> dict[str, int]:
    """How many times each run was started (or resumed) across the runners' outputs."""
    count: dict[str, int] = {}
    for out in outputs:
        for line in out.splitlines():
            words = line.split()
            if words[:1] == ["[w1]"] or words[:1] == ["[w2]"]:
                words = words[1:]
            if words[:1] in (["started"], ["resuming"]):
                rid = words[1].rstrip(";")
                count[rid] = count.get(rid, 0) + 1
    return count


def _leftovers(store: Path) -> list[Path]:
    """Leases, temporary files and rendezvous files left in a store."""
    return [p for p in store.rglob("*") if p.is_file() and (
        p.parent.name == "leases" or ".tmp" in p.name or p.name.startswith((".rendezvous", ".checkpoint")))]


def test_concurrent_runners_train_each_run_once_and_pools_match(tmp_path):
    suite = load_suite(str(POOL))
    ids = {r.run_id for r in suite.runs}
    stores = {}
    for n in (2, 4):
        store = tmp_path / f"runners{n}"
        procs = [_start(store, "--workers", "1") for _ in range(n)]
        outputs = [p.communicate(timeout=600)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        assert _trainings(outputs) == {rid: 1 for rid in ids}, outputs
        assert {r.run_id for r in Store(store).records()} == ids  # every record verifies
        assert _leftovers(store) == []
        stores[n] = store
    pool = tmp_path / "pool"
    proc = _start(pool, "--workers", "2")
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    assert _trainings([out]) == {rid: 1 for rid in ids}
    assert "[w1]" in out and "[w2]" in out and "-- done 6/6" in out
    assert _leftovers(pool) == []
    # where and beside what a run trained does not move its numbers (threads per run are in its spec)
    assert_same_records(stores[2], stores[4])
    assert_same_records(stores[2], pool)


def test_until_starts_no_run_that_would_end_after_it(tmp_path, capsys):
    """``--until``: a machine lent for a while (a session, an allocation) starts no run its estimate says would be cut
    off; each run not started is named with the reason (a student whose teacher did not start, too), nothing is
    written, and a later invocation trains them."""
    store = tmp_path / "results"
    ids = {r.run_id for r in load_suite(str(POOL)).runs}
    assert run_cli("run", str(POOL), "--results", str(store), "--no-progress", "--workers", "2", "--until", "+0") == 0
    out = capsys.readouterr().out
    assert "0 run(s) trained" in out and f"{len(ids)} not started (they would end after --until)" in out
    assert {line.split()[3].rstrip(":") for line in out.splitlines() if "not starting" in line} == ids
    assert "would end after the deadline" in out and "was not started" in out
    assert Store(store).records() == []
    assert run_cli("run", str(POOL), "--results", str(store), "--no-progress", "--until", "+600") == 0
    assert {r.run_id for r in Store(store).records()} == ids
    with pytest.raises(SystemExit) as exited:  # argparse's one line, not a traceback
        run_cli("run", str(POOL), "--results", str(store), "--until", "25:00")
    assert exited.value.code == 2 and "'25:00' is not HH:MM or +MINUTES" in capsys.readouterr().err


def test_leave_held_leaves_a_run_another_runner_holds_and_ends(tmp_path, capsys):
    """``--leave-held``: a runner walking the same list as another (one per core, a cell at a time) leaves the run the
    other holds to it and ends once only such runs are left, instead of idling until it is done; a later invocation
    trains it once its holder has let go."""
    store = tmp_path / "results"
    suite = load_suite(str(POOL))
    held = next(r for r in suite.runs if not r.is_teacher)
    claim, note = lease.Lease.acquire(Store(store).leases, held.run_id)  # another runner, as far as the store knows
    assert claim is not None and note == "claimed"
    try:
        assert run_cli("run", str(POOL), "--results", str(store), "--no-progress", "--workers", "2",
                       "--leave-held") == 0
    finally:
        claim.release()
    out = capsys.readouterr().out
    assert f"leaving {held.run_id} to its holder (held by " in out and "1 left to the runners holding them" in out
    assert {r.run_id for r in Store(store).records()} == {r.run_id for r in suite.runs} - {held.run_id}
    assert run_cli("run", str(POOL), "--results", str(store), "--no-progress", "--leave-held") == 0
    out = capsys.readouterr().out
    assert "1 run(s) trained" in out and "left to" not in out
    assert {r.run_id for r in Store(store).records()} == {r.run_id for r in suite.runs}


def test_until_a_clock_time_is_the_nearest_one():
    """HH:MM is the nearest such time: one a minute ago has passed (a driver that hands one deadline to phase after
    phase starts nothing once it is past, not runs until tomorrow), one 3 h ahead is today's or tomorrow's, across
    midnight too."""
    import datetime

    from progbench.cli import deadline_arg
    now = datetime.datetime.now()
    for minutes in (-1, -180, 180, 11 * 60):
        at = now + datetime.timedelta(minutes=minutes)
        got = deadline_arg(at.strftime("%H:%M")) - now.timestamp()
        assert abs(got - minutes * 60) <= 61, (minutes, got)


def test_ctrl_c_stops_workers_at_an_epoch_end_and_the_run_resumes(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert run_cli("run", str(RESUME), "--results", str(straight), "--no-progress", "--threads-per-worker", "1") == 0
    proc = _start(stopped, "--threads-per-worker", "1", "--workers", "2", suite=RESUME)
    deadline = time.time() + 300
    while time.time() < deadline and not list(stopped.glob("runs/*/work/progress.json")):
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, out
    assert "workers stop at the next epoch end" in out and "stopped after train epoch" in out
    (rid,) = [p.name for p in (stopped / "runs").iterdir()]
    assert Store(stopped).status(rid) == "partial" and _leftovers(stopped) == []
    epochs = torch.load(stopped / "runs" / rid / "work" / "checkpoint.pt", weights_only=False)["train_state"]["epoch"]
    assert 1 <= epochs < 6
    assert run_cli("run", str(RESUME), "--results", str(stopped), "--no-progress", "--threads-per-worker", "1") == 0
    assert_same_records(straight, stopped)


def test_workers_of_a_killed_driver_stop_at_their_next_epoch_end(tmp_path):
    """A driver killed outright (no chance to tell its workers) leaves no worker training on alone."""
    proc = _start(tmp_path, "--threads-per-worker", "1", "--workers", "2", suite=RESUME)
    deadline = time.time() + 300
    while time.time() < deadline and not list(tmp_path.glob("runs/*/work/progress.json")):
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)  # anything left of the runner's session (its workers)?
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the workers of a killed driver were still running after 2 minutes")
    (rid,) = [p.name for p in (tmp_path / "runs").iterdir()]
    assert Store(tmp_path).status(rid) == "partial"  # stopped at an epoch end, checkpointed, not finished


def test_two_processes_per_run_match_one_and_resume_exactly(tmp_path):
    """P=2 (gloo) against P=1: the same global batches and augmentation, gradients averaged over the halves; only
    BatchNorm's statistics (over 25 images instead of 50) and the order of float sums differ."""
    one, two, killed = tmp_path / "p1", tmp_path / "p2", tmp_path / "p2-killed"
    common = ("--threads-per-worker", "1", "--no-progress")
    assert run_cli("run", str(RESUME), "--results", str(one), *common) == 0
    assert run_cli("run", str(RESUME), "--results", str(two), "--nproc-per-run", "2", *common) == 0
    (a,), (b,) = Store(one).records(), Store(two).records()
    assert b.spec["task"]["world_size"] == 2 and "world_size" not in a.spec["task"] and a.run_id != b.run_id
    assert b.env()["world_size"] == 2
    log_a, log_b = a.log(), b.log()
    assert [r["images"] for r in log_a] == [r["images"] for r in log_b]
    assert a.metrics["training"]["train_flops"] == b.metrics["training"]["train_flops"]
    for ra, rb in zip(log_a, log_b):  # the loss curve: within 10 % at every epoch
        assert abs(ra["loss/ce"] - rb["loss/ce"]) <= 0.10 * ra["loss/ce"], (ra, rb)
    top1 = [r.metrics["points"][0]["test_top1"] for r in (a, b)]
    assert abs(top1[0] - top1[1]) <= 0.10, top1  # 200 test images: 10 points is ~2.5 binomial std
    # killed after an epoch and resumed: exactly the uninterrupted P=2 run
    proc = _start(killed, "--nproc-per-run", "2", "--threads-per-worker", "1", suite=RESUME)
    deadline = time.time() + 300
    while time.time() < deadline and not _epoch_at_least(killed, 2):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert list(killed.glob("leases/*.json")), "the killed runner's lease stays behind"
    assert run_cli("run", str(RESUME), "--results", str(killed), "--nproc-per-run", "2", *common) == 0
    assert_same_records(two, killed)
    assert _leftovers(killed) == []


def _epoch_at_least(store: Path, n: int) -> bool:
    for p in store.glob("runs/*/work/progress.json"):
        try:
            if json.loads(p.read_text())["epoch"] >= n:
                return True
        except (OSError, ValueError):
            pass
    return False


def test_placement_enters_the_spec_and_the_default_keeps_committed_ids():
    cpu = load_suite("cpu")
    committed = Store(REPO / "results")
    assert all(committed.run_dir(r.run_id).is_dir() for r in cpu.runs)  # default: 2 threads, one process
    assert all("threads" not in r.spec["task"] and "world_size" not in r.spec["task"] for r in cpu.runs)
    one = load_suite("cpu", {"threads_per_worker": 1})
    assert all(r.spec["task"]["threads"] == 1 for r in one.runs)
    assert not {r.run_id for r in one.runs} & {r.run_id for r in cpu.runs}
    assert load_suite(str(POOL)).runs[0].task.threads == 1  # the suite's executor section


# --- leases -----------------------------------------------------------------------------------------------------
def test_a_lease_is_exclusive_and_a_stale_one_is_taken_over(tmp_path):
    first, note = lease.Lease.acquire(tmp_path, "run-a")
    assert first is not None and note == "claimed"
    second, why = lease.Lease.acquire(tmp_path, "run-a")
    assert second is None and "held by" in why
    # a heartbeat older than the limit: taken over, and the old holder learns it lost the run
    old = time.time() - 3600
    os.utime(tmp_path / "run-a.json", (old, old))
    third, note = lease.Lease.acquire(tmp_path, "run-a", ttl=60)
    assert third is not None and note.startswith("took over a stale lease (heartbeat")
    assert not first.refresh() and third.refresh()
    first.release()  # not its lease any more: leaves the new holder's file alone
    assert (tmp_path / "run-a.json").exists()
    third.release()
    assert not (tmp_path / "run-a.json").exists() and list(tmp_path.iterdir()) == []


def test_a_dead_holder_or_a_garbage_lease_is_stale(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    holder = lease.Holder.me()
    holder.pid, holder.pid_started = dead.pid, None
    (tmp_path / "run-b.json").write_text(json.dumps(holder.__dict__))
    got, note = lease.Lease.acquire(tmp_path, "run-b")
    assert got is not None and "is gone" in note
    got.release()
    (tmp_path / "run-c.json").write_text("{not json")
    got, note = lease.Lease.acquire(tmp_path, "run-c")
    assert got is not None and "unreadable lease file" in note
    got.release()


# --- bad input ----------------------------------------------------------------------------------------------------
BAD = {
    "no workers": (["--workers", "0"], "--workers (executor.workers) must be a whole number >= 1, not 0"),
    "negative threads": (["--threads-per-worker", "-3"], "must be a whole number >= 1, not -3"),
    "more threads than cores": (["--threads-per-worker", str((os.cpu_count() or 1) + 1)], "cores; use at most"),
    "no processes": (["--nproc-per-run", "0"], "--nproc-per-run (executor.nproc_per_run) must be a whole number"),
    "batch does not split": (["--nproc-per-run", "3"], "batch size 50 does not split over 3 processes"),
    "bad sbatch option": (["--executor", "slurm", "--sbatch", "exclusive"], "--sbatch 'exclusive': give KEY=VALUE"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_executor_settings_are_one_line(case, tmp_path, capsys):
    args, message = BAD[case]
    assert run_cli("run", str(POOL), "--results", str(tmp_path / "r"), *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "r").exists()


def test_slurm_without_sbatch_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert run_cli("run", str(POOL), "--results", str(tmp_path / "r"), "--executor", "slurm") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sbatch not found" in err[0] and "--executor local" in err[0]


def test_a_user_config_file_sets_the_executor(tmp_path, monkeypatch, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("executor: {threads_per_worker: 1, workers: 1}\n")
    monkeypatch.setenv("PROGBENCH_CONFIG", str(config))
    assert load_suite("cpu").runs[0].spec["task"]["threads"] == 1
    config.write_text("executor: {threads: 1}\n")
    assert run_cli("plan", "cpu") == 2
    assert "unknown key(s) ['threads']" in capsys.readouterr().err


def test_status_names_failed_and_running_runs(tmp_path, capsys):
    store = tmp_path / "results"
    assert run_cli("run", str(SUITES / "nan.yaml"), "--results", str(store), "--no-progress") == 1
    capsys.readouterr()
    assert run_cli("status", str(SUITES / "nan.yaml"), "--results", str(store)) == 0
    out = capsys.readouterr().out
    assert "1 done" in out and "1 failed" in out and "loss ce is nan" in out
    assert run_cli("status", str(SUITES / "minigrid.yaml"), "--results", str(store), "--only", "seed=0") == 0
    rung = next(x for x in capsys.readouterr().out.splitlines() if " kd-x0.5 " in x)  # a runs entry's own name
    assert rung.startswith("kd-vgg-s0-") and "missing" in rung
    # a live lease (this process) shows as running, with where
    rid = next(p.name for p in (store / "runs").iterdir() if p.name.startswith("diverges"))
    held, _ = lease.Lease.acquire(Store(store).leases, rid)
    try:
        assert run_cli("status", str(SUITES / "nan.yaml"), "--results", str(store)) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(rid))
        assert "running" in line and f"pid {os.getpid()}" in line
    finally:
        held.release()
