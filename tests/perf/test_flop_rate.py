"""Achieved training FLOP/s per core beside the machine's bf16 GEMM rate on one core, measured in the same run.

For the cpu suite's students and teachers: one training step (batch 128, bf16 autocast, channels-last for CNNs,
as the harness trains) on one thread, timed with ``torch.utils.benchmark`` (median), its FLOPs counted with
``torch.utils.flop_counter``; the forward alone is timed too, so the backward's share shows. The reference is a
bf16 matrix product on one thread at sizes where the GEMM kernel is at its best. What the ratio says, and the
profile behind it, is in docs/cluster.md ("Where a CPU step's time goes").
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils import benchmark as tbench
from torch.utils.flop_counter import FlopCounterMode

from progbench.models import create_model, prepare_for_device

MODELS = ["pb_vgg_student_cpu", "pb_resnet_student_cpu", "pb_vit_student_cpu", "pb_vgg_teacher_cpu",
          "pb_resnet_teacher_cpu", "pb_vit_teacher_cpu"]
BATCH = 128
RATES: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _median(fn) -> float:
    return tbench.Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=1).median


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_gemm_one_core(benchmark, dtype):
    n = 1024
    a, b = (torch.randn(n, n, dtype=getattr(torch, dtype)) for _ in range(2))
    seconds = _median(lambda: a @ b)
    key = "gemm" if dtype == "bfloat16" else "gemm_fp32"
    RATES[key] = 2 * n ** 3 / seconds
    benchmark.extra_info.update({"flop_per_s": RATES[key], "cpu_capability": torch.backends.cpu.get_cpu_capability()})
    benchmark.pedantic(lambda: a @ b, rounds=3, warmup_rounds=1)
    print(f"\n{dtype} GEMM {n}^3 on one core: {RATES[key] / 1e9:.1f} GFLOP/s "
          f"(CPU capability {torch.backends.cpu.get_cpu_capability()})")


@pytest.mark.parametrize("arch", MODELS)
def test_training_step_flop_rate(benchmark, arch):
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = prepare_for_device(create_model(arch), device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def forward():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            model(x)

    with FlopCounterMode(display=False) as counter:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
    flops = counter.get_total_flops()
    step_s, forward_s = _median(step), _median(forward)
    rate = flops / step_s
    benchmark.pedantic(step, rounds=1, warmup_rounds=0)
    info = {"flops_per_step": flops, "step_s": step_s, "forward_s": forward_s, "flop_per_s": rate,
            "backward_share": 1 - forward_s / step_s}
    if "gemm" in RATES:
        info["of_gemm_rate"] = rate / RATES["gemm"]
    benchmark.extra_info.update(info)
    print(f"\n{arch}: {rate / 1e9:.0f} GFLOP/s on one core"
          + (f" = {info['of_gemm_rate'] * 100:.0f} % of the bf16 GEMM rate" if "gemm" in RATES else "")
          + f"; step {step_s * 1e3:.0f} ms, of which backward+update {info['backward_share'] * 100:.0f} %")
