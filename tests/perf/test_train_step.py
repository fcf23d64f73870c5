"""Training-loop overhead: the harness's training (Trainer + a method) beside a bare PyTorch loop.

Same model (the cpu ResNet student), batches (128 augmented CIFAR-10 images), threads and precision (bf16 autocast),
in one pytest-benchmark run (`tox -e perf`). The bare loop is what one writes by hand: shuffle, the same batched
crop/flip in torch, forward, backward, step. The harness round is a whole one-epoch run of `Trainer` over the same
images: lr schedule, named-loss logging, the training-FLOPs measurement, a validation pass and the atomic
checkpoint. Target: harness >= 0.9x the bare loop's throughput (median epoch time).
"""
from __future__ import annotations

import shutil
import tempfile

import pytest
import torch
import torch.nn.functional as F

from progbench import data as datamod
from progbench.methods.scratch import Scratch
from progbench.models import create_model, prepare_for_device
from progbench.protocol import Budget, Context, Task
from progbench.train import Trainer

ARCH, BATCH, STEPS = "pb_resnet_student_cpu", 128, 40
BUDGET = Budget(epochs=1, batch_size=BATCH, optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9,
                                                        "weight_decay": 5e-4, "nesterov": True},
                schedule={"name": "cosine", "warmup_epochs": 0}, precision="bf16")
SPEC = datamod.DatasetSpec("cifar10", val_per_class=10, train_per_class=BATCH * STEPS // 10, test_per_class=10)
MEDIANS: dict[str, float] = {}


@pytest.fixture(scope="module")
def dataset():
    return datamod.load(SPEC)


def test_bare_pytorch_loop(benchmark, dataset):
    device = torch.device("cpu")
    prep = datamod.Preprocess(dataset.mean, dataset.std, datamod.AugmentSpec(), device)
    torch.manual_seed(0)
    model = prepare_for_device(create_model(ARCH), device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    images, labels = dataset.train.images, dataset.train.labels

    def epoch():
        model.train()
        g = torch.Generator().manual_seed(0)
        order = torch.randperm(len(labels), generator=g)
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            x, y = prep(images[idx], train=True, generator=g), labels[idx]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    benchmark.group = f"training epoch of {STEPS} steps x {BATCH} images"
    benchmark.pedantic(epoch, rounds=7, warmup_rounds=1)
    MEDIANS["bare"] = benchmark.stats.stats.median


def test_harness_training_loop(benchmark, dataset):
    device = torch.device("cpu")
    task = Task(dataset=SPEC, family="resnet", arch=ARCH, budget=BUDGET, seed=0)

    def epoch():
        work = tempfile.mkdtemp(prefix="progbench-perf-")
        try:
            torch.manual_seed(0)
            method = Scratch(Context(task, device, 10, 32), Scratch.Config())
            prepare_for_device(method, device)
            Trainer(method, dataset, BUDGET, 0, device, work, progress=False).run()
        finally:
            shutil.rmtree(work)

    benchmark.group = f"training epoch of {STEPS} steps x {BATCH} images"
    benchmark.pedantic(epoch, rounds=7, warmup_rounds=1)
    harness = benchmark.stats.stats.median
    if "bare" not in MEDIANS:
        pytest.skip("run with the bare loop benchmark (tox -e perf) to compare")
    ratio = MEDIANS["bare"] / harness
    benchmark.extra_info["throughput_vs_bare"] = round(ratio, 3)
    print(f"\nharness throughput = {ratio:.3f} x bare (median epoch {harness * 1e3:.0f} ms vs "
          f"{MEDIANS['bare'] * 1e3:.0f} ms)")
    assert ratio >= 0.9, f"harness runs at {ratio:.2f}x the bare loop's throughput (target >= 0.9x)"
