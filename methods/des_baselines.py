"""The per-size baselines SWS is compared with: a Des-Net of every depth trained on its own.

* ``des_scratch``: each size from random initialisation on labels (with the fine-tuning budget, or a long one);
* ``des_pretrain``: each size first distilled from the ancestry with SWS's loss and epochs ("pre-train"), then
  fine-tuned like an SWS Des-Net -- the "store one pre-trained model per size" baseline of the paper.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from progbench.methods.sws import DesNetFamily, des_kwargs, distill_step
from progbench.protocol import Phase
from progbench.scale import PlannedPhase


class DesScratch(DesNetFamily):
    name = "des_scratch"
    version = "1"

    def phases(self) -> Iterator[Phase]:
        for depth in self.config.des_depths:
            self.des[str(depth)] = self.new_des(depth)
            yield self.fine_tune(depth, self.des[str(depth)])


class DesPretrain(DesNetFamily):
    name = "des_pretrain"
    version = "1"
    needs_teacher = True
    init_from = "pretrained"

    @dataclass(frozen=True)
    class Config(DesNetFamily.Config):
        pretrain_epochs: int = 8  # as SWS's aux_epochs: each size gets the pre-training the Aux-Net gets
        pretrain_warmup_epochs: float = 1.0
        tau: float = 1.0
        alpha: float = 1.0
        finetune_lr_scale: float = 1.0  # of the budget's lr, as SWS's (the pre-training uses the budget's lr)

    @classmethod
    def planned_phases(cls, config) -> list[PlannedPhase]:
        return [phase for d in config.des_depths for phase in (
            PlannedPhase(f"pretrain-d{d}", f"des-d{d}", des_kwargs(d), epochs=config.pretrain_epochs,
                         teacher_passes=1.0),
            PlannedPhase(f"finetune-d{d}", f"des-d{d}", des_kwargs(d)))]

    def phases(self) -> Iterator[Phase]:
        cfg = self.config
        for depth in cfg.des_depths:
            net = self.des[str(depth)] = self.new_des(depth)
            yield Phase(f"pretrain-d{depth}", net, distill_step(net, self.teacher, cfg.tau, cfg.alpha,
                                                                 self.ctx.task.budget.label_smoothing),
                        epochs=cfg.pretrain_epochs, schedule={"warmup_epochs": cfg.pretrain_warmup_epochs})
            yield self.fine_tune(depth, net, cfg.finetune_lr_scale)
