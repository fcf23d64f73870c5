"""The anytime families of B-DISTIL and RESCHED runs recorded before a record kept its architectures (``points.pt``),
rebuilt on the untrained method (meta device) from what the record says of its points, so a latency pass can time
them (``progbench.protocol.RECORDED_FAMILIES``). Kept out of the methods' own files: nothing here changes what a run
of them computes, and the stale-code guard hashes those files.
"""
from __future__ import annotations

import torch

from progbench.methods.bdistil import BDistil
from progbench.methods.bdistil_baselines import Resched, WeightedEnsemble
from progbench.protocol import OperatingPoint


def bdistil(method: BDistil, points: list[dict]) -> list[OperatingPoint]:
    """Stage k's ensemble: the members its ``info`` names (candidate indices), each connected to the one before."""
    for candidate in points[-1]["info"]["candidates"]:
        method.attempts.append(method._new_member(candidate))
        method.candidate_of.append(candidate)
        method.chosen.append(len(method.attempts) - 1)
    return [OperatingPoint(p["point"], method.ensemble(k), p["info"]) for k, p in enumerate(points, 1)]


def resched(method: Resched, points: list[dict]) -> list[OperatingPoint]:
    """Stage k's weighted ensemble: the first k students of the config's size, with the weights the run fitted."""
    method.students.extend(method.ctx.create_model(**kwargs) for kwargs in method.student_kwargs(method.config))
    return [OperatingPoint(p["point"], WeightedEnsemble(list(method.students[:p["info"]["members"]]),
                                                        torch.tensor(p["info"]["weights"])), p["info"])
            for p in points]
