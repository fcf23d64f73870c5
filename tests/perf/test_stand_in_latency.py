"""Latency from an architecture alone: a point timed with its trained weights beside the same point with stand-in
values (`progbench.latency.stand_ins`, what a latency pass times now that a run's weights stay behind on the machine
that trained it).

On the grid's six teachers, whose trained weights are committed (VGG, ResNet and ViT; CIFAR-10 at 32 px and
Imagenette at 64 px; the suite's precision), batch 1, one thread, in one pytest-benchmark run (`tox -e perf`).
Target: the stand-in's median within 10 % of the trained weights' for every teacher.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from progbench import latency
from progbench.evaluate import build_point, latency_timer
from progbench.store import Store
from progbench.suite import load_suite, task_of

REPO = Path(__file__).resolve().parents[2]
FAMILIES = ["vgg_c10", "resnet_c10", "vit_c10", "vgg_in", "resnet_in", "vit_in"]
MEDIANS: dict[tuple[str, str], float] = {}


def _teacher(family: str):
    (run,) = load_suite("grid").select(f"family={family},method=teacher")
    record = Store(REPO / "results").get(run.run_id)
    if record is None:
        pytest.skip(f"the grid's {family} teacher is not in the committed store")
    return record, run


@pytest.mark.parametrize("weights", ["trained", "stand-in"])
@pytest.mark.parametrize("family", FAMILIES)
def test_stand_in_latency(benchmark, family, weights):
    torch.set_num_threads(1)
    record, run = _teacher(family)
    task = task_of(record.spec)
    device = torch.device("cpu")
    if weights == "trained":
        model = build_point(latency.architectures(record, run)["model"], record.teacher_weights, device)
    else:
        model = latency.family(record, run)["model"]
    size = task.budget.augment_spec.resize or task.dataset.resolution
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    timer = latency_timer(model, image, device, task.budget.precision)
    benchmark.group = f"batch-1 latency, {family} teacher ({task.budget.precision})"
    benchmark.pedantic(lambda: timer.timeit(20), rounds=15, warmup_rounds=2)
    MEDIANS[family, weights] = benchmark.stats.stats.median
    if weights == "trained":
        return
    if (family, "trained") not in MEDIANS:
        pytest.skip("run with the trained-weights benchmark (tox -e perf) to compare")
    ratio = MEDIANS[family, "stand-in"] / MEDIANS[family, "trained"]
    benchmark.extra_info["stand_in_vs_trained"] = round(ratio, 3)
    print(f"\n{family}: stand-in latency = {ratio:.3f} x trained weights")
    assert 0.9 <= ratio <= 1.1, f"{family}: stand-in values time {ratio:.2f}x the trained weights (target within 10 %)"
