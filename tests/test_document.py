"""The cross-method comparison (anytime curves, their area, winners by budget) and the report as one document
(Markdown, LaTeX, self-contained HTML, README headline block), from the smoke store."""
import math
import re

import numpy as np
import pandas as pd
import pytest

from progbench.errors import UserError
from progbench.reports import crossmethod, document
from progbench.reports.generate import build_report
from progbench.store import Store


def test_anytime_curve_and_its_area_by_hand():
    costs, accs = np.array([0.25, 0.5]), np.array([0.5, 0.7])
    assert crossmethod.anytime(costs, accs, 0.2, chance=0.1) == 0.1  # nothing fits: a constant guess
    assert crossmethod.anytime(costs, accs, 0.25, chance=0.1) == 0.5
    assert crossmethod.anytime(costs, accs, 0.9, chance=0.1) == 0.7
    # log-uniform budgets over [1/8, 1]: a third of the log range at each of chance, 0.5 and 0.7
    assert math.isclose(crossmethod.area(costs, accs, 0.125, 1.0, 0.1), (0.1 + 0.5 + 0.7) / 3)
    # a worse point that costs more never lowers the curve
    assert math.isclose(crossmethod.area(np.array([0.25, 0.5]), np.array([0.5, 0.3]), 0.125, 1.0, 0.1),
                        (0.1 + 0.5 + 0.5) / 3)


def test_winner_at_each_budget():
    rows = [("A", [0.1, 1.0], [0.5, 0.9], [0.01, 0.01]), ("B", [0.05], [0.6], [0.2])]
    pts = pd.DataFrame([{"architecture": "VGG", "method": m, "point_index": i,
                         **{f"{axis}_fraction": c for axis in crossmethod.AXES}, "top1": a, "top1_std": s}
                        for m, cs, accs, stds in rows for i, (c, a, s) in enumerate(zip(cs, accs, stds))])
    table = crossmethod.winners_table(pts, chance=0.1).set_index("cost axis")
    flops = table.loc["FLOPs per image"]
    assert flops["≤ 1/64"] == "none fits"
    assert flops["≤ 1/16"] == "B 60.0"  # only B fits
    assert flops["≤ 1/8"] == "B 60.0 (≈ A)"  # 60 vs 50: within B's seed std of 20 points
    assert flops["≤ 1"] == "A 90.0 (+30.0)"


@pytest.fixture(scope="module")
def report(smoke_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    (out / "reports" / "tables").mkdir(parents=True)
    (out / "reports" / "tables" / "crossmethod_area.md").write_text("stale, from another store\n\n| x |\n")
    (out / "reports" / "tables" / "pwl_gone.csv").write_text("stale\n")
    readme = out / "README.md"
    readme.write_text(f"# mine\n\nbefore\n{document.README_START}\nstale\n{document.README_END}\nafter\n")
    written = build_report(smoke_store, out / "reports", readme)
    return out, written


def test_cross_method_section_covers_every_method_of_the_smoke_store(report, smoke_store):
    out, _ = report
    assert not (out / "reports" / "tables" / "pwl_gone.csv").exists()  # only this build's files are read or kept
    ablation = {r.run_id for r in Store(smoke_store).records()
                if r.spec["method"] == "bdistil" and not r.spec["config"]["connections"]}
    points = pd.read_csv(out / "reports" / "tables" / "crossmethod_points.csv", dtype=str)
    assert ablation and not ablation & set(" ".join(points["run ids"]).split())  # the main configuration only
    area = pd.read_csv(out / "reports" / "tables" / "crossmethod_area.csv", dtype=str)
    methods = {m.split(" (")[0] for m in area.method}
    assert methods == {"scratch", "KD", "PWL", "SWS", "B-DISTIL"}  # the smoke suite runs all five
    assert set(area.architecture) == {"VGG", "ViT"}
    for _, row in area.iterrows():  # every number traces to run ids that are in the store, teacher included
        ids = row["run ids"].split()
        assert all(Store(smoke_store).get(rid) is not None for rid in ids)
        assert any(rid.startswith("teacher-") for rid in ids)
        # an area is a mean accuracy (chance at least), or '–' where no point is cheaper than the teacher
        assert row["area, FLOPs (pts)"] == "–" or 10.0 <= float(row["area, FLOPs (pts)"]) <= 100.0
    assert all(float(v) >= 10.0 for v in area[area.architecture == "VGG"]["area, FLOPs (pts)"])
    assert "SWS (20/class, ViT teacher)" not in set(area.method)  # SWS distils from the ViT teacher: no note
    assert any(m.startswith("SWS (20/class") for m in area.method)  # but its train subset is named


def test_the_document_in_every_format(report, smoke_store):
    out, written = report
    reports = out / "reports"
    md = (reports / "README.md").read_text()
    for section in document.SECTIONS[:6]:  # the smoke store holds no grid run: no grid section
        assert (f"## {section.title}" in md) == ("grid_points" not in section.tables), section.title
    claims = pd.read_csv(reports / "tables" / "pwl_claims.csv")
    first = claims.iloc[0]  # each section states its claims' verdicts, read from its claims table
    assert f"* {first.claim}: " in md and f"{first.verdict} on " in md.split(f"* {first.claim}: ")[1].split("\n")[0]
    for rec in Store(smoke_store).records():  # the run index lists every run
        assert rec.run_id in md
    for link in re.findall(r"\]\(((?:tables|figures)/[^)]+)\)", md):
        assert (reports / link).exists(), link
    page = (reports / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)  # self-contained
    assert page.count("<table") == md.count("**Table `")
    index = (reports / "index.html").read_text()  # the interactive page: every table, its scripts beside it
    assert {reports / "index.html", reports / "assets" / "plotly.min.js", reports / "assets" / "tables.js"
            } <= set(written)
    assert index.count('<table class="data"') == md.count("**Table `") and "://" not in index
    assert "accuracy_vs_flops_vgg.png" in md  # one static figure per panel
    tex = (reports / "report.tex").read_text()
    assert r"\toprule" in tex and tex.count(r"\begin{table}") == md.count("**Table `")
    assert tex.strip().endswith(r"\end{document}")
    for path in [reports / "report.tex", *(reports / "tables").glob("*.tex")]:  # compiles with pdflatex + utf8
        text = re.sub(r"\\(label|includegraphics)(\[[^\]]*\])?\{[^}]*\}", "", path.read_text())
        assert not re.findall(r"(?<!\\)[%_#]", text), path  # escaped everywhere, captions included
        assert all(ord(c) < 128 for c in text), (path, sorted({c for c in text if ord(c) >= 128}))
    readme = (out / "README.md").read_text()
    assert readme.startswith("# mine\n\nbefore\n") and readme.endswith("after\n") and "stale" not in readme
    assert "crossmethod_anytime.png" in readme and "| architecture" in readme
    assert (out / "README.md") in written


def test_rebuild_is_byte_identical_and_readme_needs_its_markers(report, smoke_store, tmp_path):
    out, written = report
    before = {p: p.read_bytes() for p in written}
    build_report(smoke_store, out / "reports", out / "README.md")
    assert all(p.read_bytes() == b for p, b in before.items())
    bare = tmp_path / "README.md"
    bare.write_text("# no markers\n")
    with pytest.raises(UserError, match="no headline-results block"):
        document.update_readme(bare, out / "reports")
