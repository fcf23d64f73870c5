"""The run's numeric precision: bf16 autocast (AMX on CPU, tensor cores on GPU) or plain fp32. Shared by training,
evaluation and progressive loading, so all three compute exactly alike."""
from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure(device: torch.device, precision: str) -> None:
    """Compute in the budget's precision. On Ampere and newer GPUs PyTorch lets cuDNN convolutions use TF32 by
    default; an fp32 budget means full fp32 there too, so a run computes the same whether a CPU or a GPU trains it."""
    if device.type == "cuda" and precision == "fp32":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: on a CPU, AVX512-BF16 or AMX; without them PyTorch falls back to
    reference kernels (measured on an AVX2-only CPU: a bf16 matrix product ~40x slower than fp32, a training step
    8-14x)."""
    if device.type != "cpu":
        return True
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return True  # cannot tell: say nothing
    return "avx512_bf16" in flags or "amx_bf16" in flags


_WARNED: set = set()


def warn_if_slow(device: torch.device, precision: str, write) -> None:
    """One line, once per process, when a bf16 run will train on a CPU without native bf16."""
    if precision == "bf16" and "bf16" not in _WARNED and not native_bf16(device):
        _WARNED.add("bf16")
        write("note: this CPU has no native bf16 (AVX512-BF16 or AMX), so bf16 autocast runs on slow reference "
              "kernels (about 10x slower than fp32 here); the numbers are the same, only slower. A budget with "
              "precision: fp32 trains fast here, as a different run.")
