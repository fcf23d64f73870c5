"""Latency that can be compared: every operating point of a cell timed in one fresh process, interleaved.

Each run times its own points at the end of its training (``latency_s`` in its metrics), in a process that has just
trained, beside whatever else the machine ran then: the same model's batch-1 latency differed up to 2x between runs.
A *pass* (``progbench latency SUITE --only family=F``) rebuilds every point of the cell's finished runs in one
process that has done nothing else, then times them in rounds: each round times every point once
(``torch.utils.benchmark``, batch 1), in an order shuffled per round (seeded), so every point sees the same
conditions. A point's latency is the median of its rounds. The load average before and after is recorded, and a pass
refuses to start on a busy machine unless told otherwise (it is then marked busy).

A point is rebuilt from its architecture, not its weights: each record keeps its family's modules on the meta device
(``points.pt``), and the pass gives them stand-in values (:func:`stand_ins`), because a run's weights stay behind on
the machine that trained it (a GPU machine, a cluster node, a session that ended). Batch-1 time is the same with
stand-ins: ``tests/perf/test_stand_in_latency.py`` times trained teachers beside their stand-ins as a pass does,
interleaved, and they agree within 10 % (the target); a pass marks its weights, so the report says which kind each
cell's latency comes from. A run recorded before ``points.pt`` was kept is rebuilt by its method on the meta device:
a one-model run from its spec; a family from the spec as at plan time, or, where the run's data or training decided it
(B-DISTIL's members, RESCHED's weights), from what the record says of its points; a run that cannot be is named in
the pass as left out. Every rebuilt point is checked against its recorded parameter count.

A pass also measures again, on the same quiet machine, the progressive loading timeline of every run that recorded
one (PWL and B-DISTIL), each in a fresh process as the run itself did (``progressive.measure``), from stage files
written anew with the stand-in points: the same tensors per stage, so the same bytes, checked against the run's. The
report reads a run's timeline from the latest pass that measured it, else from the run's own record.

Passes are written as ``results/latency/<family>/<UTC time>.json`` and never overwritten; the report scores the
latency axis of a cell from its latest pass.
"""
from __future__ import annotations

import datetime
import json
import os
import random
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError
from .store import ARCHITECTURES, Record, atomic_write_text
from .suite import RunSpec, task_of

if TYPE_CHECKING:
    from torch import nn

BUSY_LOAD_PER_CORE = 0.25  # a 1-minute load average above this many runnable tasks per core is a busy machine
FOLDER = "latency"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def busy(load: list[float]) -> bool:
    return load[0] > BUSY_LOAD_PER_CORE * (os.cpu_count() or 1)


STAND_INS = ("stand-in values (same shapes, dtypes, sharing and layout as the trained points), so a point is timed "
             "from its architecture, on any machine")


def architectures(record: Record, run: RunSpec) -> dict[str, nn.Module] | str:
    """``{point name: skeleton}`` of the run's anytime family (modules on the meta device, no weights), or why it
    cannot be rebuilt. From the record's ``points.pt``; for a run recorded before that was kept, a one-model run's
    spec builds it, and its method builds the family on the meta device (:func:`~progbench.preflight.meta_family`):
    from the spec, as at plan time, or where the run's data or training decided it (B-DISTIL, RESCHED), from what
    the record says of its points."""
    import torch

    from . import protocol
    from .models import create_model
    from .preflight import meta_family
    protocol.get_method(run.method_ref)  # a method file's classes, before unpickling them
    names = [p["point"] for p in record.metrics["points"]]
    if record.architectures is not None:
        return torch.load(record.architectures, weights_only=False)
    if len(names) == 1:
        task = task_of(record.spec)
        with torch.device("meta"):
            return {names[0]: create_model(task.arch, num_classes=task.dataset.num_classes, **task.arch_kwargs)}
    family = meta_family(run, record.metrics["points"])
    if family is None:
        return (f"its architectures were not kept (recorded before {ARCHITECTURES} was) and method "
                f"{record.spec['method']} cannot build its family from the spec or the record")
    if [p.name for p in family] != names:
        return f"the family its method builds now ({[p.name for p in family]}) is not the one it recorded ({names})"
    return {p.name: p.model for p in family}


def stand_ins(skeletons: dict[str, nn.Module], seed: int = 0) -> dict[str, nn.Module]:
    """The skeletons made real on the CPU with stand-in values, laid out as the run laid its points out: every tensor
    made once, so whatever the points share (PWL's teacher blocks, tied weights) stays shared; weights drawn from
    N(0, 0.02) and then PyTorch's own initialisation of its layers (norm statistics 0 and 1), so no value is
    denormal, infinite or NaN."""
    import torch
    from torch import nn

    from .models import prepare_for_device
    generator = torch.Generator().manual_seed(seed)
    made: dict[int, tuple] = {}  # id -> (the meta tensor, kept alive so its id is not reused; its real one)
    with torch.no_grad():
        for model in skeletons.values():
            for module in model.modules():
                for tensors in (module._parameters, module._buffers):
                    for key, t in tensors.items():
                        if t is None:
                            continue
                        if id(t) not in made:
                            real = torch.empty(t.shape, dtype=t.dtype)
                            real.normal_(0, 0.02, generator=generator) if real.is_floating_point() else real.zero_()
                            made[id(t)] = (t, nn.Parameter(real, t.requires_grad)
                                           if isinstance(t, nn.Parameter) else real)
                        tensors[key] = made[id(t)][1]
        torch.manual_seed(seed)
        for model in skeletons.values():
            for module in model.modules():
                if type(module).__module__.startswith("torch.nn.") and hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    return {name: prepare_for_device(model, torch.device("cpu")).eval() for name, model in skeletons.items()}


def family(record: Record, run: RunSpec, seed: int = 0) -> dict[str, nn.Module] | str:
    """The run's points rebuilt with stand-in values (:func:`stand_ins`), each checked against its recorded parameter
    count, or why they cannot be."""
    from .evaluate import count_params
    skeletons = architectures(record, run)
    if isinstance(skeletons, str):
        return skeletons
    models = stand_ins(skeletons, seed)
    for p in record.metrics["points"]:
        model = models.get(p["point"])
        if model is None:
            return f"its architectures lack point {p['point']!r}"
        if count_params(model) != p["params"]:
            return f"point {p['point']!r} rebuilt has {count_params(model)} parameters, its record {p['params']}"
    return models


def _test_image(task, seed: int):
    """A batch-1 input of the task's evaluated size (its shape is what counts for timing), the same for every run."""
    import torch
    size = task.input_size
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def time_points(runs: list[tuple[Record, dict[str, nn.Module]]], rounds: int = 5, min_run_time: float = 0.2,
                threads: int = 1, seed: int = 0, on_round=None) -> list[dict]:
    """Every point of every run (its record, its points from :func:`family`) timed in this process, ``rounds`` times
    each, interleaved (see the module doc)."""
    import torch

    from .evaluate import latency_timer
    torch.set_num_threads(threads)  # latency_timer times with this many
    device = torch.device("cpu")
    entries = []
    for record, models in runs:
        task = task_of(record.spec)
        image = _test_image(task, seed)
        for p in record.metrics["points"]:
            entries.append({"record": record, "point": p["point"], "model": models[p["point"]], "image": image,
                            "precision": task.budget.precision, "times": []})

    timers = [latency_timer(e["model"], e["image"], device, e["precision"]) for e in entries]
    order = list(range(len(entries)))
    for r in range(rounds):
        random.Random(seed + r).shuffle(order)
        for i in order:
            entries[i]["times"].append(timers[i].blocked_autorange(min_run_time=min_run_time).median)
        if on_round:
            on_round(r + 1, rounds)
    return [{"run_id": e["record"].run_id, "point": e["point"], "latency_s": statistics.median(e["times"]),
             "latency_min_s": min(e["times"]), "latency_max_s": max(e["times"]), "round_s": e["times"]}
            for e in entries]


def time_loading(runs: list[tuple[Record, dict[str, nn.Module]]], trials: int, threads: int = 1, seed: int = 0,
                 on_run=None) -> tuple[dict[str, dict], dict[str, str]]:
    """Each run's progressive loading timeline measured again now, from stage files written anew with its stand-in
    points (the same tensors per stage, so the same bytes: checked against the run's own timeline); runs that
    recorded no timeline are left out. Returns run id -> timeline, and run id -> why it could not be measured."""
    import tempfile

    import torch

    from . import progressive
    from .evaluate import save_weights
    from .protocol import OperatingPoint
    torch.set_num_threads(threads)  # the measuring process is given this process's thread count
    timelines, untimed = {}, {}
    for record, models in runs:
        recorded = record.metrics.get("progressive_loading") or {}
        if "warm" not in recorded:
            continue
        task = task_of(record.spec)
        points = [OperatingPoint(p["point"], models[p["point"]]) for p in record.metrics["points"]]
        with tempfile.TemporaryDirectory(prefix="progbench-stages-") as tmp:
            whole = {}
            for role, p in (("first", points[0]), ("last", points[-1])):
                whole[role] = Path(tmp) / "weights" / f"{p.name}.safetensors"
                save_weights(p.model, whole[role])
            stages = Path(tmp) / "stages"
            progressive.write_stages(points, stages, _test_image(task, seed), whole, torch.device("cpu"))
            written = [s["new_bytes"] for s in json.loads((stages / progressive.INDEX).read_text())["stages"]]
            expected = [s["new_bytes"] for s in recorded["warm"]["stages"]]
            if written != expected:
                untimed[record.run_id] = f"stage files of {written} bytes, the run's were {expected}"
                continue
            timelines[record.run_id] = progressive.measure(stages, trials, torch.device("cpu"), task.budget.precision)
        if on_run:
            on_run(record.run_id)
    return timelines, untimed


def pass_latencies(passes: dict[str, dict]) -> dict[tuple[str, str], float]:
    """(run id, point) -> batch-1 latency from its cell's latest pass."""
    return {(p["run_id"], p["point"]): p["latency_s"] for one in passes.values() for p in one["points"]}


def pass_rounds(passes: dict[str, dict]) -> dict[tuple[str, str], list[float]]:
    """(run id, point) -> its batch-1 time in each round of its cell's latest pass (round r: every point once, in the
    same conditions), for the uncertainty the timing itself adds."""
    return {(p["run_id"], p["point"]): p["round_s"] for one in passes.values() for p in one["points"]}


def pass_timelines(passes: dict[str, dict]) -> dict[str, dict]:
    """run id -> the progressive loading timeline its cell's latest pass measured (passes without one: none)."""
    return {rid: tl for one in passes.values() for rid, tl in one.get("loading", {}).items()}


def write_pass(store_root: Path, family: str, payload: dict) -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = Path(store_root) / FOLDER / family / f"{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True) + "\n")
    return path


def latest_passes(store_root: Path) -> dict[str, dict]:
    """family -> its latest pass (by file name: UTC time). A pass that cannot be read is one clear error."""
    found = {}
    for folder in sorted((Path(store_root) / FOLDER).glob("*/")):
        passes = sorted(folder.glob("*.json"))
        if not passes:
            continue
        try:
            found[folder.name] = {**json.loads(passes[-1].read_text()), "file": passes[-1].name}
        except (OSError, ValueError) as exc:
            raise UserError(f"latency pass {passes[-1]} cannot be read ({exc}); move it aside and run "
                            f"`progbench latency` for family {folder.name} again") from None
    return found
