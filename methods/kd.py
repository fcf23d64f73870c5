"""Knowledge distillation (Hinton et al., 2015): labels plus the teacher's temperature-softened predictions.

    L = alpha * CE(z_s, y) + (1 - alpha) * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

Suite default T = 4, alpha = 0.1 (the common CIFAR recipe of RepDistiller and mdistiller); both are config fields.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from progbench.protocol import Batch, Method, OperatingPoint, Phase


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2-scaled KL(teacher || student) of the softened distributions, averaged over the batch."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits.float() / t, dim=1), F.log_softmax(teacher_logits.float() / t, dim=1),
                    reduction="batchmean", log_target=True) * t * t


def kd_step(student: torch.nn.Module, teacher: torch.nn.Module, T: float, alpha: float, smoothing: float):
    """The training step of a KD student: named losses alpha * CE and (1 - alpha) * T^2 * KL (no CE at alpha 0)."""

    def step(batch: Batch) -> dict:
        with torch.no_grad():
            teacher_logits = teacher(batch.x)
        logits = student(batch.x)
        losses = {"ce": alpha * F.cross_entropy(logits, batch.y, label_smoothing=smoothing)} if alpha else {}
        losses["kd"] = (1 - alpha) * kd_loss(logits, teacher_logits, T)
        return losses

    return step


class KD(Method):
    name = "kd"
    version = "1"
    needs_teacher = True

    @dataclass(frozen=True)
    class Config:
        T: float = 4.0
        alpha: float = 0.1  # weight of the label term; 1 - alpha goes to the soft term

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        self.student = ctx.create_model()

    def phases(self):
        yield Phase("train", self.student, kd_step(self.student, self.teacher, self.config.T, self.config.alpha,
                                                   self.ctx.task.budget.label_smoothing))

    def anytime_family(self):
        return [OperatingPoint("student", self.student)]
