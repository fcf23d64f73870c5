"""SWS: the stage-shared Aux-Net, the layers_source rule, Des-Net expansion, the suite's shared teacher, the smoke runs
and the report."""

import pandas as pd
import pytest
import timm
import torch
from timm.models.vision_transformer import Block

from progbench.data import DatasetSpec
from progbench.errors import UserError
from progbench.evaluate import count_params, unique_tensors
from progbench.methods.sws import SWS, layers_source
from progbench.protocol import Budget, Context, Task
from progbench.store import Store
from progbench.suite import load_suite, suite_path

TINY = dict(dim=32, num_heads=2)  # pb_vit_des_tiny


def sws(**config) -> SWS:
    task = Task(dataset=DatasetSpec("cifar10"), family="sws", arch="pb_vit_des_tiny", budget=Budget(epochs=1), seed=0)
    torch.manual_seed(0)
    return SWS(Context(task, torch.device("cpu"), 10, 32), SWS.make_config(config))


@pytest.mark.parametrize("stages, depth, expected", [
    ((2, 2, 2), 6, [0, 0, 1, 1, 2, 2]),  # as deep as the Aux-Net: every layer from its own stage
    ((2, 2, 2), 3, [0, 1, 2]),
    ((2, 2, 2), 5, [0, 0, 1, 1, 2]),  # quotas 5/3 each: the leftover layers go to the earlier stages
    ((2, 2, 2), 2, [0, 1]),  # fewer layers than stages: the later stage is skipped
    ((3, 3, 4, 3, 3), 12, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4]),  # quotas 2.25 x4 and 3: the 0.25s tie, stage 0 wins
    ((1, 3), 8, [0, 0, 1, 1, 1, 1, 1, 1]),
])
def test_layers_source_rule(stages, depth, expected):
    assert layers_source(stages, depth) == expected


def test_the_official_12_layer_map_is_used_when_given():
    official = (0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4)
    method = sws(aux_stages=(3, 3, 4, 3, 3), layers_source=(official,), des_depths=(8, 12))
    assert method.source_map(12) == list(official)
    assert method.source_map(8) == layers_source((3, 3, 4, 3, 3), 8)  # other depths: the rule


def test_aux_net_holds_one_block_per_stage():
    stages = (2, 1, 3)
    aux = timm.create_model("pb_vit_des_tiny", shared_stages=stages)
    plain = timm.create_model("pb_vit_des_tiny")
    block = sum(p.numel() for p in Block(TINY["dim"], TINY["num_heads"], qkv_bias=True).parameters())
    outside = count_params(plain.embed) + count_params(plain.head)
    assert count_params(aux) == len(stages) * block + outside
    assert [len(stage) for stage in aux.blocks] == list(stages)
    for stage in aux.blocks:  # every layer of a stage uses its first layer's tensors, no other stage's
        first = {n: p.data_ptr() for n, p in stage[0].named_parameters()}
        for layer in stage[1:]:
            assert {n: p.data_ptr() for n, p in layer.named_parameters()} == first
    ptrs = [stage[0].attn.qkv.weight.data_ptr() for stage in aux.blocks]
    assert len(set(ptrs)) == len(stages)
    # what is stored (shared tensors once) is the same count
    assert sum(t.numel() for t in unique_tensors(aux).values()) == count_params(aux)


def test_aux_net_trains_shared_weights_once():
    aux = timm.create_model("pb_vit_des_tiny", shared_stages=(2, 2))
    aux(torch.randn(2, 3, 32, 32)).sum().backward()
    g = aux.blocks[0][0].attn.qkv.weight.grad
    assert g is not None and g is aux.blocks[0][1].attn.qkv.weight.grad  # both layers' gradients in one tensor


@pytest.mark.parametrize("depth", [2, 3, 5, 7])
def test_des_net_starts_from_the_learngene_layers_its_map_names(depth):
    method = sws(aux_stages=(2, 2, 2), des_depths=(depth,))
    des, aux = method.expand(depth), method.aux
    mapping = method.source_map(depth)
    assert len(des.blocks) == depth and len(mapping) == depth
    for k, stage in enumerate(mapping):
        got, want = des.blocks[k][0].state_dict(), aux.blocks[stage][0].state_dict()
        assert got.keys() == want.keys()
        assert all(torch.equal(got[n], want[n]) for n in want)
        assert got["attn.qkv.weight"].data_ptr() != want["attn.qkv.weight"].data_ptr()  # copied, not tied
    for part in ("embed", "head"):
        got, want = getattr(des, part).state_dict(), getattr(aux, part).state_dict()
        assert all(torch.equal(got[n], want[n]) for n in want)


def test_des_net_as_deep_as_the_aux_net_computes_the_aux_net():
    method = sws(aux_stages=(1, 2, 2), des_depths=(5,))
    des = method.expand(5).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(des(x), method.aux.eval()(x))


def test_copy_head_off_keeps_the_des_nets_own_classifier():
    method = sws(copy_head=False, des_depths=(3,))
    torch.manual_seed(1)
    des = method.expand(3)
    assert not torch.equal(des.head[-1].weight, method.aux.head[-1].weight)
    assert torch.equal(des.head[0].weight, method.aux.head[0].weight)  # the final norm is still copied


def test_bad_configs_are_one_line_errors():
    with pytest.raises(UserError, match="des_depths must be increasing"):
        sws(des_depths=(4, 3))
    with pytest.raises(UserError, match="aux_stages must be positive"):
        sws(aux_stages=(2, 0))
    with pytest.raises(UserError, match="must name stages 0..2 in order"):
        sws(layers_source=((0, 3, 1),))


def _suite_with(tmp_path, family: str):
    text = suite_path("smoke").read_text()
    start = text.index("  sws: {teacher_from")
    end = text.index("runs:")
    path = tmp_path / "s.yaml"
    path.write_text(text[:start] + family + "\n" + text[end:])
    return path


def test_a_family_shares_another_familys_teacher_run():
    suite = load_suite("smoke")
    vit_teacher = next(r for r in suite.runs if r.is_teacher and r.family == "vit")
    sws_runs = [r for r in suite.runs if r.family == "sws"]
    assert sws_runs and all(r.teacher_id == vit_teacher.run_id for r in sws_runs)
    assert all(r.spec["task"]["teacher_arch"] == "pb_vit_tiny" for r in sws_runs)
    assert not any(r.is_teacher and r.family == "sws" for r in suite.runs)  # no second teacher is trained


@pytest.mark.parametrize("family, message", [
    ("  sws: {teacher_from: vit, student: pb_vit_des_tiny, budget: tiny, dataset: {name: cifar10, val_per_class: 20}}",
     r"dataset differs from its teacher's \(family vit\) in \['test_per_class', 'val_per_class'\]"),
    ("  sws: {teacher_from: nope, student: pb_vit_des_tiny, budget: tiny}",
     "teacher_from 'nope', which is not a family with a teacher of its own; families with teachers: vgg, vit"),
    ("  sws: {teacher_from: vit, teacher: pb_vit_tiny, student: pb_vit_des_tiny, budget: tiny}",
     r"takes its teacher from 'vit'; remove \['teacher'\]"),
])
def test_shared_teacher_mistakes_are_one_line_errors(tmp_path, family, message):
    with pytest.raises(UserError, match=message):
        load_suite(str(_suite_with(tmp_path, family)))


def _records(store, method):
    return [r for r in Store(store).records() if r.spec["method"] == method]


def test_sws_and_baselines_in_the_smoke_suite(smoke_store):
    for rec in _records(smoke_store, "sws"):
        points = rec.metrics["points"]
        assert [p["point"] for p in points] == ["d2", "d3"]
        assert [p["info"]["layers_source"] for p in points] == [[0, 1], [0, 1, 1]]
        assert points[0]["flops"] < points[1]["flops"]
        aux = rec.metrics["extra_points"][0]
        assert aux["point"] == "aux" and aux["info"]["stages"] == [1, 2]
        assert rec.metrics["extra_params"] == aux["params"]  # the learngene: the only weights no Des-Net holds
        log = rec.log()
        assert [r["phase"] for r in log] == ["aux", "finetune-d2", "finetune-d2", "finetune-d3", "finetune-d3"]
        assert sum(r["images"] for r in log) == rec.metrics["training"]["images_seen"]  # stage costs add up
        assert sum(r["train_flops"] for r in log) == pytest.approx(rec.metrics["training"]["train_flops"])
    for rec in _records(smoke_store, "des_pretrain"):
        assert [r["phase"] for r in rec.log()] == ["pretrain-d2", "finetune-d2", "finetune-d2",
                                                   "pretrain-d3", "finetune-d3", "finetune-d3"]
        assert rec.metrics["extra_params"] == 0
    scratch = _records(smoke_store, "des_scratch")
    assert sorted(r.spec["task"]["budget"]["epochs"] for r in scratch) == [2, 2, 3, 3]


def test_sws_report_from_the_smoke_store(smoke_store, tmp_path):
    from progbench.reports.generate import build_report, human
    written = {p.name for p in build_report(smoke_store, tmp_path)}
    for name in ("sws_accuracy", "sws_fine_tuning", "sws_cost", "sws_ratios", "sws_claims"):
        assert {f"{name}.md", f"{name}.csv", f"{name}.tex"} <= written
    assert {"sws_accuracy_vs_depth.png", "sws_accuracy_vs_depth.svg"} <= written
    acc = pd.read_csv(tmp_path / "tables" / "sws_accuracy.csv")
    assert list(acc.depth) == ["2", "3", "Aux-Net"]
    assert {"SWS (%)", "scratch, 2 ep (%)", "scratch, 3 ep (%)", "pre-train + fine-tune (%)"} <= set(acc.columns)
    sws_ids = {r.run_id for r in _records(smoke_store, "sws")}
    assert sws_ids <= set(acc["run ids"].iloc[0].split())
    claims = pd.read_csv(tmp_path / "tables" / "sws_claims.csv")
    assert [c.split(":")[0] for c in claims.claim] == ["S1", "S2", "S3", "S4"]
    assert set(claims.verdict) <= {"holds", "does not hold"}
    cost = pd.read_csv(tmp_path / "tables" / "sws_cost.csv", dtype=str).set_index("method")
    stored = cost["params stored to initialise all sizes"]
    aux_params = _records(smoke_store, "sws")[0].metrics["extra_params"]
    pretrained = sum(p["params"] for p in _records(smoke_store, "des_pretrain")[0].metrics["points"])
    assert (stored["SWS"], stored["pre-train + fine-tune"], stored["scratch, 2 ep"]) == (
        human(aux_params), human(pretrained), "0")


def test_sws_on_a_cnn_family_is_refused_with_the_reason():
    task = Task(dataset=DatasetSpec("cifar10"), family="vgg", arch="pb_vgg_tiny", budget=Budget(epochs=1), seed=0)
    with pytest.raises(UserError, match="needs a ViT student .* family vgg's student pb_vgg_tiny is not one"):
        SWS(Context(task, torch.device("cpu"), 10, 32), SWS.make_config({}))
