"""Methods written the way a user writes one (a file, loaded by ``path.py:ClassName``); used by the tests."""
from methods.scratch import Scratch


class Diverges(Scratch):
    """Scratch training whose loss is NaN from the first step: the harness must stop with one clear line."""
    name = "diverges"

    def loss(self, batch):
        return {name: value * float("nan") for name, value in super().loss(batch).items()}
