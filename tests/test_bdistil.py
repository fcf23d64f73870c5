"""B-DISTIL: the boosting weights, the barrier objective and the condition on hand-computable cases; the ensemble and
its costs; decisions replayed on resume; the baselines' weights."""
import math

import pytest
import timm
import torch

from progbench.evaluate import count_params, flops_per_image
from progbench.methods.bdistil import (
    Candidate,
    Ensemble,
    Member,
    barrier_loss,
    barrier_objective,
    boosting_weights,
    centred,
    margin,
)
from progbench.methods.bdistil_baselines import fit_weights
from progbench.store import Store
from tests.conftest import SUITES
from tests.test_runs import _run_suite, _same_run


def test_boosting_weights_by_hand():
    kp, km = boosting_weights(torch.tensor([[1.0, -1.0]]), eta=1.0)
    z = 2 * math.e + 2 / math.e
    assert kp[0].tolist() == pytest.approx([math.e / z, 1 / (math.e * z)])
    assert km[0].tolist() == pytest.approx([1 / (math.e * z), math.e / z])
    assert float(kp.sum() + km.sum()) == pytest.approx(1.0)
    # no residual: every (sample, class) pair weighs the same on both sides
    kp, km = boosting_weights(torch.zeros(3, 4), eta=0.5)
    assert torch.allclose(kp, torch.full((3, 4), 1 / 24)) and torch.allclose(km, kp)


def test_weights_stay_finite_for_large_residuals():
    kp, km = boosting_weights(torch.tensor([[400.0, -400.0, 0.0]]), eta=1.0)
    assert torch.isfinite(kp).all() and torch.isfinite(km).all()
    assert float(kp[0, 0]) == pytest.approx(0.5) and float(km[0, 1]) == pytest.approx(0.5)


def test_centred_logits_keep_the_prediction():
    g = torch.tensor([[3.0, 1.0, 2.0]])
    assert centred(g).tolist() == [[1.0, -1.0, 0.0]]


def test_barrier_objective_by_hand():
    f = torch.tensor([[1.0, -1.0]])
    kp, km = torch.tensor([[0.3, 0.1]]), torch.tensor([[0.2, 0.4]])
    expected = 0.3 * math.log(1.5) + 0.2 * math.log(0.5) + 0.1 * math.log(0.5) + 0.4 * math.log(1.5)
    assert float(barrier_objective(f, kp, km, bound=2.0)) == pytest.approx(expected)
    assert float(barrier_objective(torch.zeros(1, 2), kp, km, 2.0)) == 0.0


def test_the_training_loss_is_minus_the_objective_up_to_a_constant():
    torch.manual_seed(0)
    z = torch.randn(5, 3) * 3
    kp, km = boosting_weights(torch.randn(5, 3), eta=0.7)
    c = 2.5
    objective = barrier_objective(c * torch.tanh(z.double()), kp.double(), km.double(), c)
    constant = math.log(2) * float(kp.sum() + km.sum())
    assert float(barrier_loss(z, kp, km, scale=1.0)) == pytest.approx(-(float(objective) - constant), rel=1e-5)


def test_the_objective_is_maximised_by_the_bounded_residual():
    """dJ/df = K+/(c + f) - K-/(c - f) vanishes at f = c tanh(eta r), with K+- from that residual."""
    r, eta, c = torch.tensor([[0.8, -1.5, 0.1]]), 0.5, 2.0
    kp, km = boosting_weights(r, eta)
    f = (c * torch.tanh(eta * r)).requires_grad_(True)
    barrier_objective(f, kp, km, c).backward()
    assert torch.allclose(f.grad, torch.zeros_like(f), atol=1e-5)


def test_margin_and_condition_by_hand():
    f = torch.tensor([[1.0, -1.0]])
    kp, km = torch.tensor([[0.4, 0.1]]), torch.tensor([[0.1, 0.4]])
    assert margin(f, kp, km) == pytest.approx(0.6)  # 0.3 * 1 + (-0.3) * (-1)
    assert margin(-f, kp, km) == pytest.approx(-0.6)  # the opposite sign is as bad as it gets
    gamma, c = 0.25, 2.0
    assert margin(f, kp, km) >= gamma * c and not margin(0.2 * f, kp, km) >= gamma * c


def _members(connections: bool) -> list[Member]:
    torch.manual_seed(0)
    a = timm.create_model("pb_vgg_tiny", widths=(4, 4, 8, 8, 8))
    b = timm.create_model("pb_vgg_tiny")
    return [Member(a), Member(b, a.block_widths[-1] if connections else None)]


def test_an_ensemble_of_zero_members_predicts_uniformly():
    members = _members(connections=True)
    for m in members:
        for p in m.net.head.parameters():
            torch.nn.init.zeros_(p)
    logits = Ensemble(members, bound=2.0, num_classes=10).eval()(torch.randn(3, 3, 32, 32))
    assert torch.equal(logits, torch.zeros(3, 10))
    assert torch.allclose(logits.softmax(1), torch.full((3, 10), 0.1))
    assert torch.equal(Ensemble([], 2.0, 10)(torch.randn(2, 3, 32, 32)), torch.zeros(2, 10))


@pytest.mark.parametrize("connections", [False, True])
def test_stage_costs_add_up(connections):
    members = _members(connections)
    x = torch.randn(1, 3, 32, 32)
    one, two = Ensemble(members[:1], 2.0, 10), Ensemble(members, 2.0, 10)
    link = members[1].connection
    link_flops = 2 * link.in_channels * link.out_channels if connections else 0  # 1x1 conv on the 1x1 last map
    assert flops_per_image(two, x) == flops_per_image(members[0].net, x) + flops_per_image(members[1].net, x) \
        + link_flops
    assert flops_per_image(one, x) == flops_per_image(members[0].net, x)
    assert count_params(two) == count_params(members[0].net) + count_params(members[1].net) \
        + (count_params(link) if connections else 0)


def test_a_new_connection_starts_at_zero():
    members = _members(connections=True)
    x = torch.randn(2, 3, 32, 32)
    _, h = members[0](x)
    assert torch.equal(members[1](x, h)[0], members[1].net(x))


def test_fit_weights_prefers_the_informative_member():
    torch.manual_seed(0)
    labels = torch.randint(0, 5, (200,))
    good = torch.nn.functional.one_hot(labels, 5).float() * 4
    noise = torch.randn(200, 5) * 4
    w = fit_weights([noise, good], labels)
    assert w[1] > 3 * abs(w[0])


def test_bdistil_replays_its_decisions_after_a_kill(tmp_path):
    """Killed in round 3 (phase 4): the resumed run must replay round 1's rejection and acceptance and round 2's
    acceptance (running the accepted chain frozen, as the first time), not recompute them on later weights, and end
    exactly as the uninterrupted run."""
    suite = SUITES / "bdistil.yaml"
    _run_suite(suite, tmp_path / "straight")
    resumed = tmp_path / "resumed"
    _run_suite(suite, resumed, kill_when=lambda s: s["phase_index"] == 3 and s["epoch"] >= 1, run_glob="bdistil-*")
    _run_suite(suite, resumed)
    _same_run(tmp_path / "straight", resumed, "bdistil-vgg")
    (rec,) = [r for r in Store(resumed).records() if r.spec["method"] == "bdistil"]
    points = rec.metrics["points"]
    info = [p["info"] for p in points]
    assert [i["candidates"] for i in info] == [[1], [1, 1], [1, 1, 1]]  # candidate 0 rejected in round 1
    assert [i["attempts"] for i in info] == [2, 1, 1]
    assert not any(i["condition_met"] for i in info)  # gamma 1 cannot be met: accepted as the largest
    assert rec.metrics["extra_params"] > 0  # the rejected candidate: trained, in no stage
    for p in points:  # a stage's cost is its members' networks plus their connections, as measured by the harness
        assert p["flops"] == sum(p["info"]["member_flops"]) + sum(p["info"]["connection_flops"])
        assert p["info"]["parallel_flops"] == max(p["info"]["member_flops"]) + sum(p["info"]["connection_flops"])
    assert info[0]["connection_flops"] == [0] and all(f > 0 for f in info[2]["connection_flops"][1:])
    assert points[0]["flops"] < points[1]["flops"] < points[2]["flops"]


def test_an_unconnected_candidate_does_not_run_the_chain():
    members = _members(connections=False)
    candidate = Candidate(members[:1], members[1], bound=2.0)
    assert len(candidate.chain) == 0  # its training step and outputs cost only itself
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(candidate.eval()(x), 2.0 * torch.tanh(members[1].net(x)))
    connected = _members(connections=True)
    assert len(Candidate(connected[:1], connected[1], 2.0).chain) == 1


def test_bdistil_report_from_the_smoke_store(smoke_store, tmp_path):
    import pandas as pd

    from progbench.reports.generate import build_report
    written = {p.name for p in build_report(smoke_store, tmp_path)}
    for name in ("bdistil_stages", "bdistil_connections", "bdistil_claims"):
        assert {f"{name}.md", f"{name}.csv", f"{name}.tex"} <= written
    assert {"bdistil_accuracy_vs_cost.png", "bdistil_accuracy_vs_cost.svg"} <= written
    stages = pd.read_csv(tmp_path / "tables" / "bdistil_stages.csv")
    assert sorted(set(stages.method)) == ["B-DISTIL", "B-DISTIL, no connections", "NO-RESCHED", "RESCHED"]
    assert (stages.groupby("method").stage.max() == 3).all()
    records = {r.run_id: r for r in Store(smoke_store).records()}
    for ids in stages[stages.method == "B-DISTIL"]["run ids"]:  # every number traces to its runs
        runs = [records[r] for r in ids.split()]
        assert len(runs) == 2 and all(r.spec["method"] == "bdistil" and r.spec["config"]["connections"] for r in runs)
    connections = pd.read_csv(tmp_path / "tables" / "bdistil_connections.csv")
    assert list(connections.stage) == [1, 2, 3] and (connections.seeds == 2).all()
    claims = pd.read_csv(tmp_path / "tables" / "bdistil_claims.csv")
    assert [c.split(":")[0] for c in claims.claim] == ["B1", "B2", "B3"]
    assert set(claims.verdict) <= {"holds", "does not hold", "not measurable here"}
