"""Training from scratch on labels: the lower bound every distillation method must beat (and how teachers are made)."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from progbench.protocol import Batch, Method, OperatingPoint, Phase


class Scratch(Method):
    name = "scratch"
    version = "1"

    @dataclass(frozen=True)
    class Config:
        pass

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        self.model = ctx.create_model()

    def loss(self, batch: Batch) -> dict:
        return {"ce": F.cross_entropy(self.model(batch.x), batch.y,
                                      label_smoothing=self.ctx.task.budget.label_smoothing)}

    def phases(self):
        yield Phase("train", self.model, self.loss)

    def anytime_family(self):
        return [OperatingPoint("model", self.model)]
