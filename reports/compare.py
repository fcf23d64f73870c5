"""``progbench compare NAME --suite SUITE``: a new method against every baseline, on the same tasks and teachers.

:func:`plan_comparison` adds the method's runs to a loaded suite through the suite's own resolution
(:meth:`progbench.suite.Suite.add_runs`): by default one run per family and seed where the suite runs ``kd``, so each
gets exactly what KD gets (student architecture, student budget, dataset, teacher run). The runner trains what the
store lacks; :func:`build_comparison` then reads the store and writes, under ``reports/compare/NAME/``, one table
(``comparison.md/.csv/.tex``) and one figure (``accuracy_vs_flops.png/.svg``) of the method beside every other
method stored for the same families, datasets and teacher runs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

from progbench.errors import UserError  # noqa: E402
from progbench.protocol import get_method  # noqa: E402
from progbench.reports.generate import (  # noqa: E402
    CURVE_LABEL,
    STYLES,
    changed_fields,
    family_order,
    human,
    log_axis,
    mean_std,
    save_figure,
    tidy,
    write_table,
)
from progbench.store import Store, canonical_json  # noqa: E402
from progbench.suite import RunSpec, Suite, matches, parse_only  # noqa: E402

SETTING = ["model", "variant", "config", "arch", "epochs", "method_version"]  # rows differing in these never averaged
RANK = {"teacher": 0, "scratch": 1, "kd": 2}  # baselines in this order, then the others by name, then the new method
# the report's colours, except where two methods share a colour there but a panel here
STYLE = {**STYLES, "bdistil": ("tab:brown", "o"), "resched": ("tab:cyan", "s"), "noresched": ("tab:olive", "^")}
NEW_STYLE = {"color": "tab:orange", "marker": "D", "linewidth": 2.5, "markersize": 7, "zorder": 5}


@dataclass
class Comparison:
    method: str  # the method's registered name
    suite: Suite
    runs: list[RunSpec]  # the method's runs, after --only
    teachers: list[RunSpec]  # the teacher runs those name
    families: list[str] = field(default_factory=list)


def plan_comparison(suite: Suite, name: str, method_ref: str | None = None, config: dict | None = None,
                    only: str | None = None) -> Comparison:
    """Add the method's runs to ``suite`` (the families and seeds of its ``kd`` runs, or ``--only family=``'s)."""
    ref = method_ref or name
    cls = get_method(ref)
    if method_ref and cls.name != name:
        raise UserError(f"--method {method_ref} defines method {cls.name!r}, not {name!r}; "
                        f"use `progbench compare {cls.name} --method {method_ref}`")
    wanted = parse_only(only)
    kd = [r for r in suite.runs if r.method == "kd"]
    students = [r for r in suite.runs if not r.is_teacher]
    if "family" in wanted:
        families, where = [wanted["family"]], f"--only family={wanted['family']}"
    else:
        families, where = list(dict.fromkeys(r.family for r in kd)), f"compare {cls.name}"
        if not families:
            known = ", ".join(dict.fromkeys(r.family for r in students))
            raise UserError(f"suite {suite.name} has no kd runs to take families and seeds from; name a family with "
                            f"--only family=NAME (families with runs: {known})")
    runs = []
    for fam in families:
        seeds = (sorted({r.seed for r in kd if r.family == fam})
                 or sorted({r.seed for r in students if r.family == fam}) or [0])
        entry = {"method": ref, "families": [fam], "seeds": seeds, "config": config or {}}
        kd_budgets = {canonical_json(r.spec["task"]["budget"]) for r in kd if r.family == fam}
        if len(kd_budgets) > 1:
            raise UserError(f"suite {suite.name} runs kd in family {fam} under {len(kd_budgets)} budgets; compare "
                            f"needs one to give the method")
        if kd_budgets:  # KD's own budget, also where the suite's kd entry overrides the family's
            entry["budget"] = json.loads(kd_budgets.pop())
        runs += suite.add_runs(entry, where)
    picked = [r for r in runs if matches(r, wanted)]
    if not picked:
        seeds = sorted({r.seed for r in runs})
        raise UserError(f"--only {only!r} selects none of the {len(runs)} {cls.name} run(s) of suite {suite.name} "
                        f"(families {', '.join(families)}; seeds {', '.join(map(str, seeds))})")
    needed = {r.teacher_id for r in picked}
    teachers = [r for r in suite.runs if r.is_teacher and r.run_id in needed]
    return Comparison(cls.name, suite, picked, teachers, list(dict.fromkeys(r.family for r in picked)))


def comparison_frame(store: Store, comparison: Comparison) -> pd.DataFrame:
    """The tidy rows (``reports.generate.tidy``) of the anytime families of every stored run of the compared families
    that shares the method's dataset and teacher run, and of that teacher; ``panel`` is the compared family."""
    records = store.records()
    frames = []
    for fam in comparison.families:
        run = next(r for r in comparison.runs if r.family == fam)
        dataset, teacher = run.spec["task"]["dataset"], run.teacher_id
        same = [rec for rec in records if rec.run_id == teacher or (
            rec.spec["task"]["family"] == fam and rec.spec["task"].get("teacher_run") == teacher
            and rec.spec["task"]["dataset"] == dataset)]
        df = tidy(same)
        if not df.empty:
            frames.append(df.assign(panel=fam, new=df.run_id.isin({r.run_id for r in comparison.runs})))
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    df = df[df.kind == "family"]
    # A stored run of the method in the same setting but with another seed counts as the method too.
    setting = df[SETTING].astype(str).agg("|".join, axis=1)
    df["new"] = setting.isin(set(setting[df.new]))
    return df.reset_index(drop=True)


def _order(item) -> tuple:
    (model, variant, _config, _arch, epochs, _version), g = item
    return bool(g.new.any()), RANK.get(model, len(RANK)), model, variant != "default", variant, epochs


def _groups(df: pd.DataFrame, method: str):
    """(panel, setting) groups in table order: families as the report orders them, baselines, then the method."""
    for panel in family_order(df.panel):
        sub = df[df.panel == panel]
        for setting, g in sorted(sub.groupby(SETTING, sort=True), key=_order):
            yield panel, setting, g


def _reference(df: pd.DataFrame, panel: str, model: str, epochs: int) -> float | None:
    """Mean test top-1 of the default ``model`` (kd, scratch) of a panel, at the method's epochs where it has them."""
    ref = df[(df.panel == panel) & (df.model == model) & (df.variant == "default")]
    if (ref.epochs == epochs).any():
        ref = ref[ref.epochs == epochs]
    if ref.empty:
        return None
    first = ref[ref.config == ref.config.iloc[0]]
    return float(first.groupby("point_index").test_top1.mean().iloc[-1])


def comparison_table(df: pd.DataFrame, method: str) -> pd.DataFrame:
    rows = []
    for panel, (model, variant, _config, arch, epochs, _version), g in _groups(df, method):
        new = bool(g.new.any())
        refs = {m: _reference(df, panel, m, epochs) for m in ("kd", "scratch")} if new else {}
        for _, p in g.groupby("point_index", sort=True):
            top1 = p.test_top1.mean()
            rows.append({
                "family": panel, "method": model, "variant": variant, "point": p.point.iloc[0], "arch": arch,
                "epochs": int(epochs), "seeds": p.seed.nunique(), "top-1 (%)": mean_std(p.test_top1),
                "params": human(p.params.iloc[0]), "FLOPs/img": human(p.flops.iloc[0]),
                "latency (ms)": mean_std(p.latency_s, 1e3, 2), "train (min)": mean_std(p.train_wall_clock_s, 1 / 60, 1),
                "extra params": human(p.extra_params.iloc[0]),
                "Δ top-1 vs KD / scratch (pts)": " / ".join(
                    "–" if ref is None else f"{(top1 - ref) * 100:+.2f}" for ref in refs.values()),
                "run ids": " ".join(sorted(set(p.run_id))),
            })
    return pd.DataFrame(rows)


def comparison_figure(df: pd.DataFrame, method: str, out: Path) -> list[Path]:
    """Test top-1 vs FLOPs per image, one panel per family: the method highlighted, every baseline beside it in its
    default configuration (mean ± std over seeds as error bars)."""
    # one curve per baseline: its default configuration, else the one closest to it (fewest fields changed)
    changed = df.variant.map(changed_fields)
    df = df[df.new | (changed == changed.groupby([df.panel, df.model]).transform("min"))]
    panels = list(dict.fromkeys(panel for panel, _, _ in _groups(df, method)))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for _, (model, variant, _config, arch, epochs, _version), g in (x for x in _groups(df, method)
                                                                          if x[0] == panel):
            agg = g.groupby("point_index").agg(flops=("flops", "first"), mean=("test_top1", "mean"),
                                                std=("test_top1", "std"), n=("seed", "nunique"))
            if g.new.any():
                label = f"{method}{'' if variant == 'default' else f' ({variant})'} (new)"
                style = NEW_STYLE
            else:
                label = CURVE_LABEL.get(model, model)
                color, marker = STYLE.get(model, (None, "x"))
                style = {"color": color, "marker": marker, "linewidth": 1, "markersize": 5, "alpha": 0.85}
            ax.errorbar(agg.flops, agg["mean"] * 100, yerr=agg["std"].fillna(0) * 100, capsize=3,
                        linestyle="-" if len(agg) > 1 else "none",
                        label=f"{label}, {arch}, {epochs} ep (n={int(agg.n.max())})", **style)
        log_axis(ax, EngFormatter(places=0))
        ax.margins(x=0.15, y=0.12)
        ax.set_xlabel("FLOPs per image")
        ax.set_title(f"{method} · {panel}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    axes[0][0].set_ylabel("test top-1 (%)")
    fig.tight_layout()
    return save_figure(fig, out, "accuracy_vs_flops")


def build_comparison(store: Store, comparison: Comparison, out: str | Path) -> tuple[str, list[Path], list[str]]:
    """Write the table and figure; returns the Markdown table, the files written and notes on what is missing."""
    out = Path(out)
    df = comparison_frame(store, comparison)
    missing = [r for r in comparison.runs if not store.check(r.run_id).record]
    if df.empty or missing or not df.new.any():
        raise UserError(f"the store {store.root} lacks runs of {comparison.method} ({len(missing)} missing); "
                        f"run the same `progbench compare` again to train them")
    table = comparison_table(df, comparison.method)
    caption = (f"{comparison.method} against the baselines of suite {comparison.suite.name} on the same datasets and "
               f"teacher runs: test top-1 (mean ± std over the stored seeds), params, FLOPs per image, batch-1 "
               f"latency, training wall-clock, parameters trained but in no operating point, and for "
               f"{comparison.method} its mean minus that of the KD and the scratch student (percentage points).")
    written = write_table(table, out, "comparison", caption)
    written += comparison_figure(df, comparison.method, out)
    notes = []
    done = set(df.run_id)
    for fam in comparison.families:
        teacher = next(r.teacher_id for r in comparison.runs if r.family == fam)
        absent = [r for r in comparison.suite.runs if r.family == fam and r.teacher_id == teacher
                  and r.method != comparison.method and r.run_id not in done]
        if absent:
            notes.append(f"note: {len(absent)} baseline run(s) of family {fam} in suite {comparison.suite.name} are "
                         f"not in the store; `progbench run {comparison.suite.name} --only family={fam}` trains them")
    return (out / "comparison.md").read_text(), written, notes
