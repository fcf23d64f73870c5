"""Stage-wise Weight Sharing (SWS, "Learngene"): one small set of layers that initialises ViTs of any depth.

1. Aux-Net: a ViT of L layers grouped into stages (official: 16 layers, [3, 3, 4, 3, 3]); all layers of a stage share
   one set of block weights, so the network holds one block per stage -- the learngene layers. It learns from the
   ancestry model (the frozen teacher) by soft distillation, official loss alpha * tau^2 * KL(p_t || p_s) with
   alpha = 1, tau = 1 (a label term (1 - alpha) * CE is a config field).
2. Des-Nets: a plain ViT of depth D (average pool, no class token) whose layer k copies learngene layer
   ``layers_source[k]``; patch and position embeddings, the final norm and (same label set) the head are copied too.
   Each is then fine-tuned normally (the run's budget: cross-entropy on labels).

The anytime family is the set of Des-Nets, smallest first. ``layers_source`` for a depth is either given (official
12-layer map: 0,0,0,1,1,1,2,2,3,3,4,4) or built by :func:`layers_source`: the D layers are spread over the stages in
proportion to the stage lengths (largest remainder; ties to the earlier stage), each stage's layers kept in order.

Defaults are the cpu suite's scale (an Aux-Net of 6 layers in stages [2, 2, 2], Des-Nets of 3-6 layers); the paper
suite sets the official ones.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from progbench.errors import UserError
from progbench.methods.kd import kd_step
from progbench.models import BlockNet
from progbench.protocol import Batch, Method, OperatingPoint, Phase
from progbench.scale import PlannedPhase


def layers_source(stage_lengths: Sequence[int], depth: int) -> list[int]:
    """The learngene layer (= stage index) each of ``depth`` Des-Net layers is copied from: stages get layers in
    proportion to their length (largest remainder, ties to the earlier stage), in stage order."""
    total = sum(stage_lengths)
    quotas = [depth * n / total for n in stage_lengths]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda s: (-(quotas[s] - counts[s]), s))
    for s in by_remainder[:depth - sum(counts)]:
        counts[s] += 1
    return [s for s, n in enumerate(counts) for _ in range(n)]


def des_kwargs(depth: int) -> dict:
    """``create_model`` kwargs of a Des-Net of ``depth`` layers, on top of the task's Des-Net architecture."""
    return {"num_blocks": depth, "layers_per_block": 1}


def aux_kwargs(config) -> dict:
    """``create_model`` kwargs of SWS's Aux-Net (stage-shared layers), on top of the task's Des-Net architecture."""
    heads = {"num_heads": config.aux_num_heads} if config.aux_num_heads else {}
    return {"shared_stages": tuple(config.aux_stages), **heads}


class DesNetFamily(Method):
    """Des-Nets of several depths, each initialised by ``init_des`` and then fine-tuned on labels with the budget.

    Shared by SWS and the per-size baselines (``des_scratch``, ``des_pretrain``), so they differ only in how a
    Des-Net starts and what is trained before it."""

    init_from: str = "random"  # what a point's initial weights come from (reported with every point)

    @dataclass(frozen=True)
    class Config:
        des_depths: tuple = (3, 4, 5, 6)

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        depths = list(config.des_depths)
        if not depths or depths != sorted(set(depths)) or depths[0] < 1:
            raise UserError(f"method {self.name}: des_depths must be increasing whole numbers >= 1, got {depths}")
        try:  # Des-Nets are ViTs of several depths (one layer per block): a CNN family cannot run this method
            with torch.device("meta"):  # nothing allocated, no random numbers drawn
                self.new_des(depths[0])
        except TypeError:
            task = ctx.task
            raise UserError(f"method {self.name} needs a ViT student (its Des-Nets are ViTs of several depths, one "
                            f"layer per block); family {task.family}'s student {task.arch} is not one: run it in a "
                            f"ViT family") from None
        self.des = nn.ModuleDict()

    def new_des(self, depth: int) -> BlockNet:
        return self.ctx.create_model(**des_kwargs(depth))

    @classmethod
    def planned_phases(cls, config) -> list[PlannedPhase]:
        """What a run trains, for ``progbench plan`` (no data, no weights): each Des-Net fine-tuned on labels."""
        return [PlannedPhase(f"finetune-d{d}", f"des-d{d}", des_kwargs(d)) for d in config.des_depths]

    def fine_tune(self, depth: int, net: BlockNet, lr_scale: float = 1.0) -> Phase:
        smoothing = self.ctx.task.budget.label_smoothing

        def step(batch: Batch) -> dict:
            return {"ce": F.cross_entropy(net(batch.x), batch.y, label_smoothing=smoothing)}

        return Phase(f"finetune-d{depth}", net, step, param_groups=[{"params": list(net.parameters()),
                                                                     "lr_scale": lr_scale}])

    def point_info(self, depth: int) -> dict:
        return {"depth": depth, "init": self.init_from}

    def anytime_family(self) -> list[OperatingPoint]:
        return [OperatingPoint(f"d{d}", self.des[str(d)], self.point_info(d)) for d in self.config.des_depths]


def distill_step(student: nn.Module, teacher: nn.Module, tau: float, alpha: float, smoothing: float):
    """DeiT-style distillation from the ancestry, alpha weighing the soft term (DeiT's convention, the reverse of
    ``kd``'s): alpha * tau^2 * KL(p_t || p_s) + (1 - alpha) * CE."""
    return kd_step(student, teacher, tau, 1 - alpha, smoothing)


class SWS(DesNetFamily):
    name = "sws"
    version = "1"
    needs_teacher = True
    init_from = "learngene"

    @dataclass(frozen=True)
    class Config(DesNetFamily.Config):
        aux_stages: tuple = (2, 2, 2)  # layers per stage of the Aux-Net (official: 3, 3, 4, 3, 3)
        aux_epochs: int = 8  # Aux-Net distillation (official: 150 for Aux-S, 100 for Aux-B, on ImageNet-1K)
        aux_warmup_epochs: float = 1.0
        aux_num_heads: int | None = None  # None: the Des-Nets' (official Aux-S uses 12 heads, Des-S 6)
        tau: float = 1.0
        alpha: float = 1.0  # weight of the soft term; 1 - alpha goes to cross-entropy on labels (official: 1)
        layers_source: tuple = ()  # explicit maps, one per depth they serve, e.g. ((0,0,0,1,1,1,2,2,3,3,4,4),)
        copy_head: bool = True  # the ancestry's label set is the Des-Nets' (official: only on ImageNet-1K itself)
        finetune_lr_scale: float = 1.0  # of the budget's lr (official: 5e-5 for Des-S after 5e-4 for Aux-S, i.e. 0.1)

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        if any(n < 1 for n in config.aux_stages) or not config.aux_stages:
            raise UserError(f"method sws: aux_stages must be positive layer counts, got {list(config.aux_stages)}")
        stages = len(config.aux_stages)
        for m in config.layers_source:
            if any(not 0 <= s < stages for s in m) or list(m) != sorted(m):
                raise UserError(f"method sws: layers_source {list(m)} must name stages 0..{stages - 1} in order")
        self.aux = ctx.create_model(**aux_kwargs(config))

    @classmethod
    def planned_phases(cls, config) -> list[PlannedPhase]:
        aux = PlannedPhase("aux", f"aux-net {'+'.join(map(str, config.aux_stages))}", aux_kwargs(config),
                           epochs=config.aux_epochs, teacher_passes=1.0)
        return [aux, *super().planned_phases(config)]

    def source_map(self, depth: int) -> list[int]:
        given = [list(m) for m in self.config.layers_source if len(m) == depth]
        return given[0] if given else layers_source(self.config.aux_stages, depth)

    def expand(self, depth: int) -> BlockNet:
        """A Des-Net of ``depth`` layers initialised from the learngene layers (and the Aux-Net's embeddings, norm
        and head)."""
        des = self.new_des(depth)
        aux = self.aux
        with torch.no_grad():
            des.embed.load_state_dict(aux.embed.state_dict())
            for k, stage in enumerate(self.source_map(depth)):
                des.blocks[k][0].load_state_dict(aux.blocks[stage][0].state_dict())
            head = aux.head.state_dict()
            if not self.config.copy_head:  # keep the Des-Net's own classifier: only the final norm is copied
                head = {k: v for k, v in head.items() if not k.startswith(f"{len(aux.head) - 1}.")}
            des.head.load_state_dict(head, strict=self.config.copy_head)
        return des

    def phases(self) -> Iterator[Phase]:
        cfg = self.config
        yield Phase("aux", self.aux, distill_step(self.aux, self.teacher, cfg.tau, cfg.alpha,
                                                  self.ctx.task.budget.label_smoothing),
                    epochs=cfg.aux_epochs, schedule={"warmup_epochs": cfg.aux_warmup_epochs})
        for depth in cfg.des_depths:
            self.des[str(depth)] = self.expand(depth)
            yield self.fine_tune(depth, self.des[str(depth)], cfg.finetune_lr_scale)

    def point_info(self, depth: int) -> dict:
        return {**super().point_info(depth), "layers_source": self.source_map(depth)}

    def extra_points(self) -> list[OperatingPoint]:
        return [OperatingPoint("aux", self.aux, {"stages": list(self.config.aux_stages), "init": "aux-net"})]
