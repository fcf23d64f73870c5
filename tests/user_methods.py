"""Methods written the way a user writes one (a file, loaded by ``path.py:ClassName``); used by the tests."""
import torch

from progbench.methods.kd import kd_loss
from progbench.methods.scratch import Scratch
from progbench.protocol import OperatingPoint, Phase


class Diverges(Scratch):
    """Scratch training whose loss is NaN from the first step: the harness must stop with one clear line."""
    name = "diverges"

    def loss(self, batch):
        return {name: value * float("nan") for name, value in super().loss(batch).items()}


class TwoStage(Scratch):
    """Two phases with a module built between them: scratch training, then a second model (initialised between the
    yields, from the RNG) distilled from the first. Exercises multi-phase resume."""
    name = "two-stage"

    def phases(self):
        yield from super().phases()
        self.second = self.ctx.create_model().to(self.ctx.device)
        yield Phase("second", self.second, self.second_loss)

    def second_loss(self, batch):
        with torch.no_grad():
            target = self.model(batch.x)
        return {"kd": kd_loss(self.second(batch.x), target, temperature=4.0)}

    def anytime_family(self):
        return [OperatingPoint("first", self.model), OperatingPoint("second", self.second)]


class InitRaises(Scratch):
    """A method whose constructor fails: named, with its message, at plan time."""
    name = "init-raises"

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        raise ValueError("widths do not fit")


class StepRaises(Scratch):
    """A method whose training step fails: the run fails in one line naming the method."""
    name = "step-raises"

    def loss(self, batch):
        raise KeyError("no such loss")


class Unordered(Scratch):
    """An anytime family that is not cheapest first: refused at plan time, before training."""
    name = "unordered"

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        self.small = ctx.create_model(widths=[4, 4, 8, 8, 8])

    def anytime_family(self):
        return [OperatingPoint("large", self.model), OperatingPoint("small", self.small)]


class UnsafeName(Scratch):
    """A point name that is no file name: refused at plan time."""
    name = "unsafe-name"

    def anytime_family(self):
        return [OperatingPoint("../model", self.model)]
