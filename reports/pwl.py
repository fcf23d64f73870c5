"""PWL's tables and its loading-time figure, from the store, each beside the paper's number where it has one.

(a) accuracy by prefix loading order, (b) suffix and contiguous orders, (c) PWL student vs KD vs scratch vs teacher,
(d) loss ablation, (e) the progressive loading timeline (table and figure), and the check of claims P1-P5.

Paper numbers come from ``reports/data/pwl_published.csv`` (the official README). The README's models have 4
blocks; ours have N (5 VGG, 4 ResNet, 3 ViT on the cpu presets). A paper row is put beside ours when it has the same
number of teacher blocks counted from the side being loaded (the student and the teacher always match), so for
N != 4 the middle rows compare different fractions of the network; the tables say which paper row was used.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from safetensors.torch import load_file

from bench.store import Record
from reports.generate import FAMILY_ORDER, human, mean_std, save_figure, write_table

PUBLISHED = Path(__file__).parent / "data" / "pwl_published.csv"
PAPER_BLOCKS = 4
MONOTONE_TOLERANCE = 0.5  # P1: a prefix stage may fall below the one before by at most this many points
SUFFIX_GAP = 1.0  # P5: "much worse" = the mean inner suffix stage is at least this many points below the prefix one
TARGET_FIRST, TARGET_LAST, TARGET_VS_KD = 1.10, 1.15, 1.0


def published() -> pd.DataFrame:
    return pd.read_csv(PUBLISHED, comment="#")


def _base(dataset: str) -> str:
    return dataset.split("[")[0]


def _paper_row(pub: pd.DataFrame, dataset: str, family: str, order: str, k: int, n: int) -> pd.Series | None:
    if k in (0, n):
        order, k = "prefix", (0 if k == 0 else PAPER_BLOCKS)
    elif k >= PAPER_BLOCKS:
        return None
    hit = pub[(pub.dataset == _base(dataset)) & (pub.family == family) & (pub.order == order)
              & (pub.teacher_blocks == k)]
    return None if hit.empty else hit.iloc[0]


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    """Datasets, then families in the usual order (then warm before cold where there is a cache column)."""
    rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    df = df.assign(_f=df.family.map(rank).fillna(99))
    keys = ["dataset", "_f"] + (["cache"] if "cache" in df else [])
    ascending = [True, True] + ([False] if "cache" in df else [])  # "warm" > "cold"
    return df.sort_values(keys, ascending=ascending, kind="stable").drop(columns="_f")


def _pwl(df: pd.DataFrame, variant: str | None = "default") -> pd.DataFrame:
    sub = df[df.method == "pwl"]
    return sub if variant is None else sub[sub.variant == variant]


def orders_table(df: pd.DataFrame, pub: pd.DataFrame, orders: tuple[str, ...]) -> pd.DataFrame:
    """Accuracy of each loading order's masks (mean ± std over seeds), beside the paper's row for the same order."""
    sub = _pwl(df)
    sub = sub[sub.order.isin(orders)]
    rows = []
    for (dataset, family), fam in _ordered(sub).groupby(["dataset", "family"], sort=False):
        n = len(fam.point.iloc[0])
        for (_kind, _index), g in fam.groupby(["kind", "point_index"], sort=True):
            order, k = g.order.iloc[0], int(g.teacher_blocks.iloc[0])
            paper = _paper_row(pub, dataset, family, order, k, n) if order != "contiguous" else None
            mean = g.test_top1.mean() * 100
            rows.append({"dataset": dataset, "family": family, "order": order, "mask": g.point.iloc[0],
                         "teacher blocks": f"{k}/{n}", "seeds": g.seed.nunique(), "top-1 (%)": mean_std(g.test_top1),
                         "paper row": paper.label if paper is not None else "–",
                         "paper (%)": f"{paper.top1:.1f}" if paper is not None else "–",
                         "Δ (pts)": f"{mean - paper.top1:+.1f}" if paper is not None else "–",
                         "FLOPs/img": human(g.flops.iloc[0]), "run ids": " ".join(sorted(g.run_id))})
    return pd.DataFrame(rows)


def comparison_table(df: pd.DataFrame, pub: pd.DataFrame) -> pd.DataFrame:
    """(c) The PWL student and the PWL all-teacher network beside the KD student, scratch student and teacher."""
    family_points = df[(df.kind == "family") & (df.variant == "default")]
    rows = []
    for (dataset, family), fam in _ordered(family_points).groupby(["dataset", "family"], sort=False):
        pwl = fam[fam.method == "pwl"]
        if pwl.empty:
            continue
        last = pwl.point_index.max()
        kd = fam[(fam.model == "kd")]
        kd_mean = kd.test_top1.mean() * 100 if not kd.empty else float("nan")
        entries = [("teacher", fam[fam.model == "teacher"], 4), ("scratch student", fam[fam.model == "scratch"], None),
                   ("KD student", kd, None), ("PWL student", pwl[pwl.point_index == 0], 0),
                   ("PWL all-teacher", pwl[pwl.point_index == last], 4)]
        for name, g, paper_k in entries:
            if g.empty:
                continue
            paper = None
            if paper_k is not None:
                hit = pub[(pub.dataset == _base(dataset)) & (pub.family == family) & (pub.order == "prefix")
                          & (pub.teacher_blocks == paper_k)]
                paper = hit.iloc[0] if not hit.empty else None
            mean = g.test_top1.mean() * 100
            arch = g.teacher_arch.iloc[0] if name == "PWL all-teacher" else g.arch.iloc[0]
            rows.append({"dataset": dataset, "family": family, "model": name, "arch": arch,
                         "seeds": g.seed.nunique(), "top-1 (%)": mean_std(g.test_top1),
                         "vs KD (pts)": f"{mean - kd_mean:+.2f}" if kd_mean == kd_mean else "–",
                         "paper (%)": f"{paper.top1:.1f}" if paper is not None else "–",
                         "params": human(g.params.iloc[0]), "FLOPs/img": human(g.flops.iloc[0]),
                         "run ids": " ".join(sorted(set(g.run_id)))})
    return pd.DataFrame(rows)


def ablation_table(df: pd.DataFrame) -> pd.DataFrame:
    """(d) Every PWL configuration run (default and ablations) on each prefix stage, mean ± std over seeds."""
    sub = _pwl(df, None)
    sub = sub[sub.kind == "family"]
    ablated = sub[sub.variant != "default"]
    rows = []
    for (dataset, family), fam in _ordered(sub[sub.family.isin(ablated.family)]).groupby(["dataset", "family"],
                                                                                          sort=False):
        full = fam[fam.variant == "default"].groupby("point_index").test_top1.mean()
        for var, g in fam.groupby("variant", sort=False):
            row = {"dataset": dataset, "family": family, "variant": "all five losses" if var == "default" else var,
                   "seeds": g.seed.nunique()}
            for _index, p in g.groupby("point_index"):
                row[p.point.iloc[0]] = mean_std(p.test_top1)
            student = g[g.point_index == 0].test_top1.mean()
            inner = g[(g.point_index > 0) & (g.point_index < g.point_index.max())].test_top1.mean()
            row["student vs full (pts)"] = f"{(student - full.get(0, float('nan'))) * 100:+.2f}"
            full_inner = full.iloc[1:-1].mean()
            row["mean inner stage vs full (pts)"] = f"{(inner - full_inner) * 100:+.2f}"
            row["run ids"] = " ".join(sorted(set(g.run_id)))
            rows.append(row)
    out = pd.DataFrame(rows)
    return out.fillna("–") if not out.empty else out


def timeline_frame(df: pd.DataFrame, records: dict[str, Record]) -> pd.DataFrame:
    """One row per (PWL run, cache, stage or whole-model reference) of the measured loading timelines."""
    rows = []
    for run_id in sorted(_pwl(df).run_id.unique()):
        rec = records[run_id]
        loading = rec.metrics.get("progressive_loading")
        if not loading or "skipped" in loading:
            continue
        task = rec.spec["task"]
        base = {"run_id": run_id, "dataset": df[df.run_id == run_id].dataset.iloc[0], "family": task["family"],
                "seed": task["seed"], "trials": loading["trials"], "loadavg": loading.get("loadavg_1min_after")}
        for cache in ("warm", "cold"):
            for i, stage in enumerate(loading[cache]["stages"]):
                rows.append({**base, "cache": cache, "what": "stage", "index": i, **stage})
            for role, label in (("first", "student loaded whole"), ("last", "teacher loaded whole")):
                rows.append({**base, "cache": cache, "what": label, "index": -1, "point": label,
                             **loading[cache][role]})
    return pd.DataFrame(rows)


def timeline_table(tl: pd.DataFrame) -> pd.DataFrame:
    """(e) Per stage: median over runs of each run's median; min and max over every trial of every run."""
    rows = []
    for (dataset, family, cache, what, _index), g in _ordered(tl).groupby(
            ["dataset", "family", "cache", "what", "index"], sort=False):
        rows.append({"dataset": dataset, "family": family, "cache": cache, "stage": g.point.iloc[0],
                     "new bytes": human(g.new_bytes.iloc[0], "B") if what == "stage" else "–",
                     "load (ms)": f"{g.load_s.median() * 1e3:.2f} [{g.load_s_min.min() * 1e3:.2f}, "
                                  f"{g.load_s_max.max() * 1e3:.2f}]",
                     "first inference (ms)": f"{g.infer_s.median() * 1e3:.2f}",
                     "ready at (ms)": f"{g.ready_s.median() * 1e3:.2f}",
                     "answered at (ms)": f"{g.answer_s.median() * 1e3:.2f}",
                     "runs × trials": f"{g.run_id.nunique()} × {int(g.trials.iloc[0])}",
                     "load average (max)": f"{g.loadavg.max():.2f}",
                     "run ids": " ".join(sorted(g.run_id))})
    return pd.DataFrame(rows)


def loading_ratios(tl: pd.DataFrame) -> pd.DataFrame:
    """Per run and cache: the progressive deployment against the plain student and teacher loaded whole."""
    rows = []
    for (run_id, cache), g in tl.groupby(["run_id", "cache"], sort=True):
        stages = g[g.what == "stage"].sort_values("index")
        student = g[g.what == "student loaded whole"].iloc[0]
        teacher = g[g.what == "teacher loaded whole"].iloc[0]
        rows.append({"run_id": run_id, "dataset": g.dataset.iloc[0], "family": g.family.iloc[0], "cache": cache,
                     "first_answer": stages.answer_s.iloc[0] / student.answer_s,
                     "last_ready": stages.ready_s.iloc[-1] / teacher.load_s,
                     "last_answer": stages.answer_s.iloc[-1] / teacher.answer_s,
                     "loads_only": stages.load_s.sum() / teacher.load_s})
    return pd.DataFrame(rows)


def targets_table(ratios: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (dataset, family, cache), g in _ordered(ratios).groupby(["dataset", "family", "cache"], sort=False):
        first, last = g.first_answer.median(), g.last_ready.median()
        rows.append({"dataset": dataset, "family": family, "cache": cache, "runs": len(g),
                     "first answer / student whole (load + first inference)": f"{first:.3f}",
                     f"≤ {TARGET_FIRST}": "yes" if first <= TARGET_FIRST else "no",
                     "last stage ready / teacher whole load": f"{last:.3f}",
                     f"≤ {TARGET_LAST}": "yes" if last <= TARGET_LAST else "no",
                     "last stage answer / teacher whole answer": f"{g.last_answer.median():.3f}",
                     "sum of stage loads / teacher whole load": f"{g.loads_only.median():.3f}",
                     "run ids": " ".join(sorted(g.run_id))})
    return pd.DataFrame(rows)


def loading_figure(df: pd.DataFrame, tl: pd.DataFrame, out: Path) -> list[Path]:
    """Accuracy against time since the start of loading (warm cache): one line per architecture."""
    warm = tl[tl.cache == "warm"]
    if warm.empty:
        return []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    acc = _pwl(df)
    acc = acc[acc.kind == "family"].groupby(["dataset", "family", "point_index"]).test_top1.mean() * 100
    colors = dict(zip(FAMILY_ORDER, ("tab:blue", "tab:orange", "tab:green")))
    for (dataset, family), g in _ordered(warm).groupby(["dataset", "family"], sort=False):
        stages = g[g.what == "stage"].groupby("index").answer_s.median() * 1e3
        y = [acc[(dataset, family, i)] for i in stages.index]
        color = colors.get(family)
        ax.plot(stages.values, y, "-", color=color, lw=1.2, label=f"{family}: PWL stages (S → T)")
        ax.plot(stages.values[1:-1], y[1:-1], ".", color=color, ms=7)
        ax.plot(stages.values[0], y[0], "o", color=color, ms=7)
        ax.plot(stages.values[-1], y[-1], "*", color=color, ms=12)
        for what, marker, yv in (("student loaded whole", "s", y[0]), ("teacher loaded whole", "D", y[-1])):
            x = g[g.what == what].answer_s.median() * 1e3
            ax.plot(x, yv, marker, mfc="none", mec=color, ms=9, mew=1.4)
    ax.plot([], [], "ok", label="student (first stage)")
    ax.plot([], [], "*k", ms=10, label="teacher (last stage)")
    ax.plot([], [], "sk", mfc="none", label="plain student, loaded whole")
    ax.plot([], [], "Dk", mfc="none", label="plain teacher, loaded whole")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("time since the start of loading until the stage's first answer (ms, warm cache, median)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title("PWL progressive loading, " + ", ".join(sorted(set(warm.dataset))))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    return save_figure(fig, out, "pwl_loading_time")


def _same_as_teacher(df: pd.DataFrame, records: dict[str, Record], dataset: str, family: str) -> tuple[int, int]:
    """(runs whose all-teacher point predicts exactly the teacher's logits, runs checked)."""
    runs = _pwl(df)
    runs = runs[(runs.dataset == dataset) & (runs.family == family) & (runs.kind == "family")]
    teacher = df[(df.dataset == dataset) & (df.family == family) & (df.role == "teacher")]
    if teacher.empty:
        return 0, 0
    theirs = load_file(str(records[teacher.run_id.iloc[0]].path / "predictions.safetensors"))
    theirs = next(iter(theirs.values()))
    same = total = 0
    for run_id, g in runs.groupby("run_id"):
        last = g.sort_values("point_index").point.iloc[-1]
        ours = load_file(str(records[run_id].path / "predictions.safetensors"))[last]
        same += int(torch.equal(ours, theirs))
        total += 1
    return same, total


def claims_table(df: pd.DataFrame, records: dict[str, Record], ratios: pd.DataFrame) -> pd.DataFrame:
    rows = []
    family_points = _pwl(df)
    for (dataset, family), fam in _ordered(family_points).groupby(["dataset", "family"], sort=False):
        prefix = fam[fam.order == "prefix"].groupby("point_index").agg(point=("point", "first"),
                                                                        acc=("test_top1", "mean"))
        accs = list(prefix.acc * 100)
        drops = [b - a for a, b in zip(accs, accs[1:])]
        worst = min(drops) if drops else 0.0
        rows.append({"claim": "P1 prefix stages rise almost monotonically", "dataset": dataset, "family": family,
                     "verdict": "holds" if worst >= -MONOTONE_TOLERANCE else "does not hold",
                     "evidence": " → ".join(f"{a:.2f}" for a in accs) + f" (largest fall {min(0.0, worst):.2f} pts; "
                                 f"tolerance {MONOTONE_TOLERANCE})"})
        same, total = _same_as_teacher(df, records, dataset, family)
        teacher_acc = df[(df.dataset == dataset) & (df.family == family) & (df.role == "teacher")].test_top1
        rows.append({"claim": "P2 all teacher blocks = the teacher", "dataset": dataset, "family": family,
                     "verdict": ("holds" if same == total else "does not hold") if total else "not measurable here",
                     "evidence": f"{same}/{total} runs: all-teacher test logits identical to the teacher run's; "
                                 f"top-1 {accs[-1]:.2f} vs teacher {teacher_acc.mean() * 100:.2f}"})
        kd = df[(df.dataset == dataset) & (df.family == family) & (df.model == "kd") & (df.variant == "default")]
        student = fam[(fam.kind == "family") & (fam.point_index == 0)].test_top1
        if kd.empty:
            rows.append({"claim": "P3 PWL student competitive with KD", "dataset": dataset, "family": family,
                         "verdict": "not measurable here", "evidence": "no KD run in the store"})
        else:
            gap = (student.mean() - kd.test_top1.mean()) * 100
            rows.append({"claim": "P3 PWL student competitive with KD", "dataset": dataset, "family": family,
                         "verdict": "holds" if gap >= -TARGET_VS_KD else "does not hold",
                         "evidence": f"PWL student {mean_std(student)} vs KD {mean_std(kd.test_top1)}: {gap:+.2f} pts "
                                     f"(within {TARGET_VS_KD} pt or better counts as competitive)"})
        r = ratios[(ratios.dataset == dataset) & (ratios.family == family)] if not ratios.empty else ratios
        if r.empty:
            rows.append({"claim": "P4 first prediction as fast as the student's", "dataset": dataset,
                         "family": family, "verdict": "not measurable here", "evidence": "no loading timeline"})
        else:
            warm, cold = (r[r.cache == c].first_answer.median() for c in ("warm", "cold"))
            rows.append({"claim": "P4 first prediction as fast as the student's", "dataset": dataset,
                         "family": family, "verdict": "holds" if max(warm, cold) <= TARGET_FIRST else "does not hold",
                         "evidence": f"first answer / plain student's load + first inference: {warm:.3f} warm, "
                                     f"{cold:.3f} cold (target ≤ {TARGET_FIRST})"})
        inner_prefix = fam[(fam.order == "prefix") & (fam.teacher_blocks > 0)
                           & (fam.teacher_blocks < fam.teacher_blocks.max())].test_top1.mean() * 100
        inner_suffix = fam[fam.order == "suffix"].test_top1.mean() * 100
        gap = inner_prefix - inner_suffix
        rows.append({"claim": "P5 output-side loading much worse than input-side", "dataset": dataset,
                     "family": family, "verdict": "holds" if gap >= SUFFIX_GAP else "does not hold",
                     "evidence": f"mean inner prefix stage {inner_prefix:.2f} vs mean suffix stage {inner_suffix:.2f}: "
                                 f"{gap:+.2f} pts (much worse: ≥ {SUFFIX_GAP} pt)"})
    out = pd.DataFrame(rows)
    return out.sort_values("claim", kind="stable").reset_index(drop=True) if not out.empty else out


def build(df: pd.DataFrame, records: dict[str, Record], out: Path) -> list[Path]:
    if _pwl(df).empty:
        return []
    pub = published()
    tables = out / "tables"
    written = write_table(orders_table(df, pub, ("prefix",)), tables, "pwl_prefix",
                          "PWL (a): test top-1 by prefix loading order (teacher blocks loaded from the input side), "
                          "mean ± std over seeds, beside the paper's row with the same number of teacher blocks "
                          "(paper: 4-block models, official README).")
    written += write_table(orders_table(df, pub, ("suffix", "contiguous")), tables, "pwl_other_orders",
                           "PWL (b): suffix loading (teacher blocks from the output side) and every inner run of "
                           "teacher blocks (contiguous), scored on the same trained runs; paper rows as in (a).")
    written += write_table(comparison_table(df, pub), tables, "pwl_vs_baselines",
                           "PWL (c): the PWL student and the all-teacher network beside the KD student, the scratch "
                           "student and the teacher, same budget and teacher; paper: official README.")
    ablation = ablation_table(df)
    if not ablation.empty:
        written += write_table(ablation, tables, "pwl_ablation",
                               "PWL (d): loss ablation, test top-1 of every prefix stage with all five losses and with "
                               "the named losses dropped (mean ± std over seeds).")
    tl = timeline_frame(df, records)
    ratios = loading_ratios(tl) if not tl.empty else pd.DataFrame()
    if not tl.empty:
        written += write_table(timeline_table(tl), tables, "pwl_loading_timeline",
                               "PWL (e): the progressive loading timeline, measured in a fresh process: per stage the "
                               "bytes it adds, load = read + build (median [min, max] over all trials), its first "
                               "inference, and when it is ready and has answered since the start of loading; the plain "
                               "student and teacher loaded whole, in the same trials. Cold = every file evicted from "
                               "the page cache (posix_fadvise DONTNEED) before each trial.")
        written += write_table(targets_table(ratios), tables, "pwl_loading_targets",
                               "PWL loading targets (median over runs): the progressive deployment's first answer "
                               "against the plain student's load + first inference, and the time its last stage is "
                               "ready against loading the plain teacher whole.")
        written += loading_figure(df, tl, out / "figures")
    written += write_table(claims_table(df, records, ratios), tables, "pwl_claims",
                           "PWL claims P1-P5 (../shared/METHODS.md) against the store, per architecture.")
    return written
