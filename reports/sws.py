"""SWS's tables and figure, from the store: Des-Nets initialised from learngene layers against the per-size baselines.

(a) test top-1 by Des-Net depth: SWS vs scratch (fine-tuning budget and long budget) vs pre-train + fine-tune,
(b) val top-1 after 1 epoch and after the whole fine-tuning, (c) training cost (pre-training and fine-tuning, in
images, FLOPs and wall-clock) and parameters stored to initialise every size, (d) the paper's ratios beside ours,
(e) the claims S1-S4, and the accuracy-vs-depth figure.

A run's cost per phase comes from its log (each epoch row has images, training FLOPs and seconds); the Aux-Net
phase (SWS) and the pretrain-d* phases (pre-train + fine-tune) are pre-training, the finetune-d* phases fine-tuning.
Parameters stored to initialise all sizes: the Aux-Net for SWS (every Des-Net is expanded from it), every
pre-trained Des-Net for pre-train + fine-tune, nothing for scratch. The ancestry (teacher) is trained once for
everything and counted in none.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from progbench.reports.generate import human, mean_std, save_figure, write_table
from progbench.store import Record

PUBLISHED = Path(__file__).parent / "data" / "sws_published.csv"
METHODS = ("sws", "des_scratch", "des_pretrain")
SETTING = ["dataset", "family", "arch", "teacher_arch", "method_version"]


def published() -> pd.DataFrame:
    return pd.read_csv(PUBLISHED, comment="#")


def _des_points(df: pd.DataFrame) -> pd.DataFrame:
    """Every Des-Net point of SWS and its baselines, labelled by method, budget (when a method has two in a
    dataset) and configuration (when it has several, the non-default ones named)."""
    sub = df[df.method.isin(METHODS)].copy()
    if sub.empty:
        return sub
    panel = sub.groupby(["dataset", "family", "method"])
    budgets = panel.epochs.transform("nunique")
    variants = panel.variant.transform("nunique")
    names = {"sws": "SWS", "des_pretrain": "pre-train + fine-tune", "des_scratch": "scratch"}

    def label(r) -> str:
        text = names[r.method]
        if budgets[r.name] > 1:  # the same method with two budgets (scratch): say which is which
            text += f", {int(r.epochs)} ep"
        if variants[r.name] > 1 and r.variant != "default":
            text += f" [{r.variant}]"
        return text

    sub["label"] = sub.apply(label, axis=1)
    return sub


def _order(labels) -> list[str]:
    """SWS first, then the scratch budgets (shortest first), then pre-train + fine-tune, then anything else."""
    labels = set(labels)
    scratch = sorted((x for x in labels if x.startswith("scratch")), key=lambda x: (len(x), x))
    first = [x for x in ("SWS", *scratch, "pre-train + fine-tune") if x in labels]
    return first + sorted(labels - set(first))


def accuracy_table(des: pd.DataFrame) -> pd.DataFrame:
    """(a) Test top-1 (mean ± std over seeds) by depth, one column per method, and SWS minus each baseline."""
    rows = []
    fam = des[des.kind == "family"]
    for (dataset, family), g in fam.groupby(["dataset", "family"], sort=True):
        labels = _order(g.label)
        aux = des[(des.kind == "extra") & (des.dataset == dataset) & (des.family == family) & (des.point == "aux")
                  & (des.label == "SWS")]
        for depth, d in g.groupby("depth", sort=True):
            row = {"dataset": dataset, "family": family, "depth": int(depth),
                   "params": human(d.params.iloc[0]), "FLOPs/img": human(d.flops.iloc[0])}
            means = {lab: d[d.label == lab].test_top1.mean() * 100 for lab in labels}
            for lab in labels:
                row[f"{lab} (%)"] = mean_std(d[d.label == lab].test_top1)
            for lab in labels[1:]:
                row[f"SWS − {lab}"] = f"{means['SWS'] - means[lab]:+.2f}" if "SWS" in means else "–"
            row["run ids"] = " ".join(sorted(d.run_id.unique()))
            rows.append(row)
        if not aux.empty:
            rows.append({"dataset": dataset, "family": family, "depth": "Aux-Net",
                         "params": human(aux.params.iloc[0]), "FLOPs/img": human(aux.flops.iloc[0]),
                         "SWS (%)": mean_std(aux.test_top1), "run ids": " ".join(sorted(aux.run_id.unique()))})
    return pd.DataFrame(rows).fillna("")


def run_log(record: Record) -> pd.DataFrame:
    return pd.DataFrame(record.log())


def fine_tuning_val(logs: dict[str, pd.DataFrame], rid: str, depth) -> pd.Series:
    """Val top-1 after each fine-tuning epoch of run ``rid``'s Des-Net of ``depth`` (its log rows)."""
    log = logs[rid]
    return log[log.phase == f"finetune-d{int(depth)}"].val_top1


def epochs_table(des: pd.DataFrame, logs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """(b) Val top-1 after the first and the last fine-tuning epoch (from the run logs), and test top-1 at the end."""
    rows = []
    fam = des[des.kind == "family"]
    for (dataset, family, label, depth), g in fam.groupby(["dataset", "family", "label", "depth"], sort=True):
        first = [fine_tuning_val(logs, rid, depth).iloc[0] for rid in g.run_id]
        last = [fine_tuning_val(logs, rid, depth).iloc[-1] for rid in g.run_id]
        rows.append({"dataset": dataset, "family": family, "method": label, "depth": int(depth),
                     "fine-tuning epochs": int(g.epochs.iloc[0]), "seeds": len(g),
                     "val top-1 after 1 epoch (%)": mean_std(pd.Series(first)),
                     "val top-1 at the end (%)": mean_std(pd.Series(last)),
                     "test top-1 at the end (%)": mean_std(g.test_top1),
                     "run ids": " ".join(sorted(g.run_id))})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["_m"] = out.method.map({m: i for i, m in enumerate(_order(out.method))})
    return out.sort_values(["dataset", "family", "_m", "depth"]).drop(columns="_m").reset_index(drop=True)


def phase_costs(runs: pd.DataFrame, logs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per run: images, training FLOPs and seconds of pre-training and of fine-tuning, from the log rows."""
    rows = []
    for r in runs.itertuples():
        log = logs[r.run_id]
        stage = log.phase.map(lambda p: "fine-tune" if p.startswith("finetune") else "pre-train")
        for name, g in log.groupby(stage):
            rows.append({"run_id": r.run_id, "stage": name, "images": g.images.sum(),
                         "flops": g.train_flops.sum(), "seconds": g.epoch_s.sum()})
    return pd.DataFrame(rows, columns=["run_id", "stage", "images", "flops", "seconds"])


def stored_params(run: pd.DataFrame) -> int:
    """Parameters that must be stored to initialise every size (see the module docstring)."""
    init = run[run.kind == "family"].init.iloc[0]
    if init == "learngene":  # the Aux-Net, scored as the run's extra point "aux"
        return int(run[(run.kind == "extra") & (run.point == "aux")].params.iloc[0])
    if init == "pretrained":
        return int(run[run.kind == "family"].params.sum())
    return 0


def cost_frame(des: pd.DataFrame, logs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per run: pre-training and fine-tuning cost and parameters stored to initialise all sizes."""
    runs = des.drop_duplicates("run_id")[["run_id", "dataset", "family", "label", "seed"]]
    costs = phase_costs(runs, logs).pivot(index="run_id", columns="stage").fillna(0)
    costs.columns = [f"{stage}_{what}" for what, stage in costs.columns]
    frame = runs.set_index("run_id").join(costs).reset_index()
    for what in ("images", "flops", "seconds"):
        for stage in ("pre-train", "fine-tune"):
            col = f"{stage}_{what}"
            frame[col] = frame[col] if col in frame else 0.0
        frame[f"total_{what}"] = frame[f"pre-train_{what}"] + frame[f"fine-tune_{what}"]
    frame["stored"] = [stored_params(des[des.run_id == rid]) for rid in frame.run_id]
    return frame


def cost_table(costs: pd.DataFrame) -> pd.DataFrame:
    """(c) Mean per run over seeds (a run trains every size)."""
    rows = []
    for (dataset, family, label), g in costs.groupby(["dataset", "family", "label"], sort=True):
        rows.append({"dataset": dataset, "family": family, "method": label, "seeds": len(g),
                     "pre-train images": human(g["pre-train_images"].mean()),
                     "pre-train FLOPs": human(g["pre-train_flops"].mean()),
                     "pre-train (min)": f"{g['pre-train_seconds'].mean() / 60:.2f}",
                     "fine-tune images": human(g["fine-tune_images"].mean()),
                     "fine-tune FLOPs": human(g["fine-tune_flops"].mean()),
                     "fine-tune (min)": f"{g['fine-tune_seconds'].mean() / 60:.2f}",
                     "total FLOPs": human(g.total_flops.mean()), "total (min)": f"{g.total_seconds.mean() / 60:.2f}",
                     "params stored to initialise all sizes": human(g.stored.iloc[0]),
                     "run ids": " ".join(sorted(g.run_id))})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["_m"] = out.method.map({m: i for i, m in enumerate(_order(out.method))})
    return out.sort_values(["dataset", "family", "_m"]).drop(columns="_m").reset_index(drop=True)


def ratios(costs: pd.DataFrame) -> pd.DataFrame:
    """(d) The paper's three ratios, ours measured (means over seeds) in FLOPs, images and wall-clock."""
    pub = published().set_index("claim")
    rows = []
    for (dataset, family), g in costs.groupby(["dataset", "family"], sort=True):
        means = g.groupby("label").mean(numeric_only=True)
        if "SWS" not in means.index:
            continue
        sws = means.loc["SWS"]
        scratch = [lab for lab in _order(means.index) if lab.startswith("scratch")]
        pairs = []
        if len(scratch) > 1:
            pairs.append(("S1", f"total training: {scratch[-1]} / SWS", means.loc[scratch[-1]], sws, "total"))
        if "pre-train + fine-tune" in means.index:
            pre = means.loc["pre-train + fine-tune"]
            pairs.append(("S3", "params stored to initialise all sizes: pre-train + fine-tune / SWS", pre, sws,
                          "stored"))
            pairs.append(("S4", "pre-training: pre-train + fine-tune / SWS", pre, sws, "pre-train"))
        for claim, what, num, den, col in pairs:
            row = {"dataset": dataset, "family": family, "claim": claim, "ratio": what}
            if col == "stored":
                ours = num.stored / den.stored
                row["ours (params)"] = f"{ours:.2f}×"
            else:
                for unit, key in (("FLOPs", "flops"), ("images", "images"), ("wall-clock", "seconds")):
                    row[f"ours ({unit})"] = f"{num[f'{col}_{key}'] / den[f'{col}_{key}']:.2f}×"
                ours = num[f"{col}_flops"] / den[f"{col}_flops"]
            row["paper (ImageNet-1K)"] = f"{pub.loc[claim, 'ratio']:g}×"
            row["ours / paper (FLOPs or params)"] = f"{ours / pub.loc[claim, 'ratio']:.2f}"
            rows.append(row)
    out = pd.DataFrame(rows)
    for column in ("paper (ImageNet-1K)", "ours / paper (FLOPs or params)"):  # the paper's columns last
        if column in out:
            out[column] = out.pop(column)
    return out.fillna("")


def claims_table(des: pd.DataFrame, logs: dict[str, pd.DataFrame], costs: pd.DataFrame) -> pd.DataFrame:
    """(e) S1-S4 per dataset: holds / does not hold, with the numbers (means over seeds, test top-1 unless noted)."""
    rows = []
    fam = des[des.kind == "family"]
    for (dataset, family), g in fam.groupby(["dataset", "family"], sort=True):
        acc = g.groupby(["label", "depth"]).test_top1.mean().unstack("label") * 100
        if "SWS" not in acc:
            continue
        cost = costs[(costs.dataset == dataset) & (costs.family == family)].groupby("label").mean(numeric_only=True)
        where = {"dataset": dataset, "family": family}
        scratch = [c for c in _order(acc.columns) if c.startswith("scratch")]
        long = scratch[-1] if len(scratch) > 1 else None  # the longer scratch budget
        if long:
            wins = int((acc.SWS > acc[long]).sum())
            ratio = cost.loc[long, "total_flops"] / cost.loc["SWS", "total_flops"]
            ok = wins == len(acc) and ratio > 1
            gaps = ", ".join(f"d{int(d)}: {v:+.2f}" for d, v in (acc.SWS - acc[long]).items())
            rows.append({**where, "claim": "S1: beats scratch at lower total training cost (paper: 6.6× less)",
                         "verdict": "holds" if ok else "does not hold",
                         "evidence": f"SWS − {long} by depth: {gaps} (better at {wins}/{len(acc)}); total training "
                                     f"FLOPs {long} / SWS = {ratio:.2f}×"})
            first = _val_at(g[g.label == "SWS"], logs, 0)
            final = {lab: _val_at(g[g.label == lab], logs, -1) for lab in scratch}
            better = [d for d in first.index if first[d] > final[long][d]]
            rows.append({**where, "claim": "S2: in some cases better after 1 epoch of fine-tuning",
                         "verdict": "holds" if better else "does not hold",
                         "evidence": "val top-1, SWS after 1 epoch vs " + " / ".join(f"{lab} at its end"
                                                                                      for lab in reversed(scratch))
                                     + ": " + ", ".join(f"d{d}: {first[d]:.2f} vs " + " / ".join(
                                         f"{final[lab][d]:.2f}" for lab in reversed(scratch)) for d in first.index)})
        if "pre-train + fine-tune" in acc:
            pre = acc["pre-train + fine-tune"]
            wins = int((acc.SWS >= pre).sum())
            gaps = ", ".join(f"d{int(d)}: {v:+.2f}" for d, v in (acc.SWS - pre).items())
            stored = cost.loc["pre-train + fine-tune", "stored"] / cost.loc["SWS", "stored"]
            pretrain = cost.loc["pre-train + fine-tune", "pre-train_flops"] / cost.loc["SWS", "pre-train_flops"]
            for claim, value, paper in (("S3: better with fewer parameters stored to initialise all sizes", stored, 20),
                                        ("S4: better with less pre-training", pretrain, 10)):
                ok = wins == len(acc) and value > 1
                rows.append({**where, "claim": f"{claim} (paper: {paper}× fewer)",
                             "verdict": "holds" if ok else "does not hold",
                             "evidence": f"SWS − pre-train + fine-tune by depth: {gaps} (≥ at {wins}/{len(acc)}); "
                                         f"ratio {value:.2f}×"})
    return pd.DataFrame(rows)


def _val_at(g: pd.DataFrame, logs: dict[str, pd.DataFrame], position: int) -> pd.Series:
    """Mean over runs of the val top-1 (%) after fine-tuning epoch ``position`` of each depth."""
    values: dict[int, list[float]] = {}
    for rid, depth in zip(g.run_id, g.depth):
        values.setdefault(int(depth), []).append(fine_tuning_val(logs, rid, depth).iloc[position])
    return pd.Series({d: 100 * sum(v) / len(v) for d, v in sorted(values.items())})


def depth_figure(des: pd.DataFrame, out: Path) -> list[Path]:
    """Test top-1 against Des-Net depth, one panel per dataset, mean ± std over seeds; the Aux-Net as a star."""
    fam = des[des.kind == "family"]
    panels = sorted(set(zip(fam.dataset, fam.family)))
    if not panels:
        return []
    styles = {"SWS": ("tab:green", "v", "-"), "scratch": ("tab:gray", "o", "-"),
              "pre-train + fine-tune": ("tab:purple", "P", "-")}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (dataset, family) in zip(axes[0], panels):
        sub = fam[(fam.dataset == dataset) & (fam.family == family)]
        for label in _order(sub.label):
            g = sub[sub.label == label]
            agg = g.groupby("depth").agg(mean=("test_top1", "mean"), std=("test_top1", "std"),
                                         n=("seed", "nunique"))
            color, marker, line = styles.get(label, ("tab:gray", "o", "--"))
            ax.errorbar(agg.index, agg["mean"] * 100, yerr=agg["std"].fillna(0) * 100, color=color, marker=marker,
                        linestyle=line, capsize=3, label=f"{label} (n={int(agg.n.max())})")
        aux = des[(des.kind == "extra") & (des.dataset == dataset) & (des.family == family) & (des.point == "aux")
                  & (des.label == "SWS")]
        if not aux.empty:
            stages = json.loads(aux.config.iloc[0])["aux_stages"]
            ax.errorbar([sum(stages)], [aux.test_top1.mean() * 100], yerr=[aux.test_top1.std() * 100],
                        color="tab:green", marker="*", markersize=10, linestyle="none", capsize=3,
                        label=f"Aux-Net, {sum(stages)} layers in {len(stages)} shared stages")
        ax.set_xticks(sorted(sub.depth.unique()))
        ax.set_xlabel("Des-Net depth (layers)")
        ax.set_title(f"{dataset}\n{sub.arch.iloc[0]}", fontsize=8)  # two lines: long subset names fit
        ax.grid(alpha=0.3)
        ax.margins(y=0.15)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    axes[0][0].set_ylabel("test top-1 (%)")
    fig.tight_layout()
    return save_figure(fig, out, "sws_accuracy_vs_depth")


def build(df: pd.DataFrame, records: dict[str, Record], out: Path) -> list[Path]:
    des = _des_points(df)
    if des.empty:
        return []
    tables = out / "tables"
    logs = {rid: run_log(records[rid]) for rid in des.run_id.unique()}  # each run's log read once
    costs = cost_frame(des, logs)
    written = write_table(accuracy_table(des), tables, "sws_accuracy",
                          "SWS: test top-1 (%) by Des-Net depth, mean ± std over seeds: SWS (learngene-initialised, "
                          "then fine-tuned) against each size trained from scratch with the same fine-tuning budget "
                          "and with a longer one, and each size pre-trained by distillation then fine-tuned; the "
                          "Aux-Net row is the distilled auxiliary network itself.")
    written += write_table(epochs_table(des, logs), tables, "sws_fine_tuning",
                           "SWS: val top-1 after the first and the last fine-tuning epoch (run logs) and test top-1 "
                           "at the end, mean ± std over seeds.")
    written += write_table(cost_table(costs), tables, "sws_cost",
                           "SWS: training cost per run (every size), mean over seeds: pre-training (Aux-Net or each "
                           "size's distillation), fine-tuning, total; and parameters stored to initialise all sizes. "
                           "The ancestry (teacher) is trained once and counted in none.")
    written += write_table(ratios(costs), tables, "sws_ratios",
                           "SWS: the paper's cost ratios (ImageNet-1K, reports/data/sws_published.csv) beside ours, "
                           "and ours as a fraction of the paper's (in FLOPs; in params for S3).")
    written += write_table(claims_table(des, logs, costs), tables, "sws_claims",
                           "SWS claims S1-S4 (docs/claims.md) checked on the store; test top-1 means over "
                           "seeds unless noted.")
    written += depth_figure(des, out / "figures")
    return written
