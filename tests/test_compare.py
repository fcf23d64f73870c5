"""`progbench compare`: a user's method (the example package under examples/) trained where the suite trains KD, on
the same tasks and teachers, stored like any run, and tabled and plotted against every baseline."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from progbench.protocol import available_methods, get_method
from progbench.store import Store
from tests.conftest import run_cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "progbench-example"
LADDER = f"{EXAMPLE / 'progbench_example' / 'ladder.py'}:KDLadder"


def _runs(store: Path) -> dict[str, float]:
    """Run folder -> mtime of its record (a retrained run would write a new one)."""
    return {d.name: (d / "record.json").stat().st_mtime for d in sorted((store / "runs").iterdir())}


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
        phases = [json.loads(line)["phase"] for line in (rec.path / "log.jsonl").read_text().splitlines()]
        assert phases == ["full", "full", "small", "small"]  # the full student first: it teaches the small one

    table = pd.read_csv(out / "comparison.csv")
    assert {"teacher", "scratch", "kd", "pwl", "bdistil", "resched", "noresched", "kd-ladder"} <= set(table.method)
    ladder = table[table.method == "kd-ladder"]
    assert list(ladder.point) == ["small", "full"] and list(ladder.seeds) == [2, 2]

    def top1(rows):
        return rows["top-1 (%)"].astype(str).str.split(" ± ").str[0].astype(float)

    delta = ladder["Δ top-1 vs KD / scratch (pts)"].astype(str).str.split(" / ", expand=True).astype(float)
    for col, baseline in enumerate(("kd", "scratch")):  # the method's mean minus the baseline's, point by point
        expected = top1(ladder) - top1(table[table.method == baseline]).iloc[0]
        assert (delta[col] - expected).abs().max() < 0.011, (baseline, delta[col], expected)
    assert table[table.method != "kd-ladder"]["Δ top-1 vs KD / scratch (pts)"].isna().all()  # only for the method
    md = (out / "comparison.md").read_text()
    assert "| kd-ladder" in md and "| teacher" in md and new[0] in md
    assert (out / "comparison.tex").read_text().count("& kd-ladder &") == 2  # its rows (no run ids in LaTeX)
    for ext in ("png", "svg"):
        assert (out / f"accuracy_vs_flops.{ext}").stat().st_size > 10_000


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
    assert "| kd-ladder" in printed  # the Markdown table is printed


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
    """Points of classes a method file defines unpickle in the process that times progressive loading."""
    (tmp_path / "nested.py").write_text(NESTED)
    store = tmp_path / "results"
    shutil.copytree(smoke_store, store)
    assert run_cli("compare", "nested-file", "--method", f"{tmp_path / 'nested.py'}:Nested", "--suite", "smoke",
                   "--only", "seed=0", "--results", str(store), "--out", str(tmp_path / "out"), "--no-progress") == 0
    [rec] = [r for r in Store(store).records() if r.spec["method"] == "nested-file"]
    assert [s["point"] for s in rec.metrics["progressive_loading"]["warm"]["stages"]] == ["one", "two"]


NO_KD = """
name: nokd
dataset: {name: cifar10, val_per_class: 5, train_per_class: 10, test_per_class: 5}
budgets: {b: {epochs: 1, batch_size: 50}}
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
