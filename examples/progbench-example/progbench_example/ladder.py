"""KD ladder: the teacher's knowledge passed down one rung at a time, teacher -> full student -> narrow student.

Teacher-assistant distillation (Mirzadeh et al., AAAI 2020) with the task's own student as the assistant:

    phase full:   the task's student distils from the teacher (Hinton KD, as ``kd`` trains it)
    phase small:  a narrow copy of the student (``width`` x its channels; for a ViT, fewer attention heads of the
                  same size) distils from the trained, frozen full student

    L = alpha * CE(z_s, y) + (1 - alpha) * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))    in both phases

The anytime family is [small, full], cheapest first: a deployment answers with whichever its budget allows.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from progbench.errors import UserError
from progbench.methods.kd import kd_step
from progbench.models import BlockNet
from progbench.protocol import Method, OperatingPoint, Phase


def narrow(student: nn.Module, width: float) -> dict:
    """``create_model`` kwargs that make the task's student ``width`` times as wide, all else as it is."""
    if not isinstance(student, BlockNet):
        raise UserError(f"kd-ladder derives its small rung from a progbench BlockNet student, not "
                        f"{type(student).__name__}; set its config field `small` (create_model kwargs)")
    if student.tokens:  # a ViT: fewer heads of the same size
        heads = student.blocks[0][0].attn.num_heads
        head_dim = student.block_widths[0] // heads
        heads = max(1, round(heads * width))
        return {"dim": heads * head_dim, "num_heads": heads}
    return {"widths": [max(1, round(w * width)) for w in student.block_widths]}


class KDLadder(Method):
    name = "kd-ladder"
    version = "1"
    needs_teacher = True

    @dataclass(frozen=True)
    class Config:
        T: float = 4.0  # the suite's KD defaults (methods/kd.py), in both phases
        alpha: float = 0.1
        width: float = 0.5  # the small rung's width as a fraction of the student's
        small: dict | None = None  # create_model kwargs of the small rung instead (for students that are not BlockNets)

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        self.full = ctx.create_model()
        self.small = ctx.create_model(**(config.small if config.small is not None else narrow(self.full,
                                                                                               config.width)))

    def phases(self):
        cfg, smoothing = self.config, self.ctx.task.budget.label_smoothing
        yield Phase("full", self.full, kd_step(self.full, self.teacher, cfg.T, cfg.alpha, smoothing))
        # the harness keeps what a phase does not train in eval mode: the full student is a frozen teacher here
        yield Phase("small", self.small, kd_step(self.small, self.full, cfg.T, cfg.alpha, smoothing))

    def anytime_family(self):
        return [OperatingPoint("small", self.small), OperatingPoint("full", self.full)]
