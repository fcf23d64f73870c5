"""Vision Transformer as a BlockNet, from timm's own layers: patch + learned position embedding as embedder, each
block a run of ``layers_per_block`` timm transformer ``Block``s, and final norm + token average + linear as head
(no class token, as in SWS's Des-Nets).

With ``shared_stages`` it is SWS's auxiliary network: one block per stage, and the layers of a stage share one set of
weights (each layer keeps its own stochastic-depth rate, as in the official code)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.layers import PatchEmbed, trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn

from .blocknet import BlockNet, PoolHead, register_presets


class ViTEmbed(nn.Module):
    def __init__(self, img_size: int, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches, dim))
        if not self.pos_embed.is_meta:  # see vit()
            trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(x) + self.pos_embed


def vit(dim: int = 192, num_blocks: int = 6, layers_per_block: int = 2, num_heads: int = 3, mlp_ratio: float = 4.0,
        img_size: int = 32, patch_size: int = 4, num_classes: int = 10, in_chans: int = 3,
        drop_path_rate: float = 0.0, shared_stages: Sequence[int] | None = None) -> BlockNet:
    """``shared_stages`` (e.g. ``(3, 3, 4, 3, 3)``) replaces ``num_blocks`` x ``layers_per_block``: block i is a stage
    of ``shared_stages[i]`` layers that all use the weights of its first layer, ``blocks[i][0]``."""
    stage_lengths = list(shared_stages) if shared_stages else [layers_per_block] * num_blocks
    depth = sum(stage_lengths)
    rates = [drop_path_rate * i / max(1, depth - 1) for i in range(depth)]  # stochastic depth, rising with depth
    layers = [Block(dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=rate) for rate in rates]
    blocks, start = [], 0
    for length in stage_lengths:
        stage = layers[start:start + length]
        if shared_stages:
            for layer in stage[1:]:
                for part in ("norm1", "attn", "norm2", "mlp"):  # weights shared; drop_path and ls (identity) per layer
                    setattr(layer, part, getattr(stage[0], part))
        blocks.append(nn.Sequential(*stage))
        start += length
    head = PoolHead(dim, num_classes, norm=nn.LayerNorm(dim, eps=1e-6), tokens=True)
    net = BlockNet(ViTEmbed(img_size, patch_size, in_chans, dim), blocks, head, [dim] * len(blocks), num_classes,
                   tokens=True)
    for m in net.modules():
        # a model on the meta device (plan-time checks, FLOP counts) holds no values to initialise, and meta
        # trunc_normal_ runs through slow Python kernels: most of a plan's time went there
        if isinstance(m, nn.Linear) and not m.weight.is_meta:
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


# `paper`: the official PWL ViT-Tiny pair (224 px, patch 16, teacher 12 layers / student 6, 6 blocks).
# `cpu`: 32 px CIFAR at patch 4 (64 tokens), the same teacher-twice-as-deep-as-student structure.
# `des_*`: SWS descendant networks (one layer per block; SWS sets the depth with num_blocks, its Aux-Net with
# shared_stages): the official Des-S / Des-B (224 px, patch 16, 12 layers), and cpu versions at 16 tokens (32 px CIFAR
# at patch 8, 64 px Imagenette at patch 16).
PRESETS = {
    "teacher_paper": dict(dim=192, num_blocks=6, layers_per_block=2, num_heads=3, img_size=224, patch_size=16),
    "student_paper": dict(dim=192, num_blocks=6, layers_per_block=1, num_heads=3, img_size=224, patch_size=16),
    "teacher_cpu": dict(dim=128, num_blocks=3, layers_per_block=2, num_heads=4, img_size=32, patch_size=4),
    "student_cpu": dict(dim=128, num_blocks=3, layers_per_block=1, num_heads=4, img_size=32, patch_size=4),
    "tiny": dict(dim=32, num_blocks=2, layers_per_block=1, num_heads=2, img_size=32, patch_size=8),
    "des_s_paper": dict(dim=384, num_blocks=12, layers_per_block=1, num_heads=6, img_size=224, patch_size=16,
                        drop_path_rate=0.1),
    "des_b_paper": dict(dim=768, num_blocks=12, layers_per_block=1, num_heads=12, img_size=224, patch_size=16,
                        drop_path_rate=0.1),
    "des_cpu": dict(dim=128, num_blocks=6, layers_per_block=1, num_heads=4, img_size=32, patch_size=8),
    "des64_cpu": dict(dim=128, num_blocks=6, layers_per_block=1, num_heads=4, img_size=64, patch_size=16),
    "des_tiny": dict(dim=32, num_blocks=4, layers_per_block=1, num_heads=2, img_size=32, patch_size=8),
}

register_presets("vit", vit, PRESETS)
