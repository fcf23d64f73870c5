"""`progbench reproduce`: a rebuild says which report files changed; `--fresh` retrains runs from nothing into a
scratch store (teachers copied, not retrained) and compares every metric with the committed record."""
import shutil

from progbench.reproduce import compare_records, format_comparison
from progbench.store import Store
from tests.conftest import run_cli


def test_reproduce_rebuilds_the_report_byte_identically(smoke_store, tmp_path, capsys):
    out = tmp_path / "reports"
    assert run_cli("reproduce", "--suite", "smoke", "--results", str(smoke_store), "--out", str(out),
                   "--no-progress") == 0
    first = capsys.readouterr().out
    assert "0 run(s) trained" in first and "0 byte-identical to before" in first  # nothing was there before
    (out / "tables" / "baselines.md").write_text("edited by hand\n")
    assert run_cli("reproduce", "--suite", "smoke", "--results", str(smoke_store), "--out", str(out),
                   "--no-progress") == 0
    second = capsys.readouterr().out
    assert "1 changed or new" in second and "changed: " + str(out / "tables" / "baselines.md") in second


def test_fresh_rerun_reproduces_a_committed_run_exactly(smoke_store, tmp_path, capsys):
    committed = tmp_path / "committed"
    shutil.copytree(smoke_store, committed)
    scratch = tmp_path / "scratch"
    assert run_cli("reproduce", "--suite", "smoke", "--fresh", "method=kd,family=vgg,seed=1", "--results",
                   str(committed), "--scratch", str(scratch), "--no-progress") == 0
    out = capsys.readouterr().out
    assert "reproduced exactly" in out and "fresh: 1 of 1 run(s) reproduced" in out
    fresh_runs = {r.run_id: r for r in Store(scratch).records()}
    teacher = [rid for rid in fresh_runs if rid.startswith("teacher-vgg")]
    assert len(fresh_runs) == 2 and len(teacher) == 1  # the student, and its teacher copied rather than retrained
    assert fresh_runs[teacher[0]].path.joinpath("teacher.safetensors").read_bytes() == \
        Store(committed).get(teacher[0]).teacher_weights.read_bytes()


def test_comparison_reports_what_moved(smoke_store):
    """Two seeds of one method stand in for a rerun that did not reproduce: the moved quantities are named."""
    kd = sorted((r for r in Store(smoke_store).records() if r.spec["method"] == "kd"),
                key=lambda r: r.spec["task"]["seed"])
    moved = compare_records(kd[0], kd[1])
    off = {m.what for m in moved if m.exact and m.delta != 0}
    assert "student.predictions (max |logit diff|)" in off and {"student.test_top1", "student.val_top1"} & off
    assert "student.params" not in off and "training.images_seen" not in off
    text = format_comparison(moved)
    assert "exact quantities moved" in text and "reproduced exactly" not in text


def test_fresh_refuses_a_scratch_store_that_is_not_empty(smoke_store, tmp_path, capsys):
    scratch = tmp_path / "scratch"
    (scratch / "runs").mkdir(parents=True)
    assert run_cli("reproduce", "--suite", "smoke", "--fresh", "method=kd,family=vgg,seed=1", "--results",
                   str(smoke_store), "--scratch", str(scratch), "--no-progress") == 2
    assert "is not empty: its runs would count as cached" in capsys.readouterr().err
    assert run_cli("reproduce", "--suite", "smoke", "--fresh", "method=kd", "--results", str(smoke_store),
                   "--scratch", str(smoke_store), "--no-progress") == 2
    assert "is the committed store itself" in capsys.readouterr().err


def test_comparison_counts_what_the_fresh_record_lacks(smoke_store, tmp_path):
    """Records of different methods stand in for a rerun whose points, predictions and log do not match."""
    records = {r.spec["method"]: r for r in Store(smoke_store).records() if r.spec["task"]["family"] == "vgg"}
    moved = compare_records(records["pwl"], records["kd"])
    off = {m.what for m in moved if m.exact and m.delta != 0}
    assert any(w.startswith("operating points [") for w in off)
    assert "SSSSS.test_top1" in off  # a point the fresh record lacks: NaN, counted as moved
    assert "SSSSS.predictions (max |logit diff|)" in off and "student.predictions (max |logit diff|)" in off
    assert "log rows that differ (losses, val top-1, lr, counts)" in off
