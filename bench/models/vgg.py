"""VGG with batch norm as a BlockNet: one block = one stage of 3x3 conv-BN-ReLU layers followed by a 2x2 max-pool."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .blocknet import BlockNet, PoolHead, register_presets


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class VGGStage(nn.Sequential):
    def __init__(self, cin: int, cout: int, convs: int, stride: int = 1):
        layers = [conv_bn_relu(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(convs)]
        super().__init__(*layers, nn.MaxPool2d(2))


def vgg(widths: Sequence[int], convs: Sequence[int], num_classes: int = 10, in_chans: int = 3,
        stem_stride: int = 1) -> BlockNet:
    """``stem_stride`` 2 (the first conv strided) runs 64 px images at the cost and feature-map sizes of 32 px ones,
    with the same parameters."""
    if len(widths) != len(convs):
        raise ValueError(f"vgg: widths {list(widths)} and convs {list(convs)} must have one entry per block")
    blocks = [VGGStage(cin, cout, n, stem_stride if i == 0 else 1)
              for i, (cin, cout, n) in enumerate(zip([in_chans, *widths[:-1]], widths, convs))]
    net = BlockNet(nn.Identity(), blocks, PoolHead(widths[-1], num_classes), widths, num_classes, channels_last=True)
    _init(net)
    return net


def _init(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


# Presets. `paper`: the official PWL VGG (docs/methods/pwl.md). `cpu`: same 5-block structure, scaled to the 2-core
# budget; the cpu student is narrower than its teacher, so PWL's converters are real 1x1 maps.
PRESETS = {
    "teacher_paper": dict(widths=(64, 128, 256, 512, 512), convs=(2, 2, 3, 3, 3)),
    "student_paper": dict(widths=(64, 128, 256, 512, 512), convs=(1, 1, 1, 1, 1)),
    "teacher_cpu": dict(widths=(32, 64, 128, 256, 256), convs=(1, 1, 2, 2, 2)),
    "student_cpu": dict(widths=(16, 32, 64, 128, 128), convs=(1, 1, 1, 1, 1)),
    "tiny": dict(widths=(8, 16, 16, 32, 32), convs=(1, 1, 1, 1, 1)),
}


register_presets("vgg", vgg, PRESETS)
