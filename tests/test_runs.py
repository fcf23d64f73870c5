"""Whole runs: the smoke suite end to end, caching, resume after a kill, determinism, and a NaN loss."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from progbench.store import Store
from tests.conftest import SUITES, assert_same_records, run_cli

REPO = Path(__file__).resolve().parents[1]


def test_smoke_suite_end_to_end(smoke_store, capsys):
    store = Store(smoke_store)
    kd = [r for r in store.records() if r.spec["method"] == "kd"]
    assert len(kd) == 2
    for rec in kd:
        point = rec.metrics["points"][0]
        assert 0.0 <= point["test_top1"] <= point["test_top5"] <= 1.0
        assert point["params"] > 0 and point["flops"] > 0 and point["weight_bytes"] > 0
        assert point["load_s"] > 0 and point["latency_s"] > 0 and point["peak_memory_bytes"] > point["weight_bytes"]
        log = rec.log()
        assert [row["epoch"] for row in log] == [1, 2]
        assert {"loss/ce", "loss/kd", "val_top1", "lr", "epoch_s"} <= set(log[0])
        assert rec.metrics["training"]["images_seen"] == 2 * 400 and rec.metrics["training"]["train_flops"] > 0
        logits = load_file(str(rec.path / "predictions.safetensors"))["student"]
        assert logits.shape == (200, 10)
    # a second run finds everything cached and trains nothing
    assert run_cli("run", "smoke", "--results", str(smoke_store), "--no-progress") == 0
    assert "0 run(s) trained" in capsys.readouterr().out
    assert run_cli("plan", "smoke", "--results", str(smoke_store)) == 0
    assert "24 runs (24 cached)" in capsys.readouterr().out


def _run_suite(suite: Path, store: Path, kill_when=None, run_glob: str = "*") -> None:
    """Run a suite in a subprocess; with ``kill_when``, SIGKILL it as soon as a checkpoint's state satisfies it."""
    cmd = [sys.executable, "-m", "progbench.cli", "run", str(suite), "--results", str(store), "--no-progress"]
    if kill_when is None:
        subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
        return
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state, deadline = None, time.time() + 180
    while proc.poll() is None and time.time() < deadline:
        for ckpt in store.glob(f"runs/{run_glob}/work/checkpoint.pt"):
            try:
                state = torch.load(ckpt, weights_only=False)["train_state"]
            except (FileNotFoundError, EOFError, RuntimeError):  # replaced between glob and load: poll again
                continue
            if kill_when(state):
                proc.send_signal(signal.SIGKILL)
        time.sleep(0.02)
    proc.wait()
    assert state is not None and kill_when(state), f"the kill must land mid-training (last state: {state})"
    assert not list(store.glob(f"runs/{run_glob}/record.json"))


def _same_run(store_a: Path, store_b: Path, prefix: str) -> None:
    """The run ``prefix*`` has identical metrics (but timings), predictions and per-epoch log in both stores."""
    (a,) = [r for r in Store(store_a).records() if r.run_id.startswith(prefix)]
    (b,) = [r for r in Store(store_b).records() if r.run_id.startswith(prefix)]
    assert a.run_id == b.run_id
    accuracy = ("point", "test_top1", "test_top5", "val_top1", "params", "flops")
    assert [{k: p[k] for k in accuracy} for p in a.metrics["points"]] == \
           [{k: p[k] for k in accuracy} for p in b.metrics["points"]]
    pa, pb = (load_file(str(r.path / "predictions.safetensors")) for r in (a, b))
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
    timing = ("train_s", "epoch_s", "images_per_s")
    logs = [[{k: v for k, v in row.items() if k not in timing} for row in r.log()] for r in (a, b)]
    assert logs[0] == logs[1]


def test_resume_after_kill_gives_identical_results(tmp_path):
    suite = SUITES / "resume.yaml"
    _run_suite(suite, tmp_path / "straight")
    resumed = tmp_path / "resumed"
    _run_suite(suite, resumed, kill_when=lambda s: 2 <= s["epoch"] < 6 and s["phase_index"] == 0)
    assert Store(resumed).status(next((resumed / "runs").iterdir()).name) == "partial"
    _run_suite(suite, resumed)
    _same_run(tmp_path / "straight", resumed, "teacher-vgg")
    assert_same_records(tmp_path / "straight", resumed)  # every non-timing field of metrics.json and log.jsonl


def test_multi_phase_resume_gives_identical_results(tmp_path):
    """Killed in the second phase, whose module the method builds between its yields."""
    suite = SUITES / "two_stage.yaml"
    _run_suite(suite, tmp_path / "straight")
    resumed = tmp_path / "resumed"
    _run_suite(suite, resumed, kill_when=lambda s: s["phase_index"] == 1 and s["epoch"] >= 1,
               run_glob="two-stage-*")
    _run_suite(suite, resumed)
    _same_run(tmp_path / "straight", resumed, "two-stage-vgg")
    assert_same_records(tmp_path / "straight", resumed)


def test_nan_loss_is_one_line_and_keeps_the_store(tmp_path, capsys):
    store = tmp_path / "results"
    assert run_cli("run", str(SUITES / "nan.yaml"), "--results", str(store), "--no-progress") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "loss ce is nan at phase 'train' epoch 1 step 1" in err[0] and "budget.optimizer.lr" in err[0]
    assert Store(store).status(next(p.name for p in (store / "runs").iterdir() if p.name.startswith("diverges"))) \
        == "partial"
    assert len(Store(store).records()) == 1  # the teacher trained before it is kept


def test_every_point_can_be_rebuilt_from_the_architectures_its_record_keeps(smoke_store):
    """What a later pass (every point of a cell timed in one process) needs, on any clone of the store: each point's
    module from the architectures its record keeps (``points.pt``), without its method. With the weights its run left
    in work/ every tensor is filled (none stays on the meta device) and the rebuilt points of a PWL run compute
    different functions, as their weights differ."""
    from progbench.evaluate import build_point
    record = next(r for r in Store(smoke_store).records() if r.run_id.startswith("pwl-vgg-"))
    skeletons = torch.load(record.architectures, weights_only=False)
    assert list(skeletons) == [p["point"] for p in record.metrics["points"]]
    assert all(t.is_meta for m in skeletons.values() for t in m.state_dict().values())  # no weights in the record
    x = torch.randn(1, 3, 32, 32)
    outputs = []
    for name, skeleton in skeletons.items():
        model = build_point(skeleton, record.path / "work" / "weights" / f"{name}.safetensors", torch.device("cpu"))
        with torch.no_grad():
            outputs.append(model(x.contiguous(memory_format=torch.channels_last)))
    assert len(outputs) == 6 and not torch.equal(outputs[0], outputs[-1])
