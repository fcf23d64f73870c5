"""The baselines B-DISTIL is compared with at equal inference cost (the paper's names):

* ``resched``: K KD students of one size trained independently; stage k averages the first k with weights fitted on
  val (val negative log-likelihood of the weighted sum of logits);
* ``noresched``: one KD student per budget, sized to a B-DISTIL stage's cost -- the oracle that gets each budget's
  whole capacity in one network.

Like B-DISTIL's members, their students skip the per-epoch val pass (the same training work for all three methods;
val accuracy is measured on every point after training).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from progbench.methods.kd import kd_step
from progbench.protocol import Method, OperatingPoint, Phase
from progbench.scale import PlannedPhase


def fit_weights(logits: list[torch.Tensor], labels: torch.Tensor, steps: int = 50) -> torch.Tensor:
    """Weights w minimising the NLL of softmax(sum_t w_t z_t) on (val) logits, from w = 1/k (L-BFGS)."""
    stacked = torch.stack([z.double() for z in logits])
    w = torch.full((len(logits),), 1.0 / len(logits), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(torch.einsum("t,tnc->nc", w, stacked), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().float()


class WeightedEnsemble(nn.Module):
    def __init__(self, students: list[nn.Module], weights: torch.Tensor):
        super().__init__()
        self.students = nn.ModuleList(students)
        self.register_buffer("weights", weights.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(w * s(x).float() for w, s in zip(self.weights, self.students))


@dataclass(frozen=True)
class KDConfig:
    T: float = 4.0  # the suite's KD defaults (methods/kd.py)
    alpha: float = 0.1


class KDStudents(Method):
    """KD students trained one after another, one phase each; a subclass says which, and how they form its points."""

    needs_teacher = True

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        self.students = nn.ModuleList()

    @classmethod
    def student_kwargs(cls, config) -> list[dict]:
        raise NotImplementedError

    @classmethod
    def planned_phases(cls, config) -> list[PlannedPhase]:
        """For ``progbench plan``: each student trained with the teacher's forward on every batch."""
        return [PlannedPhase(f"student{i + 1}", f"student{i + 1}", kwargs, teacher_passes=1.0)
                for i, kwargs in enumerate(cls.student_kwargs(config))]

    def phases(self) -> Iterator[Phase]:
        cfg = self.config
        for i, kwargs in enumerate(self.student_kwargs(cfg)):
            net = self.ctx.create_model(**kwargs)
            self.students.append(net)
            yield Phase(f"student{i + 1}", net, kd_step(net, self.teacher, cfg.T, cfg.alpha,
                                                       self.ctx.task.budget.label_smoothing), validate=False)


class Resched(KDStudents):
    name = "resched"
    version = "1"

    @dataclass(frozen=True)
    class Config(KDConfig):
        members: int = 4
        student: dict = None  # create_model kwargs of the task's student arch (None: as the suite gives it)

    @classmethod
    def student_kwargs(cls, config) -> list[dict]:
        return [dict(config.student or {}) for _ in range(config.members)]

    def anytime_family(self) -> list[OperatingPoint]:
        val = [self.ctx.predict(s, self.ctx.data.val) for s in self.students]
        points = []
        for k in range(1, len(self.students) + 1):
            w = fit_weights(val[:k], self.ctx.data.val.labels)
            points.append(OperatingPoint(f"stage{k}", WeightedEnsemble(list(self.students[:k]), w),
                                         {"members": k, "weights": [round(float(v), 6) for v in w]}))
        return points


class NoResched(KDStudents):
    name = "noresched"
    version = "1"

    @dataclass(frozen=True)
    class Config(KDConfig):
        students: tuple = ({},)  # create_model kwargs of the task's student arch, one per budget, cheapest first

    @classmethod
    def student_kwargs(cls, config) -> list[dict]:
        return [dict(k) for k in config.students]

    def anytime_family(self) -> list[OperatingPoint]:
        return [OperatingPoint(f"size{i + 1}", s, {"student": dict(k)})
                for i, (s, k) in enumerate(zip(self.students, self.config.students))]
