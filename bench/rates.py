"""Training speed for ``progbench plan``, for this kind of machine: seconds per training FLOP, image and phase.

A run's estimate is ``a x FLOPs + b x images + c x phases`` over its method's planned phases
(``progbench.scale.run_train_cost``: every phase, the teacher's forward passes included). Each term matters: a small
model's run is mostly per-image work (data, augmentation, the optimiser step's overheads), a large one's mostly
FLOPs, a tiny multi-phase one's mostly each phase's setup. ``a``, ``b`` and ``c`` are fitted (least squares, none
negative) to the wall-clock of finished runs, per machine kind (CPU model, or GPU name),
precision and threads per run, so validation and the methods' own passes are in them as they are in the time a run
takes. They come from, in order: finished runs in the store made on this machine kind; the table shipped with the
suite (``rates.csv``, fitted on the committed store by ``progbench calibrate``); the slowest machine of the same
device kind (CPU or GPU) in that table, said to be another machine's (a fresh cloud machine is often a CPU model
nobody measured, and a guess far too fast starts runs ``run --until`` should have held back); a default, said to be
uncalibrated. Another thread count's coefficients are scaled in proportion (pessimistic: on the 2-core machine two
1-thread runs train 1.2-1.7x one 2-thread run).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

DEFAULT = (1 / 2e11, 0.0, 0.0)  # uncalibrated (s per FLOP, per image, per phase): cpu presets, 2 threads, AMX bf16
TABLE = "rates.csv"
COLUMNS = ("machine", "device", "precision", "threads", "s_per_tflop", "ms_per_image", "s_per_phase", "runs")


def this_machine(device: str = "cpu") -> str:
    """The machine kind rates are kept for: the GPU's name on CUDA, else the CPU model."""
    if device == "cuda":
        import torch
        return torch.cuda.get_device_name()
    from .env import cpu_model
    return cpu_model()


def machine_of(env: dict) -> str:
    return env.get("gpu") or env.get("cpu") or "unknown"


def _key(spec: dict) -> tuple[str, int]:
    from .protocol import PLACEMENT_DEFAULTS
    task = spec["task"]
    return task["budget"].get("precision", "bf16"), task.get("threads", PLACEMENT_DEFAULTS["threads"])


def fit(flops: list[float], images: list[float], phases: list[float], seconds: list[float]
        ) -> tuple[float, float, float]:
    """Seconds per FLOP, per image and per phase: least squares with none negative (the best of the non-negative
    fits on every subset of the three terms)."""
    import itertools
    x, t = np.column_stack([flops, images, phases]).astype(float), np.asarray(seconds, float)
    best, best_err = (0.0, 0.0, float(t.sum() / x[:, 2].sum())), float("inf")
    for k in (3, 2, 1):
        for cols in itertools.combinations(range(3), k):
            sub = x[:, cols]
            if np.linalg.matrix_rank(sub) < k:
                continue
            coef = np.linalg.lstsq(sub, t, rcond=None)[0]
            if (coef < 0).any():
                continue
            err = float(((sub @ coef - t) ** 2).sum())
            if err < best_err - 1e-12:
                full = [0.0, 0.0, 0.0]
                for c, v in zip(cols, coef):
                    full[c] = float(v)
                best, best_err = tuple(full), err
    return best


def _phases(record) -> int:
    """How many phases a finished run trained (its log's phase names)."""
    try:
        rows = record.log()
    except OSError:
        return 1
    return max(1, len({row.get("phase") for row in rows}))


def measured(records: list, machine: str) -> dict[tuple, tuple[float, float, float, int]]:
    """(precision, threads) -> (seconds per FLOP, per image, per phase, runs) fitted on the finished runs made on
    ``machine``."""
    groups: dict[tuple, list] = {}
    for rec in records:
        training = rec.metrics["training"]
        if training.get("wall_clock_s", 0) <= 0 or not training.get("train_flops"):
            continue
        try:
            if machine_of(rec.env()) != machine:
                continue
        except (OSError, ValueError):
            continue
        groups.setdefault(_key(rec.spec), []).append(
            (training["train_flops"], training["images_seen"], _phases(rec), training["wall_clock_s"]))
    return {k: (*fit(*zip(*v)), len(v)) for k, v in groups.items()}


def _table(path: str | Path | None = None) -> list[dict]:
    text = Path(path).read_text() if path else (resources.files("progbench") / TABLE).read_text()
    return list(csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#")))


def _coefficients(row: dict) -> tuple[float, float, float, int]:
    return (float(row["s_per_tflop"]) / 1e12, float(row["ms_per_image"]) / 1e3, float(row["s_per_phase"]),
            int(row["runs"]))


def shipped(machine: str, path: str | Path | None = None) -> dict[tuple, tuple[float, float, float, int]]:
    """The shipped table's rows for ``machine``."""
    return {(r["precision"], int(r["threads"])): _coefficients(r) for r in _table(path) if r["machine"] == machine}


def slowest_other(machine: str, device: str, path: str | Path | None = None) -> dict[tuple, tuple]:
    """(precision, threads) -> (s per FLOP, per image, per phase, runs, machine) of the slowest other machine of the
    same device kind in the shipped table (most seconds per FLOP): what a machine nobody measured borrows."""
    found: dict[tuple, tuple] = {}
    for r in _table(path):
        if r["machine"] == machine or r.get("device", "cpu") != device:
            continue
        key, rates = (r["precision"], int(r["threads"])), (*_coefficients(r), r["machine"])
        if key not in found or rates[0] > found[key][0]:
            found[key] = rates
    return found


@dataclass
class Rates:
    machine: str
    store: dict = field(default_factory=dict)  # (precision, threads) -> (s per FLOP, per image, per phase, runs)
    table: dict = field(default_factory=dict)
    other: dict = field(default_factory=dict)  # (precision, threads) -> (..., runs, machine): :func:`slowest_other`
    used: set = field(default_factory=set)  # which sources answered: "store", "table", "other", "default"

    @classmethod
    def for_store(cls, records: list, device: str = "cpu", table: str | Path | None = None) -> Rates:
        machine = this_machine(device)
        return cls(machine, measured(records, machine), shipped(machine, table),
                   slowest_other(machine, "cuda" if device == "cuda" else "cpu", table))

    def coefficients(self, precision: str, threads: int) -> tuple[float, float, float]:
        for source, known in (("store", self.store), ("table", self.table)):
            if (precision, threads) in known:
                self.used.add(source)
                return known[(precision, threads)][:3]
        for source, known in (("store", self.store), ("table", self.table)):
            others = sorted((t, v) for (p, t), v in known.items() if p == precision)
            if others:  # another thread count: scaled in proportion
                t, (a, b, c, _) = others[-1]
                self.used.add(source)
                return a * t / threads, b * t / threads, c
        others = sorted((t, v) for (p, t), v in self.other.items() if p == precision)
        if others:  # another machine's: at these threads, else another thread count's scaled in proportion
            t, (a, b, c) = next(((t, v[:3]) for t, v in others if t == threads), (others[-1][0], others[-1][1][:3]))
            self.used.add("other")
            return a * t / threads, b * t / threads, c
        self.used.add("default")
        return DEFAULT[0] * 2 / threads, DEFAULT[1], DEFAULT[2]

    def seconds(self, precision: str, threads: int, flops: float, images: float, phases: int = 1) -> float:
        a, b, c = self.coefficients(precision, threads)
        return a * flops + b * images + c * phases

    def describe(self) -> str:
        parts = []
        if "store" in self.used:
            parts.append(f"{sum(v[3] for v in self.store.values())} finished run(s) in this store")
        if "table" in self.used:
            parts.append(f"the shipped rates table ({sum(v[3] for v in self.table.values())} runs)")
        said = f"fitted on {self.machine} to " + " and ".join(parts) if parts else ""
        if "other" in self.used:
            borrowed = sorted({v[4] for v in self.other.values()})
            said += ("; " if said else "") + (f"nothing measured on {self.machine} at a run's precision: the rates of "
                                             f"{' and '.join(borrowed)} (the slowest such machine in the shipped "
                                             f"table) until finished runs here calibrate it")
        if "default" in self.used:
            said += ("; " if said else "") + (f"nothing is known of {self.machine}: an uncalibrated default of "
                                             f"{1 / DEFAULT[0] / 1e9:.0f} GFLOP/s at 2 threads (finished runs "
                                             f"calibrate it)")
        return said


def table_rows(records: list) -> list[dict]:
    """The rates table from a store: one row per machine kind, precision and threads."""
    rows = []
    devices = {machine_of(r.env()): "cuda" if r.env().get("device") == "cuda" else "cpu" for r in records}
    for machine in sorted(devices):
        for (precision, threads), (a, b, c, runs) in sorted(measured(records, machine).items()):
            rows.append({"machine": machine, "device": devices[machine], "precision": precision, "threads": threads,
                         "s_per_tflop": f"{a * 1e12:.4g}", "ms_per_image": f"{b * 1e3:.4g}",
                         "s_per_phase": f"{c:.4g}", "runs": runs})
    return rows


def write_table(records: list, path: Path) -> Path:
    out = io.StringIO()
    out.write("# Seconds per training TFLOP, ms per training image and seconds per phase, per machine kind, precision "
              "and threads per run: fitted to the wall-clock of a store's finished runs (progbench calibrate); read "
              "by progbench plan\n")
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table_rows(records))
    path.write_text(out.getvalue())
    return path
