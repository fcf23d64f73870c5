"""PWL: the mixed forward under every mask, each of the five losses, and the progressive loading timeline."""
import itertools
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from progbench import progressive
from progbench.data import DatasetSpec
from progbench.errors import UserError
from progbench.methods.kd import kd_loss
from progbench.methods.pwl import LOSSES, PWL, feature_distance, random_mask
from progbench.models import create_model, prepare_for_device
from progbench.protocol import Batch, Budget, Context, Task
from progbench.store import Store

FAMILIES = {  # (teacher, student, student kwargs): VGG's student is narrower (real converters), ViT's is not
    "vgg": ("pb_vgg_tiny", "pb_vgg_tiny", {"widths": [4, 8, 8, 16, 16]}),
    "vit": ("pb_vit_tiny", "pb_vit_tiny", {"layers_per_block": 1}),
}


def make_pwl(family: str, **config) -> PWL:
    teacher_arch, student_arch, student_kwargs = FAMILIES[family]
    task = Task(dataset=DatasetSpec.from_dict({"name": "cifar10"}), family=family, arch=student_arch,
                arch_kwargs=student_kwargs, budget=Budget(epochs=1), seed=0, teacher_arch=teacher_arch)
    torch.manual_seed(0)
    teacher = create_model(teacher_arch, num_classes=10, layers_per_block=2) if family == "vit" else \
        create_model(teacher_arch, num_classes=10)
    teacher.eval().requires_grad_(False)
    ctx = Context(task, torch.device("cpu"), 10, 32, teacher)
    return PWL(ctx, PWL.make_config(config))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_mask_runs_and_the_ends_are_the_two_models(family):
    pwl = make_pwl(family).eval()
    x = torch.randn(3, 3, 32, 32)
    n = pwl.num_blocks
    with torch.no_grad():
        for mask in itertools.product([False, True], repeat=n):
            net = pwl.mixed(mask)
            assert net(x).shape == (3, 10)
            switches = sum(a != b for a, b in zip(mask, mask[1:]))
            assert len(net.encoders) + len(net.decoders) == switches  # a converter exactly where the owner changes
        assert torch.equal(pwl.mixed((True,) * n)(x), pwl.teacher(x))
        assert torch.equal(pwl.mixed((False,) * n)(x), pwl.student(x))


def test_converters_are_real_maps_only_where_widths_differ():
    vgg, vit = make_pwl("vgg"), make_pwl("vit")
    assert all(isinstance(c, nn.Conv2d) and c.kernel_size == (1, 1) for c in [*vgg.encoders, *vgg.decoders])
    assert [c.in_channels for c in vgg.encoders] == [8, 16, 16, 32] and [c.out_channels for c in vgg.encoders] == [
        4, 8, 8, 16]
    assert all(isinstance(c, nn.Identity) for c in [*vit.encoders, *vit.decoders])
    # a point holds exactly its weights: teacher block 0 + embedder, encoder 0, student blocks 1.. and head
    point = vgg.mixed((True, False, False, False, False))
    keys = {k.split(".")[0] for k in point.state_dict()}
    assert keys == {"teacher", "student", "encoders"}
    expected = (sum(p.numel() for p in vgg.teacher.blocks[0].parameters())
                + sum(p.numel() for p in vgg.encoders[0].parameters())
                + sum(p.numel() for b in vgg.student.blocks[1:] for p in b.parameters())
                + sum(p.numel() for p in vgg.student.head.parameters()))
    assert sum(p.numel() for p in point.parameters()) == expected


def test_feature_distance_by_hand():
    a = torch.ones(2, 3, 2, 2)
    assert feature_distance(a, a).item() == pytest.approx(0.0, abs=1e-6)
    assert feature_distance(a, -a).item() == pytest.approx(4.0 + 2.0)  # MSE 4, 1 - cos = 2
    b = torch.zeros(2, 3, 2, 2)
    b[:, 0] = 1.0  # a quarter of the entries... of a's direction: cos = 4 / (sqrt(12) * 2)
    cos = 4 / (12 ** 0.5 * 2)
    assert feature_distance(a, b).item() == pytest.approx(8 / 12 + 1 - cos, rel=1e-5)


def _batch():
    torch.manual_seed(1)
    return Batch(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]), torch.arange(4))


def test_losses_match_their_definitions_and_train_only_student_and_converters():
    pwl = make_pwl("vgg").train()
    batch = _batch()
    torch.manual_seed(5)
    losses = pwl.losses(batch)
    assert list(losses) == list(LOSSES)
    with torch.no_grad():
        z_t, f_t = pwl.teacher.forward_taps(batch.x)
        z_s, f_s = pwl.student.forward_taps(batch.x)
    cfg = pwl.config
    assert losses["hard"].item() == pytest.approx(0.4 * nn.functional.cross_entropy(z_s, batch.y).item(), rel=1e-5)
    assert losses["soft"].item() == pytest.approx(0.6 * kd_loss(z_s, z_t, 2.0).item(), rel=1e-5)
    pairs = list(zip(f_t[:-1], f_s[:-1], pwl.encoders, pwl.decoders))
    feature = sum(feature_distance(s, e(t)) + feature_distance(t, d(s)) for t, s, e, d in pairs) / 4
    recon = sum(feature_distance(t, d(e(t))) + feature_distance(s, e(d(s))) for t, s, e, d in pairs) / 4
    assert losses["feature"].item() == pytest.approx(feature.item(), rel=1e-5)
    assert losses["reconstruction"].item() == pytest.approx(recon.item(), rel=1e-5)
    torch.manual_seed(5)  # the same random mask as inside losses(): drawn after the forwards, from this seed
    mask = random_mask(5)
    assert losses["cross"].item() == pytest.approx(
        cfg.cross_weight * kd_loss(pwl.mixed(mask)(batch.x), z_t, 2.0).item(), rel=1e-5)
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in pwl.encoders.parameters())
    assert all(p.grad is not None for p in pwl.decoders.parameters())
    assert all(p.grad is not None for p in pwl.student.parameters())


def test_cross_loss_trains_early_student_blocks_through_frozen_teacher_blocks():
    pwl = make_pwl("vgg").train()
    batch = _batch()
    with torch.no_grad():
        z_t = pwl.teacher(batch.x)
    mask = (False, True, True, True, True)  # student block 0, then decoder 0, then teacher blocks to the head
    kd_loss(pwl.mixed(mask)(batch.x), z_t, 2.0).backward()
    for module in (pwl.student.blocks[0], pwl.decoders[0]):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    assert all(p.grad is None for p in pwl.student.blocks[1].parameters())  # not on this mask's path
    assert all(p.grad is None for p in pwl.teacher.parameters())  # frozen: the gradient passes through, no update


def test_phase_gives_converters_their_lr_scale_and_clips_gradients():
    pwl = make_pwl("vgg", converter_lr_scale=0.25, max_grad_norm=2.0)
    (phase,) = list(pwl.phases())
    student, converters = phase.param_groups
    assert {id(p) for p in student["params"]} == {id(p) for p in pwl.student.parameters()}
    assert {id(p) for p in converters["params"]} == {id(p) for m in (pwl.encoders, pwl.decoders)
                                                      for p in m.parameters()}
    assert converters["lr_scale"] == 0.25 and "lr_scale" not in student and phase.max_grad_norm == 2.0
    assert phase.eval_model is pwl.student
    (vit_phase,) = list(make_pwl("vit").phases())
    assert len(vit_phase.param_groups) == 1  # identity converters: nothing to train at a scaled lr


def test_ablation_switch_drops_losses_and_rejects_unknown_names():
    pwl = make_pwl("vgg", drop=["feature", "reconstruction"])
    assert set(pwl.losses(_batch())) == {"hard", "soft", "cross"}
    assert set(make_pwl("vgg", drop=["cross"]).losses(_batch())) == {"hard", "soft", "feature", "reconstruction"}
    with pytest.raises(UserError, match="unknown loss"):
        make_pwl("vgg", drop=["features"])


def test_random_mask_mixes_both_models_in_both_modes():
    torch.manual_seed(0)
    masks = [random_mask(5) for _ in range(400)]
    assert all(0 < sum(m) < 5 for m in masks)
    single_switch = [m for m in masks if sum(a != b for a, b in zip(m, m[1:])) == 1]
    assert 0.4 < len(single_switch) / len(masks) < 0.8  # half by construction, plus iid masks with one switch
    assert len(set(masks)) > 20


def test_family_and_extra_orders():
    pwl = make_pwl("vgg")
    assert [p.name for p in pwl.anytime_family()] == ["SSSSS", "TSSSS", "TTSSS", "TTTSS", "TTTTS", "TTTTT"]
    extra = {p.name: p.info["order"] for p in pwl.extra_points()}
    assert [k for k, v in extra.items() if v == "suffix"] == ["SSSST", "SSSTT", "SSTTT", "STTTT"]
    assert {k for k, v in extra.items() if v == "contiguous"} == {"STSSS", "STTSS", "STTTS", "SSTSS", "SSTTS", "SSSTS"}


def test_progressive_stages_rebuild_each_point_and_the_timeline_runs_in_a_fresh_process(tmp_path):
    from progbench.evaluate import save_weights
    pwl = make_pwl("vgg").eval()
    points = pwl.anytime_family()
    image = torch.randn(1, 3, 32, 32)
    weights, stages_dir = tmp_path / "work" / "weights", tmp_path / "work" / "stages"  # a run's work folder
    whole = {"first": weights / "first.safetensors", "last": weights / "last.safetensors"}
    weights.mkdir(parents=True)
    save_weights(points[0].model, whole["first"])
    save_weights(points[-1].model, whole["last"])
    assert progressive.nested_keys(points) is None
    progressive.write_stages(points, stages_dir, image, whole, torch.device("cpu"))
    index = json.loads((stages_dir / "stages.json").read_text())
    # each stage file holds only what is new; together they hold every tensor of every point once
    every = {k for p in points for k in p.model.state_dict()}
    new = [set(load_file(str(stages_dir / s["file"]))) for s in index["stages"]]
    assert sum(map(len, new)) == len(every) and set().union(*new) == every
    assert all(k.startswith("teacher.") for k in new[-1])
    # building stage by stage (reusing what earlier stages built) gives each point's exact function
    skeletons = torch.load(stages_dir / "skeletons.pt", weights_only=False)
    built = {}
    for point, stage, skeleton in zip(points, index["stages"], skeletons):
        model = progressive.build(skeleton, load_file(str(stages_dir / stage["file"])), built)
        with torch.no_grad():  # the same device layout as the built model, so the same kernels: equal bit for bit
            assert torch.equal(model(image), prepare_for_device(point.model, torch.device("cpu"))(image))
    result = progressive.measure(stages_dir, trials=2, device=torch.device("cpu"), precision="fp32")
    for cache in ("warm", "cold"):
        stages = result[cache]["stages"]
        assert [s["point"] for s in stages] == [p.name for p in points]
        ready = [s["ready_s"] for s in stages]
        assert all(0 < a < b for a, b in zip(ready, ready[1:]))
        assert all(s["answer_s"] > s["ready_s"] > 0 for s in stages)
        assert result[cache]["first"]["load_s"] > 0 and result[cache]["last"]["answer_s"] > 0
    # a store moved elsewhere (trained on a cluster or a GPU machine, copied back) is measured again where it is now,
    # also from an older index that holds the absolute paths where the run trained
    moved = tmp_path / "moved"
    shutil.move(str(tmp_path / "work"), str(moved))
    old = {**index, "whole": {role: str(path) for role, path in whole.items()}}  # those paths are gone now
    for stages_index in (index, old):
        (moved / "stages" / "stages.json").write_text(json.dumps(stages_index))
        again = progressive.measure(moved / "stages", trials=1, device=torch.device("cpu"), precision="fp32")
        assert again["warm"]["first"]["load_s"] > 0 and len(again["cold"]["stages"]) == len(points)


def test_pwl_in_the_smoke_suite(smoke_store):
    store = Store(smoke_store)
    teacher = {r.spec["task"]["family"]: r for r in store.records() if r.spec["task"]["role"] == "teacher"}
    runs = [r for r in store.records() if r.spec["method"] == "pwl"]
    assert {r.spec["task"]["family"] for r in runs} == {"vgg", "vit"}
    for rec in runs:
        points = rec.metrics["points"]
        # the last prefix point is the teacher: the same predictions, bit for bit
        ours = load_file(str(rec.path / "predictions.safetensors"))[points[-1]["point"]]
        theirs = load_file(str(teacher[rec.spec["task"]["family"]].path / "predictions.safetensors"))["model"]
        assert torch.equal(ours, theirs)
        assert [p["info"]["teacher_blocks"] for p in points] == list(range(len(points)))
        assert {p["info"]["order"] for p in rec.metrics["extra_points"]} <= {"suffix", "contiguous"}
        assert rec.metrics["progressive_loading"]["warm"]["stages"][-1]["point"] == points[-1]["point"]
        assert {f"loss/{k}" for k in LOSSES} <= set(rec.log()[0])


def test_pwl_report_from_the_smoke_store(smoke_store, tmp_path):
    import pandas as pd

    from progbench.reports.generate import build_report
    written = {p.name for p in build_report(smoke_store, tmp_path)}
    assert {"pwl_prefix.csv", "pwl_other_orders.csv", "pwl_vs_baselines.csv", "pwl_loading_timeline.csv",
            "pwl_loading_targets.csv", "pwl_claims.csv", "pwl_loading_time.png", "pwl_loading_time.svg"} <= written
    prefix = pd.read_csv(tmp_path / "tables" / "pwl_prefix.csv")
    assert list(prefix[prefix.family == "vgg"]["mask"]) == ["SSSSS", "TSSSS", "TTSSS", "TTTSS", "TTTTS", "TTTTT"]
    assert (prefix["paper (%)"] == "–").all()  # a subset of CIFAR-10 is never put beside the paper's full-data numbers
    claims = pd.read_csv(tmp_path / "tables" / "pwl_claims.csv")
    p2 = claims[claims.claim.str.startswith("P2")]
    assert len(p2) == 2 and (p2.verdict == "holds").all() and p2.evidence.str.startswith("1/1 runs").all()
    assert set(claims.claim.str[:2]) == {"P1", "P2", "P3", "P4", "P5"}
    comparison = pd.read_csv(tmp_path / "tables" / "pwl_vs_baselines.csv")
    vgg = comparison[comparison.family == "vgg"].set_index("model")
    assert vgg.loc["PWL all-teacher", "top-1 (%)"] == vgg.loc["teacher", "top-1 (%)"]
    assert {"teacher", "scratch student", "KD student", "PWL student"} <= set(vgg.index)
    targets = pd.read_csv(tmp_path / "tables" / "pwl_loading_targets.csv")
    assert set(targets.cache) == {"warm", "cold"} and (targets.runs == 1).all()


def test_paper_rows_only_for_the_same_fraction_of_the_network():
    from progbench.reports.pwl import _paper_row, published
    pub = published()
    assert _paper_row(pub, "cifar10", "resnet", "prefix", 2, 4).top1 == 92.9  # T1T2S3S4
    assert _paper_row(pub, "cifar10", "resnet", "suffix", 1, 4).top1 == 88.8  # S1S2S3T4
    assert _paper_row(pub, "cifar10", "vgg", "prefix", 0, 5).top1 == 91.7  # the student
    assert _paper_row(pub, "cifar10", "vit", "suffix", 3, 3).top1 == 97.4  # all from the teacher: the teacher
    assert _paper_row(pub, "cifar10", "vgg", "prefix", 2, 5) is None  # 2/5 of the network: no paper stage
    assert _paper_row(pub, "cifar10", "vit", "prefix", 1, 3) is None
    assert _paper_row(pub, "cifar10[train_per_class=40]", "resnet", "prefix", 2, 4) is None
