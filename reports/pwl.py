"""PWL's tables and its loading-time figure, from the store, each beside the paper's number where it has one.

(a) accuracy by prefix loading order, (b) suffix and contiguous orders, (c) PWL student vs KD vs scratch vs teacher,
(d) loss ablation, (e) the progressive loading timeline (table and figure), and the check of claims P1-P5.

Paper numbers come from ``reports/data/pwl_published.csv`` (the official README, full CIFAR). The README's models
have 4 blocks; ours have N (5 VGG, 4 ResNet, 3 ViT on the cpu presets). A paper row is put beside ours only when it
loads the same fraction of the network from the same side (k/N = k'/4: the student, the teacher, and for N = 4 every
stage), and never beside a subset of a dataset.

Runs are compared only within one *setting* (dataset, family, student and teacher architectures, epochs, method
version), and a PWL run only with its own teacher run.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.ticker import FuncFormatter
from safetensors.torch import load_file

from progbench.reports.generate import FAMILY_ORDER, human, log_axis, mean_std, save_figure, write_table
from progbench.store import Record

PUBLISHED = Path(__file__).parent / "data" / "pwl_published.csv"
PAPER_BLOCKS = 4
MONOTONE_TOLERANCE = 0.5  # P1: a prefix stage may fall below the one before by at most this many points
SUFFIX_GAP = 1.0  # P5: "much worse" = the mean inner suffix stage is at least this many points below the prefix one
TARGET_FIRST, TARGET_LAST, TARGET_VS_KD = 1.10, 1.15, 1.0
WHOLE_STUDENT, WHOLE_TEACHER = "PWL student, loaded whole", "teacher weights, loaded whole"


def published() -> pd.DataFrame:
    return pd.read_csv(PUBLISHED, comment="#")


SETTING = ["dataset", "family", "arch", "teacher_arch", "epochs", "method_version"]


def _paper_row(pub: pd.DataFrame, dataset: str, family: str, order: str, k: int, n: int) -> pd.Series | None:
    """The paper's row loading the same fraction k/n of the network from the same side, if there is one."""
    if "[" in dataset or (k * PAPER_BLOCKS) % n:  # a subset of the dataset, or no paper stage at this fraction
        return None
    k_paper = k * PAPER_BLOCKS // n
    if k_paper in (0, PAPER_BLOCKS):
        order = "prefix"  # the student and the teacher are listed once, under prefix
    hit = pub[(pub.dataset == dataset) & (pub.family == family) & (pub.order == order)
              & (pub.teacher_blocks == k_paper)]
    return None if hit.empty else hit.iloc[0]


def _setting_label(g: pd.DataFrame) -> str:
    return f"{g.arch.iloc[0]} ← {g.teacher_arch.iloc[0]}, {int(g.epochs.iloc[0])} ep, v{g.method_version.iloc[0]}"


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
    for (dataset, family, *_), fam in _ordered(sub).groupby(SETTING, sort=False):
        n = len(fam.point.iloc[0])
        for (_kind, _index), g in fam.groupby(["kind", "point_index"], sort=True):
            order, k = g.order.iloc[0], int(g.teacher_blocks.iloc[0])
            paper = _paper_row(pub, dataset, family, order, k, n) if order != "contiguous" else None
            mean = g.test_top1.mean() * 100
            rows.append({"dataset": dataset, "family": family, "setting": _setting_label(fam), "order": order,
                         "mask": g.point.iloc[0],
                         "teacher blocks": f"{k}/{n}", "seeds": g.seed.nunique(), "top-1 (%)": mean_std(g.test_top1),
                         "paper row": paper.label if paper is not None else "–",
                         "paper (%)": f"{paper.top1:.1f}" if paper is not None else "–",
                         "Δ (pts)": f"{mean - paper.top1:+.1f}" if paper is not None else "–",
                         "FLOPs/img": human(g.flops.iloc[0]), "run ids": " ".join(sorted(g.run_id))})
    return pd.DataFrame(rows)


def _same_task(df: pd.DataFrame, pwl: pd.DataFrame) -> pd.DataFrame:
    """Default-config family points of every method trained on the PWL runs' task (dataset, family, student and
    teacher architectures, epochs): the KD and scratch students PWL is compared with."""
    first = pwl.iloc[0]
    return df[(df.kind == "family") & (df.variant == "default") & (df.dataset == first.dataset)
              & (df.family == first.family) & (df.arch == first.arch) & (df.teacher_arch == first.teacher_arch)
              & (df.epochs == first.epochs)]


def comparison_table(df: pd.DataFrame, pub: pd.DataFrame) -> pd.DataFrame:
    """(c) The PWL student and the PWL all-teacher network beside the KD student, scratch student and teacher."""
    family_points = df[(df.kind == "family") & (df.variant == "default")]
    rows = []
    for (dataset, family, *_), pwl in _ordered(_pwl(family_points)).groupby(SETTING, sort=False):
        same = _same_task(df, pwl)
        last = pwl.point_index.max()
        kd = same[same.model == "kd"]
        kd_mean = kd.test_top1.mean() * 100 if not kd.empty else float("nan")
        teacher = family_points[family_points.run_id.isin(pwl.teacher_run)]
        entries = [("teacher", teacher, len(pwl.point.iloc[0])), ("scratch student", same[same.model == "scratch"],
                                                                  None),
                   ("KD student", kd, None), ("PWL student", pwl[pwl.point_index == 0], 0),
                   ("PWL all-teacher", pwl[pwl.point_index == last], len(pwl.point.iloc[0]))]
        for name, g, paper_k in entries:
            if g.empty:
                continue
            n = len(pwl.point.iloc[0])
            paper = _paper_row(pub, dataset, family, "prefix", paper_k, n) if paper_k is not None else None
            mean = g.test_top1.mean() * 100
            arch = g.teacher_arch.iloc[0] if name == "PWL all-teacher" else g.arch.iloc[0]
            rows.append({"dataset": dataset, "family": family, "model": name, "arch": arch,
                         "seeds": g.seed.nunique(), "top-1 (%)": mean_std(g.test_top1),
                         "vs KD (pts)": f"{mean - kd_mean:+.2f}" if kd_mean == kd_mean else "–",
                         "paper (%)": f"{paper.top1:.1f}" if paper is not None else "–",
                         "params": human(g.params.iloc[0]), "FLOPs/img": human(g.flops.iloc[0]),
                         "run ids": " ".join(sorted(set(g.run_id)))})
    return pd.DataFrame(rows)


def _per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """Per seed: the student's accuracy and the mean accuracy of the inner prefix stages."""
    last = runs.point_index.max()
    inner = runs[(runs.point_index > 0) & (runs.point_index < last)]
    return pd.DataFrame({"student": runs[runs.point_index == 0].set_index("seed").test_top1,
                         "inner": inner.groupby("seed").test_top1.mean()})


def ablation_table(df: pd.DataFrame) -> pd.DataFrame:
    """(d) Every PWL configuration of a setting that has ablations: each prefix stage (mean ± std over seeds), and
    the change against all five losses as paired per-seed differences over the seeds both were run with."""
    sub = _pwl(df, None)
    sub = sub[sub.kind == "family"]
    rows = []
    for _, fam in _ordered(sub).groupby(SETTING, sort=False):
        if set(fam.variant) == {"default"}:
            continue
        full = fam[fam.variant == "default"]
        for var, g in fam.groupby("variant", sort=False):
            row = {"dataset": g.dataset.iloc[0], "family": g.family.iloc[0], "setting": _setting_label(g),
                   "losses": "all five" if var == "default" else var.replace("drop=", "without "),
                   "seeds": g.seed.nunique()}
            for _index, p in g.groupby("point_index"):
                row[p.point.iloc[0]] = mean_std(p.test_top1)
            if var != "default" and not full.empty:
                diff = (_per_seed(g) - _per_seed(full)).dropna()
                row["paired seeds"] = len(diff)
                row["Δ student (pts)"] = mean_std(diff.student)
                row["Δ mean inner stage (pts)"] = mean_std(diff.inner)
            row["run ids"] = " ".join(sorted(set(g.run_id)))
            rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    return out[[c for c in out.columns if c != "run ids"] + ["run ids"]].fillna("–")


def timeline_frame(df: pd.DataFrame, records: dict[str, Record], variant: str | None = "default",
                   remeasured: dict[str, dict] | None = None) -> pd.DataFrame:
    """One row per (PWL run, cache, stage or whole-model reference) of the measured loading timelines (of the PWL
    runs of ``variant``; None: every PWL run in ``df``): a run's timeline from ``remeasured`` (run id -> the one a
    latency pass measured again) when it has one, else the one the run measured itself."""
    rows = []
    for run_id in sorted(_pwl(df, variant).run_id.unique()):
        rec = records[run_id]
        loading = (remeasured or {}).get(run_id) or rec.metrics.get("progressive_loading")
        if not loading or "skipped" in loading:
            continue
        task = rec.spec["task"]
        mine = df[df.run_id == run_id]
        base = {"run_id": run_id, "dataset": mine.dataset.iloc[0], "family": task["family"],
                "setting": _setting_label(mine),
                "seed": task["seed"], "trials": loading["trials"], "loadavg": loading.get("loadavg_1min_after")}
        for cache in ("warm", "cold"):
            for i, stage in enumerate(loading[cache]["stages"]):
                rows.append({**base, "cache": cache, "what": "stage", "index": i, **stage})
            for role, label in (("first", WHOLE_STUDENT), ("last", WHOLE_TEACHER)):
                rows.append({**base, "cache": cache, "what": label, "index": -1, "point": label,
                             **loading[cache][role]})
    return pd.DataFrame(rows)


def timeline_table(tl: pd.DataFrame) -> pd.DataFrame:
    """(e) Per stage: median over runs of each run's median; min and max over every trial of every run."""
    rows = []
    for (dataset, family, setting, cache, what, _index), g in _ordered(tl).groupby(
            ["dataset", "family", "setting", "cache", "what", "index"], sort=False):
        rows.append({"dataset": dataset, "family": family, "setting": setting, "cache": cache,
                     "stage": g.point.iloc[0],
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
        student = g[g.what == WHOLE_STUDENT].iloc[0]
        teacher = g[g.what == WHOLE_TEACHER].iloc[0]
        rows.append({"run_id": run_id, "dataset": g.dataset.iloc[0], "family": g.family.iloc[0],
                     "setting": g.setting.iloc[0], "cache": cache,
                     "first_answer": stages.answer_s.iloc[0] / student.answer_s,
                     "last_ready": stages.ready_s.iloc[-1] / teacher.load_s,
                     "last_answer": stages.answer_s.iloc[-1] / teacher.answer_s,
                     "loads_only": stages.load_s.sum() / teacher.load_s})
    return pd.DataFrame(rows)


def targets_table(ratios: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (dataset, family, setting, cache), g in _ordered(ratios).groupby(["dataset", "family", "setting", "cache"],
                                                                        sort=False):
        first, last = g.first_answer.median(), g.last_ready.median()
        rows.append({"dataset": dataset, "family": family, "setting": setting, "cache": cache, "runs": len(g),
                     "first answer / student whole (load + first inference)": f"{first:.3f}",
                     f"≤ {TARGET_FIRST}": "yes" if first <= TARGET_FIRST else "no",
                     "last stage ready / teacher whole load": f"{last:.3f}",
                     f"≤ {TARGET_LAST}": "yes" if last <= TARGET_LAST else "no",
                     "last stage answer / teacher whole answer": f"{g.last_answer.median():.3f}",
                     "sum of stage loads / teacher whole load": f"{g.loads_only.median():.3f}",
                     "run ids": " ".join(sorted(g.run_id))})
    return pd.DataFrame(rows)


def loading_points(df: pd.DataFrame, tl: pd.DataFrame) -> pd.DataFrame:
    """Per setting and cache, the points of the loading timeline: each stage (median over runs of its first answer and
    ready time since the start of loading, in ms; test top-1 over the runs) and the PWL student and the teacher loaded
    whole (at the first and the last stage's accuracy). The static figure and the interactive page both draw these."""
    points = df[df.kind == "family"]
    rows = []
    for (dataset, family, setting, cache), g in _ordered(tl).groupby(["dataset", "family", "setting", "cache"],
                                                                    sort=False):
        accuracy = points[points.run_id.isin(g.run_id)]
        stages = g[g.what == "stage"]
        indices = sorted(stages["index"].unique())
        base = {"dataset": dataset, "family": family, "setting": setting, "cache": cache}
        for what, index, timed in [("stage", i, stages[stages["index"] == i]) for i in indices] + [
                (WHOLE_STUDENT, indices[0], g[g.what == WHOLE_STUDENT]),
                (WHOLE_TEACHER, indices[-1], g[g.what == WHOLE_TEACHER])]:
            top1 = accuracy[accuracy.point_index == index].test_top1
            rows.append({**base, "what": what, "index": index, "point": timed.point.iloc[0],
                         "answer_ms": timed.answer_s.median() * 1e3, "ready_ms": timed.ready_s.median() * 1e3,
                         "top1": top1.mean() * 100, "top1_text": mean_std(top1),
                         "run_ids": " ".join(sorted(timed.run_id.unique()))})
    return pd.DataFrame(rows)


def loading_figure(curves: pd.DataFrame, out: Path) -> list[Path]:
    """Accuracy against time since the start of loading (warm cache): one line per architecture."""
    warm = curves[curves.cache == "warm"]
    if warm.empty:
        return []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = dict(zip(FAMILY_ORDER, ("tab:blue", "tab:orange", "tab:green")))
    groups = list(warm.groupby(["dataset", "family", "setting"], sort=False))
    for (_dataset, family, setting), g in groups:
        stages = g[g.what == "stage"]
        x, y = stages.answer_ms.to_numpy(), stages.top1.to_numpy()
        color = colors.get(family)
        label = f"{family}: PWL stages (S → T)" + (f", {setting}" if len(groups) > len({f for (_, f, _), _ in groups})
                                                  else "")
        ax.plot(x, y, "-", color=color, lw=1.2, label=label)
        ax.plot(x[1:-1], y[1:-1], ".", color=color, ms=7)
        ax.plot(x[0], y[0], "o", color=color, ms=7)
        ax.plot(x[-1], y[-1], "*", color=color, ms=12)
        for what, marker in ((WHOLE_STUDENT, "s"), (WHOLE_TEACHER, "D")):
            whole = g[g.what == what].iloc[0]
            ax.plot(whole.answer_ms, whole.top1, marker, mfc="none", mec=color, ms=9, mew=1.4)
    ax.plot([], [], "ok", label="student (first stage)")
    ax.plot([], [], "*k", ms=10, label="teacher (last stage)")
    ax.plot([], [], "sk", mfc="none", label="the PWL student, one file, loaded whole")
    ax.plot([], [], "Dk", mfc="none", label="the teacher's weights, one file, loaded whole")
    log_axis(ax, FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("time since the start of loading until the stage's first answer (ms, warm cache, median)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title("PWL progressive loading, " + ", ".join(sorted(set(warm.dataset))))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    return save_figure(fig, out, "pwl_loading_time")


def _same_as_teacher(pwl: pd.DataFrame, records: dict[str, Record]) -> tuple[int, int]:
    """(runs whose all-teacher point gives exactly their own teacher run's test logits, runs checked)."""
    same = total = 0
    for run_id, g in pwl.groupby("run_id"):
        teacher = records.get(g.teacher_run.iloc[0])
        if teacher is None:
            continue
        theirs = next(iter(load_file(str(teacher.path / "predictions.safetensors")).values()))
        last = g[g.kind == "family"].sort_values("point_index").point.iloc[-1]
        ours = load_file(str(records[run_id].path / "predictions.safetensors"))[last]
        same += int(torch.equal(ours, theirs))
        total += 1
    return same, total


def _add_claim(rows: list, where: dict, name: str, verdict: str, evidence: str) -> None:
    rows.append({"claim": name, **where, "verdict": verdict, "evidence": evidence})


def claims_table(df: pd.DataFrame, records: dict[str, Record], ratios: pd.DataFrame) -> pd.DataFrame:
    """P1-P5 per setting, from the default-config PWL runs, their own teachers and the KD runs of the same setting."""
    rows = []
    for (dataset, family, *_), fam in _ordered(_pwl(df)).groupby(SETTING, sort=False):
        claim = partial(_add_claim, rows, {"dataset": dataset, "family": family, "setting": _setting_label(fam)})

        prefix = fam[fam.order == "prefix"].groupby("point_index").test_top1.mean() * 100
        accs = list(prefix)
        worst = min(b - a for a, b in zip(accs, accs[1:]))
        claim("P1 prefix stages rise almost monotonically",
              "holds" if worst >= -MONOTONE_TOLERANCE else "does not hold",
              " → ".join(f"{a:.2f}" for a in accs) + f" (largest fall {min(0.0, worst):.2f} pts; a fall of at most "
              f"{MONOTONE_TOLERANCE} pt counts as almost monotone)")
        same, total = _same_as_teacher(fam, records)
        teacher_acc = df[df.run_id.isin(fam.teacher_run) & (df.kind == "family")].test_top1.mean() * 100
        claim("P2 all teacher blocks = the teacher",
              ("holds" if same == total else "does not hold") if total else "not measurable here",
              f"{same}/{total} runs: the all-teacher network's test logits are identical to its teacher run's; "
              f"top-1 {accs[-1]:.2f} vs teacher {teacher_acc:.2f}")
        same_task = _same_task(df, fam)
        kd = same_task[same_task.model == "kd"]
        student = fam[(fam.kind == "family") & (fam.point_index == 0)].test_top1
        if kd.empty:
            claim("P3 PWL student competitive with KD", "not measurable here", "no KD run of this setting")
        else:
            gap = (student.mean() - kd.test_top1.mean()) * 100
            claim("P3 PWL student competitive with KD", "holds" if gap >= -TARGET_VS_KD else "does not hold",
                  f"PWL student {mean_std(student)} vs KD student {mean_std(kd.test_top1)}: {gap:+.2f} pts "
                  f"(within {TARGET_VS_KD} pt below, or better, counts as competitive)")
        r = ratios[ratios.run_id.isin(fam.run_id)] if not ratios.empty else ratios
        if r.empty:
            claim("P4 first prediction as fast as the student's", "not measurable here", "no loading timeline")
        else:
            warm, cold = (r[r.cache == c].first_answer.median() for c in ("warm", "cold"))
            claim("P4 first prediction as fast as the student's",
                  "holds" if max(warm, cold) <= TARGET_FIRST else "does not hold",
                  f"time to the first answer / the PWL student loaded whole (load + first inference): {warm:.3f} "
                  f"warm, {cold:.3f} cold (target ≤ {TARGET_FIRST}); stage 0 loads the same tensors the same way, so "
                  f"this checks that the deployment adds nothing before its first answer")
        n = len(fam.point.iloc[0])
        inner_prefix = fam[(fam.order == "prefix") & fam.teacher_blocks.between(1, n - 1)].test_top1.mean() * 100
        inner_suffix = fam[fam.order == "suffix"].test_top1.mean() * 100
        gap = inner_prefix - inner_suffix
        claim("P5 output-side loading much worse than input-side", "holds" if gap >= SUFFIX_GAP else "does not hold",
              f"mean inner prefix stage {inner_prefix:.2f} vs mean suffix stage {inner_suffix:.2f}: {gap:+.2f} pts "
              f"(much worse: at least {SUFFIX_GAP} pt)")
    out = pd.DataFrame(rows)
    return out.sort_values("claim", kind="stable").reset_index(drop=True) if not out.empty else out


def build(df: pd.DataFrame, records: dict[str, Record], out: Path) -> list[Path]:
    if _pwl(df).empty:
        return []
    pub = published()
    tables = out / "tables"
    written = write_table(orders_table(df, pub, ("prefix",)), tables, "pwl_prefix",
                          "PWL (a): test top-1 by prefix loading order (teacher blocks loaded from the input side), "
                          "mean ± std over seeds, beside the paper's row that loads the same fraction of the network "
                          "(paper: 4-block models, full CIFAR, official README).")
    written += write_table(orders_table(df, pub, ("suffix", "contiguous")), tables, "pwl_other_orders",
                           "PWL (b): suffix loading (teacher blocks from the output side) and every inner run of "
                           "teacher blocks (contiguous: neither the first nor the last block from the teacher), scored "
                           "on the same trained runs; paper rows as in (a).")
    written += write_table(comparison_table(df, pub), tables, "pwl_vs_baselines",
                           "PWL (c): the PWL student and the all-teacher network beside the KD student, the scratch "
                           "student and the teacher, same budget and teacher; paper: official README.")
    ablation = ablation_table(df)
    if not ablation.empty:
        written += write_table(ablation, tables, "pwl_ablation",
                               "PWL (d): loss ablation: test top-1 of every prefix stage with all five losses and "
                               "without the named ones (mean ± std over seeds), and the change against all five as "
                               "paired per-seed differences (mean ± std over the shared seeds). Where teacher and "
                               "student widths are equal the converters are identities and the reconstruction loss "
                               "is 0, so dropping it changes nothing there.")
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
        written += loading_figure(loading_points(df, tl), out / "figures")
    written += write_table(claims_table(df, records, ratios), tables, "pwl_claims",
                           "PWL claims P1-P5 (docs/claims.md) against the store, per architecture.")
    return written
