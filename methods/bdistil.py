"""B-DISTIL: a teacher decomposed into a boosted ensemble of small students, evaluated member by member.

No official code exists and the paper's algorithm section could not be read; this is the construction the paper's
abstract and public summaries describe, every open choice a config field (``docs/methods/bdistil.md`` says what is
ours; ``docs/claims.md`` B1-B3 what the suite checks).

With teacher logits g (centred per sample) and the ensemble F_{t-1} = f_1 + ... + f_{t-1} on the training images,
round t puts exponential weights on the residual r = g - F_{t-1} over (sample, class):

    K+(i, j) = exp(+eta r_ij) / Z,   K-(i, j) = exp(-eta r_ij) / Z,   Z = sum over i, j of both

and trains a weak learner f = c * tanh(z) (z: the member's logits) to maximise the log-barrier objective

    J(f) = sum_ij K+ log(1 + f/c) + K- log(1 - f/c)       (maximised at f = c * tanh(eta r): a bounded residual)

It is accepted when the weak-learning condition holds, margin = sum_ij (K+ - K-) f_ij >= gamma * c; otherwise the next
larger candidate from the configured list is trained in its place (the largest is accepted, flagged, if all fail).
With ``connections`` a member also reads the previous member's last features through a zero-initialised linear map
(1x1 conv on feature maps, linear on tokens), counted in its cost. Stage k of the anytime family is the first k
members: logits F_k, run in sequence.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from progbench.errors import UserError
from progbench.evaluate import flops_per_image
from progbench.models import BlockNet
from progbench.protocol import Batch, Method, OperatingPoint, Phase, later_field
from progbench.scale import PlannedPhase

# --- the boosting quantities, as functions of tensors (tested by hand) -------------------------------------------


def centred(logits: torch.Tensor) -> torch.Tensor:
    """Logits minus their mean over classes: the same softmax, and a residual that does not drift with the mean."""
    return logits - logits.mean(dim=1, keepdim=True)


def boosting_weights(residual: torch.Tensor, eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """K+ and K- over (sample, class): exp(+-eta * residual), normalised together to sum to 1."""
    scaled = torch.stack([eta * residual, -eta * residual]).double()
    weights = torch.exp(scaled - torch.logsumexp(scaled.flatten(), dim=0))
    return weights[0].float(), weights[1].float()


def barrier_objective(f: torch.Tensor, k_plus: torch.Tensor, k_minus: torch.Tensor, bound: float) -> torch.Tensor:
    """J(f) = sum K+ log(1 + f/c) + K- log(1 - f/c), for outputs |f| < c."""
    return (k_plus * torch.log1p(f / bound) + k_minus * torch.log1p(-f / bound)).sum()


def barrier_loss(z: torch.Tensor, k_plus: torch.Tensor, k_minus: torch.Tensor, scale: float) -> torch.Tensor:
    """-J for f = c * tanh(z), up to the constant log 2, in a form stable for any z:
    log(1 + tanh z) = log 2 + logsigmoid(2z) and log(1 - tanh z) = log 2 + logsigmoid(-2z)."""
    z = z.float()
    return -scale * (k_plus * F.logsigmoid(2 * z) + k_minus * F.logsigmoid(-2 * z)).sum()


def margin(f: torch.Tensor, k_plus: torch.Tensor, k_minus: torch.Tensor) -> float:
    """The weak-learning quantity sum (K+ - K-) f: how well f follows the sign of the residual, weighted."""
    return float(((k_plus - k_minus) * f).sum())


def edge(f: torch.Tensor, k_plus: torch.Tensor, k_minus: torch.Tensor, bound: float) -> float:
    """The margin normalised by the most any f with |f| <= c could reach, c * sum |K+ - K-|: in [-1, 1], so one
    threshold means the same in every round (the raw margin shrinks as the weights even out)."""
    return margin(f, k_plus, k_minus) / (bound * float((k_plus - k_minus).abs().sum()))


def log_normaliser(residual: torch.Tensor, eta: float) -> torch.Tensor:
    """log Z of :func:`boosting_weights`: weights of other views of the same images are taken relative to it."""
    scaled = torch.stack([eta * residual, -eta * residual]).double()
    return torch.logsumexp(scaled.flatten(), dim=0)


# --- members and the ensemble ---------------------------------------------------------------------------------------


def projection(width_in: int, width_out: int, tokens: bool) -> nn.Module:
    """A zero-initialised linear map over channels: a new member starts as if unconnected."""
    layer = nn.Linear(width_in, width_out) if tokens else nn.Conv2d(width_in, width_out, 1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class Member(nn.Module):
    """A weak learner: a student network, optionally adding a projection of the previous member's last features to its
    own before its head."""

    def __init__(self, net: BlockNet, previous_width: int | None = None):
        super().__init__()
        self.net = net
        self.connection = projection(previous_width, net.block_widths[-1], net.tokens) if previous_width else None

    def forward(self, x: torch.Tensor, previous: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw outputs z (f = c * tanh z) and the last features, which the next member may read."""
        h = self.net.embed(x)
        for block in self.net.blocks:
            h = block(h)
        if self.connection is not None:
            where = slice(1, 2) if self.net.tokens else slice(2, None)  # token count, or feature-map size
            if previous is None or previous.shape[where] != h.shape[where]:
                raise UserError("bdistil: a connected member needs the previous member's features at its own size; "
                                "use candidates with the same downsampling (or tokens), or connections: false")
            h = h + self.connection(previous.to(h.dtype))
        return self.net.head(h), h


class Ensemble(nn.Module):
    """Stage k: logits F = sum over members of c * tanh(z_t), members run in sequence (each may read the last)."""

    def __init__(self, members: list[Member], bound: float, num_classes: int):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.bound = bound
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros(x.shape[0], self.num_classes, dtype=torch.float32)
        previous = None
        for member in self.members:
            z, previous = member(x, previous)
            total = total + self.bound * torch.tanh(z.float())
        return total


def last_features(members, x: torch.Tensor) -> torch.Tensor | None:
    """The last member's features after running the chain: what a connected next member reads."""
    previous = None
    for member in members:
        _, previous = member(x, previous)
    return previous


class Candidate(nn.Module):
    """A member being trained or judged, fed by the accepted chain (run only when the member is connected to it)."""

    def __init__(self, chain: list[Member], member: Member, bound: float):
        super().__init__()
        self.chain = nn.ModuleList(chain if member.connection is not None else [])
        self.member = member
        self.bound = bound

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the accepted members are fixed; only their last features are read
            previous = last_features(self.chain, x)
        return self.member(x, previous)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bound * torch.tanh(self.raw(x).float())


# --- the method ------------------------------------------------------------------------------------------------------


class BDistil(Method):
    name = "bdistil"
    version = "1"
    needs_teacher = True

    @dataclass(frozen=True)
    class Config:
        rounds: int = 4  # members in the final ensemble (K)
        # create_model kwargs for the task's student arch, smallest first; a round starts at the last accepted one
        candidates: tuple = ({},)
        bound: float = 4.0  # c: each member's outputs lie in (-c, c) (4: the best val agreement of 1, 2, 4, 6, 8 in a
        # pilot on the cpu VGG family)
        eta: float | None = None  # exponential-weights rate; None: 1 / c (then f* = c tanh(r / c) ~ r for small r)
        gamma: float = 0.05  # weak-learning condition: margin >= gamma * c
        connections: bool = True
        epochs_per_round: int | None = None  # None: the budget's epochs
        # where the residual that sets the weights is read: "clean" (teacher and ensemble on the un-augmented
        # training images, once per round) or "view" (on the augmented batch the member sees, every step; weights
        # relative to the clean images' normaliser)
        targets: str = later_field("clean")
        # the weak-learning test: "margin" (sum (K+ - K-) f >= gamma * c) or "edge" (that margin over its largest
        # possible value, c * sum |K+ - K-|, >= gamma)
        acceptance: str = later_field("margin")

        def __post_init__(self):
            if self.targets not in ("clean", "view") or self.acceptance not in ("margin", "edge"):
                raise UserError(f"method bdistil: targets is clean or view (got {self.targets!r}), acceptance is "
                                f"margin or edge (got {self.acceptance!r})")

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        if config.rounds < 1 or not config.candidates or config.bound <= 0:
            raise UserError("method bdistil: rounds >= 1, at least one candidate and bound > 0 are required")
        attempts = config.rounds * len(config.candidates)  # room enough: rounds move up the list, never down
        self.attempts = nn.ModuleList()  # every member trained, accepted or not (those not are extra params)
        # Decisions live in buffers, so a resumed run replays them instead of recomputing them on later weights.
        self.register_buffer("accepted", torch.full((attempts,), -1, dtype=torch.long))  # -1 undecided, 0 no, 1 yes
        self.register_buffer("margins", torch.zeros(attempts))
        self.register_buffer("edges", torch.zeros(attempts))
        self.register_buffer("agreement", torch.zeros(config.rounds, 2))  # train, val agreement with the teacher
        self.chosen: list[int] = []  # attempt index of each accepted member, in order
        self.candidate_of: list[int] = []  # candidate index of each attempt

    @classmethod
    def planned_models(cls, config) -> list[tuple[str, dict]]:
        """Every member a run may build: the candidates, smallest first (for ``progbench plan --models``)."""
        return [(f"candidate{i}", dict(c)) for i, c in enumerate(config.candidates)]

    @classmethod
    def planned_phases(cls, config) -> list[PlannedPhase]:
        """For ``progbench plan``, assuming every round accepts its first candidate (a rejected candidate adds a round
        of a larger one): each round trains a member; a connected member also runs the accepted chain forward."""
        first = dict(config.candidates[0])
        return [PlannedPhase(f"round{r + 1}", "candidate0", first, epochs=config.epochs_per_round,
                             passes=3.0 + (r if config.connections else 0)) for r in range(config.rounds)]

    @property
    def eta(self) -> float:
        return self.config.eta if self.config.eta is not None else 1.0 / self.config.bound

    def ensemble(self, count: int | None = None) -> Ensemble:
        members = [self.attempts[i] for i in self.chosen[:count]]
        return Ensemble(members, self.config.bound, self.ctx.num_classes)

    def _new_member(self, candidate: int) -> Member:
        net = self.ctx.create_model(**dict(self.config.candidates[candidate]))
        connected = self.chosen and self.config.connections
        return Member(net, self.attempts[self.chosen[-1]].net.block_widths[-1] if connected else None)

    def phases(self) -> Iterator[Phase]:
        cfg, data = self.config, self.ctx.data
        teacher = {name: centred(self.ctx.predict(self.teacher, getattr(data, name))) for name in ("train", "val")}
        ensemble = {name: torch.zeros_like(t) for name, t in teacher.items()}
        n_train = len(data.train)
        candidate = 0
        for round_index in range(cfg.rounds):
            k_plus, k_minus = boosting_weights(teacher["train"] - ensemble["train"], self.eta)
            kp, km = k_plus.to(self.ctx.device), k_minus.to(self.ctx.device)
            log_z = float(log_normaliser(teacher["train"] - ensemble["train"], self.eta))
            accepted_so_far = self.ensemble()
            while True:
                attempt = len(self.attempts)
                member = self._new_member(candidate)
                self.attempts.append(member)
                self.candidate_of.append(candidate)
                candidate_net = Candidate(list(self.ensemble().members), member, cfg.bound)

                def step(batch: Batch, candidate_net=candidate_net, kp=kp, km=km, log_z=log_z,
                         accepted_so_far=accepted_so_far) -> dict:
                    if cfg.targets == "view":  # the residual on the very images the member is trained on
                        with torch.no_grad():
                            residual = centred(self.teacher(batch.x).float()) - accepted_so_far(batch.x)
                            scaled = self.eta * residual.double()
                            k_p, k_m = (torch.exp(scaled - log_z).float(), torch.exp(-scaled - log_z).float())
                    else:
                        idx = batch.index.to(kp.device)
                        k_p, k_m = kp[idx], km[idx]
                    return {"barrier": barrier_loss(candidate_net.raw(batch.x), k_p, k_m, n_train / len(batch.x))}

                # agreement on val is measured after each round, so the trainer's per-epoch val pass is skipped
                yield Phase(f"round{round_index + 1}-candidate{candidate}", member, step, validate=False,
                            epochs=cfg.epochs_per_round)
                f_train = self.ctx.predict(candidate_net, data.train)
                if self.accepted[attempt] < 0:  # decided now; a resumed run replays the recorded decision
                    self.margins[attempt] = margin(f_train, k_plus, k_minus)
                    self.edges[attempt] = edge(f_train, k_plus, k_minus, cfg.bound)
                    largest = candidate == len(cfg.candidates) - 1
                    self.accepted[attempt] = int(self.condition_met(attempt) or largest)
                accepted = bool(self.accepted[attempt])
                tqdm.write(f"{self.name} round {round_index + 1} candidate {candidate}: margin "
                           f"{float(self.margins[attempt]) / cfg.bound:.4f} c, edge {float(self.edges[attempt]):.4f} "
                           f"({cfg.acceptance} test, gamma {cfg.gamma}): {'accepted' if accepted else 'rejected'}")
                if accepted:
                    break
                candidate += 1
            f_val = self.ctx.predict(candidate_net, data.val)
            self.chosen.append(attempt)
            ensemble["train"] += f_train
            ensemble["val"] += f_val
            for col, name in enumerate(("train", "val")):
                self.agreement[round_index, col] = (ensemble[name].argmax(1) == teacher[name].argmax(1)).float().mean()
            tqdm.write(f"{self.name} round {round_index + 1}: agreement with the teacher, train "
                       f"{float(self.agreement[round_index, 0]):.4f}, val {float(self.agreement[round_index, 1]):.4f}")

    def condition_met(self, attempt: int) -> bool:
        cfg = self.config
        if cfg.acceptance == "edge":
            return bool(self.edges[attempt] >= cfg.gamma)
        return bool(self.margins[attempt] >= cfg.gamma * cfg.bound)

    @torch.no_grad()
    def member_flops(self) -> tuple[list[int], list[int]]:
        """FLOPs per image of each accepted member's own network and of its connection."""
        x = torch.zeros(1, 3, self.ctx.image_size, self.ctx.image_size, device=self.ctx.device)
        nets, links, previous = [], [], None
        for i in self.chosen:
            member = self.attempts[i].eval()
            nets.append(flops_per_image(member.net, x))
            links.append(flops_per_image(member.connection, previous) if member.connection is not None else 0)
            _, previous = member(x, previous)
        return nets, links

    def anytime_family(self) -> list[OperatingPoint]:
        c = self.config.bound
        nets, links = self.member_flops()
        points = []
        for k in range(1, len(self.chosen) + 1):
            chosen = self.chosen[:k]
            info = {"members": k, "candidates": [self.candidate_of[i] for i in chosen],
                    "member_flops": nets[:k], "connection_flops": links[:k],
                    # run in parallel: every member's network at once, then the connections one after another
                    "parallel_flops": max(nets[:k]) + sum(links[:k]),
                    "margin_over_c": round(float(self.margins[chosen[-1]]) / c, 6),
                    "edge": round(float(self.edges[chosen[-1]]), 6),
                    "condition_met": self.condition_met(chosen[-1]),
                    "attempts": chosen[-1] - (chosen[-2] if k > 1 else -1),  # candidates trained this round
                    "train_agreement": round(float(self.agreement[k - 1, 0]), 6),
                    "val_agreement": round(float(self.agreement[k - 1, 1]), 6),
                    "connections": self.config.connections}
            points.append(OperatingPoint(f"stage{k}", self.ensemble(k), info))
        return points
