"""The report as one page to browse, ``reports/index.html``, that fetches nothing when opened from a file: plotly.js and
the tables' sort-and-filter script are written beside it under ``reports/assets/``.

Per cell (dataset × architecture) an accuracy-against-cost plot whose cost axis is picked with the buttons above it
(FLOPs, weight bytes, latency, load time, training FLOPs, training time), methods shown or hidden from the legend,
error bars from the seeds, and a hover card per point with its method, test top-1, cost, seeds and run ids; the
claims as a verdict matrix (claim × cell) linking to the claims tables' rows; the PWL loading timeline, warm and cold;
and every table of the report, sortable and filterable, read from the same CSVs as ``README.md``/``report.html``.

Every number comes from the tidy table (``reports/runs.csv``'s frame) or from a table the report modules wrote; the
plots aggregate the tidy table the way the tables do (mean and std over seeds, ``generate.mean_std`` for the text).
The page is rebuilt byte-identically: fixed element ids, no timestamps, figures as JSON from one encoder.
"""
from __future__ import annotations

import functools
import html
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.io.json import to_json_plotly
from plotly.offline import get_plotlyjs

from progbench.errors import UserError
from progbench.protocol import get_method
from progbench.reports import document, pwl
from progbench.reports.crossmethod import ARCHITECTURES, architecture_label
from progbench.reports.generate import (
    FAMILY_ORDER,
    changed_fields,
    config_change,
    fallback_main,
    family_order,
    human,
    mean_std,
    slug,
)
from progbench.store import Record

PAGE = "index.html"
ASSETS = "assets"
TABLES_JS = Path(__file__).parent / "static" / "tables.js"


@dataclass(frozen=True)
class CostAxis:
    column: str  # in the tidy table
    button: str
    title: str
    hover: str
    scale: float  # from the tidy table's unit to the one drawn
    unit: str
    counted: bool  # counted (FLOPs, bytes): shown with SI prefixes; timed: mean ± std over seeds
    digits: int = 2


COST_AXES = (
    CostAxis("flops", "FLOPs", "FLOPs per image", "FLOPs per image", 1.0, "", True),
    CostAxis("weight_bytes", "weight bytes", "bytes of weights loaded", "weights", 1.0, "B", True),
    CostAxis("latency_s", "latency", "batch-1 latency (ms; each run timed in its own process)", "batch-1 latency",
             1e3, "ms", False, 3),
    CostAxis("load_s", "load time", "load time (ms; read + build, median of trials)", "load time", 1e3, "ms", False),
    CostAxis("train_flops", "training FLOPs", "training FLOPs of the whole run (its points share it)",
             "training FLOPs (run)", 1.0, "", True),
    CostAxis("train_wall_clock_s", "training time", "training wall-clock of the whole run (min; its points share it)",
             "training time (run)", 1 / 60, "min", False, 1),
)
# model: (legend name, colour, marker); colours are matplotlib's tab10, as in the static figures
MODELS = {
    "teacher": ("teacher", "#000000", "star"), "scratch": ("scratch", "#7f7f7f", "circle"),
    "kd": ("KD", "#1f77b4", "square"), "pwl": ("PWL", "#d62728", "triangle-up"),
    "sws": ("SWS Des-Nets", "#2ca02c", "triangle-down"), "des_scratch": ("Des-Nets from scratch", "#8c564b", "circle"),
    "des_pretrain": ("Des-Nets pre-trained + fine-tuned", "#e377c2", "cross"),
    "bdistil": ("B-DISTIL", "#9467bd", "diamond"), "resched": ("RESCHED", "#17becf", "square"),
    "noresched": ("NO-RESCHED", "#bcbd22", "triangle-up"),
}
OTHER_MODEL = ("#ff7f0e", "x")
DASHES = ("solid", "dash", "dot", "dashdot")  # a method's second, third... setting in a cell
SETTING = ["model", "family", "dataset", "arch", "teacher_arch", "config", "epochs", "method_version"]
FILTER_COLUMNS = ("dataset", "family", "architecture", "arch", "method", "model", "order", "claim", "verdict", "cache")
VERDICT_CLASS = {"holds": "holds", "does not hold": "fails"}  # anything else is inconclusive
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
EXPLORER = "Accuracy against cost"
CLAIMS_INTRO = ("Every claim checked, per dataset and architecture, from the claims tables of each paper's section "
                "below (their evidence columns give the numbers), then per family.")
STYLE = document.STYLE + """
nav ol{columns:2}.plot{min-height:520px;margin:.2em 0 1.5em}h3{margin:1.2em 0 0}
.tools{display:flex;flex-wrap:wrap;gap:.4em 1em;align-items:center;font-size:12px;margin:.3em 0}
.tools select,.tools input{font-size:12px}.count{color:#666}
table.data th{cursor:pointer;user-select:none;position:sticky;top:0;background:#fff}
table.data th[aria-sort=ascending]::after{content:" \\25B2"}
table.data th[aria-sort=descending]::after{content:" \\25BC"}
td.ids{font-family:monospace;font-size:11px;min-width:18em}td.ids span,td.short{white-space:nowrap}
tr:target{background:#fff3a0}
.wrap{max-height:36em;overflow:auto}
table.matrix td{text-align:center;min-width:7em}table.matrix tbody th{border-bottom:1px solid #ddd;font-weight:normal}
table.matrix td a{color:inherit;text-decoration:none;display:block}
.holds{background:#cdeccd}.fails{background:#f8cfcf}.inconclusive{background:#fbe9b0}.mixed{background:#e4e4e4}
.key span{padding:1px 8px;margin-right:.5em}details{margin:.5em 0 1em}summary{cursor:pointer;font-size:13px}"""


def family_cells(df: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """family -> (dataset, architecture): the dataset without its subset, and the architecture most of the family's
    students have (a family's teacher may be another architecture: SWS distils from a ResNet)."""
    cells = {}
    for family, g in df.groupby("family"):
        students = g[g.role != "teacher"]
        g = students if not students.empty else g
        counts = Counter(g.drop_duplicates("run_id").arch.map(architecture_label))
        label = min(counts, key=lambda a: (-counts[a], a))
        cells[family] = (g.dataset.iloc[0].split("[")[0], label)
    return cells


def _cell_order(cells) -> list[tuple[str, str]]:
    rank = {label: i for i, label in enumerate(ARCHITECTURES.values())}
    return sorted(set(cells), key=lambda c: (c[0], rank.get(c[1], len(rank)), c[1]))


def _plot(div_id: str, fig: go.Figure) -> str:
    """A plot's element and the call that draws it; the figure as JSON from one fixed encoder, safe inside a script
    element."""
    figure = {**fig.to_plotly_json(), "config": {**PLOT_CONFIG, "toImageButtonOptions": {"filename": div_id,
                                                                                         "scale": 2}}}
    data = to_json_plotly(figure, engine="json").replace("</", "<\\/")
    return f'<div id="{div_id}" class="plot"></div>\n<script>Plotly.newPlot("{div_id}", {data});</script>'


def _settings(cell: pd.DataFrame, mains: dict[tuple[str, str], str] | None = None
              ) -> list[tuple[tuple, pd.DataFrame, bool, str]]:
    """The cell's traces: (setting, rows, shown at first, note on what differs from the model's main setting). A
    model's main setting is its suite's main configuration where ``mains`` ((family, method) -> config) names one,
    else :func:`~progbench.reports.generate.fallback_main`'s; settings with the main configuration or
    changing as few fields are shown too (SWS's scratch baseline at two budgets), the others (ablations, variants
    decided against on val) start hidden."""
    groups = list(cell.groupby(SETTING, sort=True, dropna=False))  # a teacher has no teacher_arch
    traces = []
    for model in [m for m in MODELS if m in set(cell.model)] + sorted(set(cell.model) - set(MODELS)):
        mine = [(key, g) for key, g in groups if key[0] == model]
        declared = (mains or {}).get((cell.family.iloc[0], model))
        rows = pd.concat([g for _, g in mine])
        fallback = fallback_main(rows)
        fewest = changed_fields(rows[rows.config == fallback].variant.iloc[0])
        main_config = declared or fallback
        ranked = sorted(mine, key=lambda kg: (kg[0][5] != main_config, changed_fields(kg[1].variant.iloc[0]),
                                              -kg[1].seed.nunique(), kg[0][5]))
        budgets = {key[6] for key, _ in mine}
        declared_trained = any(key[5] == declared for key, _ in mine)
        for key, g in ranked:
            notes = []
            change = config_change(key[5], main_config)
            if change:
                notes.append(change)
            if len(budgets) > 1:
                notes.append(f"{int(key[6])} ep")
            shown = key[5] == declared if declared_trained else changed_fields(g.variant.iloc[0]) == fewest
            traces.append((key, g, shown, ", ".join(notes)))
    return traces


@functools.cache  # a method lookup scans the installed entry points
def _distils(model: str) -> bool:
    """Whether a model learns from a teacher (a teacher run and scratch baselines do not)."""
    if model == "teacher":
        return False
    try:
        return get_method(model).needs_teacher
    except UserError:  # a user's method not installed here: say which teacher its runs name
        return True


def _label(key: tuple, g: pd.DataFrame, cell_architecture: str, note: str, one_dataset: bool) -> str:
    model, dataset, arch, teacher_arch = key[0], key[2], key[3], key[4]
    notes = []
    if model == "teacher" and architecture_label(arch) != cell_architecture:
        notes.append(architecture_label(arch))
    if "train_per_class=" in dataset and not one_dataset:  # a subset only some of the cell's runs learn from
        notes.append(dataset.split("train_per_class=")[1].split(",")[0].rstrip("]") + "/class")
    if _distils(model) and pd.notna(teacher_arch) and architecture_label(teacher_arch) != cell_architecture:
        notes.append(f"{architecture_label(teacher_arch)} teacher")
    if note:
        notes.append(note)
    name = MODELS.get(model, (model,))[0]
    return name + (f" ({', '.join(notes)})" if notes else "") + f", n={g.seed.nunique()}"


def _si(value: float) -> str:
    """A tick label: 20M, 500K, 1.5G."""
    for div, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= div:
            return f"{value / div:g}{suffix}"
    return f"{value:g}"


def log_ticks(values: list[float], counted: bool = False, unit: str = "") -> dict:
    """Labelled ticks of a log axis at 1, 2, 5 (also 3 when the values span little more than a decade) of each
    decade the values reach: plotly's own log ticks label 2…9 as bare digits, which reads badly across decades."""
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    if not values:
        return {"tickmode": "auto"}
    low, high = min(values), max(values)
    span = math.log10(high / low)
    subs = (1, 2, 3, 5) if span <= 1.5 else (1, 2, 5) if span <= 4 else (1,)
    ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
             for m in subs]
    ticks = [float(f"{t:.6g}") for t in ticks if low / 1.5 <= t <= high * 1.5]
    return {"tickmode": "array", "tickvals": ticks,
            "ticktext": [(_si(t) if counted else f"{t:g}") + unit for t in ticks]}


def _cost_text(values: pd.Series, axis: CostAxis) -> str:
    if axis.counted:
        return human(values.mean(), axis.unit)
    return f"{mean_std(values, axis.scale, axis.digits)} {axis.unit}"


def _hover_template(axis_index: int) -> str:
    axis = COST_AXES[axis_index]
    return ("<b>%{customdata[0]}</b><br>%{customdata[1]}<br>point: %{customdata[2]}<br>"
            "test top-1: %{customdata[3]} %<br>" + f"{axis.hover}: %{{customdata[{6 + axis_index}]}}<br>"
            "seeds: %{customdata[4]}<br>run ids: %{customdata[5]}<extra></extra>")


def _drawn(values: pd.Series) -> list[float]:
    """Coordinates to 6 significant digits: finer than any plot shows, and the page does not change with the last
    bits of a floating-point sum."""
    return [float(f"{v:.6g}") for v in values]


def _trace_points(g: pd.DataFrame) -> dict:
    """Mean and std over seeds per operating point (x per cost axis), and the hover card's fields."""
    by_point = g.groupby("point_index", sort=True)
    top1 = by_point.test_top1
    points = {"y": _drawn(top1.mean() * 100), "y_std": _drawn(top1.std(ddof=1).fillna(0) * 100), "x": {}, "x_std": {}}
    costs = []
    for axis in COST_AXES:
        values = by_point[axis.column]
        points["x"][axis.column] = _drawn(values.mean() * axis.scale)
        points["x_std"][axis.column] = _drawn(values.std(ddof=1).fillna(0) * axis.scale)
        costs.append(values.agg(lambda v, a=axis: _cost_text(v, a)).tolist())
    cards = zip(by_point.point.first(), top1.agg(mean_std), by_point.seed.nunique(),
                by_point.run_id.agg(lambda ids: "<br>".join(sorted(set(ids)))), *costs)
    points["card"] = [[point, top1_text, int(seeds), ids, *texts] for point, top1_text, seeds, ids, *texts in cards]
    return points


def cell_figure(cell: pd.DataFrame, dataset: str, cell_architecture: str, family: str,
                mains: dict[tuple[str, str], str] | None = None) -> go.Figure:
    """Test top-1 against a cost axis picked by the buttons (FLOPs first), one trace per setting of each model."""
    fig = go.Figure(layout={"template": "none"})
    xs, x_errors = [], []
    settings_per_model: Counter = Counter()
    for key, g, shown, note in _settings(cell, mains):
        model = key[0]
        _, color, symbol = MODELS.get(model, (model, *OTHER_MODEL))
        pts = _trace_points(g)
        dash = DASHES[settings_per_model[model] % len(DASHES)]
        settings_per_model[model] += 1
        label = _label(key, g, cell_architecture, note, cell.dataset.nunique() == 1)
        where = f"{key[1]} · {key[2]}"
        fig.add_trace(go.Scatter(
            x=pts["x"][COST_AXES[0].column], y=pts["y"], name=label, visible=True if shown else "legendonly",
            mode="lines+markers" if len(pts["y"]) > 1 else "markers",
            line={"color": color, "dash": dash, "width": 1.5},
            marker={"color": color, "symbol": symbol, "size": 15 if model == "teacher" else 9},
            error_y={"type": "data", "array": pts["y_std"], "visible": True, "thickness": 1, "width": 3},
            error_x={"type": "data", "array": pts["x_std"][COST_AXES[0].column], "visible": True, "thickness": 1,
                     "width": 3},
            customdata=[[label, where, *card] for card in pts["card"]], hovertemplate=_hover_template(0)))
        xs.append(pts["x"])
        x_errors.append(pts["x_std"])
    ticks = [log_ticks([v for x in xs for v in x[axis.column]], axis.counted, "B" if axis.unit == "B" else "")
             for axis in COST_AXES]
    buttons = [{"label": axis.button, "method": "update",
                "args": [{"x": [x[axis.column] for x in xs], "error_x.array": [e[axis.column] for e in x_errors],
                          "hovertemplate": _hover_template(i)},
                         {"xaxis.title.text": axis.title, "xaxis.autorange": True,
                          **{f"xaxis.{k}": v for k, v in ticks[i].items()}}]}
               for i, axis in enumerate(COST_AXES)]
    fig.update_layout(
        title={"text": f"{dataset} · {cell_architecture} · {family}", "x": 0.01, "xanchor": "left", "y": 0.98,
               "yanchor": "top"},
        height=540, margin={"t": 100, "l": 60, "r": 20, "b": 60}, hovermode="closest", hoverlabel={"align": "left"},
        xaxis={"type": "log", "title": {"text": COST_AXES[0].title}, **ticks[0], "gridcolor": "#e6e6e6",
               "zeroline": False},
        yaxis={"title": {"text": "test top-1 (%)"}, "gridcolor": "#e6e6e6", "zeroline": False},
        legend={"title": {"text": "click: hide or show · double-click: only this"}, "font": {"size": 11}},
        updatemenus=[{"type": "buttons", "direction": "right", "active": 0, "showactive": True, "x": 0.0,
                      "xanchor": "left", "y": 1.03, "yanchor": "bottom", "pad": {"l": 70},
                      "bgcolor": "#f4f4f4", "font": {"size": 11}, "buttons": buttons}],
        annotations=[{"text": "cost axis:", "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.0,
                      "xanchor": "left", "y": 1.045, "yanchor": "bottom"}])
    return fig


def explorer(df: pd.DataFrame, cells: dict[str, tuple[str, str]], mains: dict[tuple[str, str], str] | None = None
             ) -> list[str]:
    """One heading and plot per family, in dataset then architecture order: a family is one protocol (one teacher
    run, one train split, one budget), so runs of different protocols never share a plot."""
    rows = df[df.kind == "family"]
    parts = []
    order = _cell_order(cells.values())
    for family in sorted(set(rows.family), key=lambda f: (order.index(cells[f]), f)):
        cell = rows[rows.family == family]
        dataset, cell_architecture = cells[family]
        div_id = f"plot-{slug(family)}".lower()
        parts.append(f"<h3>{html.escape(dataset)} · {html.escape(cell_architecture)} · family "
                     f"<code>{html.escape(family)}</code></h3>")
        parts.append(_plot(div_id, cell_figure(cell, dataset, cell_architecture, family, mains)))
    return parts


def timeline_figure(curves: pd.DataFrame) -> go.Figure:
    """Accuracy against time since the start of loading, one line per setting and cache (warm solid, cold dashed);
    the PWL student and the teacher loaded whole as open markers of the same colour."""
    fig = go.Figure(layout={"template": "none"})
    colors = dict(zip(FAMILY_ORDER, ("#1f77b4", "#ff7f0e", "#2ca02c")))
    groups = list(curves.groupby(["dataset", "family", "setting", "cache"], sort=False))
    families = {key[1] for key, _ in groups}
    caches = []
    for (dataset, family, setting, cache), g in groups:
        color = colors.get(family, OTHER_MODEL[0])
        name = f"{family}, {cache} cache" + (f" ({setting})" if len(groups) > 2 * len(families) else "")
        group = f"{dataset} {family} {setting} {cache}"
        stages = g[g.what == "stage"]
        for what, rows, style in (("stage", stages, {"mode": "lines+markers", "showlegend": True}),
                                  (pwl.WHOLE_STUDENT, g[g.what == pwl.WHOLE_STUDENT],
                                   {"mode": "markers", "showlegend": False, "symbol": "square-open"}),
                                  (pwl.WHOLE_TEACHER, g[g.what == pwl.WHOLE_TEACHER],
                                   {"mode": "markers", "showlegend": False, "symbol": "diamond-open"})):
            symbols = style.get("symbol") or ["circle"] + ["circle"] * (len(rows) - 2) + ["star"]
            sizes = 13 if what != "stage" else [10] + [7] * (len(rows) - 2) + [14]
            card = [[f"{family} · {cache} cache", "stage " + str(r.point) if what == "stage" else what,
                     f"{r.answer_ms:.2f}", f"{r.ready_ms:.2f}", r.top1_text, r.run_ids.replace(" ", "<br>")]
                    for r in rows.itertuples()]
            fig.add_trace(go.Scatter(
                x=_drawn(rows.answer_ms), y=_drawn(rows.top1), name=name, legendgroup=group,
                mode=style["mode"], showlegend=style["showlegend"],
                line={"color": color, "dash": "solid" if cache == "warm" else "dash", "width": 1.5},
                marker={"color": color, "symbol": symbols, "size": sizes, "line": {"color": color, "width": 1.5}},
                customdata=card,
                hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]}<br>first answer at %{customdata[2]} ms "
                              "(ready at %{customdata[3]} ms)<br>test top-1: %{customdata[4]} %<br>"
                              "run ids: %{customdata[5]}<extra></extra>"))
            caches.append(cache)
    buttons = [{"label": label, "method": "restyle", "args": [{"visible": [c in shown for c in caches]}]}
               for label, shown in (("warm and cold", ("warm", "cold")), ("warm", ("warm",)), ("cold", ("cold",)))]
    fig.update_layout(
        title={"text": "PWL progressive loading, " + ", ".join(sorted(set(curves.dataset))), "x": 0.01,
               "xanchor": "left", "y": 0.98, "yanchor": "top"},
        height=520, margin={"t": 100, "l": 60, "r": 20, "b": 60}, hovermode="closest", hoverlabel={"align": "left"},
        xaxis={"type": "log", "title": {"text": "time since the start of loading until the stage's first answer "
                                                "(ms, median over runs)"}, **log_ticks(curves.answer_ms.tolist()),
               "gridcolor": "#e6e6e6", "zeroline": False},
        yaxis={"title": {"text": "test top-1 (%)"}, "gridcolor": "#e6e6e6", "zeroline": False},
        legend={"title": {"text": "click: hide or show · double-click: only this"}, "font": {"size": 11}},
        updatemenus=[{"type": "buttons", "direction": "right", "active": 0, "showactive": True, "x": 0.0,
                      "xanchor": "left", "y": 1.03, "yanchor": "bottom", "pad": {"l": 50}, "bgcolor": "#f4f4f4",
                      "font": {"size": 11}, "buttons": buttons}],
        annotations=[{"text": "cache:", "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.0,
                      "xanchor": "left", "y": 1.045, "yanchor": "bottom"}])
    return fig


def _verdict_class(verdicts: list[str]) -> str:
    classes = {VERDICT_CLASS.get(v, "inconclusive") for v in verdicts}
    return classes.pop() if len(classes) == 1 else "mixed"


def verdict_matrix(tables: Path, cells: dict[str, tuple[str, str]]) -> str:
    """Claim × cell, coloured by verdict; each entry links to its row of the claims table (the evidence)."""
    entries: dict[tuple[str, tuple[str, str]], list[tuple[str, int, pd.Series]]] = {}
    for name in document.CLAIMS_TABLES:
        found = document.read_table(tables, name)
        if found is None:
            continue
        for i, row in found[1].iterrows():
            cell = cells.get(row.family, (row.get("dataset", ""), row.family))
            entries.setdefault((row.claim, cell), []).append((name, i, row))
    if not entries:
        return ""
    claims = list(dict.fromkeys(claim for claim, _ in entries))
    columns = _cell_order(cell for _, cell in entries)
    families: dict[tuple[str, str], set[str]] = {}
    for (_, cell), found in entries.items():
        families.setdefault(cell, set()).update(row.family for *_, row in found)
    head = "".join(f"<th>{html.escape(d)} · {html.escape(a)}<br>"
                   f"<small>{html.escape(', '.join(family_order(families[(d, a)])))}</small></th>" for d, a in columns)
    body = []
    for claim in claims:
        cells_html = []
        for column in columns:
            found = entries.get((claim, column), [])
            if not found:
                cells_html.append("<td></td>")
                continue
            links = "".join(f'<a href="#{name}-row-{i}" title="{html.escape(row.family)}: {html.escape(row.evidence)}">'
                            f"{html.escape(row.verdict)}</a>" for name, i, row in found)
            cells_html.append(f'<td class="{_verdict_class([r.verdict for *_, r in found])}">{links}</td>')
        body.append(f"<tr><th>{html.escape(claim)}</th>{''.join(cells_html)}</tr>")
    key = ('<p class="key caption">Verdicts: <span class="holds">holds</span><span class="fails">does not hold</span>'
           '<span class="inconclusive">inconclusive (not measurable here)</span>. Hover an entry for its evidence; '
           "click it for its row of the claims table.</p>")
    return (key + '<div class="wrap"><table class="matrix" id="claims-matrix"><thead><tr><th>claim</th>' + head
            + "</tr></thead><tbody>" + "".join(body) + "</tbody></table></div>")


def _cell_html(column: str, value: str) -> str:
    if column.startswith("run id") or column == "teacher run":  # ids wrap between ids, never inside one
        return '<td class="ids">' + " ".join(f"<span>{html.escape(v)}</span>" for v in value.split()) + "</td>"
    return f'<td class="short">{html.escape(value)}</td>' if len(value) <= 24 else f"<td>{html.escape(value)}</td>"


def table_html(name: str, caption: str, df: pd.DataFrame) -> str:
    """A table with its caption, links to its files, and the controls tables.js wires: a search box and a select per
    filterable column; rows have fixed ids (``name-row-i``) for links from the verdict matrix."""
    table_id = f"table-{name}"
    selects = []
    for column_index, column in enumerate(df.columns):
        values = sorted(set(df[column]) - {""})
        if column in FILTER_COLUMNS and 1 < len(values) <= 60:
            options = "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values)
            selects.append(f'<label>{html.escape(column)} <select data-column="{column_index}">'
                           f'<option value="">all</option>{options}</select></label>')
    tools = (f'<div class="tools" data-table="{table_id}"><label>filter <input type="search" '
             f'placeholder="any text, e.g. a run id"></label>{"".join(selects)}'
             f'<span class="count">{len(df)} of {len(df)} rows</span></div>')
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    rows = []
    for i, row in enumerate(df.itertuples(index=False)):
        cells = "".join(_cell_html(column, value) for column, value in zip(df.columns, row))
        rows.append(f'<tr id="{name}-row-{i}" data-index="{i}">{cells}</tr>')
    return (f'<p class="caption"><b>Table <code>{name}</code></b> (<a href="tables/{name}.csv">CSV</a>, '
            f'<a href="tables/{name}.md">Markdown</a>, <a href="tables/{name}.tex">LaTeX</a>). '
            f"{document.html_text(caption)}</p>{tools}"
            f'<div class="wrap"><table class="data" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div>")


def page(df: pd.DataFrame, records: dict[str, Record], out: Path,
         mains: dict[tuple[str, str], str] | None = None) -> str:
    tables = out / "tables"
    cells = family_cells(df)
    sections = document.present_sections(out)
    sections = sorted(sections, key=lambda s: "claims_summary" not in s[0].tables)  # the claims after the plots
    titles = [EXPLORER] + [s.title for s, _, _ in sections]
    timeline = pwl.timeline_frame(df, records)
    body = [f"<h1>progbench results</h1><p>{document.html_text(document.GENERATED)} Every number is computed from "
            "the run records in <code>results/</code>, through the same tables as the document "
            '(<a href="README.md">Markdown</a>, <a href="report.html">one static HTML file</a>, '
            '<a href="report.tex">LaTeX</a>) and the CSVs under <a href="tables/">tables/</a>.</p><nav><ol>'
            + "".join(f'<li><a href="#{document.anchor(t)}">{html.escape(t)}</a></li>' for t in titles)
            + "</ol></nav>",
            f'<h2 id="{document.anchor(EXPLORER)}">{EXPLORER}</h2>'
            "<p>What is best at my budget? One plot per family (a dataset and architecture under one protocol: one "
            "teacher run, one train split, one budget): test top-1 (mean over seeds, error "
            "bars their std) against a cost axis picked with the buttons above the plot. Click a method in the legend "
            "to hide or show it (double-click: only it); settings beside a method's main one (ablations) start "
            "hidden. Hover a point for its method, point, accuracy, cost, seeds and run ids. Training cost is a "
            "run's, so a run's points share it; timed costs (latency, load time, training time) are means over "
            "seeds with their std as horizontal bars.</p>",
            *explorer(df, cells, mains)]
    for section, section_tables, figures in sections:
        intro = CLAIMS_INTRO if "claims_summary" in section.tables else section.intro
        body.append(f'<h2 id="{document.anchor(section.title)}">{html.escape(section.title)}</h2>'
                    f"<p>{document.html_text(intro)}</p>")
        found = document.findings(tables, section)
        if found:
            body.append("<ul>" + "".join(f"<li>{document.html_text(f)}</li>" for f in found) + "</ul>")
        if "claims_summary" in section.tables:
            body.append(verdict_matrix(tables, cells))
        if "pwl_loading_timeline" in section.tables and not timeline.empty:
            body.append("<p>The loading timeline: each stage's test top-1 against the time since the start of "
                        "loading until its first answer; open squares and diamonds: the PWL student and the teacher "
                        "each loaded whole from one file, in the same trials. Hover for the times and run ids.</p>")
            body.append(_plot("plot-pwl-loading", timeline_figure(pwl.loading_points(df, timeline))))
        if figures:
            images = "".join(f'<p><a href="figures/{f}.svg"><img alt="{f}" loading="lazy" src="figures/{f}.png">'
                             f"</a></p>" for f in figures)
            body.append(f"<details><summary>Static figure{'s' if len(figures) > 1 else ''} (PNG and SVG, for papers): "
                        f"{', '.join(figures)}</summary>{images}</details>")
        for name, (caption, table) in section_tables:
            body.append(table_html(name, caption, table))
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,"><title>progbench results</title>'
            f'<style>{STYLE}</style><script src="{ASSETS}/plotly.min.js"></script></head><body>\n'
            + "\n".join(body) + f'\n<script src="{ASSETS}/tables.js"></script>\n</body></html>\n')


def build(df: pd.DataFrame, records: dict[str, Record], out: Path,
          mains: dict[tuple[str, str], str] | None = None) -> list[Path]:
    """``index.html`` and its assets (plotly.js as the installed plotly ships it, the tables' script); ``mains``:
    (family, method) -> the main configuration a suite declares (``grid.main_configs``)."""
    assets = out / ASSETS
    assets.mkdir(parents=True, exist_ok=True)
    written = [assets / "plotly.min.js", assets / "tables.js", out / PAGE]
    written[0].write_text(get_plotlyjs(), encoding="utf-8")
    written[1].write_bytes(TABLES_JS.read_bytes())
    written[2].write_text(page(df, records, out, mains), encoding="utf-8")
    return written
