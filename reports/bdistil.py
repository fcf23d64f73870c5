"""B-DISTIL's tables and figure, from the store: a boosted ensemble against RESCHED and NO-RESCHED at equal cost.

(a) per architecture, each stage's accuracy and cost (FLOPs and measured batch-1 latency, also as a fraction of the
teacher's; the critical path when members run in parallel), with the boosting log (margins, agreement with the
teacher); (b) the connections ablation (paired by seed); (c) the claims B1-B3 (``docs/claims.md``); and the
accuracy-vs-cost figure, one panel per architecture, FLOPs and latency.

Costs are those the harness measured on each point (a stage is run as one module, members in sequence). Run in
parallel, a stage costs its critical path: for B-DISTIL every member's network at once, then the connections one
after another (the method reports it with each stage); for RESCHED the largest student.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from progbench.reports.generate import family_order, human, mean_std, save_figure, write_table
from progbench.store import Record

METHODS = {"bdistil": "B-DISTIL", "resched": "RESCHED", "noresched": "NO-RESCHED"}
CLOSE = 1.0  # B3 "stays close to NO-RESCHED": within this many points at the same FLOPs
STYLES = {"B-DISTIL": ("tab:red", "o", "-"), "B-DISTIL, no connections": ("tab:orange", "o", "--"),
          "RESCHED": ("tab:blue", "s", "-"), "NO-RESCHED": ("tab:green", "^", "-")}


def _points(df: pd.DataFrame) -> pd.DataFrame:
    """Every family point of the three methods with its cost as a fraction of its own teacher run's."""
    sub = df[df.method.isin(METHODS) & (df.kind == "family")].copy()
    if sub.empty:
        return sub
    teachers = df[(df.role == "teacher")].set_index("run_id")
    sub["label"] = [METHODS[m] + (", no connections" if m == "bdistil" and not json.loads(c).get("connections", True)
                                  else "") for m, c in zip(sub.method, sub.config)]
    sub["teacher_flops"] = sub.teacher_run.map(teachers.flops)
    sub["teacher_latency_s"] = sub.teacher_run.map(teachers.latency_s)
    sub["teacher_top1"] = sub.teacher_run.map(teachers.test_top1)
    sub["flops_fraction"] = sub.flops / sub.teacher_flops
    sub["latency_fraction"] = sub.latency_s / sub.teacher_latency_s
    return sub


def _label_order(labels) -> list[str]:
    return [x for x in STYLES if x in set(labels)] + sorted(set(labels) - set(STYLES))


def _summary(g: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per point index of one method in one family."""
    return g.groupby("point_index").agg(
        flops=("flops", "mean"), flops_fraction=("flops_fraction", "mean"), latency_s=("latency_s", "mean"),
        latency_std=("latency_s", "std"), latency_fraction=("latency_fraction", "mean"),
        latency_fraction_std=("latency_fraction", "std"), top1=("test_top1", "mean"), top1_std=("test_top1", "std"),
        seeds=("seed", "nunique"))


def stages_table(points: pd.DataFrame, records: dict[str, Record]) -> pd.DataFrame:
    """(a) Each stage (or size) of every method per architecture: accuracy, cost, and B-DISTIL's boosting log."""
    rows = []
    for (dataset, family, label), g in points.groupby(["dataset", "family", "label"], sort=False):
        agg = _summary(g)
        for i, a in agg.iterrows():
            per_point = g[g.point_index == i]
            infos = [records[r].metrics["points"][i].get("info", {}) for r in per_point.run_id]
            if label.startswith("B-DISTIL"):
                par = np.mean([v["parallel_flops"] for v in infos])
            elif label == "RESCHED":  # independent students of one size: the largest is the first
                par = agg.flops.iloc[0]
            else:
                par = a.flops
            row = {"dataset": dataset, "family": family, "method": label, "stage": i + 1, "seeds": int(a.seeds),
                   "test top-1 (%)": mean_std(per_point.test_top1),
                   "FLOPs/img": human(a.flops), "FLOPs / teacher": f"{a.flops_fraction:.3f}",
                   "parallel critical path / teacher": f"{par / per_point.teacher_flops.iloc[0]:.3f}",
                   "latency (ms)": mean_std(per_point.latency_s, 1e3, 3),
                   "latency / teacher": f"{a.latency_fraction:.3f}"}
            if label.startswith("B-DISTIL"):  # seeds may accept different candidates: every distinct list is shown
                row["candidates"] = " | ".join(sorted({"+".join(map(str, v["candidates"])) for v in infos}))
                row["margin / c"] = mean_std(pd.Series([v["margin_over_c"] for v in infos]), 1, 3)
                row["condition met"] = f"{sum(v['condition_met'] for v in infos)}/{len(infos)}"
                row["agreement train / val (%)"] = (f"{mean_std(pd.Series([v['train_agreement'] for v in infos]))} / "
                                                    f"{mean_std(pd.Series([v['val_agreement'] for v in infos]))}")
            row["run ids"] = " ".join(sorted(per_point.run_id))
            rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["_f"] = out.family.map({f: i for i, f in enumerate(family_order(out.family))})
    out["_m"] = out.method.map({m: i for i, m in enumerate(_label_order(out.method))})
    return out.sort_values(["dataset", "_f", "_m", "stage"]).drop(columns=["_f", "_m"]).fillna("").reset_index(
        drop=True)


def connections_table(points: pd.DataFrame) -> pd.DataFrame:
    """(b) Per stage, B-DISTIL with connections minus without, paired by seed."""
    rows = []
    bd = points[points.method == "bdistil"]
    for (dataset, family), g in bd.groupby(["dataset", "family"], sort=False):
        on, off = g[g.label == "B-DISTIL"], g[g.label == "B-DISTIL, no connections"]
        if on.empty or off.empty:
            continue
        for i in sorted(set(on.point_index) & set(off.point_index)):
            a = on[on.point_index == i].set_index("seed")
            b = off[off.point_index == i].set_index("seed")
            seeds = sorted(set(a.index) & set(b.index))
            a, b = a.loc[seeds], b.loc[seeds]  # paired: only seeds run both ways
            rows.append({"dataset": dataset, "family": family, "stage": i + 1, "seeds": len(seeds),
                         "with connections (%)": mean_std(a.test_top1), "without (%)": mean_std(b.test_top1),
                         "Δ (points)": mean_std(a.test_top1 - b.test_top1),
                         "FLOPs with / without": f"{a.flops.mean() / b.flops.mean():.3f}",
                         "run ids": " ".join(sorted([*a.run_id, *b.run_id]))})
    return pd.DataFrame(rows)


def _at_flops(curve: pd.DataFrame, flops: float) -> float | None:
    """A method's accuracy at ``flops``, linear in log FLOPs between its points; None outside its range."""
    x, y = np.log(curve.flops.to_numpy()), curve.top1.to_numpy()
    if len(x) == 0 or not x.min() <= np.log(flops) <= x.max():
        return None
    return float(np.interp(np.log(flops), x, y))


def claims_table(points: pd.DataFrame) -> pd.DataFrame:
    """(c) B1: every added member improves accuracy; at B-DISTIL's stage costs, B2: better than RESCHED, and B3: within
    CLOSE points of NO-RESCHED (their accuracy interpolated at the same FLOPs; stages outside a curve's range are not
    compared). Ids as in ``docs/claims.md``."""
    rows = []
    for (dataset, family), g in points.groupby(["dataset", "family"], sort=False):
        curves = {label: _summary(h) for label, h in g.groupby("label")}
        if "B-DISTIL" not in curves:
            continue
        bd = curves["B-DISTIL"]
        where = {"dataset": dataset, "family": family}
        steps = np.diff(bd.top1.to_numpy()) * 100
        verdict = "not measurable here" if len(steps) == 0 else "holds" if (steps > 0).all() else "does not hold"
        rows.append({**where, "claim": "B1: each added member improves accuracy", "verdict": verdict,
                     "evidence": "test top-1 by stage: " + " → ".join(f"{v * 100:.2f}" for v in bd.top1)
                                 + f" (steps {', '.join(f'{s:+.2f}' for s in steps)})"})
        for key, other, rule in (("B2", "RESCHED", "beats"), ("B3", "NO-RESCHED", "close")):
            if other not in curves:
                continue
            pairs = [(i + 1, a.top1 * 100, _at_flops(curves[other], a.flops)) for i, a in bd.iterrows()]
            outside = [k for k, _, b in pairs if b is None]
            pairs = [(k, a, b * 100) for k, a, b in pairs if b is not None]
            note = (f"; stage(s) {', '.join(map(str, outside))} outside {other}'s FLOPs range "
                    f"({human(curves[other].flops.min())}–{human(curves[other].flops.max())}), not compared"
                    if outside else "")
            if not pairs:
                rows.append({**where, "claim": f"{key}: vs {other} at equal FLOPs", "verdict": "not measurable here",
                             "evidence": f"no B-DISTIL stage within {other}'s FLOPs range"})
                continue
            ok = all(a > b for _, a, b in pairs) if rule == "beats" else all(a >= b - CLOSE for _, a, b in pairs)
            claim = (f"{key}: beats RESCHED at equal FLOPs" if rule == "beats"
                     else f"{key}: within {CLOSE:g} point of NO-RESCHED (the oracle) at equal FLOPs")
            rows.append({**where, "claim": claim, "verdict": "holds" if ok else "does not hold",
                         "evidence": "; ".join(f"stage {k}: {a:.2f} vs {b:.2f} ({a - b:+.2f})" for k, a, b in pairs)
                                     + note})
    return pd.DataFrame(rows)


def cost_figure(points: pd.DataFrame, out: Path) -> list[Path]:
    """Test top-1 against inference cost as a fraction of the teacher's (FLOPs; measured batch-1 latency), one column
    per architecture, mean ± std over seeds as error bars."""
    panels = [(d, f) for d in sorted(points.dataset.unique()) for f in family_order(points.family)
              if ((points.dataset == d) & (points.family == f)).any()]
    if not panels:
        return []
    fig, axes = plt.subplots(2, len(panels), figsize=(3.8 * len(panels), 6.6), squeeze=False)
    for col, (dataset, family) in enumerate(panels):
        sub = points[(points.dataset == dataset) & (points.family == family)]
        for row, (x, xerr, name) in enumerate((("flops_fraction", None, "FLOPs"),
                                               ("latency_fraction", "latency_fraction_std", "batch-1 latency"))):
            ax = axes[row][col]
            for label in _label_order(sub.label):
                agg = _summary(sub[sub.label == label])
                color, marker, line = STYLES.get(label, ("tab:gray", "D", ":"))
                ax.errorbar(agg[x], agg.top1 * 100, yerr=agg.top1_std.fillna(0) * 100,
                            xerr=agg[xerr].fillna(0) if xerr else None, color=color, marker=marker, linestyle=line,
                            capsize=3, markersize=4, label=f"{label} (n={int(agg.seeds.max())})")
            ax.set_xlabel(f"{name} / teacher's")
            ax.grid(alpha=0.3)
            ax.margins(y=0.12)
            if row == 0:  # the teacher (cost 1) is named, not drawn: its accuracy would flatten every curve
                ax.set_title(f"{family} · {dataset}\nteacher {sub.teacher_top1.iloc[0] * 100:.1f} % at cost 1",
                             fontsize=8)
            if col == 0:
                ax.set_ylabel("test top-1 (%)")
        axes[1][col].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    fig.tight_layout()
    return save_figure(fig, out, "bdistil_accuracy_vs_cost")


def build(df: pd.DataFrame, records: dict[str, Record], out: Path) -> list[Path]:
    points = _points(df)
    if points.empty:
        return []
    tables = out / "tables"
    written = write_table(stages_table(points, records), tables, "bdistil_stages",
                          "B-DISTIL vs RESCHED vs NO-RESCHED per architecture: test top-1 (mean ± std over seeds) "
                          "and inference cost of each stage, as measured and as a fraction of the teacher's; the "
                          "critical path is the cost when members run in parallel (B-DISTIL: all member networks at "
                          "once, then the connections in turn); B-DISTIL's boosting log: candidates accepted, the "
                          "last member's weak-learning margin over c, the condition, agreement with the teacher.")
    written += write_table(connections_table(points), tables, "bdistil_connections",
                           "B-DISTIL connections ablation: test top-1 with and without the connections between "
                           "members, paired by seed.")
    written += write_table(claims_table(points), tables, "bdistil_claims",
                           f"B-DISTIL claims B1-B3 (docs/claims.md) checked on the store; baselines "
                           f"interpolated at B-DISTIL's stage FLOPs (linear in log FLOPs); 'close' = within "
                           f"{CLOSE:g} point.")
    written += cost_figure(points, out / "figures")
    return written
