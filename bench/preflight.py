"""Checks made before anything trains, at plan time: each method built on the meta device, and the stale-code guard.

*Methods.* Every run still to train has its method built on the meta device (nothing allocated, no data read, no
weights loaded: a meta teacher), its phases walked without training and its anytime family (and extra points) built,
so a method whose constructor raises, a family that is not cheapest first (FLOPs per image counted on meta), or a
point name that is not file-name safe fails in one line before any run trains. A method whose phases or family need
the run's data or trained weights (B-DISTIL's boosting weights, RESCHED's fitted ensemble weights) cannot be walked
so: its family is checked after training, as every family still is.

*Stale code.* A run records the sha256 of its method's code (``env.json`` → ``method_source``: the class's module
and the modules of the method classes it derives from; for a file method, the file; docstrings, comments, layout and
the order of top-level imports left out, so edits of prose never flag a run; fields a syntax tree leaves empty are
left out too, so a run trained under another Python version is checked against the same code). A cached run whose
method's current source differs, with the same version (the version is in the run id), holds results of other
code: ``plan`` and ``run`` say so in one line per method, and ``--strict`` makes it an error. Records made before the
hash was recorded have nothing to compare and are left alone.
"""
from __future__ import annotations

import sys

from . import protocol
from .errors import UserError
from .store import Record, canonical_json
from .suite import RunSpec


class _NeedsData(Exception):
    """The method reads the run's data while being built or walked: its family is checked after training."""


class _NoData:
    """``ctx.data`` at plan time: any use of it says the family cannot be built without the run's data."""

    def __getattr__(self, name: str):
        raise _NeedsData(name)


_CHECKED: dict[str, str | None] = {}  # one check per method, config and shapes (seeds, budgets, teachers alike)
SHAPES = ("arch", "arch_kwargs", "teacher_arch", "teacher_kwargs")  # what a family's structure can depend on


def check_methods(runs: list[RunSpec]) -> None:
    """Build each run's method and anytime family on the meta device; the first problem is one :class:`UserError`."""
    classes: dict[str, type] = {}
    for run in runs:
        if run.method_ref not in classes:  # a file method is read again on each lookup
            classes[run.method_ref] = protocol.get_method(run.method_ref)
        cls = classes[run.method_ref]
        task = run.task
        shape = {k: run.spec["task"].get(k) for k in SHAPES}
        key = canonical_json([run.method_ref, protocol.method_source(cls)["sha256"], run.spec["config"], shape,
                              task.dataset.num_classes, task.input_size])
        if key not in _CHECKED:
            _CHECKED[key] = _problem(run, cls)
        if _CHECKED[key]:
            raise UserError(f"run {run.label or run.run_id}: {_CHECKED[key]}")


def _meta_method(run: RunSpec, cls: type[protocol.Method]) -> protocol.Method:
    """The run's method built on the meta device (call under ``torch.device("meta")``): a meta teacher, no data."""
    import torch

    from .models import create_model

    task = run.task
    size = task.input_size
    teacher = None
    if cls.needs_teacher and task.teacher_arch:
        teacher = create_model(task.teacher_arch, num_classes=task.dataset.num_classes, **task.teacher_kwargs)
        teacher.eval().requires_grad_(False)
    ctx = protocol.Context(task, torch.device("meta"), task.dataset.num_classes, size, teacher, _NoData())
    return cls(ctx, cls.make_config(run.spec["config"]))


def _walk(method: protocol.Method) -> list[protocol.OperatingPoint]:
    for _ in method.phases():  # the code between yields builds what later phases train
        pass
    return method.anytime_family()


def meta_family(run: RunSpec, recorded: list[dict] | None = None) -> list[protocol.OperatingPoint] | None:
    """The run's anytime family as built at plan time (on the meta device, untrained): the same architectures a run
    of the method's current code evaluates. Where the method needs the run's data or trained weights to build it
    (B-DISTIL, RESCHED), the family a finished run ``recorded`` (its points), rebuilt from them
    (:func:`~progbench.protocol.recorded_family`), else None."""
    import torch

    cls = protocol.get_method(run.method_ref)
    with torch.device("meta"):
        try:
            return _walk(_meta_method(run, cls))
        except Exception:  # noqa: BLE001 -- whatever building it without data or training raises
            pass
        try:
            return protocol.recorded_family(_meta_method(run, cls), recorded) if recorded else None
        except Exception:  # noqa: BLE001 -- a record the method's code no longer reads: not rebuilt, said by caller
            return None


def _problem(run: RunSpec, cls: type[protocol.Method]) -> str | None:
    import torch

    from .evaluate import flops_per_image
    from .runner import family_problem, order_problem

    size = run.task.input_size
    meta = torch.device("meta")
    with meta:
        try:
            method = _meta_method(run, cls)
        except UserError as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 -- the method's own constructor, whatever it raises
            if isinstance(exc, _NeedsData) or _meta_only(exc):
                return None
            at = protocol.raised_in(exc, cls)
            return (f"method {cls.name} raised {protocol.describe_exception(exc)} when built"
                    + (f" (at {at})" if at else "") + "; fix the method or its config")
        try:
            points = _walk(method)
        except UserError as exc:
            return str(exc)
        except Exception:  # noqa: BLE001 -- it needs the data or trained weights: checked after training instead
            return None
        try:
            extras = [p.name for p in method.extra_points()]
        except Exception:  # noqa: BLE001 -- as above
            extras = []
    names = [p.name for p in points]
    problem = family_problem(names)
    if problem:
        return f"method {cls.name}: {problem}"
    try:  # outside the meta device mode, which would intercept every op of the count (the inputs are meta anyway)
        image = torch.empty(1, 3, size, size, device=meta)
        flops = [flops_per_image(p.model, image) for p in points] if len(points) > 1 else [0]
    except Exception:  # noqa: BLE001 -- as above
        return None
    problem = order_problem(names, flops) or family_problem(names + extras)
    return f"method {cls.name}'s {problem}" if problem else None


def _meta_only(exc: BaseException) -> bool:
    """Whether an exception comes from the meta device having no data (a value read, a copy out)."""
    return "meta" in str(exc).lower()


def stale_code(runs: list[RunSpec], records: dict[str, Record]) -> list[str]:
    """One line per method whose current source differs from the source its cached runs recorded."""
    changed: dict[str, list] = {}
    classes: dict[str, type] = {}
    for run in runs:
        record = records.get(run.run_id)
        if record is None:
            continue
        try:
            env = record.env()
        except (OSError, ValueError):
            continue
        recorded = env.get("method_source") or {}
        if not recorded.get("sha256"):
            continue  # recorded before the guard: nothing to compare with
        if run.method_ref not in classes:
            classes[run.method_ref] = protocol.get_method(run.method_ref)
        cls = classes[run.method_ref]
        if protocol.source_changed(cls, recorded, env.get("python")):
            changed.setdefault(cls.name, [cls, protocol.method_source(cls)["files"], []])[2].append(run.run_id)
    return [f"method {name}'s source ({', '.join(files)}) differs from the source {len(rids)} cached run(s) were "
            f"made with (e.g. {rids[0]}), and its version {cls.version!r} was not bumped: they count as cached, with "
            f"the old code's results; bump `version` in its class to rerun them"
            for name, (cls, files, rids) in changed.items()]


def guard(runs: list[RunSpec], records: dict[str, Record], strict: bool) -> None:
    """Warn (stderr, one line per method) about cached runs of changed code; with ``strict``, refuse instead."""
    lines = stale_code(runs, records)
    if lines and strict:
        raise UserError(lines[0] + (f" (and {len(lines) - 1} more method(s))" if len(lines) > 1 else "")
                        + "; --strict refuses stale cached runs")
    for line in lines:
        print(f"progbench: warning: {line} (--strict makes this an error)", file=sys.stderr)
