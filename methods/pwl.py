"""Progressive Weight Loading (PWL): a student whose blocks can be replaced, one at a time, by the teacher's.

Teacher and student share the block structure embedder -> N blocks -> head. At every inner boundary i (after block
i, i < N-1) an encoder E_i maps teacher features to the student's width and a decoder D_i maps back (a 1x1 conv for
feature maps, a linear map for tokens; the identity where the widths are equal). Any mask m in {T, S}^N then defines
a network: the embedder of block 0's owner, block i from model m_i, E_i or D_i where the owner changes, the head of
block N-1's owner. With the teacher frozen, the student and the converters minimise (official defaults)

    hard            alpha * CE(z_s, y)
    soft            (1 - alpha) * T^2 * KL(p_t || p_s)
    feature         w_f * mean_i [ d(f_s, E(f_t)) + d(f_t, D(f_s)) ]
    reconstruction  w_r * mean_i [ d(f_t, D(E(f_t))) + d(f_s, E(D(f_s))) ]
    cross           w_c * T^2 * KL(p_t || p_mix),  z_mix under a random mixed mask

with d(a, b) = MSE(a, b) + mean over the batch of 1 - cos(flatten a, flatten b); T = 2, alpha = 0.4, w_f = w_r = 1,
w_c = 2; converters train at 0.2 x the learning rate; the gradient norm is clipped at 1 (the official code trains with
the Hugging Face Trainer, whose default max_grad_norm is 1; without it the cross term makes SGD at the suite's lr
diverge -- measured). The teacher stays in eval mode (its BN statistics are never touched), so the all-teacher network
is exactly the teacher. At deployment the student answers first, then teacher blocks
are loaded from the input side (T1, T1T2, ...) until the network is the teacher.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from progbench.errors import UserError
from progbench.methods.kd import kd_loss
from progbench.models import BlockNet
from progbench.protocol import Batch, Method, OperatingPoint, Phase, later_field
from progbench.scale import PlannedPhase

LOSSES = ("hard", "soft", "feature", "reconstruction", "cross")


def converter(width_in: int, width_out: int, tokens: bool) -> nn.Module:
    """A linear map over channels: 1x1 conv on feature maps, linear on tokens; identity when widths match."""
    if width_in == width_out:
        return nn.Identity()
    return nn.Linear(width_in, width_out) if tokens else nn.Conv2d(width_in, width_out, 1)


def feature_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.float(), b.float()
    return F.mse_loss(a, b) + (1 - F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)).mean()


def mask_name(mask: tuple[bool, ...]) -> str:
    """``TTSSS``: teacher blocks 1-2, student blocks 3-5."""
    return "".join("T" if m else "S" for m in mask)


def random_mask(n: int) -> tuple[bool, ...]:
    """The official random cross mask: half the time one switch point, else independent blocks; never all one model."""
    if torch.rand(()) < 0.5:
        start = bool(torch.rand(()) < 0.5)
        pivot = int(torch.randint(1, n, ()))
        return (start,) * pivot + (not start,) * (n - pivot)
    mask = [bool(b) for b in torch.rand(n) < 0.5]
    if len(set(mask)) == 1:
        i = int(torch.randint(0, n, ()))
        mask[i] = not mask[i]
    return tuple(mask)


class Part(nn.Module):
    """The pieces of one model a mixed network uses, under that model's own names (``blocks.2`` stays ``blocks.2``)."""

    def __init__(self, net: BlockNet, blocks: list[int], embed: bool, head: bool):
        super().__init__()
        if embed:
            self.embed = net.embed
        self.blocks = nn.ModuleDict({str(i): net.blocks[i] for i in blocks})
        if head:
            self.head = net.head


class MixedNet(nn.Module):
    """The network of one teacher/student mask. It holds exactly the weights the mask needs, named by origin
    (``teacher.blocks.0``, ``student.blocks.1``, ``encoders.0``), so stages of a deployment share names and a stage
    loads only what is new."""

    def __init__(self, mask: tuple[bool, ...], teacher: BlockNet, student: BlockNet, encoders: nn.ModuleList,
                 decoders: nn.ModuleList):
        super().__init__()
        n = len(mask)
        self.mask = tuple(mask)
        self.channels_last = teacher.channels_last
        for owner, net in (("teacher", teacher), ("student", student)):
            mine = [i for i in range(n) if mask[i] == (owner == "teacher")]
            if mine:
                setattr(self, owner, Part(net, mine, embed=mine[0] == 0, head=mine[-1] == n - 1))
        self.encoders = nn.ModuleDict({str(i): encoders[i] for i in range(n - 1) if mask[i] and not mask[i + 1]})
        self.decoders = nn.ModuleDict({str(i): decoders[i] for i in range(n - 1) if not mask[i] and mask[i + 1]})

    def _owner(self, i: int) -> Part:
        return self.teacher if self.mask[i] else self.student

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._owner(0).embed(x)
        for i in range(len(self.mask)):
            h = self._owner(i).blocks[str(i)](h)
            key = str(i)
            if key in self.encoders:
                h = self.encoders[key](h)
            elif key in self.decoders:
                h = self.decoders[key](h)
        return self._owner(len(self.mask) - 1).head(h)


class PWL(Method):
    name = "pwl"
    version = "1"
    needs_teacher = True

    @dataclass(frozen=True)
    class Config:
        T: float = 2.0
        alpha: float = 0.4  # hard-label weight; 1 - alpha goes to the soft term
        feature_weight: float = 1.0
        reconstruction_weight: float = 1.0
        cross_weight: float = 2.0
        converter_lr_scale: float = 0.2
        max_grad_norm: float | None = 1.0
        drop: tuple = ()  # ablation: names of losses to leave out, among LOSSES
        # examine the prefix dip as a BatchNorm artefact: also score each prefix stage with the student's BN
        # statistics re-estimated on that stage's own path (no training), as extra points "<mask>-bnstat"
        bn_restat: bool = later_field(False)

        def __post_init__(self):
            unknown = set(self.drop) - set(LOSSES)
            if unknown:
                raise UserError(f"pwl: config drop names unknown loss(es) {sorted(unknown)}; losses: {list(LOSSES)}")

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        self.student = ctx.create_model()
        teacher = self.teacher
        n = teacher.num_blocks
        if n < 2:
            raise UserError(f"pwl: teacher {ctx.task.teacher_arch} has {n} block; swapping blocks needs at least 2")
        if self.student.num_blocks != n:
            raise UserError(f"pwl: teacher {ctx.task.teacher_arch} has {n} blocks but student {ctx.task.arch} has "
                            f"{self.student.num_blocks}; PWL swaps block i for block i, so the counts must match")
        t_widths, s_widths = teacher.block_widths[:-1], self.student.block_widths[:-1]
        tokens = self.student.tokens
        self.encoders = nn.ModuleList(converter(t, s, tokens) for t, s in zip(t_widths, s_widths))
        self.decoders = nn.ModuleList(converter(s, t, tokens) for t, s in zip(t_widths, s_widths))
        self.num_blocks = n

    @classmethod
    def planned_phases(cls, config) -> list[PlannedPhase]:
        """For ``progbench plan``: a step runs the student forward and backward and the teacher forward; the cross
        term adds a mixed network, on average half teacher and half student blocks, forward and backward (weight and
        input gradients through its student half, input gradients only through the teacher blocks after a student
        block: about a quarter of the teacher). The converters (1x1 maps, identity where widths match) are left out."""
        cross = "cross" not in config.drop
        return [PlannedPhase("train", "student", {}, passes=3.0 + 1.5 * cross, teacher_passes=1.0 + 0.75 * cross)]

    def mixed(self, mask: tuple[bool, ...]) -> MixedNet:
        return MixedNet(mask, self.teacher, self.student, self.encoders, self.decoders)

    def losses(self, batch: Batch) -> dict:
        cfg, T, use = self.config, self.config.T, set(LOSSES) - set(self.config.drop)
        with torch.no_grad():
            z_t, f_t = self.teacher.forward_taps(batch.x)
        z_s, f_s = self.student.forward_taps(batch.x)
        pairs = list(zip(f_t[:-1], f_s[:-1], self.encoders, self.decoders))  # taps after blocks 0..N-2
        out = {}
        if "hard" in use:
            out["hard"] = cfg.alpha * F.cross_entropy(z_s, batch.y,
                                                      label_smoothing=self.ctx.task.budget.label_smoothing)
        if "soft" in use:
            out["soft"] = (1 - cfg.alpha) * kd_loss(z_s, z_t, T)
        if "feature" in use:
            out["feature"] = cfg.feature_weight * sum(
                feature_distance(s, enc(t)) + feature_distance(t, dec(s)) for t, s, enc, dec in pairs) / len(pairs)
        if "reconstruction" in use:
            out["reconstruction"] = cfg.reconstruction_weight * sum(
                feature_distance(t, dec(enc(t))) + feature_distance(s, enc(dec(s))) for t, s, enc, dec in pairs
            ) / len(pairs)
        if "cross" in use:
            out["cross"] = cfg.cross_weight * kd_loss(self.mixed(random_mask(self.num_blocks))(batch.x), z_t, T)
        return out

    def phases(self):
        converters = [p for m in (self.encoders, self.decoders) for p in m.parameters()]
        groups = [{"params": list(self.student.parameters())}]
        if converters:
            groups.append({"params": converters, "lr_scale": self.config.converter_lr_scale})
        yield Phase("train", self, self.losses, eval_model=self.student, param_groups=groups,
                    max_grad_norm=self.config.max_grad_norm)

    def _point(self, mask: tuple[bool, ...], order: str) -> OperatingPoint:
        return OperatingPoint(mask_name(mask), self.mixed(mask),
                              {"mask": mask_name(mask), "order": order, "teacher_blocks": sum(mask)})

    def anytime_family(self):
        """Student, then teacher blocks loaded from the input side: S..S, TS..S, ..., T..T (= the teacher)."""
        n = self.num_blocks
        return [self._point((True,) * k + (False,) * (n - k), "prefix") for k in range(n + 1)]

    def extra_points(self):
        """Teacher blocks from the output side (suffix), and every inner run of teacher blocks (contiguous); with
        ``bn_restat``, the prefix stages again with per-stage student BN statistics."""
        n = self.num_blocks
        suffix = [self._point((False,) * (n - k) + (True,) * k, "suffix") for k in range(1, n)]
        inner = [self._point(tuple(i <= b <= j for b in range(n)), "contiguous")
                 for i in range(1, n - 1) for j in range(i, n - 1)]
        return suffix + inner + (self.restat_points() if self.config.bn_restat else [])

    def restat_points(self) -> list[OperatingPoint]:
        """Each prefix stage that still has student blocks, on a copy whose student BatchNorm statistics are
        re-estimated over the training images through that stage's own path. In training, the random cross pass
        updates the student's running statistics on mixed paths; a stage deployed with statistics of its own path
        would carry them as extra weights (2 x channels per BN layer)."""
        points = []
        for k in range(self.num_blocks):
            mask = (True,) * k + (False,) * (self.num_blocks - k)
            net = copy.deepcopy(self.mixed(mask))
            # only the student's statistics: the teacher's blocks stay exactly the teacher's
            self.ctx.estimate_bn_statistics(net, self.ctx.data.train, only=net.student)
            extra = sum(b.numel() for m in net.student.modules()
                        if isinstance(m, nn.modules.batchnorm._BatchNorm) for b in (m.running_mean, m.running_var))
            points.append(OperatingPoint(f"{mask_name(mask)}-bnstat", net,
                                         {"mask": mask_name(mask), "order": "prefix-bnstat", "teacher_blocks": k,
                                          "bn_statistics_values": extra}))
        return points
