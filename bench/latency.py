"""Latency that can be compared: every operating point of a cell timed in one fresh process, interleaved.

Each run times its own points at the end of its training (``latency_s`` in its metrics), in a process that has just
trained, beside whatever else the machine ran then: the same model's batch-1 latency differed up to 2x between runs.
A *pass* (``progbench latency SUITE --only family=F``) rebuilds every point of the cell's finished runs from the files
each run left (``work/weights/<point>.safetensors`` and its skeleton ``<point>.pt``; a one-model run made before
skeletons were saved is rebuilt from its spec) in one process that has done nothing else, then times them in rounds:
each round times every point once (``torch.utils.benchmark``, batch 1), in an order shuffled per round (seeded), so
every point sees the same conditions. A point's latency is the median of its rounds. The load average before and after
is recorded, and a pass refuses to start on a busy machine unless told otherwise (it is then marked busy).

A pass also measures again, on the same quiet machine, the progressive loading timeline of every run that left one
(``work/stages``: the stage files of PWL and B-DISTIL runs), each in a fresh process as the run itself did
(``progressive.measure``); the report reads a run's timeline from the latest pass that measured it, else from the
run's own record.

Passes are written as ``results/latency/<family>/<UTC time>.json`` and never overwritten; the report scores the
latency axis of a cell from its latest pass. Point weights live in each run's ``work/`` folder, which stays on the
machine that trained it, so a pass runs there.
"""
from __future__ import annotations

import datetime
import json
import os
import random
import statistics
from pathlib import Path

from .errors import UserError
from .store import Record, atomic_write_text
from .suite import task_of

BUSY_LOAD_PER_CORE = 0.25  # a 1-minute load average above this many runnable tasks per core is a busy machine
FOLDER = "latency"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def busy(load: list[float]) -> bool:
    return load[0] > BUSY_LOAD_PER_CORE * (os.cpu_count() or 1)


def rebuild(record: Record, point: str, device):
    """The point as the run evaluated it: its skeleton with its weights file, laid out for ``device``."""
    import torch

    from .evaluate import build_point
    from .models import create_model
    weights = record.path / "work" / "weights" / f"{point}.safetensors"
    if not weights.is_file():
        raise UserError(f"run {record.run_id}: no weights file for point {point!r} ({weights}); a latency pass runs "
                        f"on the machine that trained the run, whose work/ folder holds them")
    skeleton_path = weights.with_suffix(".pt")
    if skeleton_path.is_file():
        skeleton = torch.load(skeleton_path, weights_only=False)
    elif len(record.metrics["points"]) == 1:  # one model, made before skeletons were saved: its spec builds it
        task = task_of(record.spec)
        with torch.device("meta"):
            skeleton = create_model(task.arch, num_classes=task.dataset.num_classes, **task.arch_kwargs)
    else:
        raise UserError(f"run {record.run_id}: no skeleton for point {point!r} ({skeleton_path}); retrain the run "
                        f"with this version of progbench to time its points in a pass")
    return build_point(skeleton, weights, device)


def time_points(records: list[Record], rounds: int = 5, min_run_time: float = 0.2, threads: int = 1,
                seed: int = 0, on_round=None) -> list[dict]:
    """Every point of ``records`` timed in this process, ``rounds`` times each, interleaved (see the module doc)."""
    import torch

    from .evaluate import latency_timer
    torch.set_num_threads(threads)  # latency_timer times with this many
    device = torch.device("cpu")
    entries = []
    for record in records:
        task = task_of(record.spec)
        size = task.budget.augment_spec.resize or task.dataset.resolution
        image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))  # shape is what counts
        for p in record.metrics["points"]:
            model = rebuild(record, p["point"], device)
            entries.append({"record": record, "point": p["point"], "model": model, "image": image,
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


def time_loading(records: list[Record], trials: int, threads: int = 1, on_run=None) -> dict[str, dict]:
    """run id -> its progressive loading timeline measured again now (runs without stage files are left out)."""
    import torch

    from . import progressive
    torch.set_num_threads(threads)  # the measuring process is given this process's thread count
    timelines = {}
    for record in records:
        stages = record.path / "work" / "stages"
        if not (stages / progressive.INDEX).is_file():
            continue
        timelines[record.run_id] = progressive.measure(stages, trials, torch.device("cpu"),
                                                       task_of(record.spec).budget.precision)
        if on_run:
            on_run(record.run_id)
    return timelines


def pass_latencies(passes: dict[str, dict]) -> dict[tuple[str, str], float]:
    """(run id, point) -> batch-1 latency from its cell's latest pass."""
    return {(p["run_id"], p["point"]): p["latency_s"] for one in passes.values() for p in one["points"]}


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
