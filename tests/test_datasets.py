"""Datasets of one's own, declared in a suite's datasets: section, a .yaml file or a package's entry point: they load
and train through a suite, their declaration and files enter the run id (built-ins keep theirs), and mistakes are one
line naming what to fix. Real CIFAR-10 images, written as a small ImageFolder (4 classes) under a temporary data
root."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from progbench import data
from progbench.errors import UserError
from progbench.store import Store
from progbench.suite import load_suite
from tests.conftest import run_cli

CLASSES = ("airplane", "automobile", "bird", "cat")
TRAIN, TEST = 20, 5  # images per class written to train/ and val/

TINY = ("{folder: tiny, layout: imagefolder, splits: {train: train, test: val}, num_classes: 4, native_size: 32, "
        "mean: cifar10, std: cifar10}")
TINY_FILE = """# the same declaration in a file of its own
name: {name}
folder: tiny
layout: imagefolder
splits: {{train: train, test: val}}
num_classes: 4
native_size: 32
mean: cifar10
std: cifar10
"""
SUITE = """
name: mine
executor: {workers: 1, threads_per_worker: 1}
datasets:
  tiny: DECLARATION
dataset: {name: tiny, val_per_class: 5, train_per_class: 15, test_per_class: 5}
budgets: {b: {epochs: 1, batch_size: 20, precision: fp32}}
families:
  vgg: {teacher: pb_vgg_tiny, student: pb_vgg_tiny, teacher_budget: b, budget: b}
runs:
  - {method: kd, families: [vgg]}
"""


def write_suite(folder: Path, text: str = SUITE, declaration: str = TINY, name: str = "suite.yaml") -> Path:
    path = folder / name
    path.write_text(text.replace("DECLARATION", declaration))
    return path


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory, data_root) -> Path:
    """A data root holding ``tiny/`` (train/<class>/*.png, val/<class>/*.png: the first CIFAR-10 training images of 4
    classes, 100 files) and a link to the real cifar10 folder."""
    root = tmp_path_factory.mktemp("data")
    table = pq.read_table(data_root / "cifar10" / "plain_text" / "train-00000-of-00001.parquet").slice(0, 1000)
    seen: dict[int, int] = {}
    for img, label in zip(table.column("img").to_pylist(), table.column("label").to_pylist()):
        if label >= len(CLASSES) or seen.get(label, 0) >= TRAIN + TEST:
            continue
        k = seen[label] = seen.get(label, 0) + 1
        folder = root / "tiny" / ("train" if k <= TRAIN else "val") / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{k:03d}.png").write_bytes(img["bytes"])
    assert sum(seen.values()) == len(CLASSES) * (TRAIN + TEST)
    (root / "cifar10").symlink_to(data_root / "cifar10")
    return root


@pytest.fixture
def root(shared_root, tmp_path, monkeypatch) -> Path:
    """A copy of the data root of one's own (to change files in), as PROGBENCH_DATA, with its own decode cache."""
    mine = tmp_path / "data"
    shutil.copytree(shared_root, mine, symlinks=True)
    monkeypatch.setenv("PROGBENCH_DATA", str(mine))
    monkeypatch.setenv("PROGBENCH_CACHE", str(tmp_path / "cache"))
    return mine


def ids(suite_path: Path) -> list[str]:
    return [r.run_id for r in load_suite(str(suite_path)).runs]


def one_error_line(capsys, returned: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert returned == 2 and len(err) == 1 and "Traceback" not in err[0], err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


# --- declared in a suite: loads, trains, and its files are part of the run id ----------------------------------------

def test_a_declared_image_folder_trains_through_a_suite(root, tmp_path, capsys):
    suite = write_suite(tmp_path)
    store = tmp_path / "results"
    assert run_cli("run", str(suite), "--results", str(store), "--no-progress") == 0
    records = {r.run_id: r for r in Store(store).records()}
    runs = load_suite(str(suite)).runs
    assert set(records) == {r.run_id for r in runs} and len(runs) == 2  # the teacher and the KD student
    declared = records[runs[0].run_id].spec["task"]["dataset"]["declaration"]
    assert declared["folder"] == "tiny" and declared["splits"] == {"train": "train", "test": "val"}
    assert declared["files"]["count"] == len(CLASSES) * (TRAIN + TEST) and len(declared["files"]["sha256"]) == 16
    d = data.load(runs[1].task.dataset)
    assert (len(d.train), len(d.val), len(d.test)) == (60, 20, 20)
    assert sorted(d.test.labels.unique().tolist()) == [0, 1, 2, 3] and d.train.images.shape[1:] == (3, 32, 32)
    capsys.readouterr()
    assert run_cli("plan", str(suite), "--results", str(store)) == 0
    assert capsys.readouterr().out.startswith("suite mine: 2 runs (2 cached)")


def test_run_ids_follow_the_declaration_and_the_files(root, tmp_path, monkeypatch):
    inline = ids(write_suite(tmp_path))
    # the same declaration in a file of its own, named from the suite's datasets: or from the dataset field: same ids
    (tmp_path / "tiny.yaml").write_text(TINY_FILE.format(name="tiny"))
    assert ids(write_suite(tmp_path, declaration="tiny.yaml", name="by_file.yaml")) == inline
    by_field = SUITE.replace("datasets:\n  tiny: DECLARATION\n", "").replace("{name: tiny,", "{name: tiny.yaml,")
    assert ids(write_suite(tmp_path, by_field, name="by_field.yaml")) == inline
    # an explicit default changes nothing; any other declared value does
    assert ids(write_suite(tmp_path, declaration=TINY[:-1] + ", image_column: image}")) == inline
    assert ids(write_suite(tmp_path, declaration=TINY[:-1] + ", version: 2}")) != inline
    # the files: one more image, one image of another size, then back as it was
    extra = root / "tiny" / "train" / "cat" / "extra.png"
    shutil.copy(root / "tiny" / "train" / "cat" / "001.png", extra)
    added = ids(write_suite(tmp_path))
    extra.write_bytes(extra.read_bytes() + b"\0")
    resized = ids(write_suite(tmp_path))
    extra.unlink()
    assert len({tuple(inline), tuple(added), tuple(resized)}) == 3 and ids(write_suite(tmp_path)) == inline
    # the same files copied elsewhere (new modification times, another data root): the same ids
    elsewhere = tmp_path / "copy"
    shutil.copytree(root / "tiny", elsewhere / "tiny", copy_function=shutil.copy)
    monkeypatch.setenv("PROGBENCH_DATA", str(elsewhere))
    assert ids(write_suite(tmp_path)) == inline


def test_a_declared_copy_of_cifar10_is_not_the_builtin(root, tmp_path):
    """The real CIFAR-10 parquet files declared under another name: other run ids; the built-in's spec is as ever."""
    builtin = SUITE.replace("datasets:\n  tiny: DECLARATION\n", "").replace("name: tiny,", "name: cifar10,")
    copy = builtin.replace("name: cifar10,", "name: cifar10copy,") + (
        "datasets:\n  cifar10copy: {folder: cifar10/plain_text, image_column: img, num_classes: 10, native_size: 32, "
        "mean: cifar10, std: cifar10}\n")
    ours, theirs = load_suite(str(write_suite(tmp_path, copy, name="copy.yaml"))), \
        load_suite(str(write_suite(tmp_path, builtin, name="builtin.yaml")))
    assert not {r.run_id for r in ours.runs} & {r.run_id for r in theirs.runs}
    assert "declaration" not in theirs.runs[0].spec["task"]["dataset"]
    assert theirs.runs[0].spec["task"]["dataset"] == data.DatasetSpec.from_dict(
        {"name": "cifar10", "val_per_class": 5, "train_per_class": 15, "test_per_class": 5}).to_dict()
    files = ours.runs[0].spec["task"]["dataset"]["declaration"]["files"]
    assert files["count"] == 2 and files["bytes"] > 100e6  # the two parquet files, not read whole
    d = data.load(ours.runs[1].task.dataset)
    assert (len(d.train), len(d.val), len(d.test)) == (150, 50, 50)


def test_a_run_refuses_files_other_than_those_it_was_planned_with(root, tmp_path):
    spec = load_suite(str(write_suite(tmp_path))).runs[0].task.dataset
    (root / "tiny" / "val" / "bird" / "021.png").unlink()
    with pytest.raises(UserError, match="dataset tiny: its files under .* are not those this run was planned with "
                                        r"\(planned: 100 files.*found: 99 files.*plan the suite again"):
        data.load(spec)


# --- mistakes: one line, naming what to fix ---------------------------------------------------------------------------

BAD = {
    "unknown name": (lambda s: s.replace("{name: tiny,", "{name: tinyy,"),
                     ["unknown dataset 'tinyy'; known datasets: cifar10, imagenette, imagenet1k, tiny",
                      "datasets: section", "'progbench.datasets' entry point", "docs/adding-a-dataset.md"]),
    "missing folder": (lambda s: s.replace("folder: tiny,", "folder: nowhere,"),
                       ["dataset tiny: folder nowhere not found under the data root ROOT", "PROGBENCH_DATA",
                        "fix the declaration's folder:"]),
    "split folder named otherwise": (lambda s: s.replace("splits: {train: train, test: val}, ", ""),
                                     ["dataset tiny: its test split is the folder test/ but ROOT/tiny holds train, "
                                      "val; name the split folders in its declaration: splits: {train: train, test: "
                                      "val}"]),
    "image folder declared as parquet": (lambda s: s.replace("layout: imagefolder, ", ""),
                                         ["dataset tiny: ROOT/tiny has no train-*.parquet files",
                                          "declare layout: imagefolder"]),
    "wrong number of classes": (lambda s: s.replace("num_classes: 4", "num_classes: 10"),
                                ["holds 4 class folders but the declaration says num_classes: 10; set num_classes: 4"]),
    "a built-in's name": (lambda s: s.replace("  tiny: {", "  cifar10: {"),
                          ["cifar10 is a built-in dataset; declare yours under a name of its own"]),
    "absolute folder": (lambda s: s.replace("folder: tiny,", "folder: /abs/tiny,"),
                        ["folder must be a path relative to the data root"]),
    "unknown key": (lambda s: s.replace("num_classes: 4", "classes: 4"),
                    ["dataset tiny: unknown key(s) ['classes']; a declaration takes name, folder"]),
    "missing declaration file": (lambda s: s.replace(TINY, "nothere.yaml"), ["dataset file", "nothere.yaml not found"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_mistakes_are_one_line(case, root, tmp_path, capsys):
    change, needles = BAD[case]
    suite = tmp_path / "suite.yaml"
    suite.write_text(change(SUITE.replace("DECLARATION", TINY)))
    one_error_line(capsys, run_cli("plan", str(suite), "--results", str(tmp_path / "r")),
                   *(n.replace("ROOT", str(root)) for n in needles))


def test_no_data_root_is_one_line(root, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PROGBENCH_DATA")
    one_error_line(capsys, run_cli("plan", str(write_suite(tmp_path)), "--results", str(tmp_path / "r")),
                   "dataset tiny: no data root is set", "set PROGBENCH_DATA")


def test_too_few_examples_names_the_dataset_the_class_and_the_setting(root, tmp_path):
    spec = load_suite(str(write_suite(tmp_path))).runs[0].task.dataset
    from dataclasses import replace
    with pytest.raises(UserError, match=r"^dataset tiny: class 0 \(airplane\) has only 15 examples in its train split "
                                        r"after the val carve, fewer than the 16 of each class that train_per_class "
                                        r"asks for; set train_per_class to at most 15"):
        data.load(replace(spec, train_per_class=16))
    with pytest.raises(UserError, match=r"^dataset tiny: class 0 \(airplane\) has only 5 examples in its test split.*"
                                        r"set test_per_class to at most 5"):
        data.load(replace(spec, test_per_class=6))


# --- a package's entry point (group progbench.datasets) --------------------------------------------------------------

PACKAGE = '''
from pathlib import Path

from progbench.data import CIFAR_MEAN, CIFAR_STD, Source, read_declaration


def tinyep():
    """A package's declaration file, read by the function its entry point names."""
    return read_declaration(Path(__file__).with_name("tinyep.yaml"))


TINYSRC = Source(None, (), {"train": "train", "test": "val"}, "image", "label", 4, 32, CIFAR_MEAN, CIFAR_STD,
                 image_folder_dirs=("tiny",))
'''


@pytest.fixture
def package(tmp_path, monkeypatch) -> Path:
    """A package on sys.path with a dist-info folder declaring two ``progbench.datasets`` entry points (discovered by
    importlib.metadata as an installed one would be, with nothing installed)."""
    site = tmp_path / "site"
    (site / "tiny_datasets-0.1.dist-info").mkdir(parents=True)
    (site / "tiny_datasets-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-datasets\n"
                                                                   "Version: 0.1\n")
    (site / "tiny_datasets-0.1.dist-info" / "entry_points.txt").write_text(
        "[progbench.datasets]\ntinyep = tiny_datasets_pkg:tinyep\ntinysrc = tiny_datasets_pkg:TINYSRC\n"
        "cifar10 = tiny_datasets_pkg:TINYSRC\nbroken = tiny_datasets_pkg:nothing\n")
    (site / "tiny_datasets_pkg.py").write_text(PACKAGE)
    (site / "tinyep.yaml").write_text(TINY_FILE.format(name="tinyep"))
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("tiny_datasets_pkg", None)


def test_entry_point_datasets(root, package, tmp_path, capsys):
    known = data.available_datasets()
    assert known["tinyep"] == "entry point tiny_datasets_pkg:tinyep" and known["cifar10"] == "built-in"
    # named by a suite without a datasets: section: the declaration (the file's, through the function) is in the spec
    by_ep = load_suite(str(write_suite(tmp_path, SUITE.replace("datasets:\n  tiny: DECLARATION\n", "").replace(
        "name: tiny,", "name: tinyep,"), name="ep.yaml")))
    inline = load_suite(str(write_suite(tmp_path)))
    assert by_ep.runs[0].spec["task"]["dataset"]["declaration"] == inline.runs[0].spec["task"]["dataset"][
        "declaration"]
    # a Source from an entry point, outside any suite: loads
    d = data.load(data.DatasetSpec("tinysrc", val_per_class=5, train_per_class=10, test_per_class=5))
    assert (len(d.train), len(d.val), len(d.test)) == (40, 20, 20)
    assert data.resolve("tinysrc").declaration == data.resolve("tinyep").declaration  # the same folder and settings
    # an entry point never takes a built-in's name; one that does not load is one line naming it
    assert data.DatasetSpec("cifar10").source is data.REGISTRY["cifar10"]
    with pytest.raises(UserError, match=r"dataset broken: entry point tiny_datasets_pkg:nothing \(progbench.datasets\) "
                                        r"cannot be loaded \(AttributeError"):
        data.resolve("broken")


def test_declaration_checks():
    decl = data.check_declaration({"num_classes": 3}, "mine", "test")
    assert decl == {"folder": "mine", "layout": "parquet", "splits": {"train": "train", "test": "test"},
                    "image_column": "image", "label_column": "label", "num_classes": 3, "native_size": None,
                    "mean": list(data.IMAGENET_MEAN), "std": list(data.IMAGENET_STD)}
    for bad, message in (({"num_classes": 3, "layout": "zip"}, "layout must be parquet"),
                         ({}, "num_classes (how many classes its labels hold) must be given"),
                         ({"num_classes": 3, "mean": [1, 2]}, "mean must be three numbers"),
                         ({"num_classes": 3, "splits": {"val": "x"}}, "splits maps train and test"),
                         ({"num_classes": 3, "name": "other"}, "is named 'other' but is declared as 'mine'")):
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
            data.check_declaration(bad, "mine", "test")
