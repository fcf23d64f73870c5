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
    from bench.cli import main
    store = tmp_path_factory.mktemp("smoke") / "results"
    assert main(["run", "smoke", "--results", str(store), "--no-progress"]) == 0
    return store


def run_cli(*args: str) -> int:
    from bench.cli import main
    return main(list(args))
