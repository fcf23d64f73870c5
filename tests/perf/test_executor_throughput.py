"""Local executor throughput: 2 workers x 1 thread against 1 worker x 2 threads, side by side in one run.

* The smoke suite end to end through the CLI (24 tiny runs; process start-up, data loading and evaluation weigh a
  lot), each setting from an empty store, as a user runs it; images trained are counted from the records.
* A slice of the cpu suite's work: training steps of its VGG and ResNet students (batch 128, the suite's precision)
  in separate processes, 2 processes x 1 thread side by side against 1 process x 2 threads doing as many steps, the
  way a pool of workers trains them. (Whole cpu-suite runs take minutes each on an AMX machine and far longer where
  the CPU has no native bf16, too long for a benchmark run.)

The threads per run are part of each run's spec, so the two settings train different run ids of the same work.
Goal on the 2-core machine: >= 1.3x the images per second. ``tox -e perf`` prints the ratios; the JSON in
``.benchmarks`` holds them with the load average.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from progbench.store import Store

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {"1x2": ("--workers", "1", "--threads-per-worker", "2"),
            "2x1": ("--workers", "2", "--threads-per-worker", "1")}
STEPS = {"pb_vgg_student_cpu": 12, "pb_resnet_student_cpu": 6}  # per process of the 2 x 1 setting
RESULTS: dict[tuple[str, str], float] = {}
STEP_SCRIPT = """
import sys, time, torch, torch.nn.functional as F
from progbench.models import create_model, prepare_for_device
arch, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = prepare_for_device(create_model(arch), torch.device("cpu")).train()
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
x = torch.randn(128, 3, 32, 32).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (128,))
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
step()
print("ready", flush=True)
sys.stdin.readline()  # start together
for _ in range(steps):
    step()
"""


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # each process sets its own threads


def _record(name: str, setting: str, images: int, seconds: float, benchmark) -> None:
    RESULTS[(name, setting)] = images / seconds
    benchmark.extra_info.update({"images": images, "seconds": seconds, "images_per_s": images / seconds,
                                 "load_average": os.getloadavg()})
    if (name, "1x2") in RESULTS and (name, "2x1") in RESULTS:
        ratio = RESULTS[(name, "2x1")] / RESULTS[(name, "1x2")]
        benchmark.extra_info["ratio_2x1_over_1x2"] = ratio
        print(f"\n{name}: 2 workers x 1 thread {RESULTS[(name, '2x1')]:.1f} images/s, 1 worker x 2 threads "
              f"{RESULTS[(name, '1x2')]:.1f} images/s: {ratio:.2f}x (load average {os.getloadavg()[0]:.2f})")


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_smoke_suite_throughput(benchmark, setting):
    out = {}

    def once():
        store = Path(tempfile.mkdtemp(prefix="progbench-perf-")) / "results"
        subprocess.run([sys.executable, "-m", "progbench.cli", "run", "smoke", "--results", str(store), "--no-progress",
                        *SETTINGS[setting]], cwd=REPO, check=True, capture_output=True, env=_env())
        out["images"] = sum(r.metrics["training"]["images_seen"] for r in Store(store).records())
    benchmark.pedantic(once, rounds=1, iterations=1)
    _record("smoke suite", setting, out["images"], benchmark.stats.stats.median, benchmark)


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("arch", sorted(STEPS))
def test_cpu_student_steps_throughput(benchmark, arch, setting):
    procs_threads = [(2, 1)] if setting == "2x1" else [(1, 2)]
    (procs, threads), = procs_threads
    steps = STEPS[arch] * 2 // procs
    out = {}

    def once():
        ps = [subprocess.Popen([sys.executable, "-c", STEP_SCRIPT, arch, str(threads), str(steps)], cwd=REPO,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env())
              for _ in range(procs)]
        for p in ps:
            assert p.stdout.readline().strip() == "ready"
        t0 = time.perf_counter()
        for p in ps:
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in ps:
            p.wait()
        out["seconds"] = time.perf_counter() - t0
    benchmark.pedantic(once, rounds=1, iterations=1)
    _record(f"cpu-suite {arch} steps", setting, 128 * steps * procs, out["seconds"], benchmark)
