"""Paper scale without a GPU: every model of the paper suite built (meta device) beside the published numbers, the GPU
estimate computed from its stated rate, B-DISTIL in the paper suite, and the memory-mapped data path."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from progbench import data, scale
from progbench.errors import UserError
from progbench.models import create_model
from progbench.runner import fmt_count, forward_flops
from progbench.store import Store
from progbench.suite import load_suite
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper():
    return load_suite("paper")


@pytest.fixture(scope="module")
def models(paper):
    return scale.compare(scale.suite_models(paper), scale.published_models())


def meta_params(arch, num_classes, **kwargs):
    with torch.device("meta"):
        model = create_model(arch, num_classes=num_classes, **kwargs)
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def find(models, family, label):
    return next(m for m in models if m["family"] == family and m["model"] == label)


def test_every_paper_model_is_built_and_printed(paper, models, capsys, tmp_path):
    labels = {(m["family"], m["model"]) for m in models}
    for family in ("vgg", "resnet", "vit"):
        assert {(family, "teacher"), (family, "student")} <= labels
    for family in ("sws_s", "sws_b"):
        assert {(family, f"des-d{d}") for d in (6, 8, 10, 12)} | {(family, "aux-net 3+3+4+3+3")} <= labels
    assert ("sws_s", "teacher") in labels and find(models, "sws_s", "teacher")["arch"] == "levit_384"
    for family in ("bd_vgg", "bd_resnet", "bd_vit"):
        assert {(family, "candidate0"), (family, "candidate1")} <= labels
    assert all(m["params"] > 0 and m["flops"] > 0 for m in models)  # each one built and run forward on meta

    # independent counts: a Des-Net by hand; the Aux-Net stores one layer per stage (= a 5-layer Des-Net's params)
    # and computes all 16 of its layers (= a 16-layer Des-Net's FLOPs: the head count changes neither)
    d6 = find(models, "sws_s", "des-d6")
    assert d6["params"] == meta_params("pb_vit_des_s_paper", 1000, num_blocks=6)
    aux = find(models, "sws_s", "aux-net 3+3+4+3+3")
    assert aux["params"] == meta_params("pb_vit_des_s_paper", 1000, num_blocks=5)
    assert aux["flops"] == forward_flops("pb_vit_des_s_paper", 1000, 224, {"num_blocks": 16})

    assert run_cli("plan", "paper", "--models", "--results", str(tmp_path)) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()]
    for m in models:
        row = next(r for r in rows if r[:2] == [m["family"], m["model"].split()[0]])
        assert fmt_count(m["params"]) in row and f"{m['flops'] / 1e9:.3f}" in row
    assert sum(line.startswith(("vgg ", "sws_s ", "bd_vit ")) for line in out.splitlines()) == sum(
        m["family"] in ("vgg", "sws_s", "bd_vit") for m in models)


def test_published_numbers_come_from_the_data_file(models, tmp_path):
    published = scale.published_models()
    assert published and all(p["source"] and p["reference"] for p in published)
    matched = [m for m in models if m["published"]]
    assert len({id(m["published"]) for m in matched}) == len(published)  # every row is one of the suite's models
    d12 = find(models, "sws_s", "des-d12")
    assert d12["published"]["params"] == 22.05e6 and abs(d12["d_params"]) < 0.005 and abs(d12["d_macs"]) < 0.01
    assert abs(find(models, "sws_s", "teacher")["d_macs"]) < 0.002  # LeViT-384: 2353M multiply-adds

    text = (REPO / "reports" / "data" / "paper_models.csv").read_text()
    row = "pb_vit_des_s_paper,,1000,224,22.05,"
    assert text.count(row) == 1
    edited = tmp_path / "paper_models.csv"
    edited.write_text(text.replace(row, "pb_vit_des_s_paper,,1000,224,11.025,"))  # half: ours must read +100%
    again = scale.compare([m for m in models if m["published"]], scale.published_models(edited))
    assert find(again, "sws_s", "des-d12")["d_params"] == pytest.approx(1.0, abs=0.005)


def test_gpu_estimate_follows_the_stated_rate(paper, capsys, tmp_path):
    store = Store(tmp_path / "results")
    teacher = next(r for r in paper.runs if r.is_teacher and r.family == "vgg")
    images = 45000 // 128 * 128  # full CIFAR-10 train after the 500-per-class val carve, last batch dropped
    assert scale.run_train_flops(teacher) == 160 * images * 3 * forward_flops("pb_vgg_teacher_paper", 10, 32)
    sws = next(r for r in paper.runs if r.method == "sws" and r.family == "sws_s")
    n = (1300 - 10) * 1000 // 512 * 512  # ImageNet-1K at 1300 per class (assumed) less 10 per class for val
    aux = 150 * n * (3 * forward_flops("pb_vit_des_s_paper", 1000, 224, {"shared_stages": [3, 3, 4, 3, 3],
                                                                         "num_heads": 12})
                     + forward_flops("levit_384", 1000, 224))
    des = sum(10 * n * 3 * forward_flops("pb_vit_des_s_paper", 1000, 224, {"num_blocks": d, "layers_per_block": 1})
              for d in (6, 8, 10, 12))
    assert scale.run_train_flops(sws) == pytest.approx(aux + des, rel=1e-12)

    slow = scale.gpu_plan(paper, store, "family=sws_b", 100.0)
    fast = scale.gpu_plan(paper, store, "family=sws_b", 200.0)
    for a, b in zip(slow, fast):
        assert a["gpu_hours"] == pytest.approx(a["train_flops"] / 100e12 / 3600)
        assert b["gpu_hours"] == pytest.approx(a["gpu_hours"] / 2)

    def total(tflops):
        assert run_cli("plan", "paper", "--device", "cuda", "--gpu-tflops", tflops, "--results",
                       str(tmp_path / "results")) == 0
        out = capsys.readouterr().out
        line = next(x for x in out.splitlines() if x.startswith("to run:"))
        assert "given by --gpu-tflops" in line
        assert "memory-mapped from disk" in out  # ImageNet-1K at 224 px: ~203 GB decoded
        return float(line.split("~")[1].split()[0])

    assert total("150") == pytest.approx(2 * total("300"), rel=0.01)
    assert run_cli("plan", "paper", "--gpu-tflops", "100") == 2  # the rate belongs to --device cuda
    assert "--gpu-tflops" in capsys.readouterr().err


def test_flop_estimates_match_the_cpu_suite_records():
    """The estimate's cost model against FLOPs the trainer measured in the committed cpu store (where recorded)."""
    store = Store(REPO / "results")
    checked = 0
    for run in load_suite("cpu").runs:
        record = store.get(run.run_id)
        if record is None or run.method in ("pwl", "bdistil"):  # PWL: one random mask measured; B-DISTIL: a bound
            continue
        measured = record.metrics["training"]["train_flops"]
        assert scale.run_train_flops(run) == pytest.approx(measured, rel=0.05), run.label
        checked += 1
    if not checked:
        pytest.skip("no cpu-suite records in the store")


def test_bdistil_in_the_paper_suite_shares_the_paper_teachers(paper):
    teachers = {r.family: r.run_id for r in paper.runs if r.is_teacher}
    for fam, source in (("bd_vgg", "vgg"), ("bd_resnet", "resnet"), ("bd_vit", "vit")):
        runs = [r for r in paper.runs if r.family == fam]
        assert {r.method for r in runs} >= {"bdistil", "resched", "noresched"}
        assert {r.teacher_id for r in runs} == {teachers[source]}
        assert all(r.task.dataset.train_per_class is None for r in runs)  # the whole CIFAR-10 train split
    assert "B-DISTIL (settings ours: the paper's could not be read)" in (REPO / "bench/suites/paper.yaml").read_text()


def test_data_needs_in_the_plan(monkeypatch):
    cifar = data.DatasetSpec("cifar10", val_per_class=500)
    imagenet = data.DatasetSpec("imagenet1k", image_size=224, val_per_class=10)
    assert scale.decoded_bytes(cifar) == 60000 * 32 * 32 * 3
    assert scale.decoded_bytes(imagenet) == (1300 + 50) * 1000 * 224 * 224 * 3
    assert "in memory" in scale.data_needs(cifar) and "memory-mapped" in scale.data_needs(imagenet)
    monkeypatch.setenv("PROGBENCH_MEMMAP_BYTES", "1e6")
    assert "memory-mapped" in scale.data_needs(cifar)
    monkeypatch.setenv("PROGBENCH_MEMMAP_BYTES", "lots")
    with pytest.raises(UserError, match="PROGBENCH_MEMMAP_BYTES must be a number of bytes"):
        data.memmap_threshold()


def test_memmap_path_gives_the_same_arrays_and_batches(tmp_path, monkeypatch):
    monkeypatch.setenv("PROGBENCH_CACHE", str(tmp_path / "cache"))
    spec = data.DatasetSpec("cifar10", val_per_class=10, train_per_class=30, test_per_class=20)
    monkeypatch.setenv("PROGBENCH_MEMMAP_BYTES", str(10**12))
    memory = data.load(spec)
    files = set(os.listdir(tmp_path / "cache"))
    monkeypatch.setenv("PROGBENCH_MEMMAP_BYTES", "0")
    mapped = data.load(spec)
    new = set(os.listdir(tmp_path / "cache")) - files
    assert len(new) == 2 and all("-train-" in f for f in new)  # train and val decoded apart; test's file shared
    for name in ("train", "val", "test"):
        a, b = getattr(memory, name), getattr(mapped, name)
        assert a.images.dtype == b.images.dtype == torch.uint8
        assert a.images.shape == b.images.shape and a.images.stride() == b.images.stride()
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert isinstance(np.load(tmp_path / "cache" / sorted(new)[0], mmap_mode="r"), np.memmap)

    prep = data.Preprocess(memory.mean, memory.std, data.AugmentSpec(crop_padding=4, flip=True, rotation=15),
                           torch.device("cpu"))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for (i1, x1, y1), (i2, x2, y2) in zip(data.batches(memory.train, 64, True, g1, drop_last=True),
                                          data.batches(mapped.train, 64, True, g2, drop_last=True)):
        assert torch.equal(i1, i2) and torch.equal(x1, x2) and torch.equal(y1, y2)
        assert torch.equal(prep(x1, train=True, generator=g1), prep(x2, train=True, generator=g2))
    stamps = {f: (tmp_path / "cache" / f).stat().st_mtime_ns for f in new}
    again = data.load(spec)  # read back from the cache, not decoded again
    assert torch.equal(again.train.images, memory.train.images)
    assert stamps == {f: (tmp_path / "cache" / f).stat().st_mtime_ns for f in new}
