"""What a careful user hits first: failures of the data, the disk and the method as one line with nothing left behind;
no report lost to a typo; an interrupted record write or fresh rerun resumed; every method resumed exactly; the
stale-code guard; quiet, unbuffered output."""
import ast
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from progbench import protocol
from progbench.store import Store, sha256_file
from progbench.suite import load_suite
from tests.conftest import REPO, nontiming, run_cli

TINY = """
name: tiny
executor: {threads_per_worker: 1}
dataset: {name: cifar10, val_per_class: 5, train_per_class: 10, test_per_class: 5}
budgets: {b: {epochs: 2, batch_size: 50, precision: fp32, schedule: {name: cosine, warmup_epochs: 0}}}
families:
  vgg: {teacher: pb_vgg_tiny, student: pb_vgg_tiny, teacher_budget: b, budget: b,
        student_kwargs: {widths: [4, 8, 8, 16, 16]}}
runs: []
"""


def _suite(tmp_path: Path, text: str = TINY, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _one_error_line(capsys, code: int, returned: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert returned == code and len(err) == 1 and "Traceback" not in err[0], err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp" in p.name or p.name.startswith(".progbench")]


# --- every method, interrupted at every checkpoint and resumed, ends as the uninterrupted run -------------------------

def test_every_method_resumed_at_every_checkpoint_matches_the_uninterrupted_run(smoke_store, tmp_path):
    """One run of each method of the smoke suite, stopped after every epoch (each resume a fresh method and trainer:
    all that carries over is the checkpoint), has every non-timing field of metrics.json and log.jsonl and its
    predictions equal to the smoke store's uninterrupted run."""
    import torch

    from progbench.reproduce import seed_scratch_store
    from progbench.runner import Runtime, execute
    from progbench.train import Interrupted

    suite = load_suite("smoke")
    chosen = {}
    for run in suite.runs:
        if not run.is_teacher and run.seed == 0:
            chosen.setdefault(run.method, run)
    assert set(chosen) == {"scratch", "kd", "pwl", "sws", "des_scratch", "des_pretrain", "bdistil", "resched",
                           "noresched"}
    straight, store = Store(smoke_store), Store(tmp_path / "resumed")
    seed_scratch_store(straight, store, [r.run_id for r in suite.runs if r.is_teacher])  # the same teachers
    rt = Runtime(store, torch.device("cpu"), progress=False)
    for run in chosen.values():
        stops = 0
        while True:
            try:
                execute(run, rt, should_stop=lambda: True)  # stop at the first checkpoint this attempt writes
                break
            except Interrupted:
                stops += 1
        a, b = straight.get(run.run_id), store.get(run.run_id)
        assert stops >= 2 and b is not None, run.label
        assert nontiming(a.metrics) == nontiming(b.metrics), run.label
        logs = [[nontiming(row) for row in r.log()] for r in (a, b)]
        assert logs[0] == logs[1], run.label
        assert a.files["predictions.safetensors"] == b.files["predictions.safetensors"], run.label


# --- an interrupted record write is an interrupted run ----------------------------------------------------------------

def test_an_interrupted_record_write_resumes_not_quarantined(smoke_store, tmp_path, capsys):
    store_dir = tmp_path / "results"
    shutil.copytree(smoke_store, store_dir)
    store = Store(store_dir)
    rec = next(r for r in store.records() if r.spec["method"] == "kd")
    before = nontiming(rec.metrics)
    (rec.path / "record.json").unlink()  # killed after the result files, before the record: as a kill leaves it
    (rec.path / "log.jsonl").write_text("")  # and a file it was rewriting
    (rec.path / f".metrics.json.tmp{os.getpid() + 1}").write_text("{")  # a temporary file of the killed process
    assert store.status(rec.run_id) == "partial"
    assert run_cli("run", "smoke", "--results", str(store_dir), "--no-progress", "--only", f"id={rec.run_id}",
                   "--workers", "1") == 0
    assert f"resuming {rec.run_id}" in capsys.readouterr().out
    again = store.get(rec.run_id)
    assert again is not None and nontiming(again.metrics) == before
    assert not (store_dir / "quarantine").exists() and not _leftovers(store_dir)


def test_an_interrupted_fresh_rerun_resumes_into_its_scratch_store(smoke_store, tmp_path, capsys):
    scratch = tmp_path / "scratch"
    args = ["reproduce", "--suite", "smoke", "--fresh", "method=kd,family=vgg,seed=1", "--results", str(smoke_store),
            "--scratch", str(scratch), "--no-progress", "--workers", "1"]
    assert run_cli(*args) == 0
    rid = next(r.run_id for r in Store(scratch).records() if r.spec["method"] == "kd")
    (scratch / "runs" / rid / "record.json").unlink()  # as an interruption while its record was written leaves it
    assert run_cli(*args) == 0
    out = capsys.readouterr().out
    assert f"fresh: resuming 1 run(s) into {scratch}" in out and "fresh: 1 of 1 run(s) reproduced" in out
    other = args[:4] + ["method=kd,family=vgg,seed=0"] + args[5:]  # another rerun's scratch store is not reused
    assert run_cli(*other) == 2
    assert "it is the scratch store of another rerun" in capsys.readouterr().err


# --- the report: never lost to a typo, swapped in whole ---------------------------------------------------------------

def _small_store(smoke_store: Path, dest: Path) -> Path:
    (dest / "runs").mkdir(parents=True)
    for d in (smoke_store / "runs").iterdir():
        if d.name.startswith(("teacher-vgg", "kd-vgg")):
            shutil.copytree(d, dest / "runs" / d.name, ignore=shutil.ignore_patterns("work"))
    return dest


def test_report_refuses_a_missing_or_empty_store_and_another_stores_default(smoke_store, tmp_path, capsys,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default reports/ and results/ are this folder's
    out = tmp_path / "mine"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "t.csv").write_text("kept\n")
    _one_error_line(capsys, 2, run_cli("report", "--results", str(tmp_path / "resluts"), "--out", str(out)),
                    "does not exist (a mistyped --results?)")
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    _one_error_line(capsys, 2, run_cli("report", "--results", str(tmp_path / "empty"), "--out", str(out)),
                    "holds no finished run")
    assert (out / "tables" / "t.csv").read_text() == "kept\n"
    (tmp_path / "reports").mkdir()
    _one_error_line(capsys, 2, run_cli("report", "--results", str(smoke_store)), "pass --out DIR", "--force")
    _one_error_line(capsys, 2, run_cli("reproduce", "--suite", "smoke", "--results", str(smoke_store),
                                       "--no-progress"), "pass --out DIR")
    assert not any((tmp_path / "reports").iterdir())


def test_report_rebuild_swaps_in_only_a_finished_build(smoke_store, tmp_path, capsys):
    small = _small_store(smoke_store, tmp_path / "small")
    out = tmp_path / "out"
    for rel, text in {"tables/gone.csv": "stale\n", "figures/gone.png": "stale\n", "notes.txt": "mine\n",
                      "data/published.csv": "mine\n"}.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    assert run_cli("report", "--results", str(small), "--out", str(out)) == 0
    assert "files written to" in capsys.readouterr().out
    assert not (out / "tables" / "gone.csv").exists() and not (out / "figures" / "gone.png").exists()
    assert (out / "notes.txt").read_text() == "mine\n" and (out / "data" / "published.csv").read_text() == "mine\n"
    built = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert (out / "tables" / "baselines.csv") in built and (out / "README.md") in built
    # a store whose record the report cannot read: the build fails, and the report is left exactly as it was
    broken = tmp_path / "broken"
    shutil.copytree(small, broken)
    victim = next(d for d in (broken / "runs").iterdir() if d.name.startswith("kd-"))
    metrics = json.loads((victim / "metrics.json").read_text())
    del metrics["training"]
    (victim / "metrics.json").write_text(json.dumps(metrics))
    record = json.loads((victim / "record.json").read_text())
    record["files"]["metrics.json"] = {"sha256": sha256_file(victim / "metrics.json"),
                                       "bytes": (victim / "metrics.json").stat().st_size}
    (victim / "record.json").write_text(json.dumps(record))
    assert run_cli("report", "--results", str(broken), "--out", str(out)) != 0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == built


# --- the stale-code guard ---------------------------------------------------------------------------------------------

MINE = '''
from progbench.methods.scratch import Scratch


class Mine(Scratch):
    name = "mine"
    version = "1"
'''


def test_changed_method_source_without_a_version_bump_is_named(tmp_path, capsys):
    method = tmp_path / "mine.py"
    method.write_text(MINE)
    suite = _suite(tmp_path, TINY.replace("runs: []", f"runs:\n  - {{method: \"{method}:Mine\", families: [vgg]}}"))
    store = str(tmp_path / "results")
    assert run_cli("run", str(suite), "--results", store, "--no-progress", "--only", "method=mine", "--workers",
                   "1") == 0
    env = json.loads(next((tmp_path / "results" / "runs").glob("mine-*/env.json")).read_text())
    assert env["method_source"]["files"] == [str(method.resolve()), "methods/scratch.py"]  # the file, its base's
    assert len(env["method_source"]["sha256"]) == 64
    capsys.readouterr()
    assert run_cli("plan", str(suite), "--results", store, "--only", "method=mine") == 0
    assert capsys.readouterr().err == ""  # unchanged: silent
    method.write_text('"""My method."""\n# prose is not code\n' + MINE.replace(
        'name = "mine"', '"""Scratch, renamed."""\n    name = "mine"'))
    assert run_cli("plan", str(suite), "--results", store, "--only", "method=mine") == 0
    assert capsys.readouterr().err == ""
    method.write_text(MINE + "\n    def loss(self, batch):  # edited, version not bumped\n"
                             "        return {k: 2 * v for k, v in super().loss(batch).items()}\n")
    assert run_cli("plan", str(suite), "--results", store, "--only", "method=mine") == 0
    captured = capsys.readouterr()
    assert "(1 cached)" in captured.out
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("progbench: warning: method mine's source") and "version '1' was not bumped" in line
    _one_error_line(capsys, 2, run_cli("run", str(suite), "--results", store, "--only", "method=mine", "--strict",
                                       "--no-progress"), "--strict refuses stale cached runs")
    method.write_text(method.read_text().replace('version = "1"', 'version = "2"'))  # bumped: a new run, no warning
    assert run_cli("plan", str(suite), "--results", store, "--only", "method=mine") == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "(0 cached)" in captured.out


def test_the_source_fingerprint_does_not_depend_on_the_python_version():
    """A run trained under another Python (3.12 on a GPU machine, 3.11 here) is checked against the same code: the
    fingerprint leaves empty fields out (3.12 gave every function and class an empty ``type_params``), and the older
    ast-1 digests are re-dumped as the record's Python did."""
    source = (REPO / "methods" / "pwl.py").read_bytes()
    tree = ast.parse(source)
    before = protocol.canonical_dump(tree)
    saved = {c: c._fields for c in (ast.FunctionDef, ast.ClassDef)}
    try:
        for c in saved:  # this Python's trees, with the field 3.12 added
            c._fields = tuple(f for f in c._fields if f != "type_params") + ("type_params",)
        for node in ast.walk(tree):
            if isinstance(node, tuple(saved)):
                node.type_params = []
        assert "type_params=[]" in ast.dump(tree) and protocol.canonical_dump(tree) == before
    finally:
        for c, fields in saved.items():
            c._fields = fields
    assert "type_params=[]" in protocol.code_of_ast1(source, "3.12.3")
    assert "type_params" not in protocol.code_of_ast1(source, "3.11.7")


def test_no_committed_record_holds_results_of_other_code():
    """Every record in the committed store was made by its method's current code (or the code changed with a version
    bump, which is a new run id): the stale-code guard passes on records made under Python 3.11 and 3.12 alike."""
    pythons, stale = set(), []
    for record in Store(REPO / "results").records():
        env = record.env()
        recorded = env.get("method_source") or {}
        method = protocol.get_method(record.spec["method"])
        if not recorded.get("sha256") or method.version != record.spec["method_version"]:
            continue
        pythons.add(env["python"].rsplit(".", 1)[0])
        if protocol.source_changed(method, recorded, env["python"]):
            stale.append(record.run_id)
    assert not stale, stale
    assert {"3.11", "3.12"} <= pythons  # both kinds of record were checked


# --- the disk, the data, the method: one line, nothing left behind ----------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to stand in for a full disk")
def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, capsys):
    suite = _suite(tmp_path)
    rid = load_suite(str(suite)).runs[0].run_id
    work = tmp_path / "results" / "runs" / rid / "work"
    work.mkdir(parents=True)
    tmp = work / f".checkpoint.pt.tmp{os.getpid()}"  # the checkpoint's temporary file lands on a full device
    tmp.symlink_to("/dev/full")
    _one_error_line(capsys, 2, run_cli("run", str(suite), "--results", str(tmp_path / "results"), "--no-progress",
                                       "--workers", "1"), f"cannot write {work / 'checkpoint.pt'}")  # in this process
    assert not tmp.is_symlink() and not (work / "checkpoint.pt").exists()
    assert not _leftovers(tmp_path / "results") and not list((tmp_path / "results" / "leases").iterdir())


def _as_user(cmd: list[str]) -> list[str]:
    """``cmd`` run without root's power to write anywhere (so a read-only folder is read-only to it)."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be made read-only")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *cmd]


def test_a_read_only_store_is_one_line(tmp_path):
    store = tmp_path / "results"
    store.mkdir()
    store.chmod(0o555)
    try:
        cmd = [sys.executable, "-m", "progbench.cli", "run", str(_suite(tmp_path)), "--results", str(store),
               "--no-progress"]
        proc = subprocess.run(_as_user(cmd), cwd=REPO, capture_output=True, text=True)
    finally:
        store.chmod(0o755)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert err[0].startswith(f"progbench: error: cannot create {store}/") and "Permission denied" in err[0]
    assert "pass --results a folder you can write" in err[0]
    assert not any(store.iterdir())


def _data_root(tmp_path: Path, train: bytes) -> Path:
    real = Path(os.environ["PROGBENCH_DATA"]) / "cifar10" / "plain_text"
    root = tmp_path / "data"
    (root / "cifar10" / "plain_text").mkdir(parents=True)
    (root / "cifar10" / "plain_text" / "train-00000-of-00001.parquet").write_bytes(train)
    (root / "cifar10" / "plain_text" / "test-00000-of-00001.parquet").symlink_to(real / "test-00000-of-00001.parquet")
    return root


def _parquet() -> bytes:
    return (Path(os.environ["PROGBENCH_DATA"]) / "cifar10" / "plain_text" / "train-00000-of-00001.parquet").read_bytes()


DAMAGED = {
    "truncated parquet": (lambda b: b[:100_000], "is not a readable parquet file"),
    "corrupt parquet": (lambda b: b[:4] + os.urandom(200_000) + b[-20_000:], "the file is truncated or corrupt"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_data_is_one_line_naming_the_file(case, tmp_path, capsys, monkeypatch):
    damage, message = DAMAGED[case]
    root = _data_root(tmp_path, damage(_parquet()))
    monkeypatch.setenv("PROGBENCH_DATA", str(root))
    _one_error_line(capsys, 2, run_cli("run", str(_suite(tmp_path)), "--results", str(tmp_path / "r"),
                                       "--no-progress", "--workers", "1"), message, "train-00000-of-00001.parquet")


def test_an_empty_data_folder_fails_at_once_without_hub_retries(tmp_path, capsys, monkeypatch):
    import time
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PROGBENCH_DATA", str(tmp_path / "empty"))
    monkeypatch.delenv("HF_DATASETS_OFFLINE")  # only the hub's own offline switch is set
    t0 = time.perf_counter()
    _one_error_line(capsys, 2, run_cli("run", str(_suite(tmp_path)), "--results", str(tmp_path / "r"),
                                       "--no-progress", "--workers", "1"),
                    "dataset cifar10 not found under the data root")
    assert time.perf_counter() - t0 < 20


def test_a_methods_own_exception_names_the_method(tmp_path, capsys):
    suite = _suite(tmp_path, TINY.replace("runs: []", "runs:\n  - {method: \"tests/user_methods.py:StepRaises\", "
                                                      "families: [vgg]}"))
    line = _one_error_line(capsys, 1, run_cli("run", str(suite), "--results", str(tmp_path / "r"), "--no-progress",
                                              "--only", "method=step-raises", "--workers", "1"),
                           "progbench: run failed:")
    assert "method step-raises raised KeyError: 'no such loss' at user_methods.py:" in line
    assert not _leftovers(tmp_path / "r")


# --- quiet and unbuffered ---------------------------------------------------------------------------------------------

def test_no_progress_silences_every_bar_and_lines_are_not_held_back(tmp_path):
    """stderr on a terminal (where bars would be drawn: ours, and the datasets library's as it converts the parquet
    files of a fresh cache); stdout to a pipe, whose first line must arrive while the run still goes on."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a width, or tqdm draws nothing
    env = {**os.environ, "PROGBENCH_CACHE": str(tmp_path / "cache"), "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    proc = subprocess.Popen([sys.executable, "-m", "progbench.cli", "run", str(_suite(tmp_path)), "--results",
                             str(tmp_path / "r"), "--no-progress"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=slave, text=True)
    os.close(slave)
    terminal = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child's side closed
                return
            if not chunk:
                return
            terminal.append(chunk)
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    first = proc.stdout.readline()
    assert first.startswith("suite tiny:") and proc.poll() is None  # a redirected line is not held in a buffer
    rest = proc.stdout.read()
    assert proc.wait(timeout=300) == 0, rest
    reader.join(timeout=10)
    os.close(master)
    drawn = b"".join(terminal).decode(errors="replace")
    assert "it/s" not in drawn and "s/it" not in drawn and "%|" not in drawn, drawn  # without the flag: 10 bars
    assert "1 run(s) trained" in rest
