"""Methods written the way a user writes one (a file, loaded by ``path.py:ClassName``); used by the tests."""
from dataclasses import dataclass

import torch.nn.functional as F

from bench.protocol import Method, OperatingPoint, Phase


class Diverges(Method):
    """Its loss is NaN from the first step: the harness must stop with one clear line."""
    name = "diverges"

    @dataclass(frozen=True)
    class Config:
        pass

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        self.model = ctx.create_model()

    def phases(self):
        yield Phase("train", self.model, lambda b: {"ce": F.cross_entropy(self.model(b.x), b.y) * float("nan")})

    def anytime_family(self):
        return [OperatingPoint("model", self.model)]
