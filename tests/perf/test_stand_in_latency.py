"""Latency from an architecture alone: a point timed with its trained weights beside the same point with stand-in
values (`progbench.latency.stand_ins`, what a latency pass times now that a run's weights stay behind on the machine
that trained it).

On the grid's six teachers, whose trained weights are committed (VGG, ResNet and ViT; CIFAR-10 at 32 px and
Imagenette at 64 px; the suite's precision), batch 1, one thread (`tox -e perf`). The two are timed as a pass times
its points (`latency.time_points`): in one process, round by round in shuffled order, so both see the same
conditions; timing one after the other measured the machine's drift as much as the weights (0.78-1.31x).
Target: the stand-in's median within 10 % of the trained weights' for every teacher.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from progbench import latency
from progbench.evaluate import build_point
from progbench.store import Store
from progbench.suite import load_suite

REPO = Path(__file__).resolve().parents[2]
FAMILIES = ["vgg_c10", "resnet_c10", "vit_c10", "vgg_in", "resnet_in", "vit_in"]
ROUNDS = 25


@pytest.mark.parametrize("family", FAMILIES)
def test_stand_in_latency(benchmark, family):
    (run,) = load_suite("grid").select(f"family={family},method=teacher")
    record = Store(REPO / "results").get(run.run_id)
    if record is None:
        pytest.skip(f"the grid's {family} teacher is not in the committed store")
    trained = build_point(latency.architectures(record, run)["model"], record.teacher_weights, torch.device("cpu"))
    stand_in = latency.family(record, run)["model"]
    both = [(record, {"model": trained}), (record, {"model": stand_in})]

    benchmark.group = f"batch-1 latency, {family} teacher: trained and stand-in, interleaved"
    timed = benchmark.pedantic(latency.time_points, args=(both,), kwargs={"rounds": ROUNDS, "min_run_time": 0.05},
                               rounds=1, iterations=1)
    trained_s, stand_in_s = (t["latency_s"] for t in timed)
    ratio = stand_in_s / trained_s
    benchmark.extra_info.update(trained_median_ms=round(trained_s * 1e3, 4),
                                stand_in_median_ms=round(stand_in_s * 1e3, 4),
                                stand_in_vs_trained=round(ratio, 3), load_average=latency.load_average())
    print(f"\n{family}: stand-in {stand_in_s * 1e3:.3f} ms, trained {trained_s * 1e3:.3f} ms, ratio {ratio:.3f}")
    assert 0.9 <= ratio <= 1.1, f"{family}: stand-in values time {ratio:.2f}x the trained weights (target within 10 %)"
