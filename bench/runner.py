"""Plan and run suites: teachers first, finished runs never redone, interrupted runs resumed, corrupt ones redone."""
from __future__ import annotations

import gc
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from . import data as datamod
from . import distributed, precision, progressive, protocol
from .distributed import SINGLE, World
from .env import environment, gpu_kernels
from .errors import RunFailed, UserError  # noqa: F401 -- RunFailed: raised here, importable from here
from .evaluate import EvalSettings, evaluate_point, point_info, save_architectures, score_point
from .models import create_model, prepare_for_device
from .rates import Rates
from .store import ARCHITECTURES, Store, canonical_json
from .suite import RunSpec, Suite
from .train import Trainer, TrainingError


@dataclass
class Runtime:
    store: Store
    device: torch.device
    data_root: str | None = None
    progress: bool = True
    eval_settings: EvalSettings = EvalSettings()
    env: dict = field(default_factory=dict)

    def __post_init__(self):
        # Taken once, when the code that will run has been imported: a commit made while a long suite runs must not
        # be credited with its results.
        self.env = self.env or environment(self.device)


_DATA_CACHE: dict = {}


def get_data(spec: datamod.DatasetSpec, root: str | None) -> datamod.Data:
    key = (datamod.describe(spec), str(datamod.data_root(root)))
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()  # one dataset in memory at a time
        _DATA_CACHE[key] = datamod.load(spec, root)
    return _DATA_CACHE[key]


def load_teacher(task: protocol.Task, store: Store, num_classes: int, device: torch.device
                 ) -> tuple[nn.Module, str]:
    """The task's teacher, frozen and in eval mode, and the sha256 of its (verified) weights file."""
    record = store.teacher_record(task.teacher_run)
    teacher = create_model(task.teacher_arch, num_classes=num_classes, **task.teacher_kwargs)
    teacher.load_state_dict(load_file(str(record.teacher_weights)))
    teacher = prepare_for_device(teacher.to(device), device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, record.teacher_sha256


def execute(run: RunSpec, rt: Runtime, world: World = SINGLE, on_epoch=None, should_stop=None) -> dict | None:
    """Train one run (resuming if interrupted), evaluate its anytime family, write its record; returns metrics.

    With several processes (``world``), every rank trains its share of each batch and rank 0 alone evaluates and
    writes (the others return None). ``on_epoch(row, epochs)`` hears of each finished epoch; ``should_stop()``,
    asked after each checkpoint, stops the run there (:class:`~progbench.train.Interrupted`).
    """
    task, spec, rid = run.task, run.spec, run.run_id
    torch.set_num_threads(task.threads)  # part of the spec: the thread count moves the numbers
    device = distributed.local_device(rt.device, world)
    if device.type == "cuda" and task.budget.precision == "bf16" and not torch.cuda.is_bf16_supported(False):
        raise UserError(f"run {rid}: its budget trains in bf16, which {torch.cuda.get_device_name(device)} lacks "
                        f"(bf16 needs an Ampere or newer GPU); set the budget's precision: fp32 (a new run)")
    precision.warn_if_slow(device, task.budget.precision, lambda line: print(line, flush=True))
    precision.configure(device, task.budget.precision)
    data = get_data(task.dataset, rt.data_root)
    method_cls = protocol.get_method(run.method_ref)
    teacher, inputs = None, {}
    if method_cls.needs_teacher:
        if not task.teacher_run:
            raise UserError(f"method {method_cls.name} needs a teacher but run {rid} has none")
        # The teacher is named by run id; its weights' checksum pins what this student actually distilled from.
        teacher, inputs["teacher_sha256"] = load_teacher(task, rt.store, task.dataset.num_classes, device)
    size = task.input_size
    ctx = protocol.Context(task, device, task.dataset.num_classes, size, teacher, data)
    torch.manual_seed(task.seed)  # weight initialisation
    method = method_cls(ctx, method_cls.make_config(spec["config"])).to(device)
    prepare_for_device(method, device)
    work = rt.store.work_dir(rid)
    trainer = Trainer(method, data, task.budget, task.seed, device, work, run_label=run.label, progress=rt.progress,
                      inputs=inputs, world=world, on_epoch=on_epoch, should_stop=should_stop)
    try:
        state = trainer.run()
    except TrainingError as exc:
        raise RunFailed(f"run {rid}: {exc}") from None
    if not world.is_main:
        return None
    t_eval = time.perf_counter()
    points = method.anytime_family()
    check_family(points, f"run {rid}: method {method_cls.name}")
    point_metrics, predictions = [], {}
    for point in points:
        # a point may hold modules or buffers the method made after training, on the CPU (RESCHED's weights): moved
        prepare_for_device(point.model.to(device), device)
        m, logits = evaluate_point(point, data, trainer.prep, device, task.budget.precision,
                                   work / "weights" / f"{point.name}.safetensors", rt.eval_settings)
        point_metrics.append(m)
        predictions[point.name] = logits
    problem = order_problem([p.name for p in points], [m["flops"] for m in point_metrics])
    if problem:
        raise RunFailed(f"run {rid}: method {method_cls.name}'s {problem}")
    extra_points = method.extra_points()
    check_family(points + extra_points, f"run {rid}: method {method_cls.name} (family and extra points)")
    for p in extra_points:
        p.model.to(device)
    extras = [{**score_point(p, data, trainer.prep, device, task.budget.precision, rt.eval_settings)[0],
               **point_info(p)} for p in extra_points]
    loading = None  # a single point has nothing to load progressively
    if len(points) > 1:
        why_not = progressive.nested_keys(points)
        if why_not:
            loading = {"skipped": f"no progressive loading: {why_not}"}
        else:
            weights = work / "weights"
            progressive.write_stages(points, work / "stages", trainer.prep(data.test.images[:1], train=False),
                                     {"first": weights / f"{points[0].name}.safetensors",
                                      "last": weights / f"{points[-1].name}.safetensors"}, device)
            loading = progressive.measure(work / "stages", rt.eval_settings.load_trials, device,
                                          task.budget.precision)
    in_points = {id(p) for pt in points for p in pt.model.parameters()}
    method_params = {id(p): p for p in method.parameters()}
    metrics = {
        **inputs,
        "points": point_metrics,
        **({"extra_points": extras} if extras else {}),
        **({"progressive_loading": loading} if loading else {}),
        "training": {"wall_clock_s": state.wall_clock_s, "epochs": state.epochs_total,
                     "images_seen": state.images_seen, "train_flops": state.train_flops},
        "evaluation_s": time.perf_counter() - t_eval,
        "method_params": sum(p.numel() for p in method_params.values()),
        "extra_params": sum(p.numel() for k, p in method_params.items() if k not in in_points),
    }
    env = {**rt.env, **gpu_kernels(device), "torch_threads": torch.get_num_threads(),
           **({"world_size": world.size} if world.size > 1 else {}),
           "method_source": protocol.method_source(method_cls)}  # for the stale-code guard (progbench.preflight)
    save_architectures(points, work / ARCHITECTURES)
    rt.store.write(rid, spec, env, metrics, state.log, predictions,
                   teacher_weights=work / "weights" / f"{points[0].name}.safetensors" if run.is_teacher else None,
                   architectures=work / ARCHITECTURES)
    del method, teacher
    gc.collect()
    return metrics


def check_family(points: list, where: str) -> None:
    problem = family_problem([p.name for p in points])
    if problem:
        raise RunFailed(f"{where}: {problem}")


def family_problem(names: list[str]) -> str | None:
    """What is wrong with an anytime family's point names (None: nothing)."""
    if not names:
        return "the anytime family is empty; return at least one OperatingPoint"
    if len(set(names)) != len(names) or not all(re.fullmatch(r"[A-Za-z0-9_.+-]+", n) for n in names):
        return f"operating point names must be unique and file-name safe (letters, digits, _ . + -), got {names}"
    return None


def order_problem(names: list[str], flops: list[float]) -> str | None:
    """Why an anytime family is not cheapest first (None: it is)."""
    if flops == sorted(flops):
        return None
    return (f"anytime family is not cheapest first (FLOPs per image {dict(zip(names, flops))}); return its points in "
            f"order of non-decreasing cost")


_FORWARD_FLOPS: dict = {}


def forward_flops(arch: str, num_classes: int, image_size: int, kwargs: dict | None = None) -> int:
    """FLOPs of one forward at batch 1, counted on the meta device (nothing is allocated or computed); memoised."""
    key = (arch, num_classes, image_size, canonical_json(kwargs or {}))
    if key not in _FORWARD_FLOPS:
        with torch.device("meta"):
            model = create_model(arch, num_classes=num_classes, **(kwargs or {})).eval()  # BN heads refuse batch 1
            x = torch.empty(1, 3, image_size, image_size)
        with FlopCounterMode(display=False) as counter:
            model(x)
        _FORWARD_FLOPS[key] = int(counter.get_total_flops())
    return _FORWARD_FLOPS[key]


def train_size(spec: datamod.DatasetSpec) -> int:
    known = {"cifar10": 5000, "imagenette": 947, "imagenet1k": 1300}  # train images per class before the carve
    per_class = spec.train_per_class or ((spec.per_class or known.get(spec.name, 1000)) - spec.val_per_class)
    return per_class * spec.num_classes


def estimate_seconds(run: RunSpec, rates, past_plan: tuple[float, float] = (1.0, 1.0)) -> float:
    """Training time of a run still to train: its method's planned training FLOPs and images, times ``past_plan``
    (:func:`past_plan`), at the rates of this kind of machine (``progbench.rates``)."""
    from .scale import run_train_cost
    flops, images, phases = run_train_cost(run)
    return rates.seconds(run.task.budget.precision, run.task.threads, flops * past_plan[0], images * past_plan[1],
                         phases)


def past_plan(runs: list[RunSpec], records: dict) -> Callable[[RunSpec], tuple[float, float]]:
    """How far finished runs' training FLOPs and images went past what their method planned (means of measured /
    planned), for a run still to train: over finished runs of its method and config, else of its method (configs
    differ by architecture), else none (1, 1). A method whose work depends on its data plans a lower bound -- B-DISTIL
    plans one accepted candidate of the smallest size per round and trained 8-12x that in the VGG CIFAR-10 cell -- so
    a cell where it has not run yet is estimated from the cells where it has."""
    from .scale import run_train_cost
    ratios: dict[str, list[tuple[float, float]]] = {}
    for run in runs:
        record = records.get(run.run_id)
        if record is None or run.is_teacher:
            continue
        flops, images, _ = run_train_cost(run)
        done = record.metrics["training"]
        if flops > 0 and images > 0:
            for key in _plan_keys(run.spec):
                ratios.setdefault(key, []).append((done["train_flops"] / flops, done["images_seen"] / images))
    means = {key: (sum(f for f, _ in r) / len(r), sum(i for _, i in r) / len(r)) for key, r in ratios.items()}
    return lambda run: next((means[k] for k in _plan_keys(run.spec) if k in means), (1.0, 1.0))


def _plan_keys(spec: dict) -> list[str]:
    """The groups a run's plan overrun is read from, closest first: its method and config, then its method."""
    return [canonical_json([spec["method"], spec["method_version"], spec["config"]]),
            canonical_json([spec["method"], spec["method_version"]])]


def _same_but_seed(spec: dict) -> str:
    task = {k: v for k, v in spec["task"].items() if k not in ("seed", "teacher_run")}
    return canonical_json({**spec, "task": task})


def plan(suite: Suite, store: Store, only: str | None = None, device: str = "cpu") -> list[dict]:
    """Each run's status and training time: measured when done; else the mean of finished runs on this kind of machine
    that differ only by seed, else its planned FLOPs and images (scaled by how far finished runs of the same method and
    config went past their plan: :func:`past_plan`) at this kind of machine's rates (``progbench.rates``; each row's
    ``rates`` says where the rates came from). The methods of runs still to train
    are built on the meta device first (``progbench.preflight``), so a bad method or family fails here."""
    from .preflight import check_methods
    from .rates import machine_of

    rows = []
    records = {rec.run_id: rec for rec in store.records()}  # verified once (checksums), then read from memory
    rates = Rates.for_store(list(records.values()), device)
    measured: dict[str, list[float]] = {}
    for rec in records.values():
        if machine_of(rec.env()) == rates.machine:
            measured.setdefault(_same_but_seed(rec.spec), []).append(rec.metrics["training"]["wall_clock_s"])
    runs = suite.select(only)
    check_methods([run for run in runs if run.run_id not in records])
    past = past_plan(suite.select(None), records)
    for run in runs:
        record = records.get(run.run_id)
        found = store.check(run.run_id) if record is None else None
        siblings = measured.get(_same_but_seed(run.spec))
        seconds = (record.metrics["training"]["wall_clock_s"] if record
                   else sum(siblings) / len(siblings) if siblings
                   else estimate_seconds(run, rates, past(run)))
        rows.append({"run": run.run_id, "method": run.method, "family": run.family, "seed": run.seed,
                     "status": "done" if record else found.status, "train_min": seconds / 60,
                     "estimated": record is None, "teacher": run.depends_on, "record": record})
    for row in rows:
        row["rates"] = rates.describe()
    return rows


def wall_clock(rows: list[dict], workers: int) -> float:
    """Minutes until every missing run is trained by ``workers`` concurrent runners: teachers first, a student no
    earlier than its teacher's end, each run on the runner free first (list scheduling)."""
    free = [0.0] * max(1, workers)
    ends: dict[str, float] = {}
    todo = [r for r in rows if r["status"] != "done"]
    for r in sorted(todo, key=lambda r: r["teacher"] is not None):
        k = min(range(len(free)), key=free.__getitem__)
        start = max(free[k], ends.get(r["teacher"], 0.0))
        ends[r["run"]] = free[k] = start + r["train_min"]
    return max(free)


def format_plan(suite: Suite, rows: list[dict], workers: int = 1) -> str:
    lines = [f"suite {suite.name}: {len(rows)} runs ({sum(r['status'] == 'done' for r in rows)} cached)",
             f"{'run id':44s} {'status':8s} {'train min':>10s}"]
    for r in rows:
        mark = "~" if r["estimated"] else " "
        lines.append(f"{r['run']:44s} {r['status']:8s} {mark}{r['train_min']:9.1f}")
    todo = sum(r["train_min"] for r in rows if r["status"] != "done")
    lines.append(f"to run: {sum(r['status'] != 'done' for r in rows)} runs, ~{todo:.0f} min of training, "
                 f"~{wall_clock(rows, workers):.0f} min wall-clock with {workers} local worker(s) (~ = estimated: the "
                 f"mean of finished seeds of the same run on this kind of machine, else its planned training FLOPs and "
                 f"images, scaled by how far finished runs of its method and config went past their plan, at this "
                 f"machine's rates; cached rows show their measured time)")
    by_family: dict[str, list[float]] = {}
    for r in rows:
        if r["status"] != "done":
            by_family.setdefault(r["family"], []).append(r["train_min"])
    if len(by_family) > 1:  # what each family (a grid cell) still needs, to schedule it
        lines.append("by family: " + "; ".join(f"{family} {len(m)} runs ~{sum(m):.0f} min"
                                               for family, m in by_family.items()))
    said = next((r["rates"] for r in rows if r["estimated"] and r["rates"]), "")
    if said:
        lines.append(f"rates: {said}")
    return "\n".join(lines)


def parse_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA GPU is visible; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise UserError(f"--device must be cpu or cuda, not {name!r}")
    return torch.device(name)


def fmt_count(n: float) -> str:
    if n == 0:
        return "0"
    k = min(int(math.log10(abs(n)) // 3), 4)
    return f"{n / 10 ** (3 * k):.3g}{['', 'K', 'M', 'G', 'T'][k]}"
