"""The grid: every method per cell (architecture x dataset) under one protocol, scored like with like.

A cell is one suite family of the ``grid`` suite: every run in it distils from the same teacher run, learns from the
same train split and trains every network with the same student budget. What this module writes, per cell:

* ``grid_points``: each method's operating points, test top-1 mean ± std over seeds with the number of seeds, costs
  (FLOPs, weight bytes), what the run's training cost (images, FLOPs, minutes), and "still learning" when a seed's
  val top-1 still rose by more than 1 point in the last epoch of a phase. KD and scratch students at several sizes
  (ladders) are points of one KD and one scratch curve.
* ``grid_area``: each method's anytime curve (the best of its points within a budget) against the KD ladder's, both
  averaged over budgets spread evenly in log cost over the range the two cover together: no chance filled in below a
  method's cheapest point.
* ``grid_winners``: at budgets 1/16 ... 2 of the student's cost, the most accurate trained point that fits, among
  methods with a point that fits.
* ``grid_claims``: the papers' claims per cell from per-seed paired differences: mean ± std, a 95 % t interval, and
  *holds* / *does not hold* / *inconclusive* (the interval straddles the threshold, or fewer than 2 seeds).

Only runs of the grid suite enter (the cpu suite's records stay in the store and in their own sections).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from progbench import latency
from progbench.reports.crossmethod import architecture_label
from progbench.reports.generate import (
    STYLES,
    config_change,
    fallback_main,
    family_order,
    fields_label,
    human,
    log_axis,
    plt,
    save_figure,
)
from progbench.reports.generate import write_table as write_rows
from progbench.reports.pwl import MONOTONE_TOLERANCE, TARGET_FIRST
from progbench.reports.sws import fine_tuning_val, run_log
from progbench.store import Record

SUITE = "grid"
LEARNING = 0.01  # "still learning": val top-1 rose by more than this in the last epoch of a phase
MIN_SEEDS = 3
LADDERS = ("kd", "scratch")  # trained at several student sizes, each size a rung of one curve
LABELS = {"scratch": "scratch", "kd": "KD", "pwl": "PWL", "bdistil": "B-DISTIL", "resched": "RESCHED",
          "noresched": "NO-RESCHED", "sws": "SWS", "des_scratch": "Des scratch", "des_pretrain": "Des pre-train"}
AXES = {"flops": "FLOPs", "weight_bytes": "weight bytes", "latency": "latency (one pass)"}
BUDGETS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 2)  # fractions of the cell's student cost
FITS = 1e-3  # a point fits a budget up to this relative excess (weight files differ by their header)
# t quantiles (0.975) by degrees of freedom: a constant of the t distribution, for 95 % intervals of seed means
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


# --- which runs, and their points ---------------------------------------------------------------------------------
def grid_runs(suite: str = SUITE) -> list:
    from progbench.suite import load_suite
    return load_suite(suite).runs


def _unnamed_students(runs) -> list:
    """The suite's unnamed student entries: each method's main configuration at the family's own student."""
    return [r for r in runs if not r.is_teacher and r.label == f"{r.method}-{r.family}-s{r.seed}"]


def own_students(runs) -> dict[str, str]:
    """family -> the kwargs of the family's own student (as the report's ``arch_kwargs`` column writes them): those
    of the suite's unnamed student entries, so a cell still training has the same unit of cost as a finished one."""
    found: dict[str, Counter] = {}
    for r in _unnamed_students(runs):
        kwargs = json.dumps(r.spec["task"].get("arch_kwargs", {}), sort_keys=True)
        found.setdefault(r.family, Counter())[kwargs] += 1
    return {family: counts.most_common(1)[0][0] for family, counts in found.items()}


def main_configs(runs) -> dict[tuple[str, str], str]:
    """(family, method) -> the config of the method's main line (as the report's ``config`` column writes it): the
    suite's unnamed entry, so a variant decided against on val is never drawn as the main line, even while the main
    line is still training."""
    return {(r.family, r.method): json.dumps(r.spec["config"], sort_keys=True) for r in _unnamed_students(runs)}


def cell_label(g: pd.DataFrame) -> str:
    arch = architecture_label(g.arch.iloc[0])
    return f"{g.dataset.iloc[0].split('[')[0]} · {arch}"


def still_learning(record: Record) -> bool:
    """Whether val top-1 rose by more than :data:`LEARNING` in the last epoch of any phase that was validated."""
    rows = record.log()
    last: dict[str, list[float]] = {}
    for row in rows:
        if row.get("val_top1") is not None:
            last.setdefault(row["phase"], []).append(row["val_top1"])
    return any(len(v) >= 2 and v[-1] - v[-2] > LEARNING for v in last.values())


def lines(df: pd.DataFrame, own: dict[str, str] | None = None,
          mains: dict[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """Grid rows with a ``line`` (the curve a point belongs to: a method's main configuration, or the method with
    its changed fields for ablations; ladder rungs share their method's line) and ``rung`` (the student's size).
    ``mains``: (family, method) -> the main line's config (:func:`main_configs`); else the variant trained that
    changes fewest fields (:func:`~progbench.reports.generate.fallback_main`)."""
    df = df.copy()
    student = df.arch_kwargs.where(df.arch_kwargs.notna(), "{}")
    main = {}  # (family, method) -> the main line's config
    for (family, method), g in df[df.role != "teacher"].groupby(["family", "method"]):
        main[(family, method)] = (mains or {}).get((family, method)) or fallback_main(g)
    # a method trained with two budgets in a cell (SWS's scratch baselines, short and long) is two curves
    shortest = df[df.role != "teacher"].groupby(["family", "method"]).epochs.min().to_dict()
    df["line"] = [("teacher" if role == "teacher" else
                   (LABELS.get(m, m) if main[(f, m)] == c
                    else f"{LABELS.get(m, m)} ({config_change(c, main[(f, m)]) or v})")
                   + ("" if e == shortest.get((f, m), e) else f", {int(e)} ep"))
                  for role, f, m, v, c, e in zip(df.role, df.family, df.method, df.variant, df.config, df.epochs)]
    df["rung"] = student
    # the family's own student: as the suite declares it (``own``), else the kwargs most of the cell's runs train with
    if own is None:
        runs = df[df.role != "teacher"].drop_duplicates("run_id")
        own = runs.groupby("family").rung.agg(lambda r: r.value_counts().sort_index().idxmax()).to_dict()
    df["base_rung"] = df.family.map(own).fillna("{}")
    # a method other than the ladders trained at another student size is a curve of its own (PWL, equal width)
    other = (df.role != "teacher") & ~df.method.isin(LADDERS) & (df.rung != df.base_rung)
    df.loc[other, "line"] = [f"{line} (student {fields_label(json.loads(r))})"
                             for line, r in zip(df.line[other], df.rung[other])]
    return df


def points(df: pd.DataFrame, records: dict[str, Record], own: dict[str, str] | None = None,
           timed: dict[tuple[str, str], float] | None = None,
           mains: dict[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """One row per (cell, line, rung, point) of the anytime families: seed statistics, costs, training cost;
    ``latency`` from the cell's latency pass (``timed``), NaN unless the pass timed the point in every seed."""
    fam = lines(df[df.kind == "family"], own, mains)
    fam = pd.concat([fam, per_stage_statistics(fam, df, records)], ignore_index=True)
    timed = timed or {}
    learning = {rid: still_learning(records[rid]) for rid in fam.run_id.unique() if rid in records}
    rows = []
    for (family, line, rung, point), g in fam.groupby(["family", "line", "rung", "point"], sort=False):
        runs = g.drop_duplicates("run_id")
        acc = g.test_top1.astype(float)
        rows.append({
            "family": family, "cell": cell_label(g), "line": line, "method": g.method.iloc[0], "rung": rung,
            "own_size": rung == g.base_rung.iloc[0],
            "point": point, "point_index": int(g.point_index.iloc[0]), "seeds": int(g.seed.nunique()),
            "top1": acc.mean(), "top1_std": acc.std(ddof=1) if len(acc) > 1 else float("nan"),
            "flops": float(g.flops.median()), "weight_bytes": float(g.weight_bytes.median()),
            "latency": _pass_median(g, timed),
            "train_images": float(runs.train_images_seen.mean()), "train_flops": float(runs.train_flops.mean()),
            "train_min": float(runs.train_wall_clock_s.mean() / 60),
            "still_learning": int(sum(learning.get(r, False) for r in runs.run_id)),
            "run_ids": " ".join(sorted(runs.run_id)),
        })
    return pd.DataFrame(rows)


# one colour per method in a cell (the per-paper figures reuse colours across their own few methods)
COLORS = {"teacher": "k", "scratch": "tab:gray", "kd": "tab:blue", "pwl": "tab:red", "bdistil": "tab:orange",
          "resched": "tab:cyan", "noresched": "tab:green", "sws": "tab:purple", "des_scratch": "tab:brown",
          "des_pretrain": "tab:pink"}
BN_STAT_BYTES = 4  # a re-estimated BN statistic is stored as one fp32 value


def per_stage_statistics(fam: pd.DataFrame, df: pd.DataFrame, records: dict[str, Record]) -> pd.DataFrame:
    """PWL's deployment with per-stage student BN statistics (``bn_restat``) as a curve of its own: each prefix
    stage's ``<mask>-bnstat`` accuracy, at the stage's FLOPs and its weights plus the statistics it carries; the
    all-teacher stage (no student BN left) is shared with the plain curve."""
    extra = df[(df.kind == "extra") & (df.order == "prefix-bnstat")].set_index(["run_id", "point"])
    restat_runs = set(extra.index.get_level_values(0))
    rows = []
    for _, row in fam[(fam.method == "pwl") & (fam.order == "prefix") & fam.run_id.isin(restat_runs)].iterrows():
        row = row.copy()
        key = (row.run_id, f"{row.point}-bnstat")
        if key in extra.index:
            info = next(p["info"] for p in records[row.run_id].metrics["extra_points"] if p["point"] == key[1])
            row["test_top1"], row["val_top1"] = extra.loc[key, "test_top1"], extra.loc[key, "val_top1"]
            row["weight_bytes"] = row.weight_bytes + BN_STAT_BYTES * info["bn_statistics_values"]
        row["line"] = f"{row.line}, per-stage BN statistics"
        rows.append(row)
    return pd.DataFrame(rows)


def _pass_median(g: pd.DataFrame, timed: dict[tuple[str, str], float]) -> float:
    found = [timed.get((rid, point)) for rid, point in zip(g.run_id, g.point)]
    return float(np.median(found)) if found and None not in found else float("nan")


def scored_axes(cell: pd.DataFrame) -> dict[str, str]:
    """The cost axes a cell is scored on: latency only when one pass timed every point of the cell."""
    return {axis: label for axis, label in AXES.items() if cell[axis].notna().all()}


def student_cost(pts: pd.DataFrame, family: str, axis: str) -> float:
    """The cell's unit of cost: the KD student at the family's own size (no extra student kwargs)."""
    own = pts[(pts.family == family) & (pts.line == "KD") & pts.own_size]
    return float(own[axis].iloc[0]) if not own.empty else float(pts[pts.family == family][axis].median())


# --- curves, areas, winners ---------------------------------------------------------------------------------------
def anytime(costs: np.ndarray, accs: np.ndarray, budget: float) -> float:
    """The best accuracy among points costing at most ``budget`` (NaN when none fits: never chance)."""
    fit = accs[costs <= budget * (1 + FITS)]
    return float(fit.max()) if len(fit) else float("nan")


def shared_area(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], samples: int = 256
                ) -> tuple[float, float, float, float]:
    """Both curves' mean over budgets log-uniform on the range both cover: (area a, area b, lo, hi); NaN areas when
    the ranges do not overlap."""
    lo = max(a[0].min(), b[0].min())
    hi = min(a[0].max(), b[0].max())
    if hi * (1 + FITS) < lo:
        return float("nan"), float("nan"), lo, hi
    hi = max(hi, lo)  # equal up to the fitting tolerance (weight files differ by their header): one budget
    grid = np.exp(np.linspace(math.log(lo), math.log(hi), samples)) if hi > lo else np.array([lo])
    return (float(np.mean([anytime(*a, x) for x in grid])), float(np.mean([anytime(*b, x) for x in grid])), lo, hi)


def _span(costs: pd.Series, unit: float) -> str:
    return f"{costs.min() / unit:.3g} – {costs.max() / unit:.3g}"


def area_table(pts: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for family, cell in pts.groupby("family", sort=False):
        kd = cell[cell.line == "KD"]
        for axis, axis_label in scored_axes(cell).items():
            unit = student_cost(pts, family, axis)
            for line, g in cell[cell.line != "teacher"].groupby("line", sort=False):
                if line == "KD" or kd.empty:
                    continue
                area, kd_area, lo, hi = shared_area((g[axis].to_numpy(), g.top1.to_numpy()),
                                                    (kd[axis].to_numpy(), kd.top1.to_numpy()))
                shared = (f"none (its {_span(g[axis], unit)}, KD's {_span(kd[axis], unit)})" if math.isnan(area)
                          else f"{lo / unit:.3g} – {hi / unit:.3g}")
                rows.append({"cell": g.cell.iloc[0], "cost axis": axis_label, "method": line,
                             "seeds": _seeds(int(g.seeds.min()), int(kd.seeds.min())),
                             "shared range (x student)": shared,
                             "area (%)": _pct(area), "KD ladder area (%)": _pct(kd_area),
                             "difference (pts)": "–" if math.isnan(area) else f"{(area - kd_area) * 100:+.2f}",
                             "run ids": " ".join(sorted(set(" ".join(g.run_ids).split())))})
    return pd.DataFrame(rows)


def winners_table(pts: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for family, cell in pts.groupby("family", sort=False):
        if (cell.line == "teacher").all():
            continue  # only its teacher trained yet: no budget of the cell's student to fill
        for axis, axis_label in scored_axes(cell).items():
            unit = student_cost(pts, family, axis)
            row = {"cell": cell.cell.iloc[0], "cost axis": axis_label}
            for b in BUDGETS:
                fits = cell[cell[axis] <= b * unit * (1 + FITS)].sort_values("top1", ascending=False)
                best = fits.drop_duplicates("line")
                if best.empty:
                    row[f"≤ {_frac(b)}"] = "none trained"
                    continue
                top = best.iloc[0]
                lead = (top.top1 - best.iloc[1].top1) * 100 if len(best) > 1 else float("nan")
                noise = max(top.top1_std, best.iloc[1].top1_std) * 100 if len(best) > 1 else float("nan")
                tie = "≈ " if not math.isnan(lead) and not math.isnan(noise) and lead <= noise else ""
                seeds = int(best.seeds.iloc[:2].min())  # the winner's and the runner-up's, the fewer
                detail = ([f"+{lead:.1f}"] if not math.isnan(lead) else []) + (
                    [f"{seeds} of {MIN_SEEDS} seeds"] if seeds < MIN_SEEDS else [])
                row[f"≤ {_frac(b)}"] = f"{tie}{top.line} {top.top1 * 100:.1f}" + (
                    f" ({'; '.join(detail)})" if detail else "")
            rows.append(row)
    return pd.DataFrame(rows)


POINT_KEY = ["family", "line", "rung", "point"]


def with_pass_latency(fam: pd.DataFrame, timed: dict[tuple[str, str], float]) -> pd.DataFrame:
    """Each row's latency: its point's median over seeds in the cell's latency pass (as :func:`points` shows it), so a
    point's latency, like its FLOPs and bytes, is one cost in every seed; NaN where the pass did not time it."""
    medians = {key: _pass_median(g, timed) for key, g in fam.groupby(POINT_KEY, sort=False)}
    return fam.assign(latency=[medians[key] for key in zip(*(fam[c] for c in POINT_KEY))])


def _pairs(cell: pd.DataFrame) -> list[tuple[str, int, np.ndarray, np.ndarray | None]]:
    """(line, seed, positions of the line's points in ``cell``, positions of the same seed's KD rungs or None) for
    every line of the cell but KD and every seed of it."""
    at = cell.assign(position=np.arange(len(cell)))
    kd = {int(s): rows.to_numpy() for s, rows in at[at.line == "KD"].groupby("seed")["position"]}
    return [(line, int(s), rows.to_numpy(), kd.get(int(s)))
            for line, g in at[at.line != "KD"].groupby("line", sort=False) for s, rows in g.groupby("seed")["position"]]


def _matched_differences(cell: pd.DataFrame, cost: np.ndarray, pairs: list | None = None
                         ) -> dict[str, tuple[list[float], set]]:
    """line -> (per seed: the mean of its points minus the same seed's KD ladder interpolated at each point's
    ``cost``, one per row of ``cell``; the (rung, point)s compared), for every line of the cell but KD."""
    acc = cell.test_top1.to_numpy(float)
    names = list(zip(cell.rung, cell.point))
    found: dict[str, tuple[list[float], set]] = {}
    for line, _, mine, ladder in pairs if pairs is not None else _pairs(cell):
        per_seed, compared = found.setdefault(line, ([], set()))
        if ladder is None:
            continue
        gaps = [(names[i], acc[i] - _interp(cost[ladder], acc[ladder], cost[i])) for i in mine]
        gaps = [(point, d) for point, d in gaps if not math.isnan(d)]
        if gaps:
            per_seed.append(float(np.mean([d for _, d in gaps])))
            compared.update(point for point, _ in gaps)
    return found


TIMING_RESAMPLES = 200  # bootstrap resamples of a latency pass's rounds


def timing_intervals(cell: pd.DataFrame, rounds: dict[tuple[str, str], list[float]],
                     resamples: int = TIMING_RESAMPLES, seed: int = 0) -> dict[str, tuple[float, float]]:
    """line -> the 2.5 and 97.5 percentiles of its seed-mean matched-latency difference when the pass's rounds are
    resampled (bootstrap): how much the difference moves with the timing alone. A round timed every point once,
    under the same conditions, so one draw takes the same rounds for every point; a point's latency in a draw is,
    as in :func:`with_pass_latency`, the median over seeds of each seed's median over the drawn rounds."""
    keys = list(zip(cell.run_id, cell.point))
    if not keys or any(k not in rounds for k in keys):
        return {}
    unique = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    table = np.array([rounds[k] for k in unique], dtype=float)  # points x rounds
    picks = np.random.default_rng(seed).integers(0, table.shape[1], (resamples, table.shape[1]))
    per_key = np.median(table[:, picks], axis=2)  # points x draws
    cost = np.empty((len(cell), resamples))
    for rows in cell.groupby(POINT_KEY, sort=False).indices.values():
        cost[rows] = np.median(per_key[[unique[keys[r]] for r in rows]], axis=0)
    pairs = _pairs(cell)
    draws: dict[str, list[float]] = {}
    for b in range(resamples):
        for line, (per_seed, _) in _matched_differences(cell, cost[:, b], pairs).items():
            if per_seed:
                draws.setdefault(line, []).append(float(np.mean(per_seed)))
    return {line: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for line, v in draws.items()}


def widened(mean: float, low: float, high: float, timing: tuple[float, float]) -> tuple[float, float]:
    """A seed interval widened by the timing's: each side's half-widths added in quadrature (independent sources)."""
    below, above = max(mean - timing[0], 0.0), max(timing[1] - mean, 0.0)
    return mean - math.hypot(mean - low, below), mean + math.hypot(high - mean, above)


def matched_table(fam: pd.DataFrame, timed: dict[tuple[str, str], float] | None = None,
                  rounds: dict[tuple[str, str], list[float]] | None = None) -> pd.DataFrame:
    """Each line against the KD ladder at matched cost, with its uncertainty: per seed, the line's points minus the
    same seed's KD ladder interpolated at each point's cost (linear in log cost between rungs; points outside the
    ladder's range left out), averaged over points; then mean ± std over seeds and a 95 % t interval. Latency is an
    axis in a cell whose pass (``timed``) timed every point; its interval is widened by the timing's own
    (:func:`timing_intervals`, from the pass's ``rounds``)."""
    fam = with_pass_latency(fam[(fam.kind == "family") & (fam.role != "teacher")], timed or {})
    rows = []
    for _, cell in fam.groupby("family", sort=False):
        if not (cell.line == "KD").any():
            continue
        for axis, axis_label in scored_axes(cell).items():
            timing = timing_intervals(cell, rounds or {}) if axis == "latency" else {}
            for line, (per_seed, compared) in _matched_differences(cell, cell[axis].to_numpy(float)).items():
                mean, std, low, high = interval(per_seed)
                if line in timing and not math.isnan(low):
                    low, high = widened(mean, low, high, timing[line])
                reading = {"holds": "above the KD ladder", "does not hold": "below the KD ladder"}.get(
                    verdict(low, high, 0.0), "inconclusive")
                difference, bounds = interval_text(mean, std, low, high)
                rows.append({"cell": cell_label(cell[cell.line == line]), "cost axis": axis_label, "method": line,
                             "points compared": len(compared) if compared else "none in the ladder's range",
                             "seeds": _seeds(len(per_seed)), "difference (pts)": difference,
                             "timing 95%": (interval_text(float("nan"), float("nan"), *timing[line])[1]
                                            if line in timing and per_seed else "–"),
                             "95% interval": bounds, "reading": reading})
    return pd.DataFrame(rows)


def points_table(pts: pd.DataFrame) -> pd.DataFrame:
    rows = []
    units = {family: student_cost(pts, family, "flops") for family in pts.family.unique()}
    for _, p in pts.iterrows():
        unit = units[p.family]
        seeds = f"{p.seeds}" + ("" if p.seeds >= MIN_SEEDS or p.line == "teacher" else f" (of {MIN_SEEDS})")
        rows.append({"cell": p.cell, "method": p.line, "point": p.point,
                     "student kwargs": "" if p.own_size else p.rung, "seeds": seeds,
                     "top-1 (%)": f"{p.top1 * 100:.2f}"
                     + ("" if math.isnan(p.top1_std) else f" ± {p.top1_std * 100:.2f}"),
                     "FLOPs/img": human(p.flops), "x student": f"{p.flops / unit:.3g}",
                     "weights": human(p.weight_bytes, "B"),
                     "latency (ms)": "–" if math.isnan(p.latency) else f"{p.latency * 1e3:.3g}",
                     "trained on (images)": human(p.train_images),
                     "training FLOPs": human(p.train_flops), "training (min)": f"{p.train_min:.1f}",
                     "still learning": f"{p.still_learning} of {p.seeds}" if p.still_learning else "",
                     "run ids": p.run_ids})
    return pd.DataFrame(rows)


def cost_table(grid: pd.DataFrame, runs: list) -> pd.DataFrame:
    """What the grid has cost so far, per cell and method and in all: runs finished of the suite's, their training
    and evaluation minutes (as the records measured them), images seen and training FLOPs."""
    done = grid.drop_duplicates("run_id")
    planned = Counter((r.family, "teacher" if r.is_teacher else r.method) for r in runs)
    done = done.assign(method=done.method.where(done.role != "teacher", "teacher"))
    labels = {r.family: f"{r.spec['task']['dataset']['name']} · "  # a cell with nothing finished yet
                        f"{architecture_label(r.spec['task']['arch'])}"
              for r in runs if not r.is_teacher}
    labels.update({family: cell_label(g) for family, g in done.groupby("family")})

    def row(cell: str, method: str, g: pd.DataFrame, of: int) -> dict:
        return {"cell": cell, "method": method, "runs": f"{len(g)} of {of}",
                "trained on": "; ".join(f"{machine} ({n})" for machine, n in Counter(g.trained_on).most_common()),
                "training (min)": f"{g.train_wall_clock_s.sum() / 60:.1f}",
                "evaluation (min)": f"{g.evaluation_s.sum() / 60:.1f}",
                "images seen": human(g.train_images_seen.sum()), "training FLOPs": human(g.train_flops.sum())}

    rows = []
    for family in family_order({f for f, _ in planned}):
        mine = done[done.family == family]
        for method in dict.fromkeys(m for f, m in planned if f == family):
            rows.append(row(labels.get(family, family), LABELS.get(method, method), mine[mine.method == method],
                            planned[(family, method)]))
        rows.append(row(labels.get(family, family), "all", mine, sum(n for (f, _), n in planned.items()
                                                                     if f == family)))
    rows.append(row("all", "all", done, len(runs)))
    return pd.DataFrame(rows)


# --- claims with uncertainty --------------------------------------------------------------------------------------
def interval(values: list[float]) -> tuple[float, float, float, float]:
    """(mean, std, low, high) of a 95 % t interval of the mean; NaN spread with fewer than 2 values."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()) if len(v) else float("nan"), float("nan"), float("nan"), float("nan")
    mean, std = float(v.mean()), float(v.std(ddof=1))
    half = T975.get(len(v) - 1, 1.96) * std / math.sqrt(len(v))
    return mean, std, mean - half, mean + half


def _value(v: float, ratio: bool = False) -> str:
    """A difference in signed points (from a fraction), or a ratio as ×."""
    return f"×{v:.3f}" if ratio else f"{v * 100:+.2f}"


def interval_text(mean: float, std: float, low: float, high: float, ratio: bool = False) -> tuple[str, str]:
    """An :func:`interval` as a table shows it: "mean ± std" and "[low, high]", in signed points (or, for a ratio,
    as ×), "–" where there is none."""
    spread = f"{std:.3f}" if ratio else f"{std * 100:.2f}"
    return ("–" if math.isnan(mean) else _value(mean, ratio) + ("" if math.isnan(std) else f" ± {spread}"),
            "–" if math.isnan(low) else f"[{_value(low, ratio)}, {_value(high, ratio)}]")


def verdict(low: float, high: float, threshold: float, above: bool = True) -> str:
    """*holds* when the whole interval is on the claim's side of the threshold, *does not hold* when it is wholly on
    the other side, *inconclusive* when it straddles it (or there is no interval)."""
    if math.isnan(low) or math.isnan(high):
        return "inconclusive"
    if above:
        return "holds" if low > threshold else "does not hold" if high < threshold else "inconclusive"
    return "holds" if high < threshold else "does not hold" if low > threshold else "inconclusive"


def _per_seed(df: pd.DataFrame, family: str, line: str, rung: str | None = None) -> dict[int, pd.DataFrame]:
    g = df[(df.family == family) & (df.line == line) & (df.kind == "family")]
    if rung is not None:
        g = g[g.rung == rung]
    return {int(s): x.sort_values("point_index") for s, x in g.groupby("seed")}


def _interp(costs: np.ndarray, accs: np.ndarray, at: float) -> float:
    """Accuracy of a curve at cost ``at``, linear in log cost between its points (NaN outside their range)."""
    order = np.argsort(costs)
    c, a = np.log(costs[order]), accs[order]
    x = math.log(at)
    if x < c[0] - 1e-9 or x > c[-1] + 1e-9:
        return float("nan")
    return float(np.interp(x, c, a))


def _depth_values(g: pd.DataFrame) -> pd.Series:
    """A Des-Net run's test top-1 by depth."""
    return g.set_index(g.depth.astype(int)).test_top1.astype(float)


def first_answer_ratios(df: pd.DataFrame, records: dict[str, Record], remeasured: dict[str, dict] | None = None
                        ) -> dict[str, float]:
    """Per PWL run with a loading timeline measured on a CPU (a latency pass's, else the run's own when a CPU trained
    it: a GPU-trained run's timeline is the GPU's, not comparable): stage 0's first answer over the student loaded
    whole's, the larger of warm and cold cache (``reports/pwl.py``'s P4 measure)."""
    from progbench.reports.pwl import loading_ratios, timeline_frame
    pwl = df[df.line == "PWL"]
    on_cpu = {rid for rid in pwl.run_id.unique()
              if (remeasured or {}).get(rid) or records[rid].env().get("device", "cpu") == "cpu"}
    tl = timeline_frame(pwl[pwl.run_id.isin(on_cpu)], records, variant=None, remeasured=remeasured)
    if tl.empty:
        return {}
    return loading_ratios(tl).groupby("run_id").first_answer.max().to_dict()


def claims_table(df: pd.DataFrame, records: dict[str, Record] | None = None,
                 remeasured: dict[str, dict] | None = None) -> pd.DataFrame:
    """P1-P5, B1-B3 and S1-S4 (ids as in ``docs/claims.md``) per cell, each from per-seed paired differences
    (seed s of one method against seed s of the other: same data order and augmentation); P2, P4 and S2 read the
    runs' records (predictions, loading timelines, logs) when given."""
    records = records or {}
    rows = []
    for family, fam in df.groupby("family", sort=False):
        cell = cell_label(fam)

        def add(claim: str, values: list[float], threshold: float, above: bool, what: str, cell=cell,
                ratio: bool = False) -> None:
            """``values``: per-seed differences in top-1 (fractions; shown in points), or ratios (shown as ×)."""
            mean, std, low, high = interval(values)
            difference, bounds = interval_text(mean, std, low, high, ratio)
            rows.append({"cell": cell, "claim": claim, "seeds": len(values),
                         "paired difference (pts)": difference, "95% interval": bounds,
                         "threshold (pts)": f"{'>' if above else '<'} {_value(threshold, ratio)}",
                         "verdict": verdict(low, high, threshold, above), "what": what})

        pwl = _per_seed(fam, family, "PWL")
        kd = _per_seed(fam, family, "KD", fam.base_rung.iloc[0])
        if pwl:
            falls = [float(min(0.0, np.diff(g.test_top1.to_numpy(float)).min())) for g in pwl.values() if len(g) > 1]
            add("P1 prefix stages rise almost monotonically", falls, -MONOTONE_TOLERANCE / 100, True,
                "per seed, the largest fall from one prefix stage to the next (0 when none falls)")
            teacher = fam[(fam.role == "teacher") & (fam.kind == "family")].test_top1.astype(float)
            if not teacher.empty:
                add("P2 with every block from the teacher, the model is the teacher",
                    [float(g[g.order == "prefix"].test_top1.iloc[-1] - teacher.iloc[0]) for g in pwl.values()],
                    -0.001, True, "per seed, the all-teacher stage minus the cell's teacher run (threshold: 0.1 "
                                  "point below it)")
            if records:  # a cell whose timelines are all a GPU's shows P4 as unmeasured until its latency pass
                ratios = first_answer_ratios(fam, records, remeasured)
                runs = {s: g.run_id.iloc[0] for s, g in pwl.items()}
                add("P4 the first prediction comes as fast as the student's",
                    [ratios[r] for r in runs.values() if r in ratios], TARGET_FIRST, False,
                    "per seed, stage 0's first answer over the student loaded whole (larger of warm and cold cache; "
                    "the timeline the cell's latest latency pass measured, else the run's own if a CPU trained it; "
                    "a ratio, not points)",
                    ratio=True)
            if kd:
                add("P3 PWL student competitive with KD", [float(pwl[s].test_top1.iloc[0] - kd[s].test_top1.iloc[0])
                                                          for s in pwl if s in kd], -0.01, True,
                    "per seed, PWL student minus the KD student of the same size")
            extra = df[(df.family == family) & (df.method == "pwl") & (df.kind == "extra") & (df.order == "suffix")]
            gaps = []
            for g in pwl.values():
                pre = g[g.order == "prefix"]
                suf = extra[extra.run_id.isin(set(g.run_id))]  # this run's suffix stages, not an ablation's
                diffs = [_interp(pre.flops.to_numpy(float), pre.test_top1.to_numpy(float), c) - a
                         for c, a in zip(suf.flops, suf.test_top1)]
                diffs = [d for d in diffs if not math.isnan(d)]
                if diffs:
                    gaps.append(float(np.mean(diffs)))
            add("P5 output-side loading much worse than input-side, at matched FLOPs", gaps, 0.01, True,
                "per seed, the prefix curve at each suffix stage's FLOPs minus that stage, averaged over stages")
        bd, resched, noresched = (_per_seed(fam, family, x) for x in ("B-DISTIL", "RESCHED", "NO-RESCHED"))
        if bd:
            add("B1 each added member improves accuracy",
                [float(np.diff(g.test_top1.to_numpy(float)).min()) for g in bd.values() if len(g) > 1], 0.0, True,
                "per seed, the smallest gain from one stage to the next")
            for name, other, threshold, claim in (
                    ("RESCHED", resched, 0.0, "B2 beats RESCHED at equal FLOPs"),
                    ("NO-RESCHED", noresched, -0.01, "B3 stays within 1 point of NO-RESCHED at equal FLOPs")):
                vals = []
                for s, g in bd.items():
                    if s not in other:
                        continue
                    o = other[s]
                    d = [a - _interp(o.flops.to_numpy(float), o.test_top1.to_numpy(float), c)
                         for c, a in zip(g.flops, g.test_top1)]
                    d = [x for x in d if not math.isnan(x)]
                    if d:
                        vals.append(float(np.mean(d)))
                add(claim, vals, threshold, True, f"per seed, B-DISTIL minus {name} interpolated at each stage's "
                    f"FLOPs, averaged over the stages within {name}'s range")
        sws, scratch = _per_seed(fam, family, "SWS"), _per_seed(fam, family, "Des scratch")
        if sws and scratch:
            vals = []
            for s, g in sws.items():
                if s in scratch:
                    mine = g.set_index("point").test_top1
                    theirs = scratch[s].set_index("point").test_top1
                    common = mine.index.intersection(theirs.index)
                    if len(common):
                        vals.append(float((mine[common] - theirs[common]).mean()))
            add("S1 SWS Des-Nets beat Des-Nets trained from scratch (same budget)", vals, 0.0, True,
                "per seed, SWS minus scratch at the same depth, averaged over depths")
        long_lines = sorted({x for x in fam.line.unique() if str(x).startswith("Des scratch, ")})
        if sws and long_lines and records:
            long = _per_seed(fam, family, long_lines[-1])
            vals = []
            for s, g in sws.items():
                mine, theirs = g.run_id.iloc[0], long[s].run_id.iloc[0] if s in long else None
                if theirs and mine in records and theirs in records:
                    logs = {rid: run_log(records[rid]) for rid in (mine, theirs)}
                    gaps = [fine_tuning_val(logs, mine, d).iloc[0] - fine_tuning_val(logs, theirs, d).iloc[-1]
                            for d in sorted(set(g.depth.astype(int)) & set(long[s].depth.astype(int)))]
                    if gaps:
                        vals.append(float(max(gaps)))
            add("S2 in some cases better after 1 epoch of fine-tuning", vals, 0.0, True,
                f"per seed, the best depth's val top-1 of SWS after its first fine-tuning epoch minus {long_lines[-1]}"
                " at its end")
        pre = _per_seed(fam, family, "Des pre-train")
        if sws and pre:
            vals = []
            for s, g in sws.items():
                if s in pre:
                    gap = (_depth_values(g) - _depth_values(pre[s])).dropna()
                    if len(gap):
                        vals.append(float(gap.mean()))
            add("S3/S4 as good as pre-train + fine-tune (with fewer parameters stored and less pre-training)", vals,
                -0.01, True, "per seed, SWS minus pre-train + fine-tune at the same depth, averaged over depths; the "
                             "storage and pre-training ratios are in sws_ratios")
    return pd.DataFrame(rows)


def _seeds(*counts: int) -> str:
    """The fewest finished seeds among the compared lines, marked when under :data:`MIN_SEEDS`."""
    n = min(counts)
    return f"{n}" + ("" if n >= MIN_SEEDS else f" (of {MIN_SEEDS})")


EARLIER_CLAIMS = ("pwl_claims", "sws_claims", "bdistil_claims")  # the paper sections' verdicts on the cpu suite


def _claim_id(claim: str) -> str:
    return claim.split(" ")[0].rstrip(":")


def earlier_verdicts(claims: pd.DataFrame, df: pd.DataFrame, tables: Path, grid_families: set[str]) -> list[str]:
    """Per row of the grid's claims table, the verdict the paper sections gave the same claim (S3/S4: both) on the
    same dataset and architecture outside the grid (the cpu suite's families, their own data and budgets): the
    column that says where a verdict changed."""
    frames = [pd.read_csv(tables / f"{name}.csv", dtype=str, keep_default_na=False)
              for name in EARLIER_CLAIMS if (tables / f"{name}.csv").exists()]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return ["–"] * len(claims)
    earlier = pd.concat([f[["claim", "dataset", "family", "verdict"]] for f in frames], ignore_index=True)
    earlier = earlier[~earlier.family.isin(grid_families)]
    students = df[df.role != "teacher"].groupby("family").arch.first().map(architecture_label)
    found: dict[tuple[str, str, str], list[str]] = {}
    for row in earlier.itertuples():
        key = (row.dataset.split("[")[0], students.get(row.family, ""), _claim_id(row.claim))
        found.setdefault(key, []).append(f"{row.verdict} ({row.family})")
    cells = {cell_label(g): (g.dataset.iloc[0].split("[")[0], architecture_label(g[g.role != "teacher"].arch.iloc[0]))
             for _, g in df[df.family.isin(grid_families)].groupby("family") if (g.role != "teacher").any()}
    out = []
    for cell, claim in zip(claims.cell, claims.claim):
        dataset, arch = cells.get(cell, ("", ""))
        ids = _claim_id(claim).split("/")
        said = [f"{i + ' ' if len(ids) > 1 else ''}{v}" for i in ids for v in found.get((dataset, arch, i), [])]
        out.append("; ".join(said) or "–")
    return out


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{x * 100:.2f}"


def _frac(b: float) -> str:
    return f"1/{round(1 / b)}" if b < 1 else f"{b:g}"


def figure(pts: pd.DataFrame, out: Path) -> list[Path]:
    """Per cell, side by side: test top-1 against FLOPs per image (a multiple of the cell's student) for every line
    (ladders joined rung to rung, anytime families point to point, ablations dashed), and the training FLOPs each
    line's run took -- what a method trains is shown beside what it reaches."""
    from matplotlib.ticker import FuncFormatter
    families = family_order(pts[pts.line != "teacher"].family)  # a cell with only its teacher yet has no curve
    if not families:
        return []
    fig, axes = plt.subplots(len(families), 2, figsize=(10.5, 3.9 * len(families)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.7, 1]})
    for (ax, bars), family in zip(axes, families):
        cell = pts[pts.family == family]
        unit = student_cost(pts, family, "flops")
        names, costs, colors = [], [], []
        for line, g in cell.groupby("line", sort=False):
            method = "teacher" if line == "teacher" else g.method.iloc[0]
            color, marker = COLORS.get(method, "tab:olive"), STYLES.get(method, (None, "D"))[1]
            main = line in ("teacher", LABELS.get(method, method))
            g = g.sort_values("flops" if method in LADDERS else "point_index")
            seeds = int(g.seeds.min())
            ax.errorbar(g.flops / unit, g.top1 * 100, yerr=g.top1_std.fillna(0) * 100, color=color, marker=marker,
                        markersize=9 if line == "teacher" else 5, capsize=2, linewidth=1.2 if main else 0.9,
                        linestyle=("-" if main else "--") if len(g) > 1 else "none", alpha=1 if main else 0.6,
                        label=f"{line} (n={seeds})")
            runs = g[g.own_size] if method in LADDERS and g.own_size.any() else g
            names.append(line)
            costs.append(float(runs.train_flops.mean()))
            colors.append(color)
        log_axis(ax, FuncFormatter(lambda x, _: f"{x:g}×"))
        ax.set_xlabel("FLOPs per image (× the cell's student)")
        ax.set_ylabel("test top-1 (%)")
        ax.set_title(f"{cell.cell.iloc[0]} ({family})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="best", framealpha=0.8)
        y = np.arange(len(names))[::-1]
        bars.barh(y, costs, color=colors, alpha=0.8)
        bars.set_yticks(y, names, fontsize=7)
        bars.set_xscale("log")
        bars.set_xlabel("training FLOPs of the line's run (ladders: the student's size)")
        bars.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return save_figure(fig, out, "grid_anytime")


def passes_table(passes: dict[str, dict], families: set[str]) -> pd.DataFrame:
    rows = [{"family": family, "pass": p["file"].removesuffix(".json"), "points": len(p["points"]),
             "runs left out": len(p.get("left_out", {})), "loading timelines": len(p.get("loading", {})),
             "weights": "stand-in" if p.get("weights") else "trained", "rounds": p["rounds"], "threads": p["threads"],
             "load average before": p["load_average_before"][0], "load average after": p["load_average_after"][0],
             "busy": "busy" if p["busy"] else "quiet", "cpu": p["env"]["cpu"]}
            for family, p in sorted(passes.items()) if family in families]
    return pd.DataFrame(rows)


def build(df: pd.DataFrame, records: dict[str, Record], out: Path, runs: list,
          store_root: Path | None = None) -> list[Path]:
    """The grid section from ``runs`` (:func:`grid_runs`: the suite's runs, loaded once by the caller, which
    also gives the interactive page their main configurations)."""
    if df.empty or "arch_kwargs" not in df:
        return []
    grid = df[df.run_id.isin({r.run_id for r in runs})]
    if grid.empty:
        return []
    own = own_students(runs)
    passes = latency.latest_passes(store_root) if store_root else {}
    mains = main_configs(runs)
    timed, rounds = latency.pass_latencies(passes), latency.pass_rounds(passes)
    pts = points(grid, records, own, timed, mains)
    tables = out / "tables"

    def write_table(table: pd.DataFrame, folder: Path, name: str, caption: str) -> list[Path]:
        """A table with rows (a grid still training may have none yet for areas, winners or claims)."""
        return [] if table.empty else write_rows(table, folder, name, caption)

    written = figure(pts, out / "figures")
    written += write_table(points_table(pts), tables, "grid_points",
                          "The grid (one protocol per cell: the cell's teacher run, its full train split, one student "
                          "budget for every network trained): each method's points, test top-1 mean ± std over seeds "
                          f"(fewer than {MIN_SEEDS} seeds are marked), cost per image, and what the run's training "
                          f"took; 'still learning': seeds whose val top-1 rose by more than {LEARNING * 100:g} point "
                          "in the last epoch of a phase; latency: batch-1, from the cell's latest latency pass "
                          "(every point of the cell in one process, interleaved; grid_latency_passes).")
    written += write_table(cost_table(grid, runs), tables, "grid_cost",
                           "What the grid has cost so far: per cell and method, the runs finished of the suite's, "
                           "the machines that trained them (runs each: a GPU's name, else the CPU's), their training "
                           "and evaluation wall-clock as each record measured it (1 thread per run; the machine's "
                           "load at the time is not in it; minutes from different machines are not comparable), "
                           "images seen and training FLOPs.")
    written += write_table(passes_table(passes, set(grid.family)), tables, "grid_latency_passes",
                           "The latency passes the grid's latency column and axis come from (`progbench latency`): "
                           "per cell, its latest pass, with the load average before and after it (1 min); runs "
                           "left out: finished runs whose points it could not rebuild (named in the pass file); "
                           "weights: each point timed with its trained weights (earlier passes) or with stand-in "
                           "values of its architecture (timed interleaved, these are within 10 % of trained weights: "
                           "tests/perf/test_stand_in_latency.py).")
    written += write_table(area_table(pts), tables, "grid_area",
                           "The grid: each method's anytime area against the KD ladder's, both over the cost range the "
                           "two cover (budgets log-uniform; the best trained point within each budget, never "
                           f"chance); seeds: the fewer of the two lines' finished seeds, marked under {MIN_SEEDS}.")
    written += write_table(winners_table(pts), tables, "grid_winners",
                           "The grid: the most accurate trained point within each budget (a fraction of the cell's KD "
                           "student's cost), its lead over the next method; '≈' when the lead is within the larger "
                           f"seed std; 'n of {MIN_SEEDS} seeds' when the winner or the runner-up has fewer finished.")
    labelled = lines(grid, own, mains)
    restat = per_stage_statistics(labelled[labelled.kind == "family"], grid, records)
    written += write_table(matched_table(pd.concat([labelled, restat], ignore_index=True), timed, rounds),
                           tables,
                           "grid_matched",
                           "The grid: each method against the KD ladder at matched cost, with its uncertainty: per "
                           "seed, the method's points minus the same seed's KD ladder interpolated at each point's "
                           "cost (linear in log cost between rungs; points outside the ladder's range left out), "
                           "averaged over points; costs: FLOPs, weight bytes and, in a cell whose latency pass timed "
                           "every point, batch-1 latency (each point's median over seeds in that pass); "
                           "mean ± std over seeds and a 95 % t interval; on latency, the interval is widened by the "
                           "timing's own ('timing 95%': the difference's 2.5-97.5 percentiles when the pass's rounds "
                           f"are resampled, {TIMING_RESAMPLES} bootstrap draws, the same rounds for every point), each "
                           "side's half-widths added in quadrature; above or below the "
                           "ladder when the interval excludes 0, inconclusive when it straddles 0 or has fewer than 2 "
                           "seeds.")
    claims = claims_table(labelled, records, latency.pass_timelines(passes))
    if not claims.empty:
        claims.insert(claims.columns.get_loc("verdict") + 1, "cpu suite",
                      earlier_verdicts(claims, df, tables, set(grid.family)))
    written += write_table(claims, tables, "grid_claims",
                           "The grid: the papers' claims per cell, from per-seed paired differences (seed s against "
                           "seed s), mean ± std and a 95 % t interval; holds / does not hold when the interval lies on "
                           "one side of the threshold, inconclusive when it straddles it or has fewer than 2 seeds. "
                           "cpu suite: the verdict the paper's section gave the claim on the same dataset and "
                           "architecture in the cpu suite (its own data, teachers and budgets; the family named), so "
                           "a changed verdict shows.")
    return written
