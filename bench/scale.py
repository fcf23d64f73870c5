"""Paper scale, from the suite file alone (no data, no weights): every model a suite builds with its params and FLOPs
beside the published numbers; each run's training FLOPs and its time on a GPU at a stated rate; the decoded data
each family needs.

A method says what it trains through two optional classmethods: ``planned_phases(config)``, a list of
:class:`PlannedPhase`, and ``planned_models(config)``, ``(label, create_model kwargs)`` pairs (default: the models of
its phases). A method without them trains the task's model once for the budget's epochs, with the teacher's forward
on every batch when it needs a teacher.
"""
from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

# The GPU estimate's assumption, printed with it: an H100 SXM's dense bf16 tensor-core peak (NVIDIA's datasheet, no
# sparsity) times a utilisation we assume, not measure, for these small models.
GPU_PEAK_TFLOPS = 989.0
GPU_UTILISATION = 0.35
TEST_PER_CLASS = {"cifar10": 1000, "imagenette": 393, "imagenet1k": 50}  # test images per class (imagenette: ~392.5)


@dataclass(frozen=True)
class PlannedPhase:
    """One training phase of a run as ``progbench plan`` sees it: which model it trains and what a step costs."""
    name: str
    model: str = "student"  # a label for the model table
    kwargs: dict = field(default_factory=dict)  # create_model kwargs on top of the task's arch and its arch_kwargs
    epochs: int | None = None  # None: the budget's
    passes: float = 3.0  # forward-pass equivalents of the trained model per training image (forward + backward ~ 3)
    teacher_passes: float = 0.0  # forward passes of the frozen teacher per training image


def planned_phases(method_cls, config) -> list[PlannedPhase]:
    hook = getattr(method_cls, "planned_phases", None)
    if hook is not None:
        return hook(config)
    return [PlannedPhase("train", teacher_passes=1.0 if method_cls.needs_teacher else 0.0)]


def planned_models(method_cls, config) -> list[tuple[str, dict]]:
    hook = getattr(method_cls, "planned_models", None)
    if hook is not None:
        return hook(config)
    out = {}
    for p in planned_phases(method_cls, config):
        out.setdefault(_key(p.kwargs), (p.model, p.kwargs))
    return list(out.values())


def _key(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _method(run):
    from .protocol import get_method
    cls = get_method(run.method_ref)
    return cls, cls.make_config(run.spec["config"])


def _input(task) -> tuple[int, int]:
    return task.dataset.num_classes, task.input_size


_PARAMS: dict = {}


def model_cost(arch: str, num_classes: int, image_size: int, kwargs: dict) -> tuple[int, int]:
    """Unique parameters (shared weights once) and forward FLOPs per image at batch 1, both on the meta device."""
    import torch

    from .evaluate import count_params
    from .models import create_model
    from .runner import forward_flops
    key = (arch, num_classes, _key(kwargs))
    if key not in _PARAMS:
        with torch.device("meta"):
            model = create_model(arch, num_classes=num_classes, **kwargs)
        _PARAMS[key] = count_params(model)
    return _PARAMS[key], forward_flops(arch, num_classes, image_size, kwargs)


# --- the models of a suite beside the published numbers -------------------------------------------------------------

def suite_models(suite, only: str | None = None) -> list[dict]:
    """Every model the suite's runs build (teachers, students, method-internal models), once per family."""
    rows: dict = {}
    for run in suite.select(only):
        task = run.task
        classes, size = _input(task)
        if run.is_teacher:
            built = [("teacher", task.arch_kwargs)]
        else:
            cls, config = _method(run)
            built = [(label, {**task.arch_kwargs, **kw}) for label, kw in planned_models(cls, config)]
        for label, kwargs in built:
            key = (run.family, task.arch, _key(kwargs), classes, size)
            row = rows.setdefault(key, {"family": run.family, "model": label, "arch": task.arch, "kwargs": kwargs,
                                        "num_classes": classes, "image_size": size, "methods": []})
            if run.method not in row["methods"]:
                row["methods"].append(run.method)
    order = list(dict.fromkeys(r.family for r in suite.runs))  # families in the suite's order, each family together
    out = sorted(rows.values(), key=lambda r: order.index(r["family"]))
    for row in out:
        row["params"], row["flops"] = model_cost(row["arch"], row["num_classes"], row["image_size"], row["kwargs"])
    return out


def architecture(arch: str, kwargs: dict) -> str:
    """One key for one network: a progbench preset's arguments merged with the kwargs (so the 12-layer Des-Net that SWS
    builds by kwargs is the preset ``pb_vit_des_s_paper``), else the timm name and the kwargs."""
    from .models import FAMILIES
    if arch.startswith("pb_"):
        family, _, preset = arch[3:].partition("_")
        base = FAMILIES.get(family, {}).get(preset)
        if base is not None:
            return _key({"arch": f"pb_{family}", **base, **kwargs})
    return _key({"arch": arch, **kwargs})


def published_models(path: str | Path | None = None) -> list[dict]:
    """The published numbers (``reports/data/paper_models.csv``: one row per network, its source cited)."""
    source = Path(path) if path else resources.files("progbench.reports") / "data" / "paper_models.csv"
    text = source.read_text()
    rows = list(csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#")))
    for r in rows:
        r["kwargs"] = json.loads(r["kwargs"] or "{}")
        r["num_classes"], r["image_size"] = int(r["num_classes"]), int(r["image_size"])
        r["params"] = float(r["params_m"]) * 1e6 if r["params_m"] else None
        r["macs"] = float(r["gmacs"]) * 1e9 if r["gmacs"] else None
    return rows


def compare(models: list[dict], published: list[dict]) -> list[dict]:
    """Each model with its published row (if any) and the relative differences, ours rebuilt at the published row's
    classes and image size. FLOPs = 2 x MACs: FlopCounterMode counts a multiply-add as 2 FLOPs, the papers and timm
    count multiply-adds (and call them FLOPs or MACs)."""
    by_arch = {architecture(p["arch"], p["kwargs"]): p for p in published}
    out = []
    for m in models:
        pub = by_arch.get(architecture(m["arch"], m["kwargs"]))
        row = {**m, "published": pub}
        if pub:
            params, flops = model_cost(m["arch"], pub["num_classes"], pub["image_size"], m["kwargs"])
            row["d_params"] = params / pub["params"] - 1 if pub["params"] else None
            row["d_macs"] = flops / 2 / pub["macs"] - 1 if pub["macs"] else None
        out.append(row)
    return out


def _arch_text(arch: str, kwargs: dict) -> str:
    args = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in kwargs.items())
    return f"{arch}({args})" if args else arch


def format_models(suite, rows: list[dict]) -> str:
    from .runner import fmt_count
    pct = lambda d: "" if d is None else f"{100 * d:+.1f}%"  # noqa: E731
    lines = [f"suite {suite.name}: {len(rows)} models (params: unique, shared weights once; FLOPs: one image, batch 1, "
             f"FlopCounterMode on the meta device, 1 multiply-add = 2 FLOPs)",
             f"{'family':12s} {'model':18s} {'architecture':64s} {'used by':28s} {'classes':>7s} {'px':>4s} "
             f"{'params':>8s} {'GFLOPs':>8s}  {'published':>9s} {'GMACs':>6s} {'d params':>8s} {'d MACs':>7s} ref"]
    refs: list[dict] = []
    for r in rows:
        pub = r["published"]
        if pub:
            if pub not in refs:
                refs.append(pub)
            published = (f"{fmt_count(pub['params']) if pub['params'] else '':>9s} "
                         f"{format(pub['macs'] / 1e9, '.4g') if pub['macs'] else '':>6s} {pct(r['d_params']):>8s} "
                         f"{pct(r['d_macs']):>7s} [{refs.index(pub) + 1}]")
        else:
            published = f"{'not published':>16s}"
        lines.append(f"{r['family']:12s} {r['model']:18s} {_arch_text(r['arch'], r['kwargs']):64s} "
                     f"{','.join(r['methods']):28s} {r['num_classes']:7d} {r['image_size']:4d} "
                     f"{fmt_count(r['params']):>8s} {r['flops'] / 1e9:8.3f}  {published}")
    lines.append("published: reports/data/paper_models.csv; d = ours rebuilt at the published row's classes and image "
                 "size, relative to it; ours MACs = FLOPs / 2")
    for i, pub in enumerate(refs, 1):
        lines.append(f"[{i}] {pub['reference']} ({pub['num_classes']} classes, {pub['image_size']} px): "
                     f"{pub['source']}")
    return "\n".join(lines)


# --- training cost on a GPU, and the data each family needs ----------------------------------------------------------

def run_train_flops(run) -> float:
    """Training FLOPs of one run from its method's planned phases: per training image, ``passes`` x the trained
    model's forward + ``teacher_passes`` x the teacher's; training steps only (not the per-epoch validation, nor a
    method's own passes over the data between phases)."""
    return run_train_cost(run)[0]


def run_train_cost(run) -> tuple[float, float, int]:
    """(training FLOPs, training images, phases) of one run from its method's planned phases (see
    :func:`run_train_flops`); images count each phase's epochs of the train split."""
    from .runner import forward_flops, train_size
    task = run.task
    classes, size = _input(task)
    cls, config = _method(run)
    n = train_size(task.dataset)
    images = n // min(task.budget.batch_size, n) * min(task.budget.batch_size, n)  # the trainer drops the last batch
    total = seen = 0.0
    phases = planned_phases(cls, config)
    for p in phases:
        epochs = p.epochs if p.epochs is not None else task.budget.epochs
        step = p.passes * forward_flops(task.arch, classes, size, {**task.arch_kwargs, **p.kwargs}) if p.passes else 0
        if p.teacher_passes and task.teacher_arch:
            step += p.teacher_passes * forward_flops(task.teacher_arch, classes, size, task.teacher_kwargs)
        total += epochs * images * step
        seen += epochs * images
    return total, seen, len(phases)


def decoded_bytes(spec) -> int:
    """Bytes of the decoded uint8 images a dataset spec loads (train + val carve + test), at its decode size."""
    from .runner import train_size
    train = train_size(spec) + spec.val_per_class * spec.num_classes
    test = (spec.test_per_class or TEST_PER_CLASS.get(spec.name, 100)) * spec.num_classes
    return (train + test) * spec.resolution ** 2 * 3


def _free_disk(folder: Path) -> int:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def data_needs(spec) -> str:
    from .data import cache_root, memmap_threshold
    need = decoded_bytes(spec)
    if need <= memmap_threshold():
        return f"{need / 1e9:.2f} GB in memory" if need >= 1e8 else f"{need / 1e6:.1f} MB in memory"
    root = cache_root()
    free = _free_disk(root)
    return (f"{need / 1e9:.0f} GB memory-mapped from disk ({root}: {free / 1e9:.0f} GB free here"
            + ("" if free >= need else "; does not fit: use classes/per_class or a larger PROGBENCH_CACHE") + ")")


def gpu_plan(suite, store, only: str | None, tflops: float) -> list[dict]:
    rows = []
    for run in suite.select(only):
        flops = run_train_flops(run)
        rows.append({"run": run.run_id, "method": run.method, "family": run.family, "seed": run.seed,
                     "status": store.check(run.run_id).status, "train_flops": flops,
                     "gpu_hours": flops / (tflops * 1e12) / 3600, "dataset": run.task.dataset})
    return rows


def format_gpu_plan(suite, rows: list[dict], tflops: float, given: bool) -> str:
    todo = [r for r in rows if r["status"] != "done"]
    lines = [f"suite {suite.name} on a GPU: {len(rows)} runs ({len(rows) - len(todo)} cached)",
             f"{'run id':44s} {'status':8s} {'PFLOP':>9s} {'GPU h':>8s}"]
    lines += [f"{r['run']:44s} {r['status']:8s} {r['train_flops'] / 1e15:9.1f} {r['gpu_hours']:8.2f}" for r in rows]
    lines += ["", f"{'family':14s} {'to run':>6s} {'EFLOP':>8s} {'GPU h':>8s}  decoded data (train + val + test)"]
    families: dict[str, list[dict]] = {}
    for r in rows:
        families.setdefault(r["family"], []).append(r)
    for family, runs in families.items():
        left = [r for r in runs if r["status"] != "done"]
        specs = {json.dumps(r["dataset"].to_dict(), sort_keys=True): r["dataset"] for r in runs}
        lines.append(f"{family:14s} {len(left):6d} {sum(r['train_flops'] for r in left) / 1e18:8.2f} "
                     f"{sum(r['gpu_hours'] for r in left):8.1f}  " + "; ".join(data_needs(s) for s in specs.values()))
    hours = sum(r["gpu_hours"] for r in todo)
    rate = (f"{tflops:.0f} TFLOP/s sustained, given by --gpu-tflops" if given else
            f"{tflops:.0f} TFLOP/s sustained = {GPU_PEAK_TFLOPS:g} TFLOP/s (H100 SXM dense bf16 peak) x "
            f"{GPU_UTILISATION:g} assumed utilisation (an assumption, not a measurement; --gpu-tflops sets it)")
    lines += [f"to run: {len(todo)} runs, ~{hours:.1f} GPU-hours (~{hours / 24:.1f} GPU-days) at {rate}",
              "training FLOPs per run from its method's planned phases (forward + backward = 3 forward passes of the "
              "trained model, plus the teacher's forwards; within 5% of the cpu suite's measured records, PWL "
              "within 17%), training steps only: validation and evaluation passes are not counted, and B-DISTIL is "
              "counted as if every round accepted its first candidate (a lower bound: the cpu suite's runs cost 2-2.5x "
              "that)",
              "small models (CIFAR-10 at batch 128) are bound by kernel launches, not FLOPs, on a GPU: expect such "
              "rows to take several times their estimate"]
    return "\n".join(lines)
