"""Datasets through the registry, on the real CIFAR-10 copy: splits, the fixed val carve, batched augmentation."""
import pytest
import torch

from progbench import data
from progbench.errors import UserError

SMALL = data.DatasetSpec("cifar10", val_per_class=10, train_per_class=30, test_per_class=20)


@pytest.fixture(scope="module")
def small():
    return data.load(SMALL)


def test_split_sizes_and_dtype(small):
    assert (len(small.train), len(small.val), len(small.test)) == (300, 100, 200)
    assert small.train.images.dtype == torch.uint8 and small.train.images.shape[1:] == (3, 32, 32)
    assert torch.bincount(small.val.labels).tolist() == [10] * 10


def test_val_carve_is_fixed_and_disjoint(small):
    again = data.load(SMALL)
    assert torch.equal(again.val.images, small.val.images)  # same carve every time, whatever the run seed
    train_rows = {bytes(x.contiguous().numpy()) for x in small.train.images}
    assert not any(bytes(x.contiguous().numpy()) in train_rows for x in small.val.images)


def test_full_cifar10_split(small):
    full = data.load(data.DatasetSpec("cifar10"))
    assert (len(full.train), len(full.val), len(full.test)) == (45000, 5000, 10000)


def test_augmentation_is_batched_seeded_and_label_preserving(small):
    prep = data.Preprocess(small.mean, small.std, data.AugmentSpec(crop_padding=4, flip=True, rotation=15),
                           torch.device("cpu"))
    x = small.train.images[:64]
    a = prep(x, train=True, generator=torch.Generator().manual_seed(1))
    b = prep(x, train=True, generator=torch.Generator().manual_seed(1))
    c = prep(x, train=True, generator=torch.Generator().manual_seed(2))
    assert a.shape == (64, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    plain = prep(x, train=False)
    assert abs(plain.mean().item()) < 0.3 and 0.7 < plain.std().item() < 1.3  # normalised by CIFAR mean/std


def test_crop_without_padding_or_flip_is_identity(small):
    prep = data.Preprocess(small.mean, small.std, data.AugmentSpec(crop_padding=0, flip=False), torch.device("cpu"))
    x = small.train.images[:8]
    assert torch.equal(prep(x, train=True, generator=torch.Generator()), prep(x, train=False))


def test_unknown_dataset():
    with pytest.raises(UserError, match=r"unknown dataset 'cifar11'; known datasets: cifar10, imagenette, imagenet1k.*"
                                        r"\(docs/adding-a-dataset.md\)$"):
        data.load(data.DatasetSpec("cifar11"))


def test_missing_data_root(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        data.load(SMALL, root=tmp_path / "nowhere")


def test_wrong_layout(tmp_path):
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "images.zip").write_bytes(b"not a dataset")
    with pytest.raises(UserError, match="not found under the data root"):
        data.load(SMALL, root=tmp_path)


def test_imagenette_subset_of_classes(data_root):
    spec = data.DatasetSpec("imagenette", image_size=32, val_per_class=5, train_per_class=10, test_per_class=5,
                            classes=(0, 3, 7))
    d = data.load(spec)
    assert d.spec.num_classes == 3
    assert sorted(d.train.labels.unique().tolist()) == [0, 1, 2]
    assert d.train.images.shape == (30, 3, 32, 32)


def _image_folder(root, small, splits=(("train", 6), ("validation", 2))):
    """``root/imagenet/<split>/<wnid>/*.png``: real CIFAR images of classes 0-2 standing in for photos."""
    from PIL import Image
    wnids = ["n01440764", "n02102040", "n02979186"]
    for split, per_class in splits:
        for c, wnid in enumerate(wnids):
            folder = root / "imagenet" / split / wnid
            folder.mkdir(parents=True)
            picks = (small.train.labels == c).nonzero().flatten()[:per_class]
            for i in picks.tolist():
                Image.fromarray(small.train.images[i].permute(1, 2, 0).numpy()).save(folder / f"{i}.png")


def test_imagenet1k_image_folder_mistakes_are_one_line(tmp_path, small):
    """An ImageFolder whose test folder is val/ says what it found and how to map it; without classes: a local subset
    of ImageNet-1K says which class is missing and what to set."""
    _image_folder(tmp_path, small, (("train", 6), ("val", 2)))
    spec = data.DatasetSpec("imagenet1k", image_size=32, val_per_class=2)
    with pytest.raises(UserError, match=r"^dataset imagenet1k: its test split is the folder validation/ or test/ but "
                                        r".*imagenet holds train, val; rename the folder to validation/, or declare "
                                        r"the folder as a dataset of its own with splits: \{train: train, test: val\}"):
        data.load(spec, root=tmp_path)
    (tmp_path / "imagenet" / "val").rename(tmp_path / "imagenet" / "validation")
    with pytest.raises(UserError, match=r"^dataset imagenet1k: class 3 has no examples in its train split, but "
                                        r"val_per_class asks for 2 of each of its 1000 classes; the split holds "
                                        r"examples of 3 classes only \(labels 0-2\): pick the classes you have with "
                                        r"the dataset's classes: \(e.g. classes: \[0, 1, 2\]\), or declare the folder "
                                        r"as a dataset of its own with num_classes: 3"):
        data.load(spec, root=tmp_path)


def test_imagenet1k_subset_from_an_image_folder(tmp_path, small):
    """A user's local ImageNet-1K in ImageFolder layout, subset by wnids (real CIFAR images stand in for photos)."""
    _image_folder(tmp_path, small)
    spec = data.DatasetSpec("imagenet1k", image_size=32, val_per_class=2, train_per_class=4,
                            classes=("n02979186", "n01440764"))
    d = data.load(spec, root=tmp_path)
    assert (len(d.train), len(d.val), len(d.test)) == (8, 4, 4)
    assert sorted(d.train.labels.tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]  # relabelled in the order given
