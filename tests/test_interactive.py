"""The interactive page (``reports/index.html``), built from the committed store into a temporary folder: it needs
nothing online, its plots and verdicts carry the numbers of the report's tables; and in headless Chromium (marked
``browser``, skipped where Debian's chromium and chromium-driver are not installed) it loads with no console error
and no network request, draws every plot, switches the cost axis, shows run ids on hover, filters and sorts tables."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from progbench.reports import interactive
from progbench.reports.generate import build_report

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SUFFIX = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The whole report rebuilt from the committed store (never into reports/): the page reads its tables."""
    if not any((REPO / "results" / "runs").glob("*/record.json")):
        pytest.skip("no committed store under results/runs")
    out = tmp_path_factory.mktemp("interactive") / "reports"
    written = build_report(REPO / "results", out)
    assert {out / "index.html", out / "assets" / "plotly.min.js", out / "assets" / "tables.js"} <= set(written)
    return out


def figures(page: str) -> dict[str, dict]:
    """Every plot of the page: div id -> the figure handed to Plotly.newPlot."""
    calls = re.findall(r'<script>Plotly\.newPlot\("([^"]+)", (.*?)\);</script>', page)
    return {div: json.loads(data.replace("<\\/", "</")) for div, data in calls}


def tables(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / "tables" / f"{name}.csv", dtype=str, keep_default_na=False)


def test_page_is_offline_and_carries_the_tables_numbers(built):
    page = (built / "index.html").read_text()
    assert "://" not in page  # nothing to fetch: scripts, figures and tables are relative files
    for link in re.findall(r'(?:src|href)="([^"#][^"]*)"', page):
        assert link.startswith("data:") or (built / link).exists(), link
    plots = figures(page)
    assert set(plots) == set(re.findall(r'<div id="([^"]+)" class="plot">', page))
    cells = {div: fig for div, fig in plots.items() if div != "plot-pwl-loading"}
    assert {"plot-vgg", "plot-resnet", "plot-vit", "plot-vgg_c10"} <= set(cells)
    for div, fig in cells.items():  # one protocol per plot: every trace's runs are of the plot's family
        assert {card[1].split(" · ")[0] for t in fig["data"] for card in t["customdata"]} == {div[len("plot-"):]}
    for fig in cells.values():  # one button per cost axis, each with an x array per trace
        buttons = fig["layout"]["updatemenus"][0]["buttons"]
        assert [b["label"] for b in buttons] == [a.button for a in interactive.COST_AXES]
        for b in buttons:
            assert [len(x) for x in b["args"][0]["x"]] == [len(t["y"]) for t in fig["data"]]

    # the hover cards hold the tables' numbers: the cross-method points and the baselines, run ids included
    traces = {t["name"].split(",")[0]: t for t in cells["plot-vgg"]["data"]}
    points = tables(built, "crossmethod_points")
    pwl_rows = points[(points.architecture == "VGG") & (points.method == "PWL")]
    cards = traces["PWL"]["customdata"]
    assert [c[3] for c in cards] == list(pwl_rows["test top-1 (%)"])
    assert [sorted(c[5].split("<br>")) for c in cards] == [sorted(r.split()) for r in pwl_rows["run ids"]]
    baselines = tables(built, "baselines")
    kd = baselines[(baselines.dataset == "cifar10") & (baselines.family == "vgg") & (baselines.model == "KD student")]
    assert traces["KD"]["customdata"][0][3] == kd["top-1 (%)"].iloc[0]
    assert sorted(traces["KD"]["customdata"][0][5].split("<br>")) == kd["run ids"].iloc[0].split()

    # every verdict of every claims table is in the matrix, linking to its row
    links = dict(((name, int(i)), verdict) for name, i, verdict in
                 re.findall(r'<a href="#(\w+)-row-(\d+)" title="[^"]*">([^<]+)</a>', page))
    for name in ("pwl_claims", "sws_claims", "bdistil_claims"):
        for i, verdict in enumerate(tables(built, name).verdict):
            assert links[(name, i)] == verdict
            assert f'id="{name}-row-{i}"' in page
    md = (built / "README.md").read_text()
    assert page.count('<table class="data"') == md.count("**Table `")  # every table of the document


def _number(text: str) -> float:
    match = re.match(r"([-+]?\d+(?:\.\d+)?)\s*([KMGTP])?", text)
    return float(match[1]) * SUFFIX.get(match[2] or "", 1)


@pytest.mark.browser
@pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                    reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)")
def test_page_in_headless_chromium(built, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # the background-networking flags keep Chromium from calling home (a closed network refuses it, loudly)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    url = (built / "index.html").as_uri()
    try:
        driver.get_log("performance")  # drop what the browser did before the page
        driver.get(url)
        plot_ids = list(figures((built / "index.html").read_text()))
        counts = "return Array.from(document.querySelectorAll('div.plot'), p => p.querySelectorAll('.main-svg').length)"
        WebDriverWait(driver, 60).until(lambda d: all(d.execute_script(counts)))
        assert len(driver.execute_script(counts)) == len(plot_ids)  # every plot drawn

        # the cost axis: each button redraws the first plot on its axis
        first = plot_ids[0]
        state = (f"const gd = document.getElementById('{first}'); "
                 "return [gd.layout.xaxis.title.text, gd.data.map(t => Array.from(t.x))];")
        title, xs = driver.execute_script(state)
        assert title == interactive.COST_AXES[0].title
        driver.execute_script(f"document.getElementById('{first}').scrollIntoView()")
        for axis in interactive.COST_AXES[1:]:
            button = next(b for b in driver.find_elements(By.CSS_SELECTOR, f"#{first} .updatemenu-button")
                          if b.text == axis.button)
            ActionChains(driver).move_to_element(button).click().perform()
            WebDriverWait(driver, 10).until(lambda d, a=axis: d.execute_script(state)[0] == a.title)
            assert driver.execute_script(state)[1] != xs
        button = driver.find_elements(By.CSS_SELECTOR, f"#{first} .updatemenu-button")[0]  # and back
        ActionChains(driver).move_to_element(button).click().perform()
        WebDriverWait(driver, 10).until(lambda d: d.execute_script(state) == [title, xs])
        # hover: a point's card names its run ids
        point = driver.find_elements(By.CSS_SELECTOR, f"#{first} .scatterlayer .trace .points path")[0]
        ActionChains(driver).move_to_element(point).perform()
        hover = WebDriverWait(driver, 10).until(
            lambda d: d.execute_script(f"const h = document.querySelector('#{first} .hoverlayer .hovertext'); "
                                       "return h && h.textContent;"))
        assert "run ids" in hover and re.search(r"-s\d+-[0-9a-f]{12}", hover), hover

        # tables: a select hides the other rows, the search box finds a run, a header sorts
        shown = ("return Array.from(document.querySelectorAll('#{0} tbody tr'))"
                 ".filter(r => getComputedStyle(r).display !== 'none').map(r => r.cells[{1}].textContent);")
        points = tables(built, "crossmethod_points")
        column = list(points.columns).index("architecture")
        select = driver.find_element(By.CSS_SELECTOR, f'.tools[data-table="table-crossmethod_points"] '
                                                      f'select[data-column="{column}"]')
        driver.execute_script("arguments[0].scrollIntoView()", select)
        Select(select).select_by_visible_text("VGG")
        rows = driver.execute_script(shown.format("table-crossmethod_points", column))
        assert rows and set(rows) == {"VGG"} and len(rows) == (points.architecture == "VGG").sum() < len(points)
        verdicts = tables(built, "pwl_claims")
        column = list(verdicts.columns).index("verdict")
        select = driver.find_element(By.CSS_SELECTOR, f'.tools[data-table="table-pwl_claims"] '
                                                      f'select[data-column="{column}"]')
        driver.execute_script("arguments[0].scrollIntoView()", select)
        Select(select).select_by_visible_text("holds")
        assert driver.execute_script(shown.format("table-pwl_claims", column)) == ["holds"] * (
            verdicts.verdict == "holds").sum()
        runs = tables(built, "run_index")
        run_id = next(r for r in runs["run id"] if r not in set(runs["teacher run"]))  # named by its own row only
        search = driver.find_element(By.CSS_SELECTOR, '.tools[data-table="table-run_index"] input[type=search]')
        driver.execute_script("arguments[0].scrollIntoView()", search)
        search.send_keys(run_id)
        assert driver.execute_script(shown.format("table-run_index", 0)) == [run_id]
        column = list(points.columns).index("FLOPs/img")
        header = driver.find_elements(By.CSS_SELECTOR, "#table-crossmethod_points thead th")[column]
        driver.execute_script("arguments[0].scrollIntoView()", header)
        header.click()
        flops = [_number(v) for v in driver.execute_script(shown.format("table-crossmethod_points", column))]
        assert flops == sorted(flops) and len(flops) > 1

        # the verdict matrix links to rows that exist
        assert driver.execute_script("return Array.from(document.querySelectorAll('#claims-matrix a'))"
                                     ".every(a => document.getElementById(a.hash.slice(1)) !== null);")

        driver.execute_script("window.scrollTo(0, 0)")
        assert driver.save_screenshot(str(tmp_path / "index.png"))
        assert (tmp_path / "index.png").stat().st_size > 10_000

        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        requests = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
        requests = [m["params"] for m in requests if m["method"] == "Network.requestWillBeSent"]
        assert any(r["request"]["url"] == url for r in requests)
        ours = [r["request"]["url"] for r in requests if r.get("documentURL", "").startswith("file:")]
        assert ours and all(u.startswith(("file:", "data:")) for u in ours), ours
        online = [r["request"]["url"] for r in requests if not r["request"]["url"].startswith(("file:", "data:",
                                                                                                 "chrome:"))]
        assert not online, online  # nothing in the browser went online either
    finally:
        driver.quit()
