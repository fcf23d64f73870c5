"""Architectures: timm registration, the block contract, and pinned params/FLOPs of every preset."""
import pytest
import timm
import torch

from progbench import models
from progbench.runner import forward_flops

# (params, FLOPs per image at the preset's img_size, 32 px for the CNNs) -- `progbench models` prints the same numbers.
PINNED = {
    "pb_vgg_teacher_paper": (14724042, 626403328),
    "pb_vgg_student_paper": (3917386, 135669760),
    "pb_vgg_teacher_cpu": (2310186, 77272064),
    "pb_vgg_student_cpu": (246682, 9144832),
    "pb_vgg_tiny": (18034, 1548928),
    "pb_resnet_teacher_paper": (5338762, 605426688),
    "pb_resnet_student_paper": (1241226, 152441856),
    "pb_resnet_teacher_cpu": (701466, 70093312),
    "pb_resnet_student_cpu": (308826, 32344576),
    "pb_resnet_tiny": (11490, 4038976),
    "pb_vit_teacher_paper": (5525962, 2492747520),
    "pb_vit_student_paper": (2856778, 1275277056),
    "pb_vit_teacher_cpu": (1205642, 164366848),
    "pb_vit_student_cpu": (610826, 82577920),
    "pb_vit_tiny": (32490, 1049216),
    "pb_vit_des_s_paper": (21668746, 9147293184),  # DeiT-S depth 12: 22M params, 4.6 GMACs
    "pb_vit_des_b_paper": (85804810, 34941778944),  # DeiT-B depth 12: 86M params, 17.6 GMACs
    "pb_vit_des_cpu": (1217930, 39324160),
    "pb_vit_des64_cpu": (1291658, 41683456),
    "pb_vit_des_tiny": (57898, 1901184),
}


def test_every_preset_is_pinned():
    assert sorted(models.preset_names()) == sorted(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_preset_params_and_flops(name):
    family, preset = name.split("_", 2)[1:]
    size = models.FAMILIES[family][preset].get("img_size", 32)
    model = timm.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == PINNED[name][0]
    assert forward_flops(name, 10, size) == PINNED[name][1]


@pytest.mark.parametrize("family", ["vgg", "resnet", "vit"])
def test_block_structure_and_taps(family):
    teacher = timm.create_model(f"pb_{family}_teacher_cpu", num_classes=7).eval()
    student = timm.create_model(f"pb_{family}_student_cpu", num_classes=7).eval()
    assert teacher.num_blocks == student.num_blocks  # PWL swaps block i of one for block i of the other
    x = torch.randn(2, 3, 32, 32)
    logits, taps = teacher.forward_taps(x)
    assert logits.shape == (2, 7) and len(taps) == teacher.num_blocks
    assert torch.allclose(logits, teacher(x))
    for tap, width in zip(taps, teacher.block_widths):
        assert tap.shape[1 if family != "vit" else 2] == width


def test_cpu_vgg_student_is_narrower_than_teacher():
    t, s = timm.create_model("pb_vgg_teacher_cpu"), timm.create_model("pb_vgg_student_cpu")
    assert all(ws < wt for ws, wt in zip(s.block_widths, t.block_widths))


def test_generic_entry_takes_widths_and_depths():
    m = timm.create_model("pb_resnet", widths=(8, 16), depths=(1, 2), num_classes=3)
    assert m.num_blocks == 2 and m.block_widths == [8, 16]
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_unknown_architecture_is_a_user_error():
    from progbench.errors import UserError
    with pytest.raises(UserError, match="unknown architecture 'pb_nope'"):
        models.create_model("pb_nope")
