"""`progbench compare`: a user's method (the example package under examples/) trained where the suite trains KD, on
the same tasks and teachers, stored like any run, and compared with every baseline like with like; and PWL against the
committed store's baselines (every cpu-suite run it needs is committed, so nothing trains): the matched-cost rule,
areas over the shared range, B-DISTIL-family baselines, ablations apart, captions and titles, the terminal's width."""
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from progbench.protocol import available_methods, get_method
from progbench.reports.compare import (
    AXES,
    FITS,
    NONE_FITS,
    WIDTH,
    accuracy_figure,
    build_comparison,
    comparison_frame,
    loading_figure,
    loading_frame,
    matched,
    panels,
    plan_comparison,
    points,
)
from progbench.store import Store
from progbench.suite import load_suite
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "progbench-example"
LADDER = f"{EXAMPLE / 'progbench_example' / 'ladder.py'}:KDLadder"
FILES = ("comparison", "comparison_matched", "comparison_area", "comparison_ablations")


def _runs(store: Path) -> dict[str, float]:
    """Run folder -> mtime of its record (a retrained run would write a new one)."""
    return {d.name: (d / "record.json").stat().st_mtime for d in sorted((store / "runs").iterdir())}


def _top1(text) -> float:
    return float(str(text).split(" ± ")[0])


@pytest.fixture(scope="module")
def compared(smoke_store, tmp_path_factory):
    """A copy of the session's smoke store (left untouched) after one compare of the example method."""
    root = tmp_path_factory.mktemp("compare")
    store, out = root / "results", root / "out"
    shutil.copytree(smoke_store, store)
    before = _runs(store)
    assert run_cli("compare", "kd-ladder", "--method", LADDER, "--suite", "smoke", "--results", str(store),
                   "--out", str(out), "--no-progress") == 0
    return store, out, before


def test_compare_trains_the_method_beside_kd(compared):
    store, out, before = compared
    after = _runs(store)
    new = sorted(set(after) - set(before))
    assert [n.rsplit("-", 1)[0] for n in new] == ["kd-ladder-vgg-s0", "kd-ladder-vgg-s1"]  # kd's families and seeds
    assert all(after[k] == v for k, v in before.items())  # nothing else retrained, the teacher reused
    records = {r.run_id: r for r in Store(store).records()}
    kd = {r.spec["task"]["seed"]: r.spec["task"] for r in records.values() if r.spec["method"] == "kd"}
    for rid in new:
        rec = records[rid]
        assert rec.spec["method"] == "kd-ladder"
        assert rec.spec["task"] == kd[rec.spec["task"]["seed"]]  # exactly the task KD gets: arch, budget, teacher
        assert [p["point"] for p in rec.metrics["points"]] == ["small", "full"]
        assert rec.metrics["points"][0]["flops"] < rec.metrics["points"][1]["flops"]
        phases = [row["phase"] for row in rec.log()]
        assert phases == ["full", "full", "small", "small"]  # the full student first: it teaches the small one

    table = pd.read_csv(out / "comparison.csv")
    # every method on the same teacher run, architecture and data is a baseline; the B-DISTIL ablation is not
    assert set(table.method) == {"teacher", "scratch", "KD", "PWL", "B-DISTIL", "RESCHED", "NO-RESCHED", "kd-ladder"}
    ladder = table[table.method == "kd-ladder"]
    assert list(ladder.point) == ["small", "full"] and list(ladder.seeds) == [2, 2]
    assert set(table.role) == {"teacher", "baseline", "method"}
    ablations = pd.read_csv(out / "comparison_ablations.csv")
    assert set(ablations.ablation) == {"B-DISTIL (connections=False)"} and set(ablations.of) == {"B-DISTIL"}

    # the small point is cheaper than every stored point it is compared with: no baseline point this cheap
    small = min(r.metrics["points"][0]["flops"] for r in records.values() if r.run_id in new)
    compared_ids = set(" ".join(table[table.role != "method"]["run ids"]).split())
    assert all(p["flops"] > small for rid in compared_ids for p in records[rid].metrics["points"])
    match = pd.read_csv(out / "comparison_matched.csv")
    assert (match[match.point == "small"]["its best ≤ FLOPs/img"] == NONE_FITS).all()
    full = match[(match.point == "full") & (match.baseline == "KD")].iloc[0]  # KD's student is the full point's size
    expected = _top1(ladder["top-1 (%)"].iloc[1]) - _top1(table[table.method == "KD"]["top-1 (%)"].iloc[0])
    assert abs(float(full["Δ top-1 ≤ FLOPs/img (pts)"]) - expected) < 0.011

    for name in FILES:
        caption = (out / f"{name}.md").read_text().splitlines()[0]
        assert "CIFAR-10 (20 test images/class) · VGG (pb_vgg_tiny)" in caption, (name, caption)
    assert (out / "comparison.tex").read_text().count("& kd-ladder &") == 2  # its rows (no run ids in LaTeX)
    assert not (out / "comparison_loading.csv").exists()  # the ladder's points share no weights
    for ext in ("png", "svg"):
        assert (out / f"accuracy_vs_cost.{ext}").stat().st_size > 10_000


def test_second_compare_trains_nothing_and_finds_the_entry_point(compared, tmp_path, monkeypatch, capsys):
    """The example as pip leaves it installed: its package on sys.path and a dist-info naming the entry point."""
    store, out, _ = compared
    dist = tmp_path / "progbench_example-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: progbench-example\nVersion: 0.1.0\n")
    declared = 'kd-ladder = "progbench_example.ladder:KDLadder"'
    assert declared in (EXAMPLE / "pyproject.toml").read_text()
    (dist / "entry_points.txt").write_text("[progbench.methods]\nkd-ladder = progbench_example.ladder:KDLadder\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    assert available_methods()["kd-ladder"] == "progbench_example.ladder:KDLadder"
    assert get_method("kd-ladder").__module__ == "progbench_example.ladder"

    before = _runs(store)
    capsys.readouterr()
    assert run_cli("compare", "kd-ladder", "--suite", "smoke", "--results", str(store), "--out",
                   str(tmp_path / "again"), "--no-progress") == 0
    printed = capsys.readouterr().out
    assert "compare kd-ladder: 0 run(s) trained" in printed and "running" not in printed
    assert _runs(store) == before
    assert (tmp_path / "again" / "comparison.csv").read_text() == (out / "comparison.csv").read_text()
    # the summary: the dataset and architecture, the method's lead per baseline, at most 120 columns
    assert "kd-ladder · CIFAR-10 (20 test images/class) · VGG (pb_vgg_tiny)" in printed
    assert NONE_FITS in printed and "area under the anytime curve" in printed
    assert max(map(len, printed.splitlines())) <= WIDTH


# --- the committed store: PWL against its baselines, nothing trained ----------------------------------------------
@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    """`compare pwl --suite cpu` read from the committed store (every run it needs is committed; nothing trains)."""
    comparison = plan_comparison(load_suite("cpu"), "pwl")
    store = Store(REPO / "results")
    records = store.records()
    by_id = {r.run_id: r for r in records}
    assert all(r.run_id in by_id for r in comparison.runs + comparison.teachers)
    out = tmp_path_factory.mktemp("committed")
    text, written, notes = build_comparison(store, comparison, out)
    df = comparison_frame(store, comparison, records, panels(comparison))
    pts = points(df)
    return SimpleNamespace(comparison=comparison, records=by_id, out=out, text=text, written=written, notes=notes,
                           df=df, pts=pts, tl=loading_frame(pts, df, by_id),
                           tables={name: pd.read_csv(out / f"{name}.csv") for name in FILES})


def _raw(records, rids, index: int, key: str) -> list[float]:
    return [records[rid].metrics["points"][index][key] for rid in rids]


def test_matched_cost_never_uses_a_costlier_baseline(committed):
    pts, records = committed.pts, committed.records
    match = matched(pts)
    assert len(match) == sum(len(pts[(pts.panel == p) & (pts.role == "method")])
                             * pts[(pts.panel == p) & pts.role.isin(["teacher", "baseline"])].line.nunique()
                             for p in pts.panel.unique())
    for _, m in match.iterrows():
        p = pts[(pts.panel == m.panel) & (pts.role == "method") & (pts.point_index == m.point_index)].iloc[0]
        base = pts[(pts.panel == m.panel) & (pts.line == m.baseline)]
        for axis in AXES:
            limit = min(_raw(records, p.run_ids.split(), p.point_index, axis)) * (1 + FITS * (axis == "weight_bytes"))
            # from the records: every seed's cost of every point of the baseline
            fits = [b for _, b in base.iterrows()
                    if max(_raw(records, b.run_ids.split(), b.point_index, axis)) <= limit]
            best = m[axis]
            if not fits:
                assert best is None and math.isnan(m[f"delta_{axis}"])
                continue
            assert max(_raw(records, best.run_ids.split(), best.point_index, axis)) <= limit  # never costlier
            assert best.top1 == max(b.top1 for b in fits)  # the most accurate of those that fit
            assert m[f"delta_{axis}"] == pytest.approx((p.top1 - best.top1) * 100)

    # by hand from the records, VGG: the PWL student point against KD's student (same FLOPs), B-DISTIL's best stage
    # within its FLOPs (stage 2: stage 3 costs more), and the teacher (costlier: none; equal to the last point: 0)
    def mean(method, family, index, **config):
        rids = [r.run_id for r in records.values() if r.spec["method"] == method and r.spec["task"]["family"] == family
                and r.spec["task"]["teacher_run"] and all(r.spec["config"].get(k) == v for k, v in config.items())]
        return np.mean(_raw(records, rids, index, "test_top1")) * 100, rids

    table = committed.tables["comparison_matched"]
    vgg = table[table["dataset · architecture"] == "CIFAR-10 · VGG (pb_vgg_student_cpu)"]
    pwl0, _ = mean("pwl", "vgg", 0, drop=[])
    kd, _ = mean("kd", "vgg", 0)
    bd2, bd_ids = mean("bdistil", "bd_vgg", 1, connections=True)
    assert max(_raw(records, bd_ids, 1, "flops")) <= 9144832 < min(_raw(records, bd_ids, 2, "flops"))
    row = vgg[vgg.point == "SSSSS"].set_index("baseline")
    assert float(row.loc["KD", "Δ top-1 ≤ FLOPs/img (pts)"]) == pytest.approx(pwl0 - kd, abs=0.006)
    assert row.loc["B-DISTIL", "its best ≤ FLOPs/img"].startswith("stage2")
    assert float(row.loc["B-DISTIL", "Δ top-1 ≤ FLOPs/img (pts)"]) == pytest.approx(pwl0 - bd2, abs=0.006)
    assert row.loc["teacher", "its best ≤ FLOPs/img"] == NONE_FITS == row.loc["teacher", "its best ≤ weights"]
    last = vgg[vgg.point == "TTTTT"].set_index("baseline")
    assert float(last.loc["teacher", "Δ top-1 ≤ FLOPs/img (pts)"]) == 0.0
    assert (vgg["its seeds ≤ FLOPs/img"].replace("–", np.nan).dropna().astype(int) >= 1).all()


def test_area_over_the_shared_range(committed):
    """Each line's mean anytime accuracy over log-uniform budgets of one range per panel and axis, recomputed here by
    sampling budgets from the records."""
    area, records = committed.tables["comparison_area"], committed.records
    assert set(area.role) == {"method", "baseline"}  # the teacher is a reference point; ablations apart
    for title, panel in area.groupby("dataset · architecture"):
        for axis, (_, short, _) in AXES.items():
            assert panel[f"shared range, {short}"].nunique() == 1
            curves = {}
            for _, row in panel.iterrows():
                rids = row["run ids"].split()
                n = len(records[rids[0]].metrics["points"])
                curves[row.method] = [(np.median(_raw(records, rids, i, axis)),
                                       np.mean(_raw(records, rids, i, "test_top1"))) for i in range(n)]
            lo = max(min(c for c, _ in pts) for pts in curves.values())
            hi = max(max(c for c, _ in pts) for pts in curves.values())
            budgets = np.exp(np.linspace(math.log(lo), math.log(hi), 20001))
            for line, pts in curves.items():
                expected = np.mean([max(a for c, a in pts if c <= b * (1 + 1e-9)) for b in budgets]) * 100
                got = float(panel.set_index("method").loc[line, f"area, {short} (pts)"])
                assert got == pytest.approx(expected, abs=0.01), (title, axis, line)
    kd = area[(area.method == "KD") & area["dataset · architecture"].str.contains("VGG")].iloc[0]
    assert kd["area, FLOPs/img (pts)"] == pytest.approx(81.84, abs=0.006)  # one point at the range's start: flat


def test_baselines_from_other_families_on_the_same_teacher_and_data(committed):
    table, records = committed.tables["comparison"], committed.records
    for arch, family in (("VGG", "bd_vgg"), ("ResNet", "bd_resnet"), ("ViT", "bd_vit")):
        panel = table[table["dataset · architecture"].str.contains(f"· {arch} ")]
        pwl_teacher = {records[rid].spec["task"]["teacher_run"]
                       for rid in " ".join(panel[panel.role == "method"]["run ids"]).split()}
        for label in ("B-DISTIL", "RESCHED", "NO-RESCHED"):
            rows = panel[panel.method == label]
            assert len(rows) == 4 and set(rows.role) == {"baseline"} and set(rows.family) == {family}
            assert set(rows["train data"]) == {"300 images/class"}  # said, not hidden
            assert rows.budget.str.contains("epochs=2").all()
            tasks = [records[rid].spec["task"] for rid in " ".join(rows["run ids"]).split()]
            assert {t["teacher_run"] for t in tasks} == pwl_teacher
            assert {t["arch"] for t in tasks} == {panel[panel.role == "method"].iloc[0]["dataset · architecture"]
                                                  .split("(")[1].rstrip(")")}
    # SWS shares the ResNet teacher run but trains another architecture: left out, and said
    assert "sws" not in set(table.method) and "SWS" not in set(table.method)
    assert any("sws_cifar10" in n and "another architecture, pb_vit_des_cpu" in n for n in committed.notes)


def test_ablations_are_apart(committed):
    tables, records = committed.tables, committed.records
    abl = tables["comparison_ablations"]
    assert set(abl.ablation) == {"pwl-no-cross", "pwl-no-feature-recon", "bdistil-no-connections"}
    assert set(abl[abl.ablation.str.startswith("pwl")].of) == {"pwl"}
    for name in ("comparison", "comparison_area"):
        assert not set(tables[name].method) & set(abl.ablation)
    assert not set(tables["comparison_matched"].baseline) & set(abl.ablation)
    row = abl[(abl.ablation == "pwl-no-cross") & (abl.point == "TTSSS")].iloc[0]
    rids = row["run ids"].split()
    main = [r.run_id for r in records.values() if r.spec["method"] == "pwl" and r.spec["task"]["family"] == "vgg"
            and r.spec["config"]["drop"] == []]
    expected = (np.mean(_raw(records, rids, 2, "test_top1")) - np.mean(_raw(records, main, 2, "test_top1"))) * 100
    assert row["changed"] == "drop=[\"cross\"]" and float(row["Δ top-1 (pts)"]) == pytest.approx(expected, abs=0.006)


def test_captions_and_titles_name_dataset_and_architecture(committed):
    archs = ("VGG (pb_vgg_student_cpu)", "ResNet (pb_resnet_student_cpu)", "ViT (pb_vit_student_cpu)")
    for path in committed.written:
        if path.suffix == ".md":
            caption = path.read_text().splitlines()[0]
            assert all(f"CIFAR-10 · {arch}" in caption for arch in archs), (path.name, caption)
        elif path.suffix == ".tex":
            [caption] = [line for line in path.read_text().splitlines() if line.startswith("\\caption{")]
            tex = [f"CIFAR-10 $\\cdot$ {arch}".replace("_", "\\_") for arch in archs]  # as write_table escapes them
            assert all(t in caption for t in tex), (path.name, caption)
    figures = [accuracy_figure(committed.pts, "pwl"), loading_figure(committed.tl, "pwl")]
    titles = [ax.get_title() for fig in figures for ax in fig.axes if ax.get_title()]
    assert len(titles) == 3 * 2 + 3  # two cost axes and one loading timeline per architecture
    assert all("CIFAR-10 · " in t and any(a in t for a in archs) for t in titles), titles


def test_loading_timeline_beside_the_comparison(committed):
    loading = pd.read_csv(committed.out / "comparison_loading.csv")
    vgg = loading[loading["dataset · architecture"].str.contains("VGG") & (loading.cache == "warm")]
    assert list(vgg.stage[:6]) == ["SSSSS", "TSSSS", "TTSSS", "TTTSS", "TTTTS", "TTTTT"]
    tl = committed.tl[(committed.tl.panel == "vgg") & (committed.tl.cache == "warm") & (committed.tl.what == "stage")]
    assert tl.loaded_bytes.tolist() == pytest.approx(np.cumsum(tl.new_bytes).tolist())
    rids = tl.run_ids.iloc[0].split()
    first = [committed.records[r].metrics["progressive_loading"]["warm"]["stages"][0]["new_bytes"] for r in rids]
    assert tl.new_bytes.iloc[0] == np.median(first)
    assert (committed.out / "loading_timeline.png").stat().st_size > 10_000


def test_terminal_summary_fits_in_120_columns(committed):
    text = committed.text
    assert max(map(len, text.splitlines())) <= WIDTH
    for arch in ("VGG", "ResNet", "ViT"):
        assert f"pwl · CIFAR-10 · {arch} (pb_{arch.lower()}_student_cpu)" in text
    assert "B-DISTIL¹" in text and "train subset" not in text and "trained on 300 images/class" in text
    assert "pwl-no-cross" in text and "progressive loading of pwl" in text
    assert text.count("area under the anytime curve") == 3


NESTED = '''
from torch import nn

from progbench.protocol import OperatingPoint
from progbench.methods.scratch import Scratch


class Stack(nn.Module):  # a point class that only this file defines
    def __init__(self, nets):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x):
        return sum(net(x) for net in self.nets)


class Nested(Scratch):
    name = "nested-file"

    def __init__(self, ctx, config):
        super().__init__(ctx, config)
        self.more = ctx.create_model()  # left as initialised: the second point only has to add weights

    def anytime_family(self):
        return [OperatingPoint("one", Stack([self.model])), OperatingPoint("two", Stack([self.model, self.more]))]
'''


def test_file_method_with_nested_points_is_loaded_progressively(smoke_store, tmp_path):
    """Points of classes a method file defines unpickle in the process that times progressive loading; the
    comparison then shows the loading timeline."""
    (tmp_path / "nested.py").write_text(NESTED)
    store = tmp_path / "results"
    shutil.copytree(smoke_store, store)
    assert run_cli("compare", "nested-file", "--method", f"{tmp_path / 'nested.py'}:Nested", "--suite", "smoke",
                   "--only", "seed=0", "--results", str(store), "--out", str(tmp_path / "out"), "--no-progress") == 0
    [rec] = [r for r in Store(store).records() if r.spec["method"] == "nested-file"]
    assert [s["point"] for s in rec.metrics["progressive_loading"]["warm"]["stages"]] == ["one", "two"]
    loading = pd.read_csv(tmp_path / "out" / "comparison_loading.csv")
    assert list(loading[loading.cache == "warm"].stage[:2]) == ["one", "two"]


NO_KD = """
name: nokd
dataset: {name: cifar10, val_per_class: 5, train_per_class: 10, test_per_class: 5}
budgets: {b: {epochs: 1, batch_size: 50, precision: fp32}}
families:
  vgg: {teacher: pb_vgg_tiny, student: pb_vgg_tiny, teacher_budget: b, budget: b}
runs:
  - {method: scratch, families: [vgg]}
"""


@pytest.mark.parametrize("case", ["unknown method", "missing file", "not a method", "other name", "no kd runs",
                                  "no matching runs", "unknown family", "bad config", "unknown config field"])
def test_errors_are_one_line(case, tmp_path, capsys):
    (tmp_path / "plain.py").write_text("class NotAMethod:\n    pass\n")
    (tmp_path / "nokd.yaml").write_text(NO_KD)
    args, message = {
        "unknown method": (["kd-ladderr"], "unknown method 'kd-ladderr'; available:"),
        "missing file": (["x", "--method", f"{tmp_path}/none.py:X"], "none.py not found"),
        "not a method": (["x", "--method", f"{tmp_path}/plain.py:NotAMethod"],
                         "is not a subclass of progbench.protocol.Method"),
        "other name": (["ladder", "--method", LADDER], "defines method 'kd-ladder', not 'ladder'"),
        "no kd runs": (["kd-ladder", "--method", LADDER, "--suite", str(tmp_path / "nokd.yaml")],
                       "suite nokd has no kd runs to take families and seeds from; name a family with --only"),
        "no matching runs": (["kd-ladder", "--method", LADDER, "--only", "seed=7"],
                             "--only 'seed=7' selects none of the 2 kd-ladder run(s) of suite smoke"),
        "unknown family": (["kd-ladder", "--method", LADDER, "--only", "family=resnet"],
                           "--only family=resnet names unknown family 'resnet'; families: vgg, vit, sws"),
        "bad config": (["kd-ladder", "--method", LADDER, "--config", "{T: 2}"], "--config is not valid JSON"),
        "unknown config field": (["kd-ladder", "--method", LADDER, "--config", json.dumps({"temp": 2})],
                                 "method kd-ladder: unknown config field(s) ['temp']"),
    }[case]
    if "--suite" not in args:
        args += ["--suite", "smoke"]
    store = tmp_path / "results"
    assert run_cli("compare", *args, "--results", str(store), "--no-progress") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("progbench: error:"), err
    assert message in err[0]
    assert not store.exists()  # refused before anything ran
