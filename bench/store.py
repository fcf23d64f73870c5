"""The results store: one folder per run, keyed by a hash of the run's resolved spec.

    results/runs/<run id>/
        spec.json                 the resolved spec (method, its config and version, task); the id hashes it
        env.json                  packages, git commit, CPU/GPU, threads
        metrics.json              per operating point metrics, training cost, extra parameters
        log.jsonl                 one row per epoch (losses by name, val accuracy, lr, time)
        predictions.safetensors   test logits (fp16) of every operating point
        teacher.safetensors       teacher runs only: the weights students distil from (committed)
        points.pt                 the anytime family's architectures on the meta device, no weights (a latency
                                  pass rebuilds the points from them); runs recorded before it was kept lack it
        record.json               written last: sha256 and size of every file above -> the run is complete
        work/                     git-ignored: checkpoint, weights of every operating point
    results/quarantine/           corrupt records moved aside, never deleted

A finished run (valid record.json, every checksum matching) is never redone. A folder without record.json is an
interrupted run (**partial**), whatever result files it holds (a kill while the record was being written leaves
some): it resumes from ``work/`` and its files are written again. A record.json that is malformed, or whose files are
missing or disagree with their checksums, is **corrupt**: its files are moved to quarantine and the run is redone.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError, storage_error

RECORD_FILES = ("spec.json", "env.json", "metrics.json", "log.jsonl", "predictions.safetensors")
ARCHITECTURES = "points.pt"  # optional: runs recorded before it was kept lack it
SCHEMA = 1


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


def run_id(spec: dict) -> str:
    """Human-readable prefix (method, family, arch role, seed) + the first 12 hex digits of the spec hash."""
    task = spec["task"]
    role = "teacher" if task.get("role") == "teacher" else spec["method"]
    return f"{role}-{task['family']}-s{task['seed']}-{spec_hash(spec)[:12]}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def temporary(path: Path) -> Path:
    """The temporary name ``path`` is written under before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextmanager
def replacing(path: Path, tmp: Path | None = None):
    """Yield a temporary path to write; on success it replaces ``path`` (atomic), on any failure it is removed, and a
    failure of the filesystem (full, read-only) is one line naming the file."""
    tmp = tmp or temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise storage_error(exc, path) from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # on a read-only store nothing was written either


def atomic_write_text(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` through :func:`replacing`."""
    import torch
    with replacing(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:  # torch's zip writer reports a failed write (a full disk) as RuntimeError
            raise storage_error(exc, path) from None


class CorruptRecord(Exception):
    pass


class Unfinished(CorruptRecord):
    """No record.json: the run was interrupted (its result files, if any, are written again when it resumes)."""


@dataclass
class Record:
    run_id: str
    path: Path
    spec: dict
    metrics: dict
    files: dict  # record.json's manifest: file name -> {"sha256", "bytes"}
    _env: dict | None = field(default=None, repr=False, compare=False)  # env.json, read once

    def env(self) -> dict:
        """The environment the record was written in (``env.json``)."""
        if self._env is None:
            self._env = json.loads((self.path / "env.json").read_text())
        return self._env

    def log(self) -> list[dict]:
        """The run's per-epoch log (``log.jsonl``), one dict per row."""
        return [json.loads(line) for line in (self.path / "log.jsonl").read_text().splitlines() if line.strip()]

    @property
    def teacher_weights(self) -> Path:
        return self.path / "teacher.safetensors"

    @property
    def architectures(self) -> Path | None:
        """The family's architectures (:func:`progbench.evaluate.save_architectures`), if the run kept them."""
        return self.path / ARCHITECTURES if ARCHITECTURES in self.files else None

    @property
    def teacher_sha256(self) -> str:
        return self.files["teacher.safetensors"]["sha256"]


@dataclass
class Check:
    """What the store holds for one run id: ``status`` is done, partial, corrupt or missing."""
    status: str
    record: Record | None = None
    reason: str = ""


class Store:
    def __init__(self, root: str | os.PathLike = "results"):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"results store {self.root} is not a folder; pass --results DIR")
        self.runs = self.root / "runs"
        self.leases = self.root / "leases"  # who trains what now (progbench.lease); git-ignored
        self.logs = self.root / "logs"  # each run's training output when a worker trains it; git-ignored

    def run_dir(self, rid: str) -> Path:
        return self.runs / rid

    def work_dir(self, rid: str) -> Path:
        return self.run_dir(rid) / "work"

    # --- reading ----------------------------------------------------------------------------------------------------
    def verify(self, rid: str) -> Record:
        """The complete record of ``rid``, or :class:`CorruptRecord` (:class:`Unfinished` without record.json)."""
        d = self.run_dir(rid)
        if not (d / "record.json").exists():
            raise Unfinished("no record.json (the run did not finish)")
        try:
            return self._verify(rid, d)
        except CorruptRecord:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # malformed, not merely altered
            raise CorruptRecord(f"malformed record ({type(exc).__name__}: {exc})") from None

    def _verify(self, rid: str, d: Path) -> Record:
        manifest = json.loads((d / "record.json").read_text())
        files = manifest["files"]
        for name in RECORD_FILES:
            if name not in files:
                raise CorruptRecord(f"record.json does not list {name}")
        for name, meta in files.items():
            p = d / name
            if not p.is_file():
                raise CorruptRecord(f"{name} is missing")
            if p.stat().st_size != meta["bytes"] or sha256_file(p) != meta["sha256"]:
                raise CorruptRecord(f"{name} does not match its sha256 in record.json")
        spec = json.loads((d / "spec.json").read_text())
        metrics = json.loads((d / "metrics.json").read_text())
        if run_id(spec) != rid:
            raise CorruptRecord("spec.json does not hash to this run id")
        if spec["task"]["role"] == "teacher" and "teacher.safetensors" not in files:
            raise CorruptRecord("a teacher record must list teacher.safetensors")
        if not metrics["points"]:
            raise CorruptRecord("metrics.json has no operating points")
        return Record(rid, d, spec, metrics, files)

    def check(self, rid: str) -> Check:
        """Verify ``rid`` once: its status, its record when done, and what is wrong when it is not."""
        d = self.run_dir(rid)
        if not d.exists():
            return Check("missing")
        try:
            return Check("done", self.verify(rid))
        except Unfinished as exc:  # interrupted, while training or while its record was written: it resumes
            return Check("partial", reason=str(exc))
        except CorruptRecord as exc:
            return Check("corrupt", reason=str(exc))

    def status(self, rid: str) -> str:
        """``done``, ``partial`` (interrupted, resumable), ``corrupt`` or ``missing``."""
        return self.check(rid).status

    def get(self, rid: str) -> Record | None:
        return self.check(rid).record

    def records(self) -> list[Record]:
        """Every complete record; others are reported (one line each) and skipped, never used."""
        out = []
        if not self.runs.is_dir():
            return out
        for d in sorted(self.runs.iterdir()):
            if not d.is_dir() or d.name.startswith("."):
                continue
            found = self.check(d.name)
            if found.record:
                out.append(found.record)
            elif found.status == "corrupt":
                print(f"warning: skipping {d}: {found.reason}; `progbench run` moves it to quarantine and redoes it")
        return out

    def take_in(self, source: Store) -> dict[str, list[str]]:
        """Copy in the finished runs of another store (trained elsewhere: a cluster's scratch disk, a GPU machine) that
        this one lacks, each whole (its ``work/`` too: point weights and stages, for a later latency pass) and its log.

        Each run is verified in ``source`` first, copied into a hidden folder, renamed into place and verified again.
        Nothing here is overwritten: a run this store already holds with the same record.json is left ("same"), one it
        holds with another record, or unfinished or corrupt, is refused ("refused"); a source run that is unfinished or
        corrupt is not copied ("unfinished", "corrupt"). Returns the run ids by outcome, "copied" among them."""
        if not source.runs.is_dir():
            raise UserError(f"{source.root} has no runs/ folder: it is not a results store; pass the folder that "
                            f"holds runs/")
        if source.runs.resolve() == self.runs.resolve():
            raise UserError(f"{source.root} is this store itself; pass another store to take its runs in")
        out: dict[str, list[str]] = {k: [] for k in ("copied", "same", "refused", "unfinished", "corrupt")}
        for d in sorted(source.runs.iterdir()):
            if not d.is_dir() or d.name.startswith("."):
                continue
            rid, there = d.name, source.check(d.name)
            if there.status != "done":
                out["corrupt" if there.status == "corrupt" else "unfinished"].append(rid)
                continue
            here = self.check(rid)
            if here.status == "done":
                same = (self.run_dir(rid) / "record.json").read_bytes() == (d / "record.json").read_bytes()
                out["same" if same else "refused"].append(rid)
                continue
            if here.status != "missing":
                out["refused"].append(rid)
                continue
            self.runs.mkdir(parents=True, exist_ok=True)
            tmp = self.runs / f".{rid}.import{os.getpid()}"
            try:
                shutil.copytree(d, tmp)
                os.rename(tmp, self.run_dir(rid))
            except OSError as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise storage_error(exc, self.run_dir(rid)) from None
            self.verify(rid)
            log = source.logs / f"{rid}.log"
            if log.is_file() and not (self.logs / log.name).exists():
                self.logs.mkdir(parents=True, exist_ok=True)
                shutil.copy2(log, self.logs / log.name)
            out["copied"].append(rid)
        return out

    # --- writing ----------------------------------------------------------------------------------------------------
    def quarantine(self, rid: str, reason: str) -> Path:
        """Move a corrupt record's files aside (never delete them); returns where they went.

        ``work/`` stays: a finished training's checkpoint is not part of the record, and lets the run resume straight
        to evaluation.
        """
        base = self.root / "quarantine" / f"{rid}-{time.strftime('%Y%m%d-%H%M%S')}"
        dest, n = base, 1
        while dest.exists():
            dest, n = base.with_name(f"{base.name}-{n}"), n + 1
        dest.mkdir(parents=True)
        for item in self.run_dir(rid).iterdir():
            if item.name != "work":
                shutil.move(str(item), dest / item.name)
        (dest / "QUARANTINED.txt").write_text(f"{reason}\n")
        return dest

    def write(self, rid: str, spec: dict, env: dict, metrics: dict, log: list[dict], predictions: dict,
              teacher_weights: Path | None = None, architectures: Path | None = None) -> Record:
        """Write a run's record atomically: files first, ``record.json`` (the completion mark) last."""
        from safetensors.torch import save_file

        if run_id(spec) != rid:
            raise ValueError("spec does not hash to run id")
        d = self.run_dir(rid)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, d, "create") from None
        for stale in d.glob(".*.tmp*"):  # left by a process killed mid-write (the caller holds the run's lease)
            _remove(stale)
        atomic_write_text(d / "spec.json", json.dumps(spec, indent=2, sort_keys=True) + "\n")
        atomic_write_text(d / "env.json", json.dumps(env, indent=2, sort_keys=True) + "\n")
        atomic_write_text(d / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        atomic_write_text(d / "log.jsonl", "".join(json.dumps(row, sort_keys=True) + "\n" for row in log))
        with replacing(d / "predictions.safetensors", d / f".predictions.tmp{os.getpid()}") as tmp:
            save_file({k: v.half().contiguous() for k, v in predictions.items()}, str(tmp),
                      metadata={"what": "test-set logits, float16, in test-split order"})
        names = list(RECORD_FILES)
        if teacher_weights is not None:
            with replacing(d / "teacher.safetensors", d / f".teacher.tmp{os.getpid()}") as tmp:
                shutil.copyfile(teacher_weights, tmp)
            names.append("teacher.safetensors")
        if architectures is not None:
            with replacing(d / ARCHITECTURES, d / f".points.tmp{os.getpid()}") as tmp:
                shutil.copyfile(architectures, tmp)
            names.append(ARCHITECTURES)
        files = {n: {"sha256": sha256_file(d / n), "bytes": (d / n).stat().st_size} for n in names}
        atomic_write_text(d / "record.json", json.dumps({"schema": SCHEMA, "run_id": rid, "files": files},
                                                        indent=2, sort_keys=True) + "\n")
        return self.verify(rid)

    def teacher_record(self, rid: str) -> Record:
        rec = self.get(rid)
        if rec is None or not rec.teacher_weights.exists():
            raise UserError(f"teacher run {rid} is not complete in {self.root}; run `progbench run SUITE` "
                            f"(teachers are trained first)")
        return rec

