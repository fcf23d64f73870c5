"""All five methods on the same axes: per architecture, test top-1 against inference cost (FLOPs, bytes of weights
loaded, batch-1 latency), each as a fraction of that architecture's teacher.

Latency is drawn but not scored: each run timed its points in its own process, and across runs the same model's
batch-1 latency varies by up to 2x here, more than between the models compared.

A method's *anytime curve* answers "given a budget b, what is the best accuracy I can get from this method?": the best
of its operating points that cost at most b. Below its cheapest point a method has nothing to run, so the curve sits at
chance (a constant guess). Its *area* is the curve's mean over budgets spread evenly in log cost, from the cheapest
point of any method in the panel to the teacher's cost: one number per method and cost axis, in accuracy points.
The *winner* at a budget is the method whose curve is highest there. The panel teacher is the teacher run most of
the panel's own-architecture runs distil from.

The methods learn under the suite's protocol but not from the same data: B-DISTIL and SWS run on train subsets of
CIFAR-10 (300 and 500 images per class) to fit the CPU budget, SWS distils from the ResNet teacher, and every curve says
so in its label. Each method is shown in its main configuration: the one closest to its defaults (ablations change
more fields), and only its anytime family (not extra evaluations such as PWL's other loading orders).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from progbench.reports.generate import changed_fields, human, log_axis, mean_std, save_figure, write_table

METHODS = {"scratch": "scratch", "kd": "KD", "pwl": "PWL", "sws": "SWS", "bdistil": "B-DISTIL"}
STYLES = {"scratch": ("tab:gray", "o"), "kd": ("tab:blue", "s"), "pwl": ("tab:red", "^"), "sws": ("tab:green", "v"),
          "bdistil": ("tab:purple", "D")}
ARCHITECTURES = {"vgg": "VGG", "resnet": "ResNet", "vit": "ViT"}  # by the timm name: pb_<key>_...
AXES = {"flops": ("FLOPs per image", "FLOPs"), "weight_bytes": ("weights loaded", "bytes"),
        "latency_s": ("batch-1 latency (each run timed alone)", "latency")}
SETTING = ["family", "config", "epochs", "method_version", "arch"]
# Batch-1 latency is measured in each run's own process, and across runs it varies more than across models (the same
# VGG student: 0.73-0.89 ms in the KD runs, 1.36-1.47 ms in the scratch runs): it is drawn and tabled, but the area
# and the winners use only the counted axes.
SCORED_AXES = ("flops", "weight_bytes")
FITS = 1e-3  # a point fits a budget up to this relative excess: weight files differ by their header (key names)
BUDGETS = (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1)
DATASET = "cifar10"  # the one dataset every method runs on in the suites
CHANCE = 0.1  # CIFAR-10: ten balanced classes


def architecture(arch: str | None) -> str | None:
    return next((label for key, label in ARCHITECTURES.items() if str(arch).startswith(f"pb_{key}")), None)


def architecture_label(arch: str | None) -> str:
    """The architecture's name (VGG, ResNet, ViT), else the preset's own."""
    return architecture(arch) or str(arch)


def _main_configuration(g: pd.DataFrame) -> pd.DataFrame:
    """The rows of one setting (family, config, budget, method version, architecture) of a method: the one closest to
    its defaults (fewest changed fields), then the one with most seeds. Settings are never averaged together."""
    keys = g.groupby(SETTING).agg(variant=("variant", "first"), seeds=("seed", "nunique"))
    keys["changes"] = keys.variant.map(changed_fields)
    best = keys.sort_values(["changes", "seeds"], ascending=[True, False], kind="stable").index[0]
    return g[(g[SETTING] == pd.Series(best, index=SETTING)).all(axis=1)]


def _panel_teacher(panel: pd.DataFrame, arch_label: str) -> str | None:
    """The teacher run most of the panel's runs distil from among those of the panel's own architecture."""
    own = panel[panel.teacher_arch.map(architecture) == arch_label].drop_duplicates("run_id")
    return own.teacher_run.mode().sort_values().iloc[0] if own.teacher_run.notna().any() else None


def points(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each method's points per architecture (mean over seeds, costs also as fractions of the panel teacher's), and
    the panel teachers."""
    df = df[(df.kind == "family") & (df.dataset.str.split("[").str[0] == DATASET)].copy()
    df["architecture"] = df.arch.map(architecture)
    runs = df[df.model.isin(METHODS)]
    rows, teachers = [], []
    for arch_label, panel in runs.groupby("architecture"):
        teacher_id = _panel_teacher(panel, arch_label)
        if teacher_id is None or not (df.run_id == teacher_id).any():
            continue
        teacher = df[df.run_id == teacher_id].iloc[0]
        teachers.append({**teacher.to_dict(), "architecture": arch_label})
        for method, g in panel.groupby("model"):
            g = _main_configuration(g)
            ds = g.dataset.iloc[0]
            data = f"{ds.split('train_per_class=')[1].split(',')[0].rstrip(']')}/class" if "train_per_class" in ds \
                else "full train split"
            source = architecture(g.teacher_arch.iloc[0])
            notes = ([data] if data != "full train split" else []) + \
                ([f"{source} teacher"] if source not in (arch_label, None) else [])
            label = METHODS[method] + (f" ({', '.join(notes)})" if notes else "")
            for i, p in g.groupby("point_index"):
                rows.append({
                    "architecture": arch_label, "method": method, "label": label, "family": g.family.iloc[0],
                    "point_index": i, "point": p.point.iloc[0], "seeds": p.seed.nunique(),
                    "top1": p.test_top1.mean(), "top1_std": p.test_top1.std(ddof=1) if len(p) > 1 else 0.0,
                    "top1_text": mean_std(p.test_top1),
                    **{axis: p[axis].mean() for axis in AXES},
                    **{f"{axis}_fraction": p[axis].mean() / teacher[axis] for axis in AXES},
                    "train_images": p.train_images_seen.mean(), "train_flops": p.train_flops.mean(),
                    "teacher_run": teacher_id, "run_ids": " ".join(sorted(p.run_id)),
                })
    return pd.DataFrame(rows), pd.DataFrame(teachers)


def anytime(costs: np.ndarray, accs: np.ndarray, budget: float, chance: float) -> float:
    """The best accuracy among points costing at most ``budget`` (chance when none fits)."""
    fits = accs[costs <= budget * (1 + FITS)]
    return float(fits.max()) if len(fits) else chance


def area(costs: np.ndarray, accs: np.ndarray, lo: float, hi: float, chance: float) -> float:
    """Mean of the anytime curve over budgets log-uniform in [lo, hi] (exact: the curve is a step function); NaN
    when the range is empty (no point is cheaper than the teacher)."""
    if not lo < hi:
        return float("nan")
    edges = np.unique(np.clip(np.concatenate([[lo, hi], costs]), lo, hi))
    widths = np.diff(np.log(edges))
    values = [anytime(costs, accs, b, chance) for b in edges[:-1]]
    return float(np.dot(widths, values) / np.log(hi / lo))


def auc_table(pts: pd.DataFrame, teachers: pd.DataFrame, chance: float) -> pd.DataFrame:
    rows = []
    for arch_label in [a for a in ARCHITECTURES.values() if a in set(pts.architecture)]:
        panel = pts[pts.architecture == arch_label]
        teacher = teachers.set_index("architecture").loc[arch_label]
        for method in [m for m in METHODS if m in set(panel.method)]:
            g = panel[panel.method == method].sort_values("point_index")
            row = {"architecture": arch_label, "method": g.label.iloc[0], "points": len(g),
                   "top-1 (%), cheapest → largest": " → ".join(f"{v * 100:.2f}" for v in g.top1),
                   "images seen in training": human(g.train_images.iloc[0]),
                   "training FLOPs": human(g.train_flops.iloc[0])}
            for axis in SCORED_AXES:
                short = AXES[axis][1]
                lo, hi = panel[f"{axis}_fraction"].min(), 1.0
                value = area(g[f"{axis}_fraction"].to_numpy(), g.top1.to_numpy(), lo, hi, chance)
                row[f"area, {short} (pts)"] = "–" if np.isnan(value) else f"{100 * value:.2f}"
            row["panel teacher top-1 (%)"] = f"{teacher.test_top1 * 100:.2f}"
            row["run ids"] = " ".join(sorted(set(" ".join(g.run_ids).split()) | {teacher.run_id}))
            rows.append(row)
    return pd.DataFrame(rows)


def winners_table(pts: pd.DataFrame, chance: float) -> pd.DataFrame:
    """At each budget (a fraction of the teacher's cost), the method whose anytime curve is highest, its accuracy and
    its lead over the runner-up; '≈' when the lead is within the larger seed std of the two."""
    rows = []
    for arch_label in [a for a in ARCHITECTURES.values() if a in set(pts.architecture)]:
        panel = pts[pts.architecture == arch_label]
        for axis in SCORED_AXES:
            row = {"architecture": arch_label, "cost axis": AXES[axis][0]}
            for budget in BUDGETS:
                scores = []
                for method, g in panel.groupby("method"):
                    costs, accs = g[f"{axis}_fraction"].to_numpy(), g.top1.to_numpy()
                    acc = anytime(costs, accs, budget, chance)
                    if acc > chance:
                        std = g.top1_std.to_numpy()[accs == acc].max()
                        scores.append((acc, std, METHODS.get(method, method)))
                scores.sort(key=lambda t: (-t[0], t[2]))  # an exact tie goes to the first name
                key = f"≤ 1/{round(1 / budget)}" if budget < 1 else "≤ 1"
                if not scores:
                    row[key] = "none fits"
                    continue
                (acc, std, name_), rest = scores[0], scores[1:]
                lead = "" if not rest else (f" (≈ {rest[0][2]})" if acc - rest[0][0] <= max(std, rest[0][1])
                                            else f" (+{(acc - rest[0][0]) * 100:.1f})")
                row[key] = f"{name_} {acc * 100:.1f}{lead}"
            rows.append(row)
    return pd.DataFrame(rows)


def points_table(pts: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, p in pts.iterrows():
        rows.append({"architecture": p.architecture, "method": p.label, "point": p.point, "seeds": p.seeds,
                     "test top-1 (%)": p.top1_text, "FLOPs/img": human(p.flops),
                     "FLOPs / teacher": f"{p.flops_fraction:.3f}", "weights": human(p.weight_bytes, "B"),
                     "weights / teacher": f"{p.weight_bytes_fraction:.3f}", "latency (ms)": f"{p.latency_s * 1e3:.3f}",
                     "latency / teacher": f"{p.latency_s_fraction:.3f}", "run ids": p.run_ids})
    return pd.DataFrame(rows)


def figure(pts: pd.DataFrame, teachers: pd.DataFrame, chance: float, out: Path) -> list[Path]:
    """One column per architecture, one row per cost axis: every point (mean ± std over seeds) and each method's
    anytime curve (the step line), the teacher at cost 1."""
    archs = [a for a in ARCHITECTURES.values() if a in set(pts.architecture)]
    fig, axes = plt.subplots(len(AXES), len(archs), figsize=(4.0 * len(archs), 3.2 * len(AXES)), squeeze=False)
    for col, arch_label in enumerate(archs):
        panel = pts[pts.architecture == arch_label]
        teacher = teachers.set_index("architecture").loc[arch_label]
        lo = min(panel[f"{axis}_fraction"].min() for axis in AXES)
        for row, (axis, (name, _)) in enumerate(AXES.items()):
            ax = axes[row][col]
            for method in [m for m in METHODS if m in set(panel.method)]:
                g = panel[panel.method == method].sort_values(f"{axis}_fraction")
                color, marker = STYLES[method]
                x, y = g[f"{axis}_fraction"].to_numpy(), g.top1.to_numpy()
                best = np.maximum.accumulate(y) * 100  # the anytime curve: best point within the budget
                ax.step(np.append(x, max(1.0, x.max())), np.append(best, best[-1]), where="post", color=color,
                        alpha=0.5, linewidth=1.2)
                ax.errorbar(x, y * 100, yerr=g.top1_std.to_numpy() * 100, color=color, marker=marker, linestyle="none",
                            capsize=2, markersize=4, label=f"{g.label.iloc[0]} (n={int(g.seeds.max())})")
            ax.plot([1.0], [teacher.test_top1 * 100], marker="*", color="k", markersize=9, linestyle="none",
                    label="teacher")
            ax.axhline(chance * 100, color="k", linewidth=0.6, linestyle=":")
            log_axis(ax, FuncFormatter(lambda v, _: f"{v:g}"))  # 0.05, 0.1, 0.2, ... 1
            ax.set_xlim(lo / 1.6, 1.6 * max(1.0, panel[f"{axis}_fraction"].max()))
            ax.set_xlabel(f"{name} / teacher's")
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(f"{arch_label} · CIFAR-10")
            if col == 0:
                ax.set_ylabel("test top-1 (%)")
        axes[-1][col].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    fig.tight_layout()
    return save_figure(fig, out, "crossmethod_anytime")


def build(df: pd.DataFrame, out: Path) -> list[Path]:
    pts, teachers = points(df)
    if pts.empty:
        return []
    tables = out / "tables"
    written = write_table(auc_table(pts, teachers, CHANCE), tables, "crossmethod_area",
                          "All five methods per architecture (CIFAR-10 test set): each method's points, what its "
                          "training saw (PWL's training FLOPs are one measured step, whose random mask varies, times "
                          "the steps), and the area under its anytime curve on FLOPs and on weight bytes (the mean, "
                          "over budgets log-uniform from the panel's cheapest point to the panel teacher's cost, of "
                          "the best accuracy among the method's points within the budget; chance below its cheapest "
                          "point). Latency is left out: measured in each run's own process, it varies more across "
                          "runs than across models (see the figure and crossmethod_points).")
    written += write_table(winners_table(pts, CHANCE), tables, "crossmethod_winners",
                           "Which method is most accurate at each budget (a fraction of the panel teacher's cost; "
                           "a point fits within 0.1 %, as weight files differ by their header): the winner's test "
                           "top-1 (%) and its lead over the runner-up in points; '≈ X' when the lead is within the "
                           "larger seed std of the two. Run ids: crossmethod_points.")
    written += write_table(points_table(pts), tables, "crossmethod_points",
                           "Every point of the cross-method comparison: test top-1 (mean ± std over seeds) and its "
                           "cost, as measured and as a fraction of its panel teacher's (batch-1 latency: each run "
                           "timed in its own process).")
    written += figure(pts, teachers, CHANCE, out / "figures")
    return written
