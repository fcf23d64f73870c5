"""The results store: complete records are verified by checksum; corrupt ones are detected, quarantined, redone."""
import json
import shutil

from progbench.store import Store
from tests.conftest import run_cli


def test_smoke_records_are_complete(smoke_store):
    store = Store(smoke_store)
    records = store.records()
    assert len(records) == 24  # 2 teachers, 2 scratch, 2 KD, 2 PWL, 8 SWS and baselines, 8 B-DISTIL and baselines
    for rec in records:
        assert store.status(rec.run_id) == "done"
        assert set(json.loads((rec.path / "record.json").read_text())["files"]) >= {
            "spec.json", "env.json", "metrics.json", "log.jsonl", "predictions.safetensors"}
        env = json.loads((rec.path / "env.json").read_text())
        assert env["packages"]["torch"] and env["torch_threads"] >= 1 and env["cpu"]
    teachers = [r for r in records if r.spec["task"]["role"] == "teacher"]
    assert len(teachers) == 2 and all(r.teacher_weights.exists() for r in teachers)


def test_corrupt_record_is_detected_quarantined_and_redone(smoke_store, tmp_path, capsys):
    store_dir = tmp_path / "results"
    shutil.copytree(smoke_store, store_dir)
    store = Store(store_dir)
    victim = next(r for r in store.records() if r.spec["method"] == "scratch")
    metrics = victim.path / "metrics.json"
    original = metrics.read_text()
    metrics.write_text(original.replace('"test_top1": 0', '"test_top1": 1', 1))  # a hand-edited number
    assert store.status(victim.run_id) == "corrupt"
    assert victim.run_id not in [r.run_id for r in store.records()]  # never used
    assert run_cli("run", "smoke", "--results", str(store_dir), "--no-progress") == 0
    out = capsys.readouterr().out
    assert f"{victim.run_id} (claimed; its corrupt record (metrics.json does not match its sha256" in out
    assert store.status(victim.run_id) == "done"
    kept = list((store_dir / "quarantine").glob(f"{victim.run_id}-*"))
    assert len(kept) == 1 and (kept[0] / "metrics.json").read_text() != original  # nothing lost
    assert "1 run(s) trained" in out and "23 cached" in out  # only the corrupt run was redone


def test_interrupted_run_is_partial_not_corrupt(tmp_path):
    store = Store(tmp_path)
    (store.work_dir("kd-vgg-s0-abc") / "weights").mkdir(parents=True)
    assert store.status("kd-vgg-s0-abc") == "partial"
    assert store.status("nothing-here") == "missing"


def test_result_files_without_a_record_are_partial_and_a_bad_record_is_corrupt(tmp_path):
    """A kill while a record is written leaves result files without record.json: an interrupted run, resumed; a
    record.json that is malformed (or disagrees with its files) is corruption, quarantined."""
    store = Store(tmp_path)
    d = store.run_dir("kd-vgg-s0-abc")
    (d / "work").mkdir(parents=True)
    (d / "metrics.json").write_text("{}")
    (d / ".predictions.tmp123").write_text("torn")
    assert store.status("kd-vgg-s0-abc") == "partial"
    (d / "record.json").write_text("[]")
    found = store.check("kd-vgg-s0-abc")
    assert found.status == "corrupt" and "malformed record" in found.reason


def test_import_takes_in_another_stores_finished_runs_and_never_overwrites(smoke_store, tmp_path, capsys):
    """A store trained elsewhere (a cluster's scratch disk, a GPU machine) is copied in run by run, verified there and
    here, work folders too; a run already here is left; another record of it, or a corrupt run there, is refused."""
    source = Store(smoke_store)
    rids = sorted(r.run_id for r in source.records())
    dest = tmp_path / "results"
    assert run_cli("import", str(smoke_store), "--results", str(dest)) == 0
    assert sorted(r.run_id for r in Store(dest).records()) == rids  # every one verifies here
    for rid in rids:  # the whole run folder: record, point weights and stages for a later latency pass
        assert sorted(p.relative_to(source.run_dir(rid)) for p in source.run_dir(rid).rglob("*")) == \
               sorted(p.relative_to(dest / "runs" / rid) for p in (dest / "runs" / rid).rglob("*"))
    assert not [p for p in (dest / "runs").iterdir() if p.name.startswith(".")]  # no temporary folder left
    capsys.readouterr()
    assert run_cli("import", str(smoke_store), "--results", str(dest)) == 0  # again: nothing to copy
    assert capsys.readouterr().out.strip() == f"import: 0 run(s) copied from {smoke_store} into {dest}, " \
                                              f"{len(rids)} already here"
    # a differing record of a run here is refused and left as it is; a corrupt run there is not copied
    other = tmp_path / "other"
    shutil.copytree(smoke_store, other)
    manifest = other / "runs" / rids[0] / "record.json"
    manifest.write_text(manifest.read_text() + "\n")
    (other / "runs" / rids[1] / "metrics.json").write_text("{}")
    shutil.rmtree(dest / "runs" / rids[1])
    here = (dest / "runs" / rids[0] / "record.json").read_bytes()
    assert run_cli("import", str(other), "--results", str(dest)) == 1
    err = capsys.readouterr().err
    assert f"1 not taken, {dest} already holds another record" in err and rids[0] in err
    assert "1 not taken, corrupt there" in err and rids[1] in err
    assert (dest / "runs" / rids[0] / "record.json").read_bytes() == here and not (dest / "runs" / rids[1]).exists()
    assert run_cli("import", str(tmp_path / "nowhere"), "--results", str(dest)) == 2  # not a store: one line
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "has no runs/ folder: it is not a results store" in line
