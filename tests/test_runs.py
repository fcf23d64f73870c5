"""Whole runs: the smoke suite end to end, caching, resume after a kill, determinism, and a NaN loss."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from bench.store import Store
from tests.conftest import SUITES, run_cli

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
        log = [json.loads(line) for line in (rec.path / "log.jsonl").read_text().splitlines()]
        assert [row["epoch"] for row in log] == [1, 2]
        assert {"loss/ce", "loss/kd", "val_top1", "lr", "epoch_s"} <= set(log[0])
        assert rec.metrics["training"]["images_seen"] == 2 * 400 and rec.metrics["training"]["train_flops"] > 0
        logits = load_file(str(rec.path / "predictions.safetensors"))["student"]
        assert logits.shape == (200, 10)
    # a second run finds everything cached and trains nothing
    assert run_cli("run", "smoke", "--results", str(smoke_store), "--no-progress") == 0
    assert "0 run(s) trained" in capsys.readouterr().out
    assert run_cli("plan", "smoke", "--results", str(smoke_store)) == 0
    assert "6 runs (6 cached)" in capsys.readouterr().out


def _run_resume_suite(store: Path, kill_after_epoch: int | None = None) -> None:
    cmd = [sys.executable, "-m", "bench.cli", "run", str(SUITES / "resume.yaml"), "--results", str(store),
           "--no-progress"]
    if kill_after_epoch is None:
        subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
        return
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = list(store.glob("runs/*/work/checkpoint.pt"))
    deadline = time.time() + 120
    while time.time() < deadline:
        ckpts = list(store.glob("runs/*/work/checkpoint.pt"))
        if ckpts:
            try:
                if torch.load(ckpts[0], weights_only=False)["train_state"]["epoch"] >= kill_after_epoch:
                    break
            except Exception:
                pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = torch.load(ckpts[0], weights_only=False)["train_state"]
    assert 0 < state["epoch"] < 6 and state["phase_index"] == 0, "the kill must land mid-training"
    assert not list(store.glob("runs/*/record.json"))


def test_resume_after_kill_gives_identical_results(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _run_resume_suite(straight)
    _run_resume_suite(resumed, kill_after_epoch=2)
    assert Store(resumed).status(next((resumed / "runs").iterdir()).name) == "partial"
    _run_resume_suite(resumed)
    (a,), (b,) = Store(straight).records(), Store(resumed).records()
    assert a.run_id == b.run_id
    pa, pb = a.metrics["points"][0], b.metrics["points"][0]
    assert (pa["test_top1"], pa["val_top1"]) == (pb["test_top1"], pb["val_top1"])
    assert torch.equal(load_file(str(a.path / "predictions.safetensors"))["model"],
                       load_file(str(b.path / "predictions.safetensors"))["model"])
    log_a = [json.loads(x) for x in (a.path / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (b.path / "log.jsonl").read_text().splitlines()]
    strip = ("train_s", "epoch_s", "images_per_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in log_a] == \
           [{k: v for k, v in r.items() if k not in strip} for r in log_b]


def test_nan_loss_is_one_line_and_keeps_the_store(tmp_path, capsys):
    store = tmp_path / "results"
    assert run_cli("run", str(SUITES / "nan.yaml"), "--results", str(store), "--no-progress") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "loss ce is nan at phase 'train' epoch 1 step 1" in err[0] and "budget.optimizer.lr" in err[0]
    assert Store(store).status(next(p.name for p in (store / "runs").iterdir() if p.name.startswith("diverges"))) \
        == "partial"
    assert len(Store(store).records()) == 1  # the teacher trained before it is kept
