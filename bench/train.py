"""The one training loop every method runs through.

For each :class:`~progbench.protocol.Phase` a method yields: optimiser and per-iteration schedule from the budget, bf16
autocast, an atomic checkpoint after every epoch, a progress bar and a per-epoch log row (losses by name, val
accuracy, lr, time). Randomness is re-seeded from (seed, phase, epoch) at the start of every epoch, so a run resumed
after a kill follows exactly the path it would have followed uninterrupted.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from . import data as datamod
from .distributed import SINGLE, World
from .errors import UserError
from .models import prepare_for_device
from .precision import autocast
from .protocol import Batch, Budget, Method, Phase
from .store import atomic_save


class TrainingError(Exception):
    """Training cannot go on; the message (one line) says where and what to change."""


class NonFiniteLoss(TrainingError):
    """Training produced a NaN/inf loss."""


class Interrupted(Exception):
    """Asked to stop (Ctrl-C of a driver, a lost lease); the last finished epoch is checkpointed and resumes."""


@dataclass
class TrainState:
    """What a checkpoint holds besides the weights and the optimiser."""
    phase_index: int = 0  # the phase being trained (phases before it are done)
    epoch: int = 0  # epochs of that phase already done
    log: list = field(default_factory=list)
    wall_clock_s: float = 0.0
    images_seen: int = 0
    train_flops: float = 0.0
    epochs_total: int = 0
    # FLOPs of one training step per phase (str(index) -> FLOPs), measured once on the phase's first batch of its
    # first epoch; kept so a resumed process counts what the first one measured (a step's cost may depend on the RNG)
    step_flops: dict = field(default_factory=dict)


def epoch_seed(seed: int, phase: int, epoch: int) -> int:
    digest = hashlib.sha256(f"{seed}/{phase}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)  # also seeds every CUDA device
    random.seed(seed)
    np.random.seed(seed % 2**32)


def make_optimizer(phase: Phase, budget: Budget) -> torch.optim.Optimizer:
    cfg = {**budget.optimizer, **(phase.optimizer or {})}
    name, lr = cfg.pop("name", "sgd").lower(), cfg.pop("lr")
    groups = phase.param_groups or [{"params": [p for p in phase.module.parameters() if p.requires_grad]}]
    groups = [{**g, "lr": lr * g.pop("lr_scale", 1.0)} for g in (dict(g) for g in groups)]
    for g in groups:
        g["base_lr"] = g["lr"]
    wd = cfg.pop("weight_decay", 0.0)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.pop("momentum", 0.9), nesterov=cfg.pop("nesterov", False),
                               weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=wd, betas=tuple(cfg.pop("betas", (0.9, 0.999))))
    raise UserError(f"budget.optimizer.name must be sgd or adamw, not {name!r}")


def lr_factor(schedule: dict, step: int, total: int, steps_per_epoch: int) -> float:
    """Multiplier of the base lr at ``step`` (0-based) of ``total``: linear warm-up, then cosine or constant."""
    name = schedule.get("name", "cosine")
    warmup = int(schedule.get("warmup_epochs", 0) * steps_per_epoch)
    floor = schedule.get("min_lr_ratio", 0.0)
    if step < warmup:
        return (step + 1) / warmup
    if name == "constant":
        return 1.0
    if name != "cosine":
        raise UserError(f"budget.schedule.name must be cosine or constant, not {name!r}")
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def accuracy(model: nn.Module, split: datamod.Split, prep: datamod.Preprocess, device: torch.device,
             precision: str, batch_size: int = 500) -> float:
    was_training = model.training
    model.eval()
    correct = 0
    with autocast(device, precision):
        for _, images, labels in datamod.batches(split, batch_size, shuffle=False):
            correct += (model(prep(images, train=False)).argmax(1).cpu() == labels).sum().item()
    model.train(was_training)
    return correct / max(1, len(split))


def measure_step_flops(method: Method, phase: Phase, batch: Batch, scale: float, seed: int | None = None) -> float:
    """FLOPs of one training step (forward, backward) measured by ``torch.utils.flop_counter``, scaled to a batch.

    Run on a copy of the state so BN statistics, gradients and RNG are left exactly as they were; with ``seed`` the
    step draws from the torch RNGs seeded so (a step whose work depends on a random draw, as PWL's cross mask).
    """
    state = copy.deepcopy(method.state_dict())
    devices = [batch.x.device] if batch.x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), FlopCounterMode(display=False) as counter:
        if seed is not None:
            torch.default_generator.manual_seed(seed)
            if devices:
                torch.cuda.manual_seed(seed)  # the current device's generator, which fork_rng restores
        losses = phase.step(batch)
        sum(losses.values()).backward()
    method.load_state_dict(state)
    for p in method.parameters():
        p.grad = None
    return counter.get_total_flops() * scale


class Trainer:
    """Runs a method's phases with checkpoints in ``work_dir``; resumes from the last finished epoch."""

    def __init__(self, method: Method, data: datamod.Data, budget: Budget, seed: int, device: torch.device,
                 work_dir: Path, run_label: str = "", progress: bool = True, inputs: dict | None = None,
                 world: World = SINGLE, on_epoch=None, should_stop=None):
        self.method, self.data, self.budget, self.seed, self.device = method, data, budget, seed, device
        self.world = world  # data-parallel ranks of this run (progbench.distributed); rank 0 alone writes
        self.on_epoch = on_epoch  # called with each epoch's log row (progress events)
        self.should_stop = should_stop  # asked after each checkpoint: stop here (raises Interrupted)?
        self.inputs = inputs or {}  # what the run was trained against (e.g. the teacher's sha256); a resume checks it
        self.work_dir = Path(work_dir)
        self.ckpt_path = self.work_dir / "checkpoint.pt"
        self.run_label = run_label
        self.progress = progress
        self.prep = datamod.Preprocess(data.mean, data.std, budget.augment_spec, device)

    def _set_aside(self, why: str) -> None:
        """Keep an unusable checkpoint for inspection (never delete it) and train from the start."""
        if not self.world.is_main:
            return
        aside = self.ckpt_path.with_name(f"checkpoint.set-aside-{time.strftime('%Y%m%d-%H%M%S')}.pt")
        os.replace(self.ckpt_path, aside)
        tqdm.write(f"{self.run_label}: checkpoint {why}; kept as {aside.name}, training from the start")

    def _load_checkpoint(self) -> tuple[TrainState, dict | None]:
        if not self.ckpt_path.exists():
            return TrainState(), None
        try:
            ckpt = torch.load(self.ckpt_path, map_location=self.device, weights_only=False)
            state = TrainState(**ckpt["train_state"])
        except Exception as exc:  # torn or corrupt
            self._set_aside(f"unreadable ({type(exc).__name__})")
            return TrainState(), None
        if ckpt.get("inputs", {}) != self.inputs:
            self._set_aside(f"was made against other inputs ({ckpt.get('inputs')} != {self.inputs})")
            return TrainState(), None
        return state, ckpt

    def run(self) -> TrainState:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        state, ckpt = self._load_checkpoint()
        self.world.barrier()  # every rank has read the checkpoint before rank 0 writes the next one
        phases = self.method.phases()
        resume_at = (state.phase_index, state.epoch)
        for index in itertools.count():
            # Code between a method's yields (building the next member, say) draws from this seed, so a resumed run
            # builds exactly what the uninterrupted run built.
            seed_everything(epoch_seed(self.seed, index, -1))
            self.method.eval()  # that code sees trained modules frozen, BN included, in a replay as the first time
            t0 = time.perf_counter()
            phase = next(phases, None)
            if index > resume_at[0] or (index == resume_at[0] and resume_at[1] == 0):
                # that code is training work too (passes over the data, say); a replay after a resume is not counted
                state.wall_clock_s += time.perf_counter() - t0
            if phase is None:
                break
            for module in {phase.module, phase.eval_model or phase.module}:  # built by the method while training
                prepare_for_device(module.to(self.device), self.device)
            if ckpt is not None and index <= state.phase_index:
                # Modules a phase creates exist only once the generator has reached it, hence strict=False; but a
                # key the method no longer has means the checkpoint is not this method's.
                try:
                    result = self.method.load_state_dict(ckpt["method"], strict=False)
                except RuntimeError as exc:  # shapes that differ: a checkpoint of another version of the method
                    raise TrainingError(f"checkpoint {self.ckpt_path} does not fit this method "
                                        f"({str(exc).splitlines()[-1].strip()}); if the method changed, bump its "
                                        f"version") from None
                if index == state.phase_index and result.unexpected_keys:
                    raise TrainingError(f"checkpoint {self.ckpt_path} holds weights this method does not have "
                                        f"({result.unexpected_keys[:3]}); if the method changed, bump its version")
            if index < state.phase_index:
                continue  # finished before the kill; its weights came back with the checkpoint
            self._run_phase(index, phase, state, ckpt if index == state.phase_index else None)
            state.phase_index, state.epoch = index + 1, 0
            ckpt = None
            self._save(state, optimizer=None)
        return state

    def _save(self, state: TrainState, optimizer: torch.optim.Optimizer | None) -> None:
        if not self.world.is_main:
            return
        atomic_save({"train_state": state.__dict__, "method": self.method.state_dict(), "inputs": self.inputs,
                     "optimizer": optimizer.state_dict() if optimizer else None}, self.ckpt_path)

    def _step_flops(self, index: int, phase: Phase, bs: int) -> float:
        """One step's FLOPs on the phase's first batch of its first epoch (its first two images, scaled to the batch),
        the RNG as that step found it: the same number whichever epoch a process starts at, and what a run measured
        before the count was kept in checkpoints (an older checkpoint without it gets it measured the same way)."""
        seed = epoch_seed(self.seed, index, 0)
        generator = torch.Generator().manual_seed(seed + 1)
        idx, images, labels = next(datamod.batches(self.data.train, bs, shuffle=True, generator=generator,
                                                   drop_last=True))
        x = self.prep(images, train=True, generator=generator)
        return measure_step_flops(self.method, phase, Batch(x[:2], labels[:2].to(self.device), idx[:2]), scale=bs / 2,
                                  seed=seed)

    def _run_phase(self, index: int, phase: Phase, state: TrainState, ckpt: dict | None) -> None:
        budget, device = self.budget, self.device
        epochs = phase.epochs if phase.epochs is not None else budget.epochs
        optimizer = make_optimizer(phase, budget)
        if ckpt is not None and ckpt.get("optimizer") and state.epoch > 0:
            optimizer.load_state_dict(ckpt["optimizer"])
        schedule = {**budget.schedule, **(phase.schedule or {})}
        train = self.data.train
        bs = min(budget.batch_size, len(train))
        steps_per_epoch = len(train) // bs
        total_steps = epochs * steps_per_epoch
        eval_model = phase.eval_model or phase.module
        step_flops = state.step_flops.get(str(index))  # measured by the process that began this phase
        step_fn = phase.step
        if budget.compile:
            step_fn = torch.compile(phase.step)
        for epoch in range(state.epoch, epochs):
            seed_everything(epoch_seed(self.seed, index, epoch))
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, index, epoch) + 1)
            self.method.eval()  # whatever this phase does not train (e.g. earlier members) stays frozen, BN included
            phase.module.train()
            sums: dict[str, float] = {}
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            bar = tqdm(datamod.batches(train, bs, shuffle=True, generator=generator, drop_last=True),
                       total=steps_per_epoch, disable=None if self.progress else True, leave=False,
                       desc=f"{self.run_label} {phase.name} {epoch + 1}/{epochs}")
            for i, (idx, images, labels) in enumerate(bar):
                step = epoch * steps_per_epoch + i
                factor = lr_factor(schedule, step, total_steps, steps_per_epoch)
                for g in optimizer.param_groups:
                    g["lr"] = g["base_lr"] * factor
                batch = Batch(self.prep(images, train=True, generator=generator), labels.to(device), idx)
                if step_flops is None:
                    step_flops = state.step_flops[str(index)] = self._step_flops(index, phase, bs)
                if self.world.size > 1:  # the whole global batch was drawn and augmented; this rank trains its share
                    share = self.world.share(bs)
                    batch = Batch(batch.x[share], batch.y[share], idx[share])
                with autocast(device, budget.precision):
                    losses = step_fn(batch)
                loss = sum(losses.values())
                if not torch.isfinite(loss):
                    bad = [k for k, v in losses.items() if not torch.isfinite(v)]
                    raise NonFiniteLoss(
                        f"loss {'/'.join(bad)} is {loss.item()} at phase {phase.name!r} epoch {epoch + 1} step "
                        f"{i + 1}; lower budget.optimizer.lr or set budget.precision: fp32 (a changed budget is a "
                        f"new run; this one's last good checkpoint stays in its work/ folder)")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                trained = [p for g in optimizer.param_groups for p in g["params"]]
                self.world.average_gradients(trained)
                if phase.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(trained, phase.max_grad_norm)
                optimizer.step()
                self.world.broadcast_buffers(self.method)
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v.item()
                if i % 20 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{optimizer.param_groups[0]['lr']:.3g}")
            bar.close()
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # the epoch's queued GPU work belongs to its time
            train_s = time.perf_counter() - t0
            sums = self.world.mean(sums)  # the log holds the global batch's losses at any world size
            val_acc = accuracy(eval_model, self.data.val, self.prep, device, budget.precision) \
                if phase.validate and self.world.is_main else None
            state.wall_clock_s += time.perf_counter() - t0
            state.images_seen += steps_per_epoch * bs
            state.train_flops += (step_flops or 0.0) * steps_per_epoch
            state.epochs_total += 1
            row = {"phase": phase.name, "epoch": epoch + 1,
                   **{f"loss/{k}": v / steps_per_epoch for k, v in sums.items()},
                   "images": steps_per_epoch * bs, "train_flops": (step_flops or 0.0) * steps_per_epoch,
                   "val_top1": val_acc, "lr": optimizer.param_groups[0]["lr"], "train_s": round(train_s, 3),
                   "epoch_s": round(time.perf_counter() - t0, 3),
                   "images_per_s": round(steps_per_epoch * bs / train_s, 1)}
            if device.type == "cuda":  # the allocator's peak over the epoch (training and the val pass)
                row["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device)
            state.log.append(row)
            state.epoch = epoch + 1
            self._save(state, optimizer)
            if self.on_epoch is not None:
                self.on_epoch(row, epochs)
            tqdm.write(f"{self.run_label} {phase.name} epoch {epoch + 1}/{epochs}: "  # also in logs without bars
                       + " ".join(f"{k.split('/')[-1]}={v:.3f}" for k, v in row.items() if k.startswith("loss/"))
                       + (f" val={val_acc:.4f}" if val_acc is not None else "") + f" ({row['epoch_s']:.0f}s)")
            if self.world.any(bool(self.should_stop and self.should_stop())):  # every rank stops at the same epoch
                raise Interrupted(f"{self.run_label}: stopped after {phase.name} epoch {epoch + 1}/{epochs} "
                                  f"(checkpointed; it resumes from there)")
