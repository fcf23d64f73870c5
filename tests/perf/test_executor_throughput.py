"""Local executor throughput: 2 workers x 1 thread against 1 worker x 2 threads, side by side in one run.

Each round trains a suite slice from the same starting store (a fresh folder; nothing cached) through the CLI, as
a user runs it, and counts the images trained (from the records). The smoke suite (24 tiny runs: process start-up
and evaluation weigh a lot) and a slice of the cpu suite (the three VGG scratch students, 6 epochs each; no
teacher needed). The threads per run are part of each run's spec, so the two settings train different run ids of
the same work. Goal on the 2-core machine: >= 1.3x the images per second. ``tox -e perf`` prints the medians and
the ratios (also in ``.benchmarks`` as JSON with the machine's load average).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench.store import Store

REPO = Path(__file__).resolve().parents[2]
SLICES = {"smoke": ("smoke", None), "cpu-vgg-scratch": ("cpu", "method=scratch,family=vgg")}
SETTINGS = {"1x2": ("--workers", "1", "--threads-per-worker", "2"),
            "2x1": ("--workers", "2", "--threads-per-worker", "1")}
RESULTS: dict[tuple[str, str], dict] = {}


def _train(suite: str, only: str | None, setting: tuple[str, ...]) -> dict:
    store = Path(tempfile.mkdtemp(prefix="progbench-perf-")) / "results"
    cmd = [sys.executable, "-m", "bench.cli", "run", suite, "--results", str(store), "--no-progress", *setting]
    if only:
        cmd += ["--only", only]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # each worker sets its own threads
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, env=env)
    records = Store(store).records()
    return {"images": sum(r.metrics["training"]["images_seen"] for r in records), "runs": len(records)}


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("name", sorted(SLICES))
def test_suite_throughput(benchmark, name, setting):
    suite, only = SLICES[name]
    out = {}

    def once():
        out.update(_train(suite, only, SETTINGS[setting]))
    benchmark.pedantic(once, rounds=1, iterations=1)
    seconds = benchmark.stats.stats.median
    RESULTS[(name, setting)] = {**out, "seconds": seconds, "images_per_s": out["images"] / seconds}
    benchmark.extra_info.update({**RESULTS[(name, setting)], "load_average": os.getloadavg()})
    other = RESULTS.get((name, "1x2" if setting == "2x1" else "2x1"))
    if other:
        fast, slow = (RESULTS[(name, "2x1")], RESULTS[(name, "1x2")])
        ratio = fast["images_per_s"] / slow["images_per_s"]
        benchmark.extra_info["ratio_2x1_over_1x2"] = ratio
        print(f"\n{name}: 2 workers x 1 thread {fast['images_per_s']:.0f} images/s ({fast['seconds']:.0f} s), "
              f"1 worker x 2 threads {slow['images_per_s']:.0f} images/s ({slow['seconds']:.0f} s): {ratio:.2f}x "
              f"(load average {os.getloadavg()[0]:.2f})")
