"""The grid report on a grid in miniature, trained for real: points with seeds and training cost, areas against the
KD ladder over the shared range, winners among trained points only, claims from per-seed paired differences with
95 % intervals; and the grid-only method settings run end to end."""
import dataclasses
import itertools
import math
import statistics
from collections import Counter

import pandas as pd
import pytest

from progbench.rates import machine_of
from progbench.reports import grid
from progbench.reports.generate import tidy
from progbench.store import Store
from tests.conftest import REPO, SUITES, run_cli

MINI = SUITES / "minigrid.yaml"


@pytest.fixture(scope="module")
def minigrid(tmp_path_factory):
    store = tmp_path_factory.mktemp("minigrid") / "results"
    assert run_cli("run", str(MINI), "--results", str(store), "--no-progress") == 0
    return store


def test_grid_tables(minigrid, tmp_path):
    records = Store(minigrid).records()
    df = tidy(records)
    written = grid.build(df, {r.run_id: r for r in records}, tmp_path, grid.grid_runs(str(MINI)))
    names = {p.stem for p in written}
    assert {"grid_points", "grid_area", "grid_matched", "grid_winners", "grid_claims", "grid_cost",
            "grid_anytime"} <= names
    cost = pd.read_csv(tmp_path / "tables" / "grid_cost.csv")
    total = cost[cost.cell == "all"].iloc[0]
    runs = grid.grid_runs(str(MINI))
    assert total.runs == f"{len(runs)} of {len(runs)}"  # every run of the suite trained, its minutes summed
    assert float(total["training (min)"]) == pytest.approx(
        sum(r.metrics["training"]["wall_clock_s"] for r in records if r.run_id in {s.run_id for s in runs}) / 60,
        abs=0.06)
    machines = Counter(machine_of(r.env()) for r in records if r.run_id in {s.run_id for s in runs})
    assert total["trained on"] == "; ".join(f"{m} ({n})" for m, n in machines.most_common())  # where each trained
    # the README headline comes from the grid once a store holds grid runs: protocol, figure, areas, winners
    from progbench.reports import document
    text = document.headline(tmp_path / "README.md", tmp_path)
    assert text.startswith(document.GRID_PROTOCOL) and "/figures/grid_anytime.png)" in text
    assert all(f"{name}." in text for name in ("grid_area", "grid_matched", "grid_winners"))
    assert "crossmethod_area" not in text
    # its matched table: each verdict with how sure it is, on FLOPs (the other axes linked)
    below = text.splitlines()[next(i for i, line in enumerate(text.splitlines()) if "grid_matched.csv" in line) + 2:]
    matched = list(itertools.takewhile(lambda line: line.startswith("|"), below))
    assert all(c in matched[0] for c in ("difference (pts)", "95% interval", "reading"))
    assert "cost axis" not in matched[0] and "timing 95%" not in matched[0]
    assert len(matched) - 2 == (pd.read_csv(tmp_path / "tables" / "grid_matched.csv")["cost axis"]
                                == document.HEADLINE_AXIS).sum()
    points = pd.read_csv(tmp_path / "tables" / "grid_points.csv")
    kd = points[points.method == "KD"]
    assert len(kd) == 2 and set(kd["student kwargs"].fillna("")) == {"", '{"widths": [4, 4, 8, 8, 8]}'}
    assert (kd[kd["student kwargs"].isna()]["x student"] == 1).all()
    assert (points[points.method != "teacher"].seeds.astype(str).str.startswith("2 (of 3)")).all()  # marked
    methods = {"PWL", "B-DISTIL", "RESCHED", "NO-RESCHED", "SWS", "Des scratch", "Des scratch, 3 ep", "Des pre-train",
               "scratch", "teacher"}  # the two scratch budgets of SWS's baselines are two curves
    assert methods <= set(points.method)
    # PWL with per-stage BN statistics is reported beside the shared-statistics family, its statistics in its bytes
    plain, restat = (points[points.method == m].set_index("point") for m in ("PWL", "PWL, per-stage BN statistics"))
    assert list(restat.index) == list(plain.index)  # every prefix stage, the all-teacher one shared
    student_stage = plain.index[0]
    assert grid_bytes(restat.loc[student_stage, "weights"]) > grid_bytes(plain.loc[student_stage, "weights"])
    assert restat.iloc[-1]["top-1 (%)"] == plain.iloc[-1]["top-1 (%)"]
    area = pd.read_csv(tmp_path / "tables" / "grid_area.csv")
    assert set(area.method) >= {"PWL", "B-DISTIL", "scratch"} and "KD" not in set(area.method)
    assert (area.seeds == "2 (of 3)").all()  # fewer than 3 seeds: shown as such in every table
    # every method against the KD ladder at matched cost, per seed: scratch (own size only) is the paired difference
    # with the KD rung of its size
    matched = pd.read_csv(tmp_path / "tables" / "grid_matched.csv", dtype=str).set_index(["cost axis", "method"])
    own_size = df.arch_kwargs.fillna("{}") == '{"widths": [4, 8, 8, 16, 16]}'
    by_seed = {m: df[(df.family == "vgg") & (df.method == m) & own_size].set_index("seed").test_top1.astype(float)
               for m in ("scratch", "kd")}
    gaps = by_seed["scratch"] - by_seed["kd"]
    row = matched.loc[("FLOPs", "scratch")]
    assert row["points compared"] == "1" and row.seeds == "2 (of 3)"
    assert row["difference (pts)"] == f"{gaps.mean() * 100:+.2f} ± {gaps.std(ddof=1) * 100:.2f}"
    assert {"B-DISTIL", "PWL", "PWL, per-stage BN statistics"} <= set(matched.index.get_level_values(1))
    winners = pd.read_csv(tmp_path / "tables" / "grid_winners.csv")
    assert not winners.astype(str).apply(lambda c: c.str.contains("chance")).any().any()
    entries = winners.drop(columns=["cell", "cost axis"]).stack()
    trained = entries[entries != "none trained"]
    assert len(trained) and trained.str.contains("2 of 3 seeds").all()
    claims = pd.read_csv(tmp_path / "tables" / "grid_claims.csv")
    ids = {c.split(" ")[0] for c in claims.claim}  # the ids of docs/claims.md, every one judged per cell
    assert ids == {"P1", "P2", "P3", "P4", "P5", "B1", "B2", "B3", "S1", "S2", "S3/S4"}
    assert {"B2 beats RESCHED at equal FLOPs", "B3 stays within 1 point of NO-RESCHED at equal FLOPs"} <= set(
        claims.claim)
    # P5 compares each seed's main PWL run with its own suffix stages, never an ablation's
    main = grid.lines(df[df.family == "vgg"], grid.own_students(runs), grid.main_configs(runs))
    main = main[main.line == "PWL"]
    assert set(main.run_id) and {"PWL (drop=cross)"} <= set(points.method)
    gaps = []
    for _, run in main.groupby("run_id"):
        pre = run[(run.kind == "family") & (run.order == "prefix")].sort_values("flops")
        suffix = df[(df.run_id == run.run_id.iloc[0]) & (df.kind == "extra") & (df.order == "suffix")]
        at = [grid._interp(pre.flops.to_numpy(float), pre.test_top1.to_numpy(float), c) - a
              for c, a in zip(suffix.flops, suffix.test_top1)]
        gaps.append(sum(x for x in at if not math.isnan(x)) / sum(not math.isnan(x) for x in at))
    p5 = claims[claims.claim.str.startswith("P5")].iloc[0]
    assert p5["paired difference (pts)"].startswith(f"{sum(gaps) / len(gaps) * 100:+.2f}")
    p2 = claims[claims.claim.str.startswith("P2")].iloc[0]
    assert p2.verdict == "holds" and p2["paired difference (pts)"].startswith("+0.00")  # the teacher, bit for bit
    assert set(claims.verdict) <= {"holds", "does not hold", "inconclusive"}
    assert (claims.seeds == 2).all() and claims["95% interval"].str.startswith("[").all()

    # a cell still training (only the smaller KD rung finished) keeps the suite's own student as its unit of cost
    own = grid.own_students(grid.grid_runs(str(MINI)))
    assert own == {"vgg": '{"widths": [4, 8, 8, 16, 16]}', "vit": "{}"}
    smaller_kd = (df.method == "kd") & (df.arch_kwargs == '{"widths": [4, 4, 8, 8, 8]}')
    partial = df[(df.family == "vgg") & ((df.role == "teacher") | smaller_kd | (df.method == "scratch"))]
    pts = grid.points(partial, {r.run_id: r for r in records}, own)
    assert set(pts[pts.line == "KD"].own_size) == {False} and set(pts[pts.line == "scratch"].own_size) == {True}

    # the main line is the suite's unnamed entry: a variant decided against on val is never drawn as the main line,
    # even while the main line is still training
    mains = grid.main_configs(grid.grid_runs(str(MINI)))
    pwl_main = mains[("vgg", "pwl")]
    assert '"bn_restat": true' in pwl_main
    decided_against = {**mains, ("vgg", "pwl"): pwl_main.replace('"max_grad_norm": 1.0', '"max_grad_norm": 5.0')}
    relabelled = grid.lines(df[df.family == "vgg"], own, decided_against)
    pwl_lines = set(relabelled[relabelled.method == "pwl"].line)
    assert "PWL" not in pwl_lines and "PWL (max_grad_norm=1.0)" in pwl_lines
    assert "PWL" in set(grid.lines(df[df.family == "vgg"], own, mains).line)


def grid_bytes(text: str) -> float:
    """'992.66KB' -> 992660.0, as the tables write sizes."""
    number, unit = text[:-2] if text[-2:-1] in "KMG" else text[:-1], text[-2:-1] if text[-2:-1] in "KMG" else ""
    return float(number) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[unit]


def test_verdicts_and_intervals_by_hand():
    mean, std, low, high = grid.interval([0.01, 0.03])
    assert mean == pytest.approx(0.02) and std == pytest.approx(math.sqrt(2) * 0.01)
    assert low == pytest.approx(0.02 - 12.706 * std / math.sqrt(2))
    assert grid.verdict(0.01, 0.02, 0.0) == "holds" and grid.verdict(-0.02, -0.01, 0.0) == "does not hold"
    assert grid.verdict(-0.01, 0.02, 0.0) == "inconclusive" and grid.verdict(float("nan"), 1, 0) == "inconclusive"
    # no chance below the cheapest point; shared range only
    a = (pd.Series([1.0, 4.0]).to_numpy(), pd.Series([0.5, 0.8]).to_numpy())
    b = (pd.Series([2.0, 8.0]).to_numpy(), pd.Series([0.6, 0.9]).to_numpy())
    area_a, area_b, lo, hi = grid.shared_area(a, b)
    assert (lo, hi) == (2.0, 4.0) and area_a == pytest.approx(0.5 + 0.3 * 1 / 256, abs=0.01)
    assert math.isnan(grid.anytime(a[0], a[1], 0.5))


def test_timing_widens_only_the_latency_interval_by_hand():
    """A cell of two seeds: a KD ladder of two rungs and one method's point between them. Timed alike in every round,
    the timing adds nothing; timed differently from round to round, the difference moves with the rounds drawn, and
    the interval widens by that much (half-widths in quadrature)."""
    rows = [{"family": "f", "line": line, "rung": rung, "point": "p", "seed": seed, "run_id": f"{line}{rung}-s{seed}",
             "test_top1": acc + 0.01 * seed}
            for seed in (0, 1) for line, rung, acc in (("KD", "a", 0.5), ("KD", "b", 0.7), ("M", "m", 0.65))]
    cell = pd.DataFrame(rows)
    steady = {("KDa-s0", "p"): [1.0] * 5, ("KDb-s0", "p"): [4.0] * 5, ("Mm-s0", "p"): [2.0] * 5}
    steady.update({(f"{rid[:-1]}1", point): t for (rid, point), t in steady.items()})
    # at latency 2 (halfway in log cost between 1 and 4) the ladder reads 0.6: the method is 5 points above
    timed = grid.with_pass_latency(cell, {k: t[0] for k, t in steady.items()})
    found = grid._matched_differences(timed, timed.latency.to_numpy(float))
    assert found["M"][0] == [pytest.approx(0.05), pytest.approx(0.05)] and found["M"][1] == {("m", "p")}
    low, high = grid.timing_intervals(timed, steady)["M"]
    assert low == pytest.approx(0.05) and high == pytest.approx(0.05)
    noisy = {**steady, ("Mm-s0", "p"): [1.0, 1.5, 2.0, 3.0, 4.0], ("Mm-s1", "p"): [1.0, 1.5, 2.0, 3.0, 4.0]}
    low, high = grid.timing_intervals(grid.with_pass_latency(cell, {k: statistics.median(t) for k, t in noisy.items()}),
                                      noisy)["M"]
    assert -0.05 - 1e-9 <= low < 0.05 < high <= 0.15 + 1e-9  # the ladder read anywhere from 0.5 to 0.7
    assert grid.widened(0.05, 0.04, 0.06, (0.05, 0.05)) == (pytest.approx(0.04), pytest.approx(0.06))
    assert grid.widened(0.05, 0.01, 0.09, (0.02, 0.05)) == (pytest.approx(0.0), pytest.approx(0.09))


def test_grid_only_settings_ran(minigrid):
    records = Store(minigrid).records()
    bd = [r for r in records if r.spec["method"] == "bdistil"]
    assert bd and all(r.spec["config"]["targets"] == "view" and r.spec["config"]["acceptance"] == "edge" for r in bd)
    assert all(-1 <= p["info"]["edge"] <= 1 for r in bd for p in r.metrics["points"])
    pwl = [r for r in records if r.spec["method"] == "pwl"]
    restat = [p for r in pwl for p in r.metrics["extra_points"] if p["info"]["order"] == "prefix-bnstat"]
    assert len(pwl) == 2 * 2 and len(restat) == len(pwl) * 5  # main line and ablation, 2 seeds, 5 student stages
    assert all(p["info"]["bn_statistics_values"] > 0 for p in restat)


def test_latency_pass_times_every_point_of_a_cell_and_the_report_scores_it(minigrid, tmp_path, capsys):
    import json
    import shutil

    from progbench import latency
    from progbench.errors import UserError
    store = tmp_path / "results"
    shutil.copytree(minigrid, store)
    for work in store.glob("runs/*/work"):  # a pass needs no run's weights: the store as a fresh clone holds it
        shutil.rmtree(work)
    # --busy-ok: the tests themselves keep the machine busy; a pass for the record runs on a quiet one
    assert run_cli("latency", str(MINI), "--only", "family=vgg", "--results", str(store), "--rounds", "2",
                   "--min-run-time", "0.01", "--load-trials", "1", "--busy-ok") == 0
    (path,) = (store / "latency" / "vgg").glob("*.json")
    timed = json.loads(path.read_text())
    expected = {(r.run_id, p["point"]) for r in Store(store).records() if r.spec["task"]["family"] == "vgg"
                for p in r.metrics["points"]}
    assert {(p["run_id"], p["point"]) for p in timed["points"]} == expected  # every point, teacher included
    assert all(len(p["round_s"]) == 2 and p["latency_min_s"] <= p["latency_s"] <= p["latency_max_s"]
               and p["latency_s"] > 0 for p in timed["points"])
    assert timed["family"] == "vgg" and len(timed["load_average_before"]) == 3 and timed["env"]["cpu"]
    assert timed["weights"] == latency.STAND_INS and "left_out" not in timed and "loading_left_out" not in timed
    records = Store(store).records()
    assert all(r.architectures.is_file() for r in records)  # every run keeps its family's architectures
    # the PWL runs' loading timelines measured again (from stage files written anew, of the run's sizes), and the
    # report reads the pass's, not the run's own
    pwl_ids = {r.run_id for r in records if r.spec["method"] == "pwl" and r.spec["task"]["family"] == "vgg"}
    staged = {r.run_id for r in records if r.spec["task"]["family"] == "vgg"
              and "warm" in r.metrics.get("progressive_loading", {})}  # PWL's and B-DISTIL's
    assert pwl_ids and pwl_ids <= staged and set(timed["loading"]) == staged
    assert all([s["new_bytes"] for s in timed["loading"][rid]["warm"]["stages"]]
               == [s["new_bytes"] for s in r.metrics["progressive_loading"]["warm"]["stages"]]
               for r in records if r.run_id in staged for rid in [r.run_id])
    assert all(tl["trials"] == 1 and len(tl[cache]["stages"]) > 1 and tl[cache]["first"]["answer_s"] > 0
               for tl in timed["loading"].values() for cache in ("warm", "cold"))
    from progbench.reports.pwl import timeline_frame
    rid = sorted(pwl_ids)[0]
    remeasured = latency.pass_timelines(latency.latest_passes(store))
    remeasured[rid] = json.loads(json.dumps(remeasured[rid]))
    remeasured[rid]["warm"]["stages"][0]["answer_s"] = 123.0
    tl = timeline_frame(tidy(records), {r.run_id: r for r in records}, variant=None, remeasured=remeasured)
    first = tl[(tl.run_id == rid) & (tl.cache == "warm") & (tl.what == "stage") & (tl["index"] == 0)]
    assert first.answer_s.tolist() == [123.0]
    grid.build(tidy(records), {r.run_id: r for r in records}, tmp_path / "out", grid.grid_runs(str(MINI)),
               store_root=store)
    points = pd.read_csv(tmp_path / "out" / "tables" / "grid_points.csv", dtype=str)
    vgg = points[points.cell.str.contains("VGG")]
    assert (vgg["latency (ms)"] != "–").all() and (points[points.cell.str.contains("ViT")]["latency (ms)"] == "–").all()
    area = pd.read_csv(tmp_path / "out" / "tables" / "grid_area.csv")
    assert set(area[area.cell.str.contains("VGG")]["cost axis"]) == {"FLOPs", "weight bytes", "latency (one pass)"}
    assert "latency (one pass)" not in set(area[area.cell.str.contains("ViT")]["cost axis"])  # no pass, not scored
    matched = pd.read_csv(tmp_path / "out" / "tables" / "grid_matched.csv")
    assert set(matched[matched.cell.str.contains("VGG")]["cost axis"]) == {"FLOPs", "weight bytes",
                                                                            "latency (one pass)"}
    assert "latency (one pass)" not in set(matched[matched.cell.str.contains("ViT")]["cost axis"])
    # on latency, the interval holds the timing's own (bootstrap over the pass's rounds); FLOPs and bytes have none
    on_latency = matched[(matched["cost axis"] == "latency (one pass)") & matched["95% interval"].ne("–")
                         & matched["95% interval"].notna()]
    assert not on_latency.empty and (matched[matched["cost axis"] != "latency (one pass)"]["timing 95%"] == "–").all()
    for bounds, timing in zip(on_latency["95% interval"], on_latency["timing 95%"]):
        (low, high), (t_low, t_high) = (map(float, b.strip("[]").split(", ")) for b in (bounds, timing))
        assert low <= t_low <= t_high <= high
    # a point's latency cost is its median over seeds in the pass, the same in every seed (as FLOPs and bytes are)
    labelled = grid.with_pass_latency(grid.lines(tidy(records)[lambda d: d.kind == "family"]),
                                      latency.pass_latencies(latency.latest_passes(store)))
    kd = labelled[(labelled.family == "vgg") & (labelled.line == "KD")]
    by_seed = {(rid, point): timed_s for rid, point, timed_s in
               ((p["run_id"], p["point"], p["latency_s"]) for p in timed["points"])}
    assert kd.groupby(["rung", "point"]).latency.nunique().eq(1).all()
    first = kd.iloc[0]
    seeds = kd[(kd.rung == first.rung) & (kd.point == first.point)]
    assert first.latency == pytest.approx(statistics.median(by_seed[rid, first.point] for rid in seeds.run_id))
    passes = pd.read_csv(tmp_path / "out" / "tables" / "grid_latency_passes.csv")
    assert list(passes.family) == ["vgg"] and passes.points.iloc[0] == len(expected)
    assert passes["runs left out"].iloc[0] == 0 and passes.weights.iloc[0] == "stand-in"
    # a later pass never overwrites an earlier one; the report reads the latest (one seed: all this needs)
    assert run_cli("latency", str(MINI), "--only", "family=vgg,seed=0", "--results", str(store), "--rounds", "1",
                   "--min-run-time", "0.01", "--load-trials", "1", "--busy-ok") == 0
    assert len(list((store / "latency" / "vgg").glob("*.json"))) == 2
    assert latency.latest_passes(store)["vgg"]["rounds"] == 1
    assert latency.busy([100.0, 0, 0]) and not latency.busy([0.0, 0, 0])
    capsys.readouterr()
    (store / "latency" / "vgg" / "99999999T999999999999Z.json").write_text("{")  # a torn pass: one clear line
    with pytest.raises(UserError, match="cannot be read.*progbench latency"):
        latency.latest_passes(store)


def test_a_pass_rebuilds_points_without_their_weights(minigrid):
    """A run keeps its family's architectures (``points.pt``); a run recorded before that was kept is rebuilt by its
    method: from its spec where the method builds the family without data or training (PWL here, on the meta device
    as at plan time), from its record where the run's data or training decided it (B-DISTIL's members, RESCHED's
    weights), and named, with the reason, where neither can. On the committed store's VGG runs, and checked against
    what a run kept."""
    from progbench import latency
    from progbench.suite import load_suite
    suite, committed = load_suite("grid"), Store(REPO / "results")
    (pwl,) = [r for r in suite.select("family=vgg_in,method=pwl,seed=0")
              if r.method == "pwl" and not r.spec["config"]["drop"] and committed.get(r.run_id)]
    record = committed.get(pwl.run_id)
    assert record.architectures is None and len(record.metrics["points"]) > 1  # trained before points.pt was kept
    models = latency.family(record, pwl)
    assert list(models) == [p["point"] for p in record.metrics["points"]]  # parameter counts checked in family()
    from progbench.preflight import meta_family
    for method in ("bdistil", "resched"):
        old = next(r for r in suite.select(f"family=vgg_c10,method={method},seed=0") if r.method == method)
        record = committed.get(old.run_id)
        assert record.architectures is None  # trained before points.pt was kept
        assert list(latency.family(record, old)) == [p["point"] for p in record.metrics["points"]]  # params checked
        unreadable = dataclasses.replace(record, metrics={**record.metrics, "points": [
            {**p, "info": {}} for p in record.metrics["points"]]})
        assert "cannot build its family from the spec or the record" in latency.family(unreadable, old)
        # what the method rebuilds from a record is what a run of it kept
        new = next(r for r in suite.select(f"family=vgg_in,method={method},seed=0") if r.method == method)
        record = committed.get(new.run_id)
        kept = latency.architectures(record, new)
        rebuilt = {p.name: p.model for p in meta_family(new, record.metrics["points"])}
        assert list(kept) == list(rebuilt) and all(
            {k: v.shape for k, v in kept[n].state_dict().items()}
            == {k: v.shape for k, v in rebuilt[n].state_dict().items()} for n in kept)
    # what a run keeps is what its method builds from the spec
    mini = load_suite(str(MINI))
    run = next(r for r in mini.select("method=pwl") if r.method == "pwl")
    kept = latency.architectures(Store(minigrid).get(run.run_id), run)
    built = {p.name: p.model for p in meta_family(run)}
    assert list(kept) == list(built) and all(
        {k: v.shape for k, v in kept[n].state_dict().items()} == {k: v.shape for k, v in built[n].state_dict().items()}
        for n in kept)
    shared = {id(t) for m in latency.stand_ins(kept).values() for t in m.parameters()}
    assert len(shared) < sum(len(list(m.parameters())) for m in kept.values())  # the points still share tensors


def test_claims_say_the_cpu_suites_verdict_on_the_same_dataset_and_architecture(minigrid, tmp_path):
    """The grid's claims carry the verdict the paper sections gave the same claim outside the grid (matched on
    dataset and student architecture; S3/S4 reads both), so a changed verdict shows."""
    df = tidy(Store(minigrid).records())
    outside = df[df.family == "vgg"].assign(family="vgg_outside")  # the same cell's data and student, another suite
    df = pd.concat([df, outside], ignore_index=True)
    tables = tmp_path / "tables"
    tables.mkdir()
    dataset = df[df.family == "vgg"].dataset.iloc[0]
    pd.DataFrame([{"claim": "P1 prefix stages rise almost monotonically", "dataset": dataset, "family": "vgg_outside",
                   "verdict": "does not hold"},
                  {"claim": "P1 prefix stages rise almost monotonically", "dataset": dataset, "family": "vgg",
                   "verdict": "holds"}]).to_csv(tables / "pwl_claims.csv", index=False)  # a grid family: not earlier
    pd.DataFrame([{"claim": f"{i}: something", "dataset": dataset, "family": "vgg_outside", "verdict": v}
                  for i, v in (("S3", "does not hold"), ("S4", "holds"))]).to_csv(tables / "sws_claims.csv",
                                                                                   index=False)
    cell = grid.cell_label(df[df.family == "vgg"])
    claims = pd.DataFrame({"cell": [cell, cell, cell, "elsewhere"],
                           "claim": ["P1 prefix stages rise almost monotonically", "P2 x", "S3/S4 y", "P1 z"]})
    said = grid.earlier_verdicts(claims, df, tables, {"vgg", "vit"})
    assert said == ["does not hold (vgg_outside)", "–", "S3 does not hold (vgg_outside); S4 holds (vgg_outside)", "–"]


def test_p4_reads_no_loading_timeline_a_gpu_measured():
    """The grid's latency is a CPU's: a run trained on a GPU timed its loading there, so P4 reads its timeline only
    once a latency pass (on a CPU) has measured it again. On the committed store's VGG PWL runs (CPU and H200)."""
    records = {r.run_id: r for r in Store(REPO / "results").records()
               if r.spec["method"] == "pwl" and r.spec["task"]["family"] in ("vgg_c10", "vgg_in")}
    df = tidy(list(records.values())).assign(line="PWL")
    ratios = grid.first_answer_ratios(df, records)
    on_gpu = {rid for rid, r in records.items() if r.env()["device"] == "cuda"}
    assert on_gpu and ratios and not on_gpu & set(ratios)
    remeasured = sorted(on_gpu)[0]
    timeline = records[next(iter(ratios))].metrics["progressive_loading"]  # one a CPU measured
    assert remeasured in grid.first_answer_ratios(df, records, {remeasured: timeline})
