"""``progbench compare NAME --suite SUITE``: a new method against every baseline, like with like, anytime-aware.

:func:`plan_comparison` adds the method's runs to a loaded suite through the suite's own resolution
(:meth:`progbench.suite.Suite.add_runs`): by default one run per family and seed where the suite runs ``kd``, so each
gets exactly what KD gets (student architecture, student budget, dataset, teacher run). The runner trains what the
store lacks; :func:`build_comparison` then reads the store.

**Which runs are compared.** One panel per family of the method's runs: every stored run, whatever its family, that
distils from the same teacher run, trains the same student architecture (timm name; sizes may differ) and learns and
is tested on the same dataset (every field of the dataset spec equal but ``train_per_class``), and that teacher run.
Whatever else differs is said in columns, never hidden: the train subset (``train data``) and the budget (``budget``:
the fields that differ from the method's). Runs sharing the teacher but not the architecture or the dataset are left
out, and the notes say which. Another configuration of a method the panel also runs in its main configuration (the
compared one for the method; for a baseline the one with fewest changed config fields, then most runs) is an
ablation: its own table, named by its suite entry (``pwl-no-cross``) where the suite has one, never a baseline.

**What is written** under ``reports/compare/NAME/`` (Markdown, CSV, LaTeX; every caption names the dataset and the
architecture):

* ``comparison``: every point of every compared line (test top-1 mean ± std over seeds, the seeds, params, FLOPs per
  image, weight bytes, load time, latency, training time and images), and for the method's points the best baseline
  at equal or lower cost on each axis.
* ``matched``: per point of the method and per baseline, the baseline's best point (highest mean test top-1) at equal
  or lower FLOPs per image and at equal or lower weight bytes (equal within 0.1 %: weight files differ by their
  header), its top-1 and seeds, and the difference in points; "no baseline point this cheap" when none fits. A
  costlier point is never used.
* ``area``: each line's anytime curve (the best mean top-1 among its points at or below a budget) averaged over
  budgets log-uniform on the shared range: from the costliest of the lines' cheapest points (below it some line has
  nothing to run) to the costliest point of any line (beyond it every curve is flat). The teacher is a reference
  point, not a line; ablations have their own range-free comparison.
* ``ablations``: each ablation's points against its main configuration's at the same point.
* ``loading`` (when the method's points share weights and its runs measured progressive loading): per stage the bytes
  it adds, the bytes loaded so far, when it is ready and when it has answered (warm and cold cache), beside the first
  and last points loaded whole.
* figures: ``accuracy_vs_cost`` (test top-1 against FLOPs and weight bytes per panel, the anytime curves, the shared
  range shaded) and ``loading_timeline`` (bytes loaded against time).

The terminal gets a summary that fits in :data:`WIDTH` columns (:func:`terminal_summary`).
"""
from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

from progbench.data import DatasetSpec  # noqa: E402
from progbench.errors import UserError  # noqa: E402
from progbench.protocol import get_method  # noqa: E402
from progbench.reports.crossmethod import ARCHITECTURES  # noqa: E402
from progbench.reports.crossmethod import area as step_area  # noqa: E402
from progbench.reports.generate import (  # noqa: E402
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
from progbench.reports.grid import LABELS  # noqa: E402
from progbench.store import Record, Store, canonical_json  # noqa: E402
from progbench.suite import RunSpec, Suite, matches, parse_only  # noqa: E402

WIDTH = 120  # the terminal summary's width
MAX_CELL = 36  # longer terminal cells are cut (the files hold them whole)
FITS = 1e-3  # weight bytes equal up to this relative excess: files differ by their header (key names)
AXES = {"flops": ("FLOPs per image", "FLOPs/img", ""), "weight_bytes": ("weight bytes", "weights", "B")}
NONE_FITS = "no baseline point this cheap"
LINE = ["model", "config", "method_version", "family", "budget_json", "dataset"]  # never averaged across
RANK = {"teacher": 0, "scratch": 1, "kd": 2}  # baselines in this order, then the others by label
DATASETS = {"cifar10": "CIFAR-10", "imagenette": "Imagenette", "imagenet1k": "ImageNet-1K", "imagenet": "ImageNet-1K"}
NOTE_MARKS = "¹²³⁴⁵⁶⁷⁸⁹"
# the report's colours, except where two methods share a colour there but a panel here
STYLE = {**STYLES, "bdistil": ("tab:brown", "o"), "resched": ("tab:cyan", "s"), "noresched": ("tab:olive", "^"),
         "pwl": ("tab:red", "^")}
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


# --- which runs: panels of like with like ------------------------------------------------------------------------
def _dataset(spec: dict) -> dict:
    return DatasetSpec.from_dict(spec["task"]["dataset"]).to_dict()


def _like(a: dict, b: dict) -> bool:
    """Same dataset spec in everything but the train subset: the same classes, image size, val carve and test set."""
    return {k: v for k, v in a.items() if k != "train_per_class"} == {k: v for k, v in b.items()
                                                                      if k != "train_per_class"}


def dataset_label(ds: dict) -> str:
    """``CIFAR-10``, ``Imagenette (64 px)``, ``CIFAR-10 (20 test images/class)``: what the panel is tested on."""
    extra = []
    if ds.get("image_size"):
        extra.append(f"{ds['image_size']} px")
    if ds.get("classes"):
        extra.append(f"{len(ds['classes'])} classes")
    if ds.get("test_per_class"):
        extra.append(f"{ds['test_per_class']} test images/class")
    name = DATASETS.get(ds["name"], ds["name"])
    return name + (f" ({', '.join(extra)})" if extra else "")


def arch_label(arch: str) -> str:
    """``VGG (pb_vgg_student_cpu)``: the architecture family and the student's timm name."""
    family = next((label for key, label in ARCHITECTURES.items() if str(arch).startswith(f"pb_{key}")), None)
    return f"{family} ({arch})" if family else str(arch)


@dataclass
class Panel:
    """The method's runs of one family and what they are compared in: dataset, architecture, teacher run."""
    family: str
    dataset: dict
    arch: str
    teacher_run: str
    teacher_arch: str | None
    budget: dict
    excluded: list[str] = field(default_factory=list)  # stored runs sharing the teacher but not like with like

    @property
    def title(self) -> str:
        return f"{dataset_label(self.dataset)} · {arch_label(self.arch)}"


def panels(comparison: Comparison) -> list[Panel]:
    out = []
    for fam in comparison.families:
        run = next(r for r in comparison.runs if r.family == fam)
        task = run.spec["task"]
        out.append(Panel(fam, _dataset(run.spec), task["arch"], run.teacher_id, task.get("teacher_arch"),
                         task["budget"]))
    return out


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _short(v) -> str:
    text = json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else str(v)
    return text if len(text) <= 40 else text[:39] + "…"


def _diff(base: dict, other: dict) -> str:
    """What ``other`` sets differently from ``base``, grouped by top-level key:
    ``epochs=2; optimizer: name=adamw, lr=0.002, no momentum``."""
    a, b = _flat(base), _flat(other)
    groups: dict[str, tuple[list, list]] = {}
    for k in dict.fromkeys(list(b) + list(a)):
        head, _, leaf = k.partition(".")
        if k not in b:
            groups.setdefault(head, ([], []))[1].append(leaf or head)
        elif a.get(k) != b[k]:
            groups.setdefault(head, ([], []))[0].append(f"{leaf}={_short(b[k])}" if leaf else _short(b[k]))
    parts = []
    for head, (changed, unset) in groups.items():
        if head in a or head in b:  # a top-level value: epochs=2
            parts.append(f"{head}={changed[0]}" if changed else f"no {head}")
        else:
            parts.append(f"{head}: " + ", ".join(changed + ([f"no {', '.join(unset)}"] if unset else [])))
    return "; ".join(parts)


def _entry_names(suite: Suite) -> dict[str, str]:
    """Run id -> the ``name`` of the suite entry that made it, where it differs from the method's name."""
    out = {}
    for r in suite.runs:
        name = r.label.removesuffix(f"-{r.family}-s{r.seed}")
        if r.label and name != r.method and not r.is_teacher:
            out[r.run_id] = name
    return out


def _select(panel: Panel, records: list[Record]) -> list[Record]:
    """The panel's teacher run and every stored student run like with like (same teacher run, architecture and
    dataset but for the train subset); fills in ``panel.excluded`` with the runs sharing the teacher run only."""
    same, excluded = [], {}
    for rec in records:
        task = rec.spec["task"]
        if rec.run_id == panel.teacher_run:
            same.append(rec)
        elif task.get("teacher_run") == panel.teacher_run and task["role"] != "teacher":
            why = (f"another architecture, {task['arch']}" if task["arch"] != panel.arch
                   else None if _like(_dataset(rec.spec), panel.dataset) else "another dataset or test split")
            if why:
                excluded.setdefault((task["family"], why), set()).add(rec.spec["method"])
            else:
                same.append(rec)
    panel.excluded = [f"{fam} ({', '.join(sorted(methods))}: {why})"
                      for (fam, why), methods in sorted(excluded.items())]
    return same


def comparison_frame(store: Store, comparison: Comparison, records: list[Record] | None = None,
                     panel_list: list[Panel] | None = None) -> pd.DataFrame:
    """The tidy rows (``reports.generate.tidy``) of every stored run compared in each panel (``panel``: the method's
    family), with ``role`` (method, baseline, teacher, ablation), ``line`` (its label), ``train_data``, ``budget``
    (differences from the method's), ``changed`` (an ablation's config against its main one) and ``new``."""
    records = store.records() if records is None else records
    compared = {r.run_id for r in comparison.runs}
    names = _entry_names(comparison.suite)
    frames = []
    for panel in panels(comparison) if panel_list is None else panel_list:
        same = _select(panel, records)
        df = tidy(same)
        if df.empty:
            continue
        df = df[df.kind == "family"].copy()
        by_id = {rec.run_id: rec for rec in same}
        df["budget_json"] = df.run_id.map({rid: canonical_json(r.spec["task"]["budget"]) for rid, r in by_id.items()})
        df["train_per_class"] = df.run_id.map({rid: _dataset(r.spec)["train_per_class"] for rid, r in by_id.items()})
        frames.append(_roles(df, panel, comparison, compared, names))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def _roles(df: pd.DataFrame, panel: Panel, comparison: Comparison, compared: set[str],
           names: dict[str, str]) -> pd.DataFrame:
    df = df.assign(panel=panel.family, title=panel.title)
    key = df[LINE].astype(str).agg("|".join, axis=1)
    method_keys = set(key[df.run_id.isin(compared)])
    # a stored run of the method in the same setting but with another seed counts as the method too
    df["new"] = key.isin(method_keys)
    main = {}
    students = df[(df.model != "teacher") & ~df.new]
    for model, g in students.groupby("model"):
        if model == comparison.method:
            continue
        runs = g.drop_duplicates("run_id").groupby("config").agg(variant=("variant", "first"), n=("run_id", "size"))
        runs["changes"] = runs.variant.map(changed_fields)
        main[model] = runs.reset_index().sort_values(["changes", "n", "config"], ascending=[True, False, True],
                                                     kind="stable").config.iloc[0]
    method_config = df[df.new].config.iloc[0] if df.new.any() else None
    roles = []
    for model, config, new in zip(df.model, df.config, df.new):
        if model == "teacher":
            roles.append("teacher")
        elif new:
            roles.append("method")
        elif model == comparison.method or config != main.get(model):
            roles.append("ablation")
        else:
            roles.append("baseline")
    df["role"] = roles
    df["main_config"] = [method_config if m == comparison.method else main.get(m) for m in df.model]
    df["train_data"] = df.train_per_class.map(lambda n: "full train split" if pd.isna(n) else f"{int(n)} images/class")
    df["budget"] = [
        "—" if role == "method" else
        f"the teacher's: {_diff(panel.budget, json.loads(b)) or 'same'}" if role == "teacher" else
        (_diff(panel.budget, json.loads(b)) or "same")
        for role, b in zip(df.role, df.budget_json)]
    main_rows = df[df.role.isin(["method", "baseline"])].drop_duplicates("model").set_index("model")
    changed = []
    for _, r in df.iterrows():
        text = ""
        if r.role == "ablation" and r.main_config is not None:
            text = _diff(json.loads(r.main_config), json.loads(r.config))
            if not text and r.model in main_rows.index:  # the same config: another budget, family or version
                ref = main_rows.loc[r.model]
                text = (_diff(json.loads(ref.budget_json), json.loads(r.budget_json))
                        or (f"family {r.family}" if r.family != ref.family else f"version {r.method_version}"))
        changed.append(text)
    df["changed"] = changed
    df["line"] = _line_labels(df, panel, comparison, names)
    return df


def _line_labels(df: pd.DataFrame, panel: Panel, comparison: Comparison, names: dict[str, str]) -> pd.Series:
    """A readable label per line: the method's name, ``KD``, ``B-DISTIL``; an ablation by its suite entry's name;
    lines that would share a label get their family, then their budget's epochs, then their version."""
    key = df[LINE].astype(str).agg("|".join, axis=1)
    labels = {}
    for k, g in df.groupby(key, sort=False):
        first = g.iloc[0]
        if first.role == "teacher":
            labels[k] = "teacher"
        elif first.role == "method":
            labels[k] = comparison.method
        elif first.role == "ablation":
            named = sorted({names[r] for r in g.run_id if r in names})
            base = comparison.method if first.model == comparison.method else LABELS.get(first.model, first.model)
            labels[k] = named[0] if named else f"{base} ({first.changed or 'v' + str(first.method_version)})"
        else:
            labels[k] = LABELS.get(first.model, first.model)
    # disambiguate
    info = df.assign(_key=key).drop_duplicates("_key").set_index("_key")
    for label in {v for v in labels.values() if list(labels.values()).count(v) > 1}:
        ks = [k for k, v in labels.items() if v == label]
        for col, fmt in (("family", "{}"), ("epochs", "{} ep"), ("method_version", "v{}"), ("config", "{}")):
            values = [info.loc[k, col] for k in ks]
            if len(set(map(str, values))) > 1:
                for k, v in zip(ks, values):
                    labels[k] = f"{label} [{fmt.format(v)}]"
                break
    return key.map(labels)


# --- points, matched cost, areas -----------------------------------------------------------------------------------
def _line_order(role: str, model: str, line: str, method: str | None) -> tuple:
    """Teacher, baselines (scratch, KD, then the others in the order the grid names them), the method, ablations
    (the method's first)."""
    known = list(LABELS)
    return ({"teacher": 0, "baseline": 1, "method": 2, "ablation": 3}[role], model != method,
            RANK.get(model, len(RANK)), known.index(model) if model in known else len(known), line)


def points(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (panel, line, point): mean ± std of test top-1 over seeds, the seeds, and each cost as its median,
    minimum and maximum over seeds (a method that picks its members per seed, B-DISTIL, has points of varying cost)."""
    rows = []
    for (panel, line), g in df.groupby(["panel", "line"], sort=False):
        kwargs = g.arch_kwargs.unique()
        for (kw, index), p in g.groupby(["arch_kwargs", "point_index"], sort=True):
            runs = p.drop_duplicates("run_id")
            row = {
                "panel": panel, "title": p.title.iloc[0], "role": p.role.iloc[0], "model": p.model.iloc[0],
                "line": line, "point": p.point.iloc[0] + ("" if len(kwargs) == 1 else f" {kw}"),
                "point_index": int(index), "seeds": int(p.seed.nunique()), "top1": float(p.test_top1.mean()),
                "top1_std": float(p.test_top1.std(ddof=1)) if len(p) > 1 else float("nan"),
                "top1_text": mean_std(p.test_top1), "params": float(p.params.median()),
                "load_s": float(p.load_s.median()), "latency_s": float(p.latency_s.median()),
                "latency_text": mean_std(p.latency_s, 1e3, 2), "train_min": float(runs.train_wall_clock_s.mean() / 60),
                "train_text": mean_std(runs.train_wall_clock_s, 1 / 60, 1),
                "images": float(runs.train_images_seen.mean()), "extra_params": float(p.extra_params.iloc[0]),
                "train_data": p.train_data.iloc[0], "budget": p.budget.iloc[0], "changed": p.changed.iloc[0],
                "family": p.family.iloc[0], "epochs": int(p.epochs.iloc[0]), "variant": p.variant.iloc[0],
                "config": p.config.iloc[0], "run_ids": " ".join(sorted(runs.run_id)),
            }
            for axis in AXES:
                row.update({axis: float(p[axis].median()), f"{axis}_min": float(p[axis].min()),
                            f"{axis}_max": float(p[axis].max())})
            rows.append(row)
    pts = pd.DataFrame(rows)
    if pts.empty:
        return pts
    order = {panel: i for i, panel in enumerate(family_order(pts.panel))}
    pts["_panel"] = pts.panel.map(order)
    method = pts.model[pts.role == "method"].iloc[0] if (pts.role == "method").any() else None
    pts["_line"] = [_line_order(r, m, line, method) for r, m, line in zip(pts.role, pts.model, pts.line)]
    pts = pts.sort_values(["_panel", "_line", "flops", "weight_bytes", "point_index"], kind="stable")
    return pts.drop(columns=["_panel", "_line"]).reset_index(drop=True)


def best_at_or_below(base: pd.DataFrame, cost: float, axis: str) -> pd.Series | None:
    """The baseline point with the highest mean top-1 among those whose cost on ``axis`` (the costliest seed's) is
    at most ``cost`` (weight bytes: within :data:`FITS`); the cheaper one on a tie; None when none is that cheap."""
    limit = cost * (1 + FITS) if axis == "weight_bytes" else cost
    fit = base[base[f"{axis}_max"] <= limit]
    if fit.empty:
        return None
    return fit.sort_values(["top1", axis], ascending=[False, True], kind="stable").iloc[0]


def matched(pts: pd.DataFrame) -> pd.DataFrame:
    """Per point of the method and per baseline line (teacher included) and cost axis: the baseline's best point at
    equal or lower cost and the method's mean top-1 minus its (``delta``, points); NaN when no point is that cheap."""
    rows = []
    for panel, sub in pts.groupby("panel", sort=False):
        method = sub[sub.role == "method"]
        for _, p in method.iterrows():
            for line, base in sub[sub.role.isin(["teacher", "baseline"])].groupby("line", sort=False):
                row = {"panel": panel, "point": p.point, "point_index": p.point_index, "baseline": line}
                for axis in AXES:
                    best = best_at_or_below(base, p[f"{axis}_min"], axis)
                    row[axis] = None if best is None else best
                    row[f"delta_{axis}"] = float("nan") if best is None else (p.top1 - best.top1) * 100
                rows.append(row)
    return pd.DataFrame(rows)


def shared_range(sub: pd.DataFrame, axis: str) -> tuple[float, float]:
    """From the costliest of the lines' cheapest points to the costliest point of any line (method and baselines;
    the teacher is a reference point, ablations are compared apart)."""
    lines = sub[sub.role.isin(["method", "baseline"])].groupby("line")[axis]
    return float(lines.min().max()), float(lines.max().max())


def line_area(g: pd.DataFrame, axis: str, lo: float, hi: float) -> float:
    """Mean over budgets log-uniform in [lo, hi] of the best mean top-1 among the line's points within the budget;
    NaN when the line has no point as cheap as ``lo``."""
    costs, accs = g[axis].to_numpy(), g.top1.to_numpy()
    if costs.min() > lo * (1 + FITS):
        return float("nan")
    if not lo < hi:  # one budget
        return float(accs[costs <= lo * (1 + FITS)].max())
    return step_area(costs, accs, lo, hi, float("nan"))


def areas(pts: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for panel, sub in pts.groupby("panel", sort=False):
        ranges = {axis: shared_range(sub, axis) for axis in AXES}
        for line, g in sub[sub.role.isin(["method", "baseline"])].groupby("line", sort=False):
            row = {"panel": panel, "title": g.title.iloc[0], "line": line, "role": g.role.iloc[0],
                   "points": len(g), "seeds": int(g.seeds.max()), "train_data": g.train_data.iloc[0],
                   "budget": g.budget.iloc[0], "images": g.images.iloc[0], "run_ids": " ".join(sorted(set(
                       " ".join(g.run_ids).split())))}
            for axis in AXES:
                lo, hi = ranges[axis]
                row.update({f"area_{axis}": line_area(g, axis, lo, hi) * 100, f"lo_{axis}": lo, f"hi_{axis}": hi,
                            f"span_{axis}": (g[axis].min(), g[axis].max())})
            rows.append(row)
    return pd.DataFrame(rows)


# --- tables --------------------------------------------------------------------------------------------------------
def _cost(axis: str, value: float) -> str:
    return human(value, AXES[axis][2])


def _pts(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.2f}"


def _best_text(best: pd.Series | None, axis: str) -> str:
    return NONE_FITS if best is None else f"{best.point} ({_cost(axis, best[f'{axis}_max'])})"


def comparison_table(pts: pd.DataFrame, match: pd.DataFrame) -> pd.DataFrame:
    """Every point of every compared line (ablations apart); for the method's points, the baseline (line and point)
    most accurate at equal or lower cost on each axis and the method's lead over it."""
    rows = []
    for _, p in pts[pts.role != "ablation"].iterrows():
        row = {"dataset · architecture": p.title, "family": p.family, "method": p.line, "role": p.role,
               "train data": p.train_data, "budget": p.budget, "point": p.point, "seeds": p.seeds,
               "top-1 (%)": p.top1_text, "params": human(p.params), "FLOPs/img": human(p.flops),
               "weights": human(p.weight_bytes, "B"), "load (ms)": f"{p.load_s * 1e3:.2f}",
               "latency (ms)": p.latency_text, "train (min)": p.train_text, "images seen": human(p.images),
               "extra params": human(p.extra_params)}
        for axis, (_, short, _) in AXES.items():
            text = ""
            if p.role == "method":
                mine = match[(match.panel == p.panel) & (match.point_index == p.point_index)]
                best = max(((r[axis], r.baseline) for _, r in mine.iterrows() if r[axis] is not None),
                           key=lambda t: t[0].top1, default=None)
                text = NONE_FITS if best is None else (f"{best[1]} {best[0].point}: "
                                                       f"{(p.top1 - best[0].top1) * 100:+.2f}")
            row[f"best baseline ≤ {short}: Δ (pts)"] = text
        row["run ids"] = p.run_ids
        rows.append(row)
    return pd.DataFrame(rows)


def matched_table(pts: pd.DataFrame, match: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, m in match.iterrows():
        p = pts[(pts.panel == m.panel) & (pts.role == "method") & (pts.point_index == m.point_index)].iloc[0]
        base = pts[(pts.panel == m.panel) & (pts.line == m.baseline)].iloc[0]
        row = {"dataset · architecture": p.title, "point": p.point, "FLOPs/img": human(p.flops),
               "weights": human(p.weight_bytes, "B"), "top-1 (%)": p.top1_text, "seeds": p.seeds,
               "baseline": m.baseline, "its train data": base.train_data, "its budget": base.budget}
        ids = set(p.run_ids.split())
        for axis, (_, short, _) in AXES.items():
            best = m[axis]
            row[f"its best ≤ {short}"] = _best_text(best, axis)
            row[f"its top-1 (%) ≤ {short}"] = "–" if best is None else best.top1_text
            row[f"its seeds ≤ {short}"] = "–" if best is None else str(best.seeds)
            row[f"Δ top-1 ≤ {short} (pts)"] = _pts(m[f"delta_{axis}"])
            if best is not None:
                ids |= set(best.run_ids.split())
        row["run ids"] = " ".join(sorted(ids))
        rows.append(row)
    return pd.DataFrame(rows)


def area_table(ar: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, a in ar.iterrows():
        row = {"dataset · architecture": a.title, "method": a.line, "role": a.role, "points": a.points,
               "seeds": a.seeds, "train data": a.train_data, "budget": a.budget, "images seen": human(a.images)}
        for axis, (_, short, _) in AXES.items():
            lo, hi = a[f"span_{axis}"]
            row[f"{short} covered"] = f"{_cost(axis, lo)}–{_cost(axis, hi)}" if hi > lo else _cost(axis, lo)
            row[f"shared range, {short}"] = f"{_cost(axis, a[f'lo_{axis}'])}–{_cost(axis, a[f'hi_{axis}'])}"
            row[f"area, {short} (pts)"] = "–" if math.isnan(a[f"area_{axis}"]) else f"{a[f'area_{axis}']:.2f}"
        row["run ids"] = a.run_ids
        rows.append(row)
    return pd.DataFrame(rows)


def ablation_table(pts: pd.DataFrame) -> pd.DataFrame:
    """Each ablation's points beside its main configuration's same point (by position, cheapest first)."""
    rows = []
    for (panel, line), g in pts[pts.role == "ablation"].groupby(["panel", "line"], sort=False):
        sub = pts[(pts.panel == panel) & (pts.role != "ablation") & (pts.model == g.model.iloc[0])]
        main = sub[sub.config == sub.config.iloc[0]] if not sub.empty else sub
        # the line of the main configuration: the method, else the baseline in the main config
        main_line = main.line.iloc[0] if not main.empty else "–"
        main = main[main.line == main_line]
        for _, p in g.iterrows():
            ref = main[main.point_index == p.point_index]
            same = not ref.empty and ref.point.iloc[0] == p.point
            rows.append({"dataset · architecture": p.title, "ablation": line, "of": main_line,
                         "changed": p.changed or "–", "train data": p.train_data, "point": p.point, "seeds": p.seeds,
                         "FLOPs/img": human(p.flops), "weights": human(p.weight_bytes, "B"),
                         "top-1 (%)": p.top1_text, "top-1 of the main configuration (%)": ref.top1_text.iloc[0]
                         if same else "–", "Δ top-1 (pts)": _pts((p.top1 - ref.top1.iloc[0]) * 100) if same else "–",
                         "run ids": p.run_ids})
    return pd.DataFrame(rows)


# --- progressive loading -----------------------------------------------------------------------------------------
def loading_frame(pts: pd.DataFrame, df: pd.DataFrame, records: dict[str, Record]) -> pd.DataFrame:
    """The method's measured progressive loading per panel and cache: each stage (the median over runs of each run's
    median), its new and cumulative bytes, and the first and last points loaded whole (one file each)."""
    rows = []
    for panel, sub in df[df.role == "method"].groupby("panel", sort=False):
        loads = {rid: records[rid].metrics.get("progressive_loading") for rid in sorted(sub.run_id.unique())}
        loads = {rid: v for rid, v in loads.items() if v and "skipped" not in v}
        if not loads:
            continue
        mine = pts[(pts.panel == panel) & (pts.role == "method")].sort_values("point_index")
        for cache in ("warm", "cold"):
            stages = [pd.DataFrame(v[cache]["stages"]).assign(index=range(len(v[cache]["stages"])), run_id=rid)
                      for rid, v in loads.items()]
            st = pd.concat(stages, ignore_index=True)
            base = {"panel": panel, "title": sub.title.iloc[0], "cache": cache, "runs": len(loads),
                    "trials": int(max(v["trials"] for v in loads.values())),
                    "run_ids": " ".join(sorted(loads))}
            loaded = 0.0
            for index, g in st.groupby("index", sort=True):
                loaded += float(g.new_bytes.median())
                top1 = mine[mine.point_index == index]
                rows.append({**base, "what": "stage", "index": int(index), "point": g.point.iloc[0],
                             "new_bytes": float(g.new_bytes.median()), "loaded_bytes": loaded,
                             "load_s": float(g.load_s.median()), "ready_s": float(g.ready_s.median()),
                             "answer_s": float(g.answer_s.median()),
                             "top1_text": top1.top1_text.iloc[0] if not top1.empty else "–"})
            for role, p in (("first", mine.iloc[0]), ("last", mine.iloc[-1])):
                whole = pd.DataFrame([v[cache][role] for v in loads.values()])
                rows.append({**base, "what": f"{role} point, one file, loaded whole", "index": -1, "point": p.point,
                             "new_bytes": p.weight_bytes, "loaded_bytes": p.weight_bytes,
                             "load_s": float(whole.load_s.median()), "ready_s": float(whole.ready_s.median()),
                             "answer_s": float(whole.answer_s.median()), "top1_text": p.top1_text})
    return pd.DataFrame(rows)


def loading_table(tl: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in tl.iterrows():
        rows.append({"dataset · architecture": r.title, "cache": r.cache,
                     "stage": r.point if r.what == "stage" else f"{r.point} ({r.what})",
                     "new bytes": human(r.new_bytes, "B"), "bytes loaded": human(r.loaded_bytes, "B"),
                     "load (ms)": f"{r.load_s * 1e3:.2f}", "ready at (ms)": f"{r.ready_s * 1e3:.2f}",
                     "answered at (ms)": f"{r.answer_s * 1e3:.2f}", "top-1 (%)": r.top1_text,
                     "runs × trials": f"{r.runs} × {r.trials}", "run ids": r.run_ids})
    return pd.DataFrame(rows)


# --- figures -------------------------------------------------------------------------------------------------------
def accuracy_figure(pts: pd.DataFrame, method: str) -> plt.Figure:
    """Test top-1 against FLOPs per image and weight bytes, one row per panel: each line's points (mean ± std over
    seeds) and anytime curve (the step line), the method highlighted, the teacher as a star, the shared range shaded;
    each title names the dataset and the architecture."""
    main = pts[pts.role != "ablation"]
    panel_names = list(dict.fromkeys(main.panel))
    fig, axes = plt.subplots(len(panel_names), len(AXES), figsize=(5.2 * len(AXES), 4.2 * len(panel_names)),
                             squeeze=False)
    for row, panel in enumerate(panel_names):
        sub = main[main.panel == panel]
        own_data = sub[sub.role == "method"].train_data.iloc[0]
        for col, (axis, (name, _short, unit)) in enumerate(AXES.items()):
            ax = axes[row][col]
            lo, hi = shared_range(sub, axis)
            ax.axvspan(lo, hi, color="0.92", zorder=0, label="shared range of the area")
            for line, g in sub.groupby("line", sort=False):
                g = g.sort_values(axis)
                x, y = g[axis].to_numpy(), g.top1.to_numpy() * 100
                role = g.role.iloc[0]
                if role == "method":
                    style = NEW_STYLE
                elif role == "teacher":
                    style = {"color": "k", "marker": "*", "markersize": 10, "linewidth": 1}
                else:
                    color, marker = STYLE.get(g.model.iloc[0], (None, "x"))
                    style = {"color": color, "marker": marker, "linewidth": 1, "markersize": 5, "alpha": 0.85}
                label = f"{line}{'' if g.train_data.iloc[0] == own_data else f', {g.train_data.iloc[0]}'}"
                bars = ax.errorbar(x, y, yerr=np.nan_to_num(g.top1_std.to_numpy()) * 100, capsize=3,
                                   linestyle="none", label=f"{label} (n={int(g.seeds.max())})", **style)
                if role != "teacher":
                    best = np.maximum.accumulate(y)  # the anytime curve: the best point within the budget
                    ax.step(np.append(x, max(hi, x.max())), np.append(best, best[-1]), where="post",
                            color=bars.lines[0].get_color(), alpha=0.6,
                            linewidth=2 if role == "method" else 1)
            log_axis(ax, EngFormatter(unit=unit, places=0))
            ax.margins(x=0.1, y=0.1)
            ax.set_xlabel(name)
            ax.set_title(f"{method} · {sub.title.iloc[0]}\n{name}", fontsize=9)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("test top-1 (%)")
        axes[row][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def loading_figure(tl: pd.DataFrame, method: str) -> plt.Figure:
    """Bytes loaded against time since the start of loading (stage ready), warm and cold cache, one panel each; the
    first and last points loaded whole as open markers."""
    panel_names = list(dict.fromkeys(tl.panel))
    fig, axes = plt.subplots(1, len(panel_names), figsize=(5.6 * len(panel_names), 4.0), squeeze=False)
    for ax, panel in zip(axes[0], panel_names):
        sub = tl[tl.panel == panel]
        for cache, color in (("warm", "tab:orange"), ("cold", "tab:blue")):
            g = sub[sub.cache == cache]
            st = g[g.what == "stage"]
            x = np.concatenate([[0.0], st.ready_s.to_numpy() * 1e3])
            y = np.concatenate([[0.0], st.loaded_bytes.to_numpy()])
            ax.step(x, y, where="post", color=color, label=f"{method} stages, {cache} cache")
            ax.plot(st.ready_s * 1e3, st.loaded_bytes, "o", color=color, ms=4)
            if cache == "warm":  # each stage's accuracy, staggered so that close stages stay readable
                for i, (_, s) in enumerate(st.iterrows()):
                    ax.annotate(f"{s.point}: {s.top1_text.split(' ')[0]} %", (s.ready_s * 1e3, s.loaded_bytes),
                                fontsize=6, xytext=(-4, 6 + 9 * (i % 3)), textcoords="offset points", ha="right",
                                arrowprops={"arrowstyle": "-", "color": "0.6", "linewidth": 0.5})
            for (_, w), marker in zip(g[g.what != "stage"].iterrows(), ("s", "D")):
                ax.plot(w.ready_s * 1e3, w.loaded_bytes, marker, mfc="none", mec=color, ms=8,
                        label=f"{w.what.split(',')[0]} ({w.point}) whole, {cache}")
        ax.set_ylim(top=sub.loaded_bytes.max() * 1.25)  # room for the labels
        ax.yaxis.set_major_formatter(EngFormatter(unit="B", places=1))
        ax.set_xlabel("time since the start of loading until ready (ms, median)")
        ax.set_ylabel("bytes loaded")
        ax.set_title(f"{method} progressive loading · {sub.title.iloc[0]}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


# --- the terminal --------------------------------------------------------------------------------------------------
def _cut(text: str, limit: int = MAX_CELL) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def text_table(df: pd.DataFrame, keep: int = 1, width: int = WIDTH, wide: str | None = None) -> str:
    """A plain-text table (columns left-aligned, numbers right-aligned) at most ``width`` characters wide: when too
    wide, its columns are split into blocks, each repeating the first ``keep`` columns. Cells are cut at
    :data:`MAX_CELL` characters, except those of column ``wide`` (the last), which may take the width left."""
    cols = list(df.columns)
    limit = {c: MAX_CELL for c in cols}
    widths = {c: max([len(_cut(c))] + [len(_cut(v)) for v in df[c].astype(str)]) for c in cols if c != wide}
    if wide is not None:
        limit[wide] = max(MAX_CELL, width - sum(w + 2 for w in widths.values()))
    cells = {c: [_cut(v, limit[c]) for v in df[c].astype(str)] for c in cols}
    heads = {c: _cut(c, limit[c]) for c in cols}
    widths = {c: max([len(heads[c])] + [len(v) for v in cells[c]]) for c in cols}
    numeric = {c: c != wide and c not in cols[:keep] and all(
        v.replace(".", "").replace("+", "").replace("-", "").replace(" ", "").replace("(", "").replace(")", "")
        .isdigit() or v in ("–", "none") for v in cells[c]) for c in cols}

    def render(block: list[str]) -> list[str]:
        def fmt(c, v):
            return v.rjust(widths[c]) if numeric[c] else v.ljust(widths[c])
        lines = ["  ".join(fmt(c, heads[c]) for c in block).rstrip()]
        lines += ["  ".join(fmt(c, cells[c][i]) for c in block).rstrip() for i in range(len(df))]
        return lines

    head, rest = cols[:keep], cols[keep:]
    blocks, current = [], list(head)
    for c in rest:
        if current != head and sum(widths[x] + 2 for x in current + [c]) - 2 > width:
            blocks.append(current)
            current = list(head)
        current.append(c)
    blocks.append(current)
    out = []
    for i, block in enumerate(blocks):
        out += ([""] if i else []) + [line[:width] for line in render(block)]
    return "\n".join(out)


def _wrap(text: str, indent: str = "") -> str:
    return textwrap.fill(text, WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def terminal_summary(method: str, pts: pd.DataFrame, match: pd.DataFrame, ar: pd.DataFrame, tl: pd.DataFrame,
                     notes: dict[str, list[str]], panel_list: list[Panel]) -> str:
    """What ``progbench compare`` prints: per panel the baselines (training differences as footnotes), the method's
    lead over each baseline's best point at equal or lower cost on each axis, the areas, ablations and loading; at
    most :data:`WIDTH` columns wide."""
    out = []
    by_family = {p.family: p for p in panel_list}
    for panel, sub in pts.groupby("panel", sort=False):
        info = by_family[panel]
        teacher = sub[sub.role == "teacher"]
        out.append(_wrap(f"{method} · {sub.title.iloc[0]} · family {panel} · teacher run {info.teacher_run}"
                         + (f" ({teacher.top1_text.iloc[0]} %)" if not teacher.empty else "")))
        base = sub[sub.role.isin(["teacher", "baseline"])].drop_duplicates("line")
        own_data = sub[sub.role == "method"].train_data.iloc[0]
        marks, texts = {}, {}
        for _, b in base.iterrows():
            if b.role == "teacher":
                continue
            why = [] if b.family == panel else [f"family {b.family}"]
            why += [] if b.train_data == own_data else [f"trained on {b.train_data}" + (
                "" if own_data == "full train split" else f" ({method}: {own_data})")]
            why += [] if b.budget == "same" else [f"budget {b.budget}"]
            if why:
                text = "; ".join(why)
                texts.setdefault(text, NOTE_MARKS[len(texts) % len(NOTE_MARKS)])
                marks[b.line] = texts[text]
        named = [f"{line}{marks.get(line, '')}" for line in base.line]
        out.append(_wrap(f"baselines (same teacher run, architecture and test data): {', '.join(named)}", "  "))
        out += [_wrap(f"{mark} {text}", "  ") for text, mark in texts.items()]
        mine = sub[sub.role == "method"]
        m = match[match.panel == panel]
        for axis, (name, short, _) in AXES.items():
            rows = []
            for _, p in mine.iterrows():
                row = {"point": p.point, short: _cost(axis, p[axis]), "top-1 (n)": f"{p.top1 * 100:.2f} ({p.seeds})"}
                for line in base.line:
                    r = m[(m.point_index == p.point_index) & (m.baseline == line)]
                    row[f"{line}{marks.get(line, '')}"] = "none" if r.empty or r[axis].iloc[0] is None else \
                        _pts(r[f"delta_{axis}"].iloc[0])
                rows.append(row)
            out += ["", _wrap(f"Δ top-1 (pts): each {method} point minus each baseline's best point at equal or "
                              f"lower {name} (mean over seeds; none: {NONE_FITS})"),
                    text_table(pd.DataFrame(rows), keep=1)]
        a = ar[ar.panel == panel]
        ranges = ", ".join(f"{short} {_cost(axis, a[f'lo_{axis}'].iloc[0])}–{_cost(axis, a[f'hi_{axis}'].iloc[0])}"
                           for axis, (_, short, _) in AXES.items())
        rows = [{"method": f"{r.line}{marks.get(r.line, '')}", "points": r.points, "seeds": r.seeds,
                 **{f"area, {short}": "–" if math.isnan(r[f"area_{axis}"]) else f"{r[f'area_{axis}']:.2f}"
                    for axis, (_, short, _) in AXES.items()}} for _, r in a.iterrows()]
        out += ["", _wrap(f"area under the anytime curve (best top-1 within the budget, mean over log-uniform budgets) "
                          f"on the shared range: {ranges}"), text_table(pd.DataFrame(rows))]
        abl = sub[sub.role == "ablation"]
        if not abl.empty:
            table = ablation_table(sub)
            rows = [{"ablation": line, "of": g["of"].iloc[0], "seeds": int(g.seeds.max()),
                     "Δ top-1 per point, cheapest first (pts)": " ".join(g["Δ top-1 (pts)"])}
                    for line, g in table.groupby("ablation", sort=False)]
            out += ["", "ablations (not baselines): each point minus its main configuration's same point",
                    text_table(pd.DataFrame(rows), wide="Δ top-1 per point, cheapest first (pts)")]
        t = tl[(tl.panel == panel) & (tl.cache == "warm")] if not tl.empty else tl
        if not t.empty:
            rows = [{"stage": r.point if r.what == "stage" else f"{r.point}, whole",
                     "new bytes": human(r.new_bytes, "B"),
                     "loaded": human(r.loaded_bytes, "B"), "ready (ms)": f"{r.ready_s * 1e3:.2f}",
                     "answered (ms)": f"{r.answer_s * 1e3:.2f}", "top-1 (%)": r.top1_text} for _, r in t.iterrows()]
            out += ["", _wrap(f"progressive loading of {method} (warm cache; median of {t.runs.iloc[0]} run(s) × "
                              f"{t.trials.iloc[0]} trials; cold cache in comparison_loading.md)"),
                    text_table(pd.DataFrame(rows))]
        for note in notes.get(panel, []):
            out.append(_wrap(note, "  "))
        out.append("")
    return "\n".join(out)


# --- all of it -----------------------------------------------------------------------------------------------------
def _caption(method: str, panel_list: list[Panel], what: str) -> str:
    where = "; ".join(f"{p.title}, family {p.family}, teacher run {p.teacher_run}" for p in panel_list)
    return f"{method} on {where}: {what}"


def build_comparison(store: Store, comparison: Comparison, out: str | Path) -> tuple[str, list[Path], list[str]]:
    """Write the tables and figures; returns the terminal summary, the files written and notes on what is missing
    or left out (also in the summary)."""
    out = Path(out)
    records = store.records()
    panel_list = panels(comparison)
    df = comparison_frame(store, comparison, records, panel_list)
    missing = [r for r in comparison.runs if not store.check(r.run_id).record]
    if df.empty or missing or not df.new.any():
        raise UserError(f"the store {store.root} lacks runs of {comparison.method} ({len(missing)} missing); "
                        f"run the same `progbench compare` again to train them")
    panel_list = [p for p in panel_list if p.family in set(df.panel)]
    method = comparison.method
    pts = points(df)
    match = matched(pts)
    ar = areas(pts)
    by_id = {r.run_id: r for r in records}
    tl = loading_frame(pts, df, by_id)
    caption = {
        "comparison": "every point of the method, its baselines (every stored run on the same teacher run, student "
                      "architecture and test data, whatever its family; what it trained on and its budget's "
                      "differences from the method's in columns) and the teacher: test top-1 (mean ± std over the "
                      "seeds), params, FLOPs per image, weight bytes, load time, batch-1 latency, training wall-clock "
                      "and images, parameters trained but in no point; for the method's points, the most accurate "
                      "baseline point at equal or lower cost and the method's lead over it (percentage points). "
                      "Ablations: comparison_ablations.",
        "matched": "for each point of the method and each baseline, the baseline's most accurate point (mean test "
                   "top-1 over its seeds) at equal or lower FLOPs per image and at equal or lower weight bytes (equal "
                   f"within {FITS:.1%}: weight files differ by their header; a baseline point's cost is its costliest "
                   f"seed's), and the method's mean minus it (points); '{NONE_FITS}' when no point of it fits.",
        "area": "area under each line's anytime curve (the best mean test top-1 among its points at or below a "
                "budget), averaged over budgets log-uniform on the shared range (from the costliest of the lines' "
                "cheapest points, below which some line has nothing to run, to the costliest point of any line, "
                "beyond which every curve is flat), on FLOPs per image and on weight bytes; the teacher is a "
                "reference point, not a line; ablations: comparison_ablations.",
        "ablations": "ablations (another configuration of a method the panel runs in its main configuration; named "
                     "by their suite entry where the suite has one), kept apart from the baselines: each point "
                     "against the main configuration's same point (test top-1, mean ± std over seeds; Δ in points).",
        "loading": "the method's progressive loading as measured in its runs: per stage the bytes it adds and the "
                   "bytes loaded so far, its load time, when it is ready and when it has answered since the start of "
                   "loading (medians over runs of each run's median over trials; warm and cold page cache), beside "
                   "its first and last points each loaded whole from one file.",
    }
    written = write_table(comparison_table(pts, match), out, "comparison",
                          _caption(method, panel_list, caption["comparison"]))
    written += write_table(matched_table(pts, match), out, "comparison_matched",
                           _caption(method, panel_list, caption["matched"]))
    written += write_table(area_table(ar), out, "comparison_area", _caption(method, panel_list, caption["area"]))
    abl = ablation_table(pts)
    if not abl.empty:
        written += write_table(abl, out, "comparison_ablations", _caption(method, panel_list, caption["ablations"]))
    if not tl.empty:
        written += write_table(loading_table(tl), out, "comparison_loading",
                               _caption(method, [p for p in panel_list if p.family in set(tl.panel)],
                                        caption["loading"]))
        written += save_figure(loading_figure(tl, method), out, "loading_timeline")
    written += save_figure(accuracy_figure(pts, method), out, "accuracy_vs_cost")
    notes: dict[str, list[str]] = {}
    done = set(df.run_id)
    for p in panel_list:
        if p.excluded:
            notes.setdefault(p.family, []).append(
                f"note: left out, sharing the teacher run but not like with like: {'; '.join(p.excluded)}")
        absent = [r for r in comparison.suite.runs if not r.is_teacher and r.teacher_id == p.teacher_run
                  and r.spec["task"]["arch"] == p.arch and _like(_dataset(r.spec), p.dataset)
                  and r.method != method and r.run_id not in done]
        if absent:
            fams = sorted({r.family for r in absent})
            notes.setdefault(p.family, []).append(
                f"note: {len(absent)} baseline run(s) of suite {comparison.suite.name} on this teacher run are not in "
                f"the store; `progbench run {comparison.suite.name} --only family={fams[0]}` trains them"
                + (f" (families {', '.join(fams)})" if len(fams) > 1 else ""))
        if p.family not in (set(tl.panel) if not tl.empty else set()):
            ids = set(df[df.new & (df.panel == p.family)].run_id)
            skipped = sorted({(by_id[r].metrics.get("progressive_loading") or {}).get("skipped") for r in ids} - {None})
            if skipped:
                notes.setdefault(p.family, []).append(f"note: no loading timeline: {skipped[0]}")
    text = terminal_summary(method, pts, match, ar, tl, notes, panel_list)
    return text, written, [n for ns in notes.values() for n in ns]

