"""The run's numeric precision: bf16 autocast (AMX on CPU, tensor cores on GPU) or plain fp32. Shared by training,
evaluation and progressive loading, so all three compute exactly alike."""
from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
