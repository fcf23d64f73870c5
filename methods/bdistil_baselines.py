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

from bench import data as datamod
from bench.protocol import Method, OperatingPoint, Phase
from methods.kd import kd_step


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


class Resched(Method):
    name = "resched"
    version = "1"
    needs_teacher = True

    @dataclass(frozen=True)
    class Config(KDConfig):
        members: int = 4
        student: dict = None  # create_model kwargs of the task's student arch (None: as the suite gives it)

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        self.students = nn.ModuleList()

    def phases(self) -> Iterator[Phase]:
        cfg = self.config
        for t in range(cfg.members):
            net = self.ctx.create_model(**(cfg.student or {}))
            self.students.append(net)
            yield Phase(f"student{t + 1}", net, kd_step(net, self.teacher, cfg.T, cfg.alpha,
                                                       self.ctx.task.budget.label_smoothing), validate=False)

    @torch.no_grad()
    def _val_logits(self, net: nn.Module) -> torch.Tensor:
        from bench.train import autocast
        data = self.ctx.data
        prep = datamod.Preprocess(data.mean, data.std, self.ctx.task.budget.augment_spec, self.ctx.device)
        net.eval()
        with autocast(self.ctx.device, self.ctx.task.budget.precision):
            return torch.cat([net(prep(x, train=False)).float().cpu()
                              for _, x, _ in datamod.batches(data.val, 500, shuffle=False)])

    def anytime_family(self) -> list[OperatingPoint]:
        val = [self._val_logits(s) for s in self.students]
        points = []
        for k in range(1, len(self.students) + 1):
            w = fit_weights(val[:k], self.ctx.data.val.labels)
            points.append(OperatingPoint(f"stage{k}", WeightedEnsemble(list(self.students[:k]), w),
                                         {"members": k, "weights": [round(float(v), 6) for v in w]}))
        return points


class NoResched(Method):
    name = "noresched"
    version = "1"
    needs_teacher = True

    @dataclass(frozen=True)
    class Config(KDConfig):
        students: tuple = ({},)  # create_model kwargs of the task's student arch, one per budget, cheapest first

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        self.students = nn.ModuleList()

    def phases(self) -> Iterator[Phase]:
        cfg = self.config
        for i, kwargs in enumerate(cfg.students):
            net = self.ctx.create_model(**dict(kwargs))
            self.students.append(net)
            yield Phase(f"student{i + 1}", net, kd_step(net, self.teacher, cfg.T, cfg.alpha,
                                                       self.ctx.task.budget.label_smoothing), validate=False)

    def anytime_family(self) -> list[OperatingPoint]:
        return [OperatingPoint(f"size{i + 1}", s, {"student": dict(k)})
                for i, (s, k) in enumerate(zip(self.students, self.config.students))]
