"""Methods written the way a user writes one (a file, loaded by ``path.py:ClassName``); used by the tests."""
import torch

from bench.protocol import OperatingPoint, Phase
from methods.kd import kd_loss
from methods.scratch import Scratch


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
