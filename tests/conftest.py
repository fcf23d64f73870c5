"""Shared fixtures: the real CIFAR-10 copy under the data root, and one smoke-suite store per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITES = Path(__file__).parent / "suites"


def _data_root() -> Path:
    root = Path(os.environ.get("PROGBENCH_DATA", REPO.parent / "shared" / "data"))
    if not (root / "cifar10").is_dir():
        pytest.exit(f"tests need real CIFAR-10 under the data root {root}; set PROGBENCH_DATA (e.g. ../shared/data)",
                    returncode=2)
    return root


@pytest.fixture(scope="session", autouse=True)
def data_root() -> Path:
    root = _data_root()
    os.environ["PROGBENCH_DATA"] = str(root)
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    return root


@pytest.fixture(scope="session")
def smoke_store(tmp_path_factory) -> Path:
    """The built-in smoke suite run once, end to end, through the CLI into a fresh store."""
    from progbench.cli import main
    store = tmp_path_factory.mktemp("smoke") / "results"
    assert main(["run", "smoke", "--results", str(store), "--no-progress"]) == 0
    return store


def run_cli(*args: str) -> int:
    from progbench.cli import main
    return main(list(args))


TIMING = ("wall_clock_s", "evaluation_s", "train_s", "epoch_s", "images_per_s", "load_s", "load_s_min", "load_s_max",
          "first_inference_s", "latency_s", "latency_iqr_s", "progressive_loading", "cuda_peak_bytes")


def nontiming(obj):
    """``obj`` (a metrics or log structure) without the fields that are measurements of time."""
    if isinstance(obj, dict):
        return {k: nontiming(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [nontiming(v) for v in obj]
    return obj


def assert_same_records(store_a: Path, store_b: Path) -> None:
    """Both stores hold the same runs with every non-timing field of metrics.json and log.jsonl equal and the same
    predictions byte for byte (and teacher weights, where a run has them)."""

    from progbench.store import Store
    a = {r.run_id: r for r in Store(store_a).records()}
    b = {r.run_id: r for r in Store(store_b).records()}
    assert a.keys() == b.keys() and a
    for rid, ra in a.items():
        rb = b[rid]
        assert nontiming(ra.metrics) == nontiming(rb.metrics), rid
        logs = [[nontiming(row) for row in r.log()] for r in (ra, rb)]
        assert logs[0] == logs[1], rid
        for name in ("predictions.safetensors", "teacher.safetensors"):
            if name in ra.files:
                assert ra.files[name]["sha256"] == rb.files[name]["sha256"], (rid, name)
