"""The harness's evaluation of an operating point; every method's points are measured the same way here.

Accuracy (top-1, top-5 on test, top-1 on val), params, FLOPs per image (``torch.utils.flop_counter``), bytes of
weights (safetensors), load time (read + build, median of repeated trials), first-inference latency, steady-state
latency (``torch.utils.benchmark``) and peak memory of one inference.
"""
from __future__ import annotations

import copy
import statistics
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils import benchmark
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from . import data as datamod
from .models import prepare_for_device
from .precision import autocast
from .protocol import OperatingPoint
from .store import atomic_save, replacing


@dataclass(frozen=True)
class EvalSettings:
    load_trials: int = 7
    latency_min_run_time_s: float = 0.3
    batch_size: int = 500


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def unique_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with every shared tensor (tied or stage-shared weights) kept once."""
    seen, unique = set(), {}
    for k, v in model.state_dict().items():
        key = (v.data_ptr(), v.numel(), v.dtype)
        if v.numel() and key in seen:
            continue
        seen.add(key)
        unique[k] = v
    return unique


def flops_per_image(model: nn.Module, image: torch.Tensor) -> int:
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(image)
    return int(counter.get_total_flops())


def save_weights(model: nn.Module, path: Path) -> int:
    """The point's state dict as one safetensors file (shared tensors stored once); returns its size in bytes."""
    # safetensors refuses aliased tensors; the loader re-ties shared ones through the module's structure
    unique = {k: v.detach().contiguous().cpu() for k, v in unique_tensors(model).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:  # never a torn weights file (a full disk): the file is whole or absent
        save_file(unique, str(tmp))
    return path.stat().st_size


def meta_copies(models: list[nn.Module]) -> list[nn.Module]:
    """The architectures without storage, copied together so they share what the models share."""
    with torch.device("meta"):
        return [m.to("meta") for m in copy.deepcopy(models)]


def _skeleton(model: nn.Module) -> nn.Module:
    """The architecture without storage, so a trial's 'build' is the cost of making the module, not of copying it."""
    return meta_copies([model])[0]


def save_architectures(points: list, path: Path) -> None:
    """The family's architectures without storage, ``{point name: module on the meta device}``, copied together so
    they share what the points share. Kept with the record (a few KB a point), so a latency pass can rebuild and time
    the points on any machine, long after the run's ``work/`` folder (its weights) is gone."""
    atomic_save({p.name: skeleton for p, skeleton in zip(points, meta_copies([p.model for p in points]))}, path)


def build_point(skeleton: nn.Module, path: Path, device: torch.device) -> nn.Module:
    """A point from its skeleton (:func:`_skeleton`) and weights file, laid out for ``device`` as when it was timed."""
    state = load_file(str(path), device=str(device))
    model = copy.deepcopy(skeleton)
    model.load_state_dict(state, strict=False, assign=True)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise RuntimeError(f"weights file {path} lacks {leftover[:3]}: the point's state dict must hold all it needs")
    model = prepare_for_device(model, device).eval()  # the same layout as the model whose latency is measured
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return model


def time_loading(skeleton: nn.Module, path: Path, image: torch.Tensor, device: torch.device, precision: str,
                 trials: int) -> dict:
    """Median (and spread) over trials of: load = read file + build module (from ``skeleton``, :func:`_skeleton`);
    then the first inference."""
    loads, firsts = [], []
    for _ in range(trials):
        t0 = time.perf_counter()
        fresh = build_point(skeleton, path, device)
        t1 = time.perf_counter()
        with torch.no_grad(), autocast(device, precision):
            fresh(image)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        loads.append(t1 - t0)
        firsts.append(t2 - t1)
    return {"load_s": statistics.median(loads), "load_s_min": min(loads), "load_s_max": max(loads),
            "first_inference_s": statistics.median(firsts), "load_trials": trials}


def latency_timer(model: nn.Module, image: torch.Tensor, device: torch.device, precision: str) -> benchmark.Timer:
    """One batch-1 inference ready to time; run once here, so one-time costs are never in a timing."""
    def infer():
        with torch.no_grad(), autocast(device, precision):
            model(image)

    infer()
    return benchmark.Timer(stmt="infer()", globals={"infer": infer}, num_threads=torch.get_num_threads())


def steady_latency(model: nn.Module, image: torch.Tensor, device: torch.device, precision: str,
                   min_run_time: float) -> dict:
    m = latency_timer(model, image, device, precision).blocked_autorange(min_run_time=min_run_time)
    return {"latency_s": m.median, "latency_iqr_s": m.iqr}


class LiveTensorBytes(TorchDispatchMode):
    """Bytes of tensor storage created inside the mode and still alive; ``peak`` is the most at any moment."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._sizes: dict[int, int] = {}

    def _freed(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and not t.is_meta:
                storage = t.untyped_storage()
                key = id(storage)
                if key not in self._sizes:  # views and in-place results share a storage already counted
                    self._sizes[key] = storage.nbytes()
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._freed, key)
        return out


def peak_memory(model: nn.Module, image: torch.Tensor, device: torch.device, precision: str) -> int:
    """Peak bytes held during one batch-1 inference: the weights plus the activations alive at the worst moment."""
    weights = sum(t.numel() * t.element_size() for t in unique_tensors(model).values())
    with torch.no_grad(), autocast(device, precision), LiveTensorBytes() as tracker:
        model(image)
    return weights + tracker.peak


def cuda_peak_memory(model: nn.Module, image: torch.Tensor, device: torch.device, precision: str) -> dict:
    """On a GPU, the caching allocator's view of one batch-1 inference: bytes allocated at its peak beyond what was
    allocated before (activations and workspaces; the weights are already resident). Nothing on the CPU."""
    if device.type != "cuda":
        return {}
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad(), autocast(device, precision):
        model(image)
    torch.cuda.synchronize(device)
    return {"cuda_peak_activation_bytes": torch.cuda.max_memory_allocated(device) - before}


@torch.no_grad()
def predict(model: nn.Module, split: datamod.Split, prep: datamod.Preprocess, device: torch.device, precision: str,
            batch_size: int) -> torch.Tensor:
    model.eval()
    out = []
    with autocast(device, precision):
        for _, images, _ in datamod.batches(split, batch_size, shuffle=False):
            out.append(model(prep(images, train=False)).float().cpu())
    return torch.cat(out)


def topk(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(1).float().mean().item()


def point_info(point: OperatingPoint) -> dict:
    """The method's facts about the point (e.g. PWL's mask), reported with its metrics."""
    return {"info": point.info} if point.info else {}


def score_point(point: OperatingPoint, data: datamod.Data, prep: datamod.Preprocess, device: torch.device,
                precision: str, settings: EvalSettings) -> tuple[dict, torch.Tensor]:
    """Accuracy, params and FLOPs of one point, and its test logits."""
    model = point.model.eval()
    test_logits = predict(model, data.test, prep, device, precision, settings.batch_size)
    val_logits = predict(model, data.val, prep, device, precision, settings.batch_size)
    metrics = {
        "point": point.name,
        "test_top1": topk(test_logits, data.test.labels, 1),
        "test_top5": topk(test_logits, data.test.labels, 5),
        "val_top1": topk(val_logits, data.val.labels, 1),
        "params": count_params(model),
        "flops": flops_per_image(model, prep(data.test.images[:1], train=False)),
    }
    return metrics, test_logits


def evaluate_point(point: OperatingPoint, data: datamod.Data, prep: datamod.Preprocess, device: torch.device,
                   precision: str, weights_path: Path, settings: EvalSettings) -> tuple[dict, torch.Tensor]:
    """All metrics of one operating point (accuracy and every cost), and its test logits; its weights are written to
    ``weights_path`` (the file whose loading is timed)."""
    metrics, test_logits = score_point(point, data, prep, device, precision, settings)
    model = point.model
    image = prep(data.test.images[:1], train=False)
    weight_bytes = save_weights(model, weights_path)
    skeleton = _skeleton(model)
    metrics.update({
        "weight_bytes": weight_bytes,
        **time_loading(skeleton, weights_path, image, device, precision, settings.load_trials),
        **steady_latency(model, image, device, precision, settings.latency_min_run_time_s),
        "peak_memory_bytes": peak_memory(model, image, device, precision),
        **cuda_peak_memory(model, image, device, precision),
        **point_info(point),
    })
    return metrics, test_logits
