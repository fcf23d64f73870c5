"""ResNet with basic blocks as a BlockNet: a 3x3 stride-1 stem (no max-pool, as for 32 px CIFAR) as embedder, and one
block per stage of timm ``BasicBlock``s; every stage after the first halves the resolution."""
from __future__ import annotations

from collections.abc import Sequence

from timm.models.resnet import BasicBlock
from torch import nn

from .blocknet import BlockNet, PoolHead, register_presets


def stage(cin: int, cout: int, depth: int, stride: int) -> nn.Sequential:
    layers = []
    for i in range(depth):
        s = stride if i == 0 else 1
        downsample = None
        if s != 1 or cin != cout:
            downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=s, bias=False), nn.BatchNorm2d(cout))
        layers.append(BasicBlock(cin, cout, stride=s, downsample=downsample))
        cin = cout
    return nn.Sequential(*layers)


def resnet(widths: Sequence[int], depths: Sequence[int], stem_width: int | None = None, num_classes: int = 10,
           in_chans: int = 3, stem_stride: int = 1) -> BlockNet:
    """``stem_stride`` 2 runs 64 px images at the cost (and feature-map sizes) of 32 px ones."""
    if len(widths) != len(depths):
        raise ValueError(f"resnet: widths {list(widths)} and depths {list(depths)} must have one entry per block")
    stem_width = stem_width or widths[0]
    embed = nn.Sequential(nn.Conv2d(in_chans, stem_width, 3, stride=stem_stride, padding=1, bias=False),
                          nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True))
    cins = [stem_width, *widths[:-1]]
    blocks = [stage(cin, cout, d, 1 if i == 0 else 2) for i, (cin, cout, d) in enumerate(zip(cins, widths, depths))]
    net = BlockNet(embed, blocks, PoolHead(widths[-1], num_classes), widths, num_classes, channels_last=True)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    for m in net.modules():  # zero-init the last BN of each residual branch: every block starts as the identity
        if isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)
    return net


# `paper`: the official PWL ResNet (docs/methods/pwl.md; its stem is 64 wide, the HF ResNet default it builds on).
# `cpu`: the same 4-block structure at half width.
PRESETS = {
    "teacher_paper": dict(widths=(32, 64, 128, 256), depths=(3, 4, 6, 3), stem_width=64),
    "student_paper": dict(widths=(32, 64, 128, 256), depths=(1, 1, 1, 1), stem_width=64),
    "teacher_cpu": dict(widths=(16, 32, 64, 128), depths=(2, 2, 2, 2)),
    "student_cpu": dict(widths=(16, 32, 64, 128), depths=(1, 1, 1, 1)),
    "tiny": dict(widths=(8, 8, 16, 16), depths=(1, 1, 1, 1)),
}

register_presets("resnet", resnet, PRESETS)
