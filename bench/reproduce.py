"""``progbench reproduce``: fill the store and rebuild the report, saying which report files changed; or, with
``--fresh RUN-FILTER``, train the selected runs again from nothing into a scratch store and say how far each metric
moved from the committed record.

What must reproduce exactly on the same CPU (same wheels, same thread count): every point's accuracies, size, FLOPs,
weight bytes and tracked peak memory, the predictions, the per-epoch log (losses, val accuracy, lr), the images seen,
training FLOPs and parameter counts, and a teacher's weights. Timings (training wall-clock, load time, first
inference, latency) are measurements of the machine and are shown as ratios, not compared; progressive-loading
timelines are timings too and are not compared.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file

from .errors import UserError
from .store import Record, Store, atomic_write_text

EXACT_POINT_METRICS = ("test_top1", "test_top5", "val_top1", "params", "flops", "weight_bytes", "peak_memory_bytes")
EXACT_TRAINING = ("images_seen", "epochs", "train_flops")
TIMED_POINT_METRICS = ("latency_s", "load_s", "first_inference_s")
TIMED_LOG_FIELDS = ("train_s", "epoch_s", "images_per_s", "cuda_peak_bytes")


@dataclass
class Moved:
    run_id: str
    what: str  # "<point>.<metric>", "training.<field>" or "<point>.predictions"
    committed: float
    fresh: float
    exact: bool  # whether this quantity is expected to reproduce exactly

    @property
    def delta(self) -> float:
        return self.fresh - self.committed


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_digests(*paths: Path) -> dict[Path, str]:
    """sha256 of each file, and of every file under each folder (to tell which files a rebuild changed)."""
    found = {}
    for path in paths:
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        found.update({p: digest(p) for p in files if p.is_file()})
    return found


def report_changes(before: dict[Path, str], written: list[Path]) -> tuple[list[Path], list[Path]]:
    """(changed or new files, unchanged files) among ``written``, against the digests taken before the rebuild."""
    changed, same = [], []
    for p in written:
        (same if before.get(p) == digest(p) else changed).append(p)
    return changed, same


def seed_scratch_store(committed: Store, scratch: Store, teacher_ids: list[str]) -> None:
    """Copy the committed records of the teachers the rerun needs (not their work folders): students distil from the
    very weights they were trained with, pinned by checksum, without training the teacher again. Each copy is made
    under a temporary name and renamed, so an interrupted copy is never taken for a run; one already there (a
    resumed rerun) is kept."""
    for rid in teacher_ids:
        if scratch.status(rid) == "done":
            continue
        record = committed.teacher_record(rid)
        tmp = scratch.runs / f".{rid}.copy"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(record.path, tmp, ignore=shutil.ignore_patterns("work"))
        os.replace(tmp, scratch.run_dir(rid))


def compare_records(committed: Record, fresh: Record) -> list[Moved]:
    """Every compared quantity of one run: the operating points (by name) and their metrics, the predictions (max
    |logit difference|), the per-epoch log (losses, val accuracy, lr), training counts and parameter counts, a
    teacher's weights; timings as measured quantities (exact=False). Anything the committed record has and the fresh
    one lacks counts as moved (NaN)."""
    rid, out, nan = committed.run_id, [], float("nan")

    def points(rec: Record) -> dict[str, dict]:
        return {p["point"]: p for p in rec.metrics["points"] + rec.metrics.get("extra_points", [])}

    old_points, new_points = points(committed), points(fresh)
    if list(old_points) != list(new_points):
        out.append(Moved(rid, f"operating points {list(old_points)} -> {list(new_points)}", 0.0, 1.0, True))
    for name, old in old_points.items():
        new = new_points.get(name, {})
        for key in EXACT_POINT_METRICS + TIMED_POINT_METRICS:
            if old.get(key) is not None:
                out.append(Moved(rid, f"{name}.{key}", old[key], new.get(key, nan), key in EXACT_POINT_METRICS))
    old_logits = load_file(str(committed.path / "predictions.safetensors"))
    new_logits = load_file(str(fresh.path / "predictions.safetensors"))
    for name in sorted(set(old_logits) | set(new_logits)):
        same_shape = name in old_logits and name in new_logits and old_logits[name].shape == new_logits[name].shape
        diff = (old_logits[name].float() - new_logits[name].float()).abs().max().item() if same_shape else nan
        out.append(Moved(rid, f"{name}.predictions (max |logit diff|)", 0.0, diff, True))
    old_log, new_log = committed.log(), fresh.log()
    differing = sum(any(k not in TIMED_LOG_FIELDS and b.get(k, nan) != v for k, v in a.items())
                    for a, b in zip(old_log, new_log)) + abs(len(old_log) - len(new_log))
    out.append(Moved(rid, "log rows that differ (losses, val top-1, lr, counts)", 0.0, float(differing), True))
    if "teacher.safetensors" in committed.files:  # a teacher run: the weights students distil from, byte for byte
        same = fresh.files.get("teacher.safetensors", {}).get("sha256") == committed.teacher_sha256
        out.append(Moved(rid, "teacher.safetensors (1 = bytes differ)", 0.0, 0.0 if same else 1.0, True))
    old_t, new_t = committed.metrics["training"], fresh.metrics["training"]
    for key in EXACT_TRAINING:
        out.append(Moved(rid, f"training.{key}", old_t[key], new_t.get(key, nan), True))
    for key in ("method_params", "extra_params"):
        if key in committed.metrics:
            out.append(Moved(rid, key, committed.metrics[key], fresh.metrics.get(key, nan), True))
    out.append(Moved(rid, "training.wall_clock_s", old_t["wall_clock_s"], new_t["wall_clock_s"], False))
    return out


def format_comparison(moved: list[Moved]) -> str:
    """One block per run: what moved among the exact quantities (or that nothing did), then the timing ratios."""
    lines = []
    for rid in dict.fromkeys(m.run_id for m in moved):
        mine = [m for m in moved if m.run_id == rid]
        off = [m for m in mine if m.exact and m.delta != 0]
        n_exact = sum(m.exact for m in mine)
        lines.append(f"{rid}: " + ("reproduced exactly" if not off else f"{len(off)} of {n_exact} exact quantities "
                                   f"moved") + f" ({n_exact} compared)")
        for m in off:
            lines.append(f"    {m.what:44s} committed {m.committed:.6g}  fresh {m.fresh:.6g}  delta {m.delta:+.6g}")
        timed = [m for m in mine if not m.exact and m.committed]
        if timed:
            ratios = sorted(m.fresh / m.committed for m in timed)
            wall = next(m for m in timed if m.what == "training.wall_clock_s")
            lines.append(f"    timings (measured, not compared): training {wall.committed / 60:.2f} -> "
                         f"{wall.fresh / 60:.2f} min; fresh/committed over {len(timed)} timings "
                         f"{ratios[0]:.2f}-{ratios[-1]:.2f}, median {ratios[len(ratios) // 2]:.2f}")
    return "\n".join(lines)


def environment_differences(committed: Record, env: dict) -> list[str]:
    """What differs between the committed run's environment and this one in ways that change numerics."""
    old = committed.env()
    keys = ("cpu", "device", "gpu")  # threads and processes per run are in the spec itself
    diffs = [f"{k}: {old.get(k)!r} -> {env.get(k)!r}" for k in keys if old.get(k) != env.get(k)]
    diffs += [f"{p} {v} -> {env['packages'].get(p)}" for p, v in old.get("packages", {}).items()
              if env.get("packages", {}).get(p) != v and p != "progbench"]
    return diffs


MARKER = "FRESH.json"  # in a scratch store: what it is the rerun of, so an interrupted rerun can resume into it


def scratch_store(path: str | None, committed: Store, suite: str, fresh: str, run_ids: list[str]
                  ) -> tuple[Store, bool]:
    """The scratch store of a fresh rerun and whether it resumes one: a new folder (a temporary one by default), or
    the scratch store of an interrupted rerun of the same filter against the same store, whose runs were all trained
    fresh by it. Any other non-empty folder is refused: its runs would count as cached, not retrained."""
    store = Store(path or tempfile.mkdtemp(prefix="progbench-fresh-"))
    if store.root.resolve() == committed.root.resolve():
        raise UserError(f"--scratch {path} is the committed store itself; give a new folder")
    what = {"committed": str(committed.root.resolve()), "suite": suite, "fresh": fresh}
    if store.root.exists() and any(store.root.iterdir()):
        try:
            marker = json.loads((store.root / MARKER).read_text())
        except (OSError, ValueError):
            marker = None
        foreign = [d.name for d in store.runs.iterdir() if not d.name.startswith(".") and d.name not in run_ids] \
            if store.runs.is_dir() else []
        if marker != what or foreign:
            raise UserError(f"--scratch {path} is not empty: its runs would count as cached, not retrained; give a new "
                            f"folder (or remove it)" + (" -- it is the scratch store of another rerun "
                                                        f"({marker.get('fresh')!r} of {marker.get('committed')})"
                                                        if isinstance(marker, dict) and marker != what else ""))
        return store, True
    store.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(store.root / MARKER, json.dumps(what, indent=2, sort_keys=True) + "\n")
    return store, False
