"""progbench architectures. Importing this package registers them with timm:
``timm.create_model("pb_vgg_teacher_cpu")``.

Every family is a :class:`BlockNet` (embedder -> N blocks -> head, a feature tap after each block) with named
presets ``<role>_<scale>``: roles ``teacher`` and ``student``, scales ``paper`` (the official PWL architectures) and
``cpu`` (the same block structure, scaled to the 2-core cpu suite), plus ``tiny`` for the smoke suite.
"""
from __future__ import annotations

import timm
import torch
from torch import nn

from . import resnet, vgg, vit
from .blocknet import BlockNet

FAMILIES = {"vgg": vgg.PRESETS, "resnet": resnet.PRESETS, "vit": vit.PRESETS}


def preset_names() -> list[str]:
    return [f"pb_{family}_{preset}" for family, presets in FAMILIES.items() for preset in presets]


def check_arch(name: str) -> None:
    """Raise a one-line error for a name timm does not know."""
    from ..errors import UserError
    if not timm.is_model(name):
        raise UserError(f"unknown architecture {name!r}; progbench architectures are: "
                        f"{', '.join(timm.list_models('pb_*'))} (or any timm model name)")


def create_model(name: str, **kwargs) -> nn.Module:
    """``timm.create_model`` with a one-line error for an unknown name."""
    check_arch(name)
    return timm.create_model(name, **kwargs)


def wants_channels_last(model: nn.Module) -> bool:
    """CNNs (any conv that is not a patch embedding) run faster channels-last on CPU (oneDNN) and GPU."""
    return getattr(model, "channels_last", False) or any(isinstance(m, nn.Conv2d) and m.kernel_size != m.stride
                                                         for m in model.modules())


def prepare_for_device(model: nn.Module, device: torch.device) -> nn.Module:
    """Layout and kernel choices that change speed, not the function computed."""
    if wants_channels_last(model):
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cpu":
        # At CIFAR token counts the CPU flash-attention kernel is ~2x slower than plain matmul-softmax (measured).
        for m in model.modules():
            if hasattr(m, "fused_attn"):
                m.fused_attn = False
    return model


__all__ = ["BlockNet", "FAMILIES", "check_arch", "create_model", "preset_names", "prepare_for_device"]
