"""The block structure every progbench architecture shares: embedder -> N blocks -> head.

PWL swaps blocks between a teacher and a student, SWS shares weights across blocks and B-DISTIL reads a previous
member's features, so every family exposes the same three parts and a feature tap after each block.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from timm.models import register_model
from torch import nn


class BlockNet(nn.Module):
    """``embed`` -> ``blocks[0] .. blocks[N-1]`` -> ``head``.

    ``block_widths[i]`` is the channel (or token) width of the output of block ``i``; the feature after block ``i`` is
    what ``forward_taps`` returns at index ``i``: (B, C, H, W) for CNNs, (B, L, C) for ViTs (``tokens=True``).
    """

    def __init__(self, embed: nn.Module, blocks: Sequence[nn.Module], head: nn.Module,
                 block_widths: Sequence[int], num_classes: int, channels_last: bool = False, tokens: bool = False):
        super().__init__()
        self.embed = embed
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.block_widths = list(block_widths)
        self.num_classes = num_classes
        self.channels_last = channels_last  # CNNs run faster channels-last on CPU (oneDNN) and GPU
        self.tokens = tokens  # features are token sequences (channels last) rather than feature maps

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def forward_taps(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the feature after every block."""
        h = self.embed(x)
        taps = []
        for block in self.blocks:
            h = block(h)
            taps.append(h)
        return self.head(h), taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h)


class PoolHead(nn.Sequential):
    """Global average pool (over H, W for CNNs; over tokens for ViTs) then a linear classifier."""

    def __init__(self, width: int, num_classes: int, norm: nn.Module | None = None, tokens: bool = False):
        layers: list[nn.Module] = []
        if tokens:
            if norm is not None:
                layers.append(norm)
            layers.append(TokenMean())
        else:
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


class TokenMean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


def build_kwargs(kwargs: dict) -> dict:
    """Drop the arguments timm's factory passes that our from-scratch models have no use for."""
    for key in ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        if key == "pretrained" and kwargs.get(key):
            raise ValueError("progbench models have no pretrained weights; teachers come from the results store")
        kwargs.pop(key, None)
    return kwargs


def register_presets(family: str, builder: Callable[..., BlockNet], presets: dict[str, dict]) -> None:
    """Register ``pb_<family>`` (every argument free) and ``pb_<family>_<preset>`` for each named preset with timm."""

    def generic(**kwargs) -> BlockNet:
        return builder(**build_kwargs(kwargs))

    def preset(name: str) -> Callable[..., BlockNet]:
        def fn(**kwargs) -> BlockNet:
            return builder(**{**presets[name], **build_kwargs(kwargs)})
        fn.__name__ = f"pb_{family}_{name}"
        fn.__doc__ = f"{family} preset `{name}`: {presets[name]}"
        return fn

    generic.__name__ = f"pb_{family}"
    generic.__doc__ = f"{family} with every argument given by the caller"
    for fn in [generic, *(preset(name) for name in presets)]:
        fn.__module__ = builder.__module__
        register_model(fn)
