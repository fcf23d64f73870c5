"""Build every table and figure under reports/ from the results store (and nothing else).

The whole store becomes one tidy table (one row per run x operating point, ``reports/runs.csv``); every table is a
pandas aggregation of it (mean and std over seeds) written as Markdown, CSV and LaTeX (booktabs), and every figure a
matplotlib plot written as PNG and SVG with fixed metadata, so a rebuild from the same store is byte-identical.
"""
from __future__ import annotations

import json
import re
from dataclasses import MISSING, fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter  # noqa: E402

from progbench.errors import UserError  # noqa: E402
from progbench.protocol import get_method  # noqa: E402
from progbench.rates import machine_of  # noqa: E402
from progbench.store import Record, Store, canonical_json  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "progbench", "figure.dpi": 100, "savefig.dpi": 150, "font.size": 9})
FIG_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
FAMILY_ORDER = ["vgg", "resnet", "vit"]
STYLES = {"teacher": ("k", "*"), "scratch": ("tab:gray", "o"), "kd": ("tab:blue", "s"), "pwl": ("tab:red", "^"),
          "sws": ("tab:green", "v"), "des_scratch": ("tab:gray", "o"), "des_pretrain": ("tab:purple", "P"),
          "bdistil": ("tab:red", "o"), "resched": ("tab:blue", "s"), "noresched": ("tab:green", "^")}
ROLE_LABEL = {"teacher": "teacher", "scratch": "scratch student", "kd": "KD student"}
CURVE_LABEL = {**ROLE_LABEL, "pwl": "PWL, teacher blocks loaded from the input side", "sws": "SWS Des-Nets",
               "des_scratch": "Des-Nets from scratch", "des_pretrain": "Des-Nets pre-trained + fine-tuned",
               "bdistil": "B-DISTIL stages", "resched": "RESCHED stages", "noresched": "NO-RESCHED sizes"}


def variant(spec: dict) -> str:
    """``default``, or the config fields that differ from the method's defaults (``drop=cross``): ablations."""
    try:
        cls = get_method(spec["method"])
    except UserError:  # a user's method not installed here: its config cannot be compared with defaults
        return "default"
    defaults = json.loads(canonical_json({f.name: f.default if f.default is not MISSING else f.default_factory()
                                          for f in fields(cls.Config)}))
    return fields_label({k: v for k, v in spec["config"].items() if defaults.get(k) != v}) or "default"


def fields_label(fields: dict) -> str:
    """``{"drop": ["cross"], "T": 2}`` -> ``T=2;drop=cross``: config (or architecture) fields as labels write them."""
    return ";".join(f"{k}={'+'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(fields.items()))


def config_change(config: str, main: str) -> str:
    """The fields of the JSON config ``config`` that differ from the JSON config ``main`` (``drop=cross``)."""
    mine, theirs = json.loads(config), json.loads(main)
    return fields_label({k: v for k, v in mine.items() if theirs.get(k) != v})


def changed_fields(variant_name: str) -> int:
    """How many config fields a ``variant`` changes from the method's defaults (the main configuration has fewest)."""
    return 0 if variant_name == "default" else len(variant_name.split(";"))


def fallback_main(rows: pd.DataFrame) -> str:
    """The config of a method's main line where no suite declares one (``rows``: its runs' rows with ``config``,
    ``variant`` and ``seed``): the variant changing fewest config fields, then the one with most seeds, then the first
    config in order -- one rule for every section and page."""
    return min(rows.groupby("config"), key=lambda cg: (changed_fields(cg[1].variant.iloc[0]), -cg[1].seed.nunique(),
                                                       cg[0]))[0]


def tidy(records: list[Record]) -> pd.DataFrame:
    """One row per (run, operating point) of every complete record in the store; ``kind`` says whether the point is
    in the run's anytime family or one of its extra (accuracy-only) evaluations."""
    rows = []
    for rec in records:
        spec, task = rec.spec, rec.spec["task"]
        ds = task["dataset"]
        # a declared dataset's declaration and file fingerprint tell it apart in the spec, not in the label
        subset = ",".join(f"{k}={v}" for k, v in sorted(ds.items())
                          if k not in ("name", "val_per_class", "declaration") and v)
        points = [("family", i, p) for i, p in enumerate(rec.metrics["points"])]
        points += [("extra", i, p) for i, p in enumerate(rec.metrics.get("extra_points", []))]
        env_machine = machine_of(rec.env())  # the GPU, else the CPU: what its wall-clock was measured on
        for kind, i, point in points:
            info = point.get("info", {})
            rows.append({
                "run_id": rec.run_id, "method": spec["method"], "method_version": spec["method_version"],
                "config": json.dumps(spec["config"], sort_keys=True), "variant": variant(spec), "role": task["role"],
                "family": task["family"], "arch": task["arch"],
                "arch_kwargs": json.dumps(task.get("arch_kwargs", {}), sort_keys=True),
                "teacher_arch": task.get("teacher_arch"),
                "teacher_run": task.get("teacher_run"),
                "dataset": ds["name"] + (f"[{subset}]" if subset else ""), "seed": task["seed"],
                "epochs": task["budget"]["epochs"], "kind": kind, "point_index": i, "point": point["point"],
                "order": info.get("order"), "teacher_blocks": info.get("teacher_blocks"),
                "depth": info.get("depth"), "init": info.get("init"),
                **{k: point.get(k) for k in ("test_top1", "test_top5", "val_top1", "params", "flops", "weight_bytes",
                                             "load_s", "first_inference_s", "latency_s", "peak_memory_bytes")},
                "train_wall_clock_s": rec.metrics["training"]["wall_clock_s"],
                "train_images_seen": rec.metrics["training"]["images_seen"],
                "train_flops": rec.metrics["training"]["train_flops"],
                "evaluation_s": rec.metrics.get("evaluation_s", float("nan")),
                "extra_params": rec.metrics.get("extra_params", 0),
                "trained_on": env_machine,
            })
    df = pd.DataFrame(rows)
    if not df.empty:
        df["model"] = df.apply(lambda r: "teacher" if r.role == "teacher" else r.method, axis=1)
        df = df.sort_values(["dataset", "family", "model", "variant", "seed", "kind", "point_index"], kind="stable")
    return df.reset_index(drop=True)


def family_order(families) -> list[str]:
    """VGG, ResNet, ViT order, also for families named after them (``bd_vgg``), then the rest by name."""
    def rank(family: str) -> tuple:
        return next((i for i, f in enumerate(FAMILY_ORDER) if f in family), len(FAMILY_ORDER)), family
    return sorted(set(families), key=rank)


def mean_std(values: pd.Series, scale: float = 100.0, digits: int = 2) -> str:
    v = values.dropna() * scale
    if len(v) == 0:
        return "–"
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def human(n: float, unit: str = "") -> str:
    for div, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def baselines_table(df: pd.DataFrame) -> pd.DataFrame:
    """Teacher, scratch student and KD student per dataset and architecture family (mean ± std over seeds)."""
    sub = df[df.model.isin(ROLE_LABEL) & (df.kind == "family")]
    rows = []
    # One row per setting: runs differing in architecture, config, method version or budget are never averaged.
    keys = ["dataset", "family", "model", "arch", "config", "method_version", "epochs"]
    for (dataset, family, model, *_), g in sub.groupby(keys, sort=False):
        rows.append({
            "dataset": dataset, "family": family, "model": ROLE_LABEL[model], "arch": g.arch.iloc[0],
            "epochs": int(g.epochs.iloc[0]),
            "seeds": g.seed.nunique(), "top-1 (%)": mean_std(g.test_top1), "top-5 (%)": mean_std(g.test_top5),
            "params": human(g.params.iloc[0]), "FLOPs/img": human(g.flops.iloc[0]),
            "weights": human(g.weight_bytes.iloc[0], "B"), "load (ms)": mean_std(g.load_s, 1e3, 2),
            "latency (ms)": mean_std(g.latency_s, 1e3, 2), "train (min)": mean_std(g.train_wall_clock_s, 1 / 60, 1),
            "run ids": " ".join(sorted(g.run_id)),
        })
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["_f"] = out.family.map({f: i for i, f in enumerate(FAMILY_ORDER)}).fillna(99)
    out["_m"] = out.model.map({v: i for i, v in enumerate(ROLE_LABEL.values())})
    return out.sort_values(["dataset", "_f", "_m"]).drop(columns=["_f", "_m"]).reset_index(drop=True)


def cost_table(df: pd.DataFrame) -> pd.DataFrame:
    """Training cost per dataset, family and model, summed over runs, with a total: what the store took to fill."""
    runs = df.drop_duplicates("run_id")
    rows = []
    for (dataset, family, model), g in runs.groupby(["dataset", "family", "model"], sort=False):
        rows.append({"dataset": dataset, "family": family, "model": ROLE_LABEL.get(model, model), "runs": len(g),
                     "train wall-clock (min)": round(g.train_wall_clock_s.sum() / 60, 1),
                     "evaluation (min)": round(g.evaluation_s.sum() / 60, 1),
                     "images seen": human(g.train_images_seen.sum()), "train FLOPs": human(g.train_flops.sum())})
    rows.append({"dataset": "all", "family": "", "model": "", "runs": len(runs),
                 "train wall-clock (min)": round(runs.train_wall_clock_s.sum() / 60, 1),
                 "evaluation (min)": round(runs.evaluation_s.sum() / 60, 1),
                 "images seen": human(runs.train_images_seen.sum()), "train FLOPs": human(runs.train_flops.sum())})
    return pd.DataFrame(rows)


# Symbols the tables use, as LaTeX, so every .tex file compiles on its own (pdflatex, utf8 inputenc)
TEX_SYMBOLS = {"±": r"$\pm$", "→": r"$\rightarrow$", "←": r"$\leftarrow$", "≤": r"$\leq$", "≥": r"$\geq$",
               "≈": r"$\approx$", "Δ": r"$\Delta$", "×": r"$\times$", "−": r"$-$", "–": "--", "—": "---",
               "·": r"$\cdot$", "…": r"\ldots{}", "✓": "yes"}


def tex_text(text: str) -> str:
    """Plain text as LaTeX: special characters escaped, the tables' symbols spelled out."""
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}")):
        text = text.replace(a, b)
    return tex_symbols(text)


def tex_symbols(tex: str) -> str:
    for a, b in TEX_SYMBOLS.items():
        tex = tex.replace(a, b)
    return tex


def write_table(df: pd.DataFrame, out: Path, name: str, caption: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.md", out / f"{name}.csv", out / f"{name}.tex"]
    paths[0].write_text(f"{caption}\n\n" + df.to_markdown(index=False, disable_numparse=True) + "\n")
    df.to_csv(paths[1], index=False, lineterminator="\n")
    latex = df.drop(columns=["run ids"], errors="ignore").to_latex(index=False, escape=True, caption=tex_text(caption),
                                                                label=f"tab:{name}")
    paths[2].write_text(tex_symbols(latex))  # cells were escaped by pandas; its caption argument is not
    return paths


def log_axis(ax, formatter) -> None:
    """A log x axis with labelled ticks at 1, 2 and 5 of each decade (ticks inside a single decade too)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(formatter)
    ax.xaxis.set_minor_formatter(NullFormatter())


def save_figure(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = out / f"{name}.{ext}"
        fig.savefig(p, format=ext, metadata=FIG_METADATA[ext], bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths


def slug(text: str) -> str:
    """A file-name-safe form of a dataset or family name."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def accuracy_vs_flops(df: pd.DataFrame, out: Path) -> list[Path]:
    """Test top-1 against FLOPs per image, one figure per (dataset, family): ``accuracy_vs_flops_<family>``; mean ±
    std over seeds as error bars. Anytime families of each method's default configuration (ablations have tables of
    their own). One figure per panel, so each stays readable in a paper or a README (five in a row did not)."""
    df = df[(df.kind == "family") & (df.variant == "default")]
    panels = [(d, f) for d in sorted(df.dataset.unique()) for f in family_order(df.family)
              if ((df.dataset == d) & (df.family == f)).any()]
    written = []
    for dataset, family in panels:
        fig, ax = plt.subplots(figsize=(5.0, 3.8))
        sub = df[(df.dataset == dataset) & (df.family == family)]
        budgets = sub.groupby("model").epochs.agg(["nunique", "min"])  # a method with two budgets: say which is which
        for (model, arch, _, epochs), g in sub.groupby(["model", "arch", "config", "epochs"], sort=True):
            color, marker = STYLES.get(model, (None, "D"))
            two_budgets = budgets.loc[model, "nunique"] > 1
            if two_budgets and epochs != budgets.loc[model, "min"]:
                color = None
            agg = g.groupby("point_index").agg(flops=("flops", "first"), mean=("test_top1", "mean"),
                                                std=("test_top1", "std"), n=("seed", "nunique"))
            ax.errorbar(agg.flops, agg["mean"] * 100, yerr=agg["std"].fillna(0) * 100, color=color, marker=marker,
                        capsize=3, linestyle="-" if len(agg) > 1 else "none",
                        label=f"{CURVE_LABEL.get(model, model)}, {arch}"
                              + (f", {epochs} ep" if two_budgets else "") + f" (n={int(agg.n.max())})")
        log_axis(ax, EngFormatter(places=0))  # 10M, 20M, ... instead of crowded 2x10^7 labels
        ax.margins(x=0.15, y=0.12)
        ax.set_xlabel("FLOPs per image")
        ax.set_ylabel("test top-1 (%)")
        ax.set_title(f"{family}\n{dataset}", fontsize=9)  # two lines: long subset names fit the panel
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)  # never over a point
        fig.tight_layout()
        several = df[df.family == family].dataset.nunique() > 1  # a family on two datasets: name both
        written += save_figure(fig, out, f"accuracy_vs_flops_{slug(family)}" + (f"_{slug(dataset)}" if several
                                                                                 else ""))
    return written


def build_report(results: str | Path = "results", out: str | Path = "reports", readme: str | Path | None = None
                 ) -> list[Path]:
    """Every table, figure and document under ``out``; with ``readme``, also its headline-results block."""
    out = Path(out)
    records = Store(results).records()  # verified once (checksums), then read from memory
    df = tidy(records)
    written: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("tables/*.*"), *out.glob("figures/*.*"), *out.glob("assets/*.*")]:  # only this build's
        stale.unlink()
    tidy_path = out / "runs.csv"
    df.to_csv(tidy_path, index=False, lineterminator="\n", float_format="%.6g")
    written.append(tidy_path)
    if df.empty:
        return written
    table = baselines_table(df)
    written += write_table(table, out / "tables", "baselines",
                           "Teacher, scratch student and KD student per architecture: test top-1/top-5 "
                           "(mean ± std over seeds), params, FLOPs per image, weight bytes, load time (median of "
                           "trials, read + build), batch-1 latency, training wall-clock.")
    written += write_table(cost_table(df), out / "tables", "training_cost",
                           "Cost of the runs in the store: wall-clock of the training epochs (validation included) "
                           "and of the harness's evaluation of every operating point, images seen and training "
                           "FLOPs (one step counted with torch.utils.flop_counter, times the steps).")
    written += accuracy_vs_flops(df, out / "figures")
    # here, not at the top: they build on this module's helpers
    from progbench.reports import bdistil, crossmethod, grid, pwl, sws
    by_id = {r.run_id: r for r in records}
    written += pwl.build(df, by_id, out)
    written += sws.build(df, by_id, out)
    written += bdistil.build(df, by_id, out)
    written += crossmethod.build(df, out)
    grid_runs = grid.grid_runs()  # read by the grid section and, for its main configurations, the interactive page
    written += grid.build(df, by_id, out, grid_runs, store_root=Path(results))
    from progbench.reports import document  # last: it assembles what the others wrote
    written += document.build(records, out)
    from progbench.reports import interactive  # after the document: it reads the same tables
    written += interactive.build(df, by_id, out, mains=grid.main_configs(grid_runs))
    if readme:
        written.append(document.update_readme(Path(readme), out))
    return written
