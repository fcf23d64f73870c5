"""Datasets: a registry of named datasets read through Hugging Face ``datasets``, decoded once into a uint8 cache.

A data root (``PROGBENCH_DATA`` or ``--data-root``) holding hub-layout folders is searched before the hub, so the
suite runs offline. Decoded images are kept as one NHWC uint8 array per split on disk; in memory a split is a uint8
tensor, and augmentation runs batched in torch on the training device (no per-image PIL work while training).
A fixed validation split (the same for every run and seed) is carved from train; test is never used for choices.

A dataset whose decoded images exceed ``PROGBENCH_MEMMAP_BYTES`` (default 8 GiB; ImageNet-1K at 224 px is ~200 GB) is
decoded split by split straight into ``.npy`` files under the cache folder and read back memory-mapped: the same
arrays and batches, with pages read from disk as batches touch them.

Besides the built-in :data:`REGISTRY`, a dataset is *declared* in a few lines (a suite's ``datasets:`` section, a
``.yaml`` file of its own, or a package's ``progbench.datasets`` entry point; ``docs/adding-a-dataset.md``). A
declared dataset's spec holds its declaration and a fingerprint of its files (names and sizes; parquet footers), taken
when the suite loads, so two different folders never share a run id and a run never trains on files other than those
it was planned with. Built-in datasets keep their specs (and so their run ids) as they were.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError, flag, is_whole, mapping, number, storage_error, whole

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VAL_CARVE_SEED = 20240101  # fixed: the validation carve never depends on a run's seed


@dataclass(frozen=True)
class Source:
    """Where a named dataset lives and how its columns are called."""
    hub_id: str | None
    local_dirs: tuple[str, ...]  # relative to the data root, hub (parquet) layout; first found wins
    splits: dict  # our split name ("train", "test") -> the dataset's split name
    image_column: str
    label_column: str
    num_classes: int
    native_size: int | None
    mean: tuple
    std: tuple
    image_folder_dirs: tuple[str, ...] = ()  # alternative ImageFolder layout (root/<split>/<class>/<image>)


REGISTRY: dict[str, Source] = {
    "cifar10": Source("uoft-cs/cifar10", ("cifar10/plain_text", "cifar10"), {"train": "train", "test": "test"},
                      "img", "label", 10, 32, CIFAR_MEAN, CIFAR_STD),
    # The 10-class ImageNet-1K subset; the local copy is 128 px (see its README). Its "validation" split is our test.
    "imagenette": Source(None, ("imagenette/128px", "imagenette"), {"train": "train", "test": "validation"},
                         "image", "label", 10, 128, IMAGENET_MEAN, IMAGENET_STD),
    # A user's local ImageNet-1K (hub parquet layout or ImageFolder); subsets via `classes` and `per_class`.
    "imagenet1k": Source("ILSVRC/imagenet-1k", ("imagenet-1k/data", "imagenet-1k", "imagenet1k"),
                         {"train": "train", "test": "validation"}, "image", "label", 1000, None,
                         IMAGENET_MEAN, IMAGENET_STD, image_folder_dirs=("imagenet", "imagenet-1k", "ILSVRC2012")),
}


# --- declared datasets: a suite's `datasets:` section, a .yaml file, or a package's entry point -------------------

ENTRY_POINT_GROUP = "progbench.datasets"
HOWTO = "docs/adding-a-dataset.md"
LAYOUTS = ("parquet", "imagefolder")  # hub layout (<split>-*.parquet files) or root/<split>/<class>/<image>
NORMALISATION = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "cifar10": (CIFAR_MEAN, CIFAR_STD)}
DECLARATION_KEYS = ("name", "folder", "hub_id", "layout", "splits", "image_column", "label_column", "num_classes",
                    "native_size", "mean", "std", "version")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def check_declaration(d, name: str | None, where: str) -> dict:
    """A dataset declaration checked and in its canonical form (defaults filled, normalisation as numbers), as it
    enters a run's spec: the same dataset declared in a suite, a file or an entry point gives the same spec.

    ``name`` is the name the declaration is known by (a ``datasets:`` key, an entry point's name); a ``name`` inside
    the declaration must agree with it. ``files`` (the fingerprint) is kept when present (a spec read back)."""
    mapping(d, f"{where}: the declaration of dataset {name or '?'}")
    unknown = set(d) - set(DECLARATION_KEYS) - {"files"}
    if unknown:
        raise UserError(f"{where}: dataset {name or d.get('name')}: unknown key(s) {sorted(unknown)}; a declaration "
                        f"takes {', '.join(DECLARATION_KEYS)} ({HOWTO})")
    given = d.get("name", name)
    if name is not None and given != name:
        raise UserError(f"{where}: the declaration is named {given!r} but is declared as {name!r}; use one name")
    if not isinstance(given, str) or not _NAME.fullmatch(given) or given.endswith((".yaml", ".yml")):
        raise UserError(f"{where}: a dataset's name is letters, digits and _.+- (e.g. imagenette5), not {given!r}")
    if given in REGISTRY:
        raise UserError(f"{where}: {given} is a built-in dataset; declare yours under a name of its own (its run ids "
                        f"must not mix with the built-in's)")
    out: dict = {}
    folder = d.get("folder", given)
    if not isinstance(folder, str) or not folder or Path(folder).is_absolute():
        raise UserError(f"{where}: dataset {given}: folder must be a path relative to the data root (PROGBENCH_DATA), "
                        f"not {folder!r}; an absolute path would make its run ids depend on the machine")
    out["folder"] = Path(folder).as_posix()
    if d.get("hub_id") is not None:
        if not isinstance(d["hub_id"], str):
            raise UserError(f"{where}: dataset {given}: hub_id must be a Hugging Face dataset id (owner/name), not "
                            f"{d['hub_id']!r}")
        out["hub_id"] = d["hub_id"]
    out["layout"] = d.get("layout", "parquet")
    if out["layout"] not in LAYOUTS:
        raise UserError(f"{where}: dataset {given}: layout must be parquet (hub layout: <split>-*.parquet files) or "
                        f"imagefolder (<split>/<class>/<image>), not {out['layout']!r}")
    splits = d.get("splits", {})
    if not isinstance(splits, dict) or set(splits) - {"train", "test"} or not all(
            isinstance(v, str) and v and "/" not in v for v in splits.values()):
        raise UserError(f"{where}: dataset {given}: splits maps train and test to the dataset's own split names, "
                        f"e.g. {{train: train, test: val}}, not {splits!r}")
    out["splits"] = {"train": splits.get("train", "train"), "test": splits.get("test", "test")}
    for key in ("image_column", "label_column"):
        value = d.get(key, key.split("_")[0])
        if not isinstance(value, str) or not value:
            raise UserError(f"{where}: dataset {given}: {key} must be a column name, not {value!r}")
        out[key] = value
    if "num_classes" not in d:
        raise UserError(f"{where}: dataset {given}: num_classes (how many classes its labels hold) must be given")
    out["num_classes"] = whole(d["num_classes"], f"{where}: dataset {given}: num_classes", lo=2)
    out["native_size"] = whole(d.get("native_size"), f"{where}: dataset {given}: native_size", optional=True)
    for key in ("mean", "std"):
        value = d.get(key, "imagenet")
        if isinstance(value, str) and value in NORMALISATION:
            value = NORMALISATION[value][key == "std"]
        if not isinstance(value, (list, tuple)) or len(value) != 3:
            raise UserError(f"{where}: dataset {given}: {key} must be three numbers (R, G, B in [0, 1]) or one of "
                            f"{', '.join(NORMALISATION)}, not {value!r}")
        for v in value:
            number(v, f"{where}: dataset {given}: {key}", 0, 1, lo_open=key == "std")
        out[key] = [float(v) for v in value]
    if d.get("version") is not None:
        if not isinstance(d["version"], (str, int)) or isinstance(d["version"], bool):
            raise UserError(f"{where}: dataset {given}: version must be a string or a number, not {d['version']!r}")
        out["version"] = str(d["version"])
    if "files" in d:
        out["files"] = d["files"]
    return out


def source_of(declaration: dict) -> Source:
    """The :class:`Source` a (checked) declaration describes."""
    folder = (declaration["folder"],)
    parquet = declaration["layout"] == "parquet"
    return Source(declaration.get("hub_id"), folder if parquet else (), dict(declaration["splits"]),
                  declaration["image_column"], declaration["label_column"], declaration["num_classes"],
                  declaration["native_size"], tuple(declaration["mean"]), tuple(declaration["std"]),
                  image_folder_dirs=() if parquet else folder)


def read_declaration(path: str | os.PathLike, name: str | None = None) -> dict:
    """The checked declaration in a dataset's own ``.yaml`` file (its ``name`` defaults to ``name``, else the file's
    stem). A package's ``progbench.datasets`` entry point may point at a function returning this."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"dataset file {path} not found") from None
    except OSError as exc:
        raise storage_error(exc, path, "read") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"dataset file {path} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    mapping(raw, f"dataset file {path}")
    return {"name": raw.get("name", name or path.stem),
            **check_declaration(raw, name or raw.get("name", path.stem), f"dataset file {path}")}


def _declaration_from(obj, name: str, where: str) -> dict:
    """An entry point's object (a declaration dict, a :class:`Source`, or a callable returning either) as a checked
    declaration; a Source with several candidate folders is declared with its first."""
    if callable(obj) and not isinstance(obj, (dict, Source, type)):
        try:
            obj = obj()
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 -- a user's loader function, whatever it raises
            raise UserError(f"{where} failed ({describe_error(exc)})") from None
    if isinstance(obj, Source):
        layout, folders = ("parquet", obj.local_dirs) if obj.local_dirs else ("imagefolder", obj.image_folder_dirs)
        obj = {"folder": (folders or (name,))[0], "hub_id": obj.hub_id, "layout": layout, "splits": obj.splits,
               "image_column": obj.image_column, "label_column": obj.label_column, "num_classes": obj.num_classes,
               "native_size": obj.native_size, "mean": list(obj.mean), "std": list(obj.std)}
    if not isinstance(obj, dict):
        raise UserError(f"{where} gives {type(obj).__name__}, not a declaration (a mapping, a progbench.data.Source, "
                        f"or a function returning one; {HOWTO})")
    return {k: v for k, v in check_declaration(obj, name, where).items() if k != "files"}


def declaration_from_entry_point(ep) -> dict:
    """The declaration an ``importlib.metadata.EntryPoint`` of group ``progbench.datasets`` resolves to."""
    where = f"dataset {ep.name}: entry point {ep.value} ({ENTRY_POINT_GROUP})"
    try:
        obj = ep.load()
    except Exception as exc:  # noqa: BLE001 -- importing a user's package, whatever it raises
        raise UserError(f"{where} cannot be loaded ({describe_error(exc)})") from None
    return _declaration_from(obj, ep.name, where)


def dataset_entry_points() -> dict:
    """Entry points of group ``progbench.datasets`` by name (a built-in name is never taken by one)."""
    from importlib.metadata import entry_points
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in REGISTRY}


def available_datasets(declared: dict | None = None) -> dict[str, str]:
    """Every dataset name known here -> where it comes from (built-in, the suite, or an entry point)."""
    found = {name: "built-in" for name in REGISTRY}
    found.update({name: "suite" for name in declared or {} if name not in found})
    for name, ep in dataset_entry_points().items():
        found.setdefault(name, f"entry point {ep.value}")
    return found


def unknown_dataset(name, declared: dict | None = None) -> UserError:
    return UserError(f"unknown dataset {name!r}; known datasets: {', '.join(available_datasets(declared))}; to add "
                     f"one, declare it (folder, layout, splits, columns, num_classes) in the suite's datasets: "
                     f"section, in a dataset .yaml file, or by a package's {ENTRY_POINT_GROUP!r} entry point "
                     f"({HOWTO})")


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _subfolders(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not _hidden(p.name))
    except OSError:
        return []


def _split_folder_error(name: str, folder: Path, split: str, wanted: tuple[str, ...], splits: dict,
                        declared: bool) -> UserError:
    """One line for an ImageFolder without a folder for one of its splits: what it holds, and the mapping to set."""
    found = _subfolders(folder)
    train = splits["train"] if splits["train"] in found else ("train" if "train" in found else None)
    rest = [f for f in found if f != train]
    guess = {"train": train or "<folder>", "test": rest[0] if len(rest) == 1 else "<folder>"}
    holds = f"holds {', '.join(found)}" if found else "holds no folders"
    mapping_hint = f"splits: {{train: {guess['train']}, test: {guess['test']}}}"
    fix = (f"name the split folders in its declaration: {mapping_hint}" if declared else
           f"rename the folder to {wanted[0]}/, or declare the folder as a dataset of its own with {mapping_hint}")
    return UserError(f"dataset {name}: its {split} split is the folder {' or '.join(w + '/' for w in wanted)} but "
                     f"{folder} {holds}; {fix} ({HOWTO})")


def _parquet_footer(path: Path) -> str:
    """sha256 of a parquet file's footer (schema, row groups, column chunk sizes and statistics): a few KB read from
    the end of the file, which changes with its content."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size < 12:
                raise ValueError("shorter than a parquet header and footer")
            f.seek(size - 8)
            tail = f.read(8)
            length = int.from_bytes(tail[:4], "little")
            if tail[4:] != b"PAR1" or length > size - 12:
                raise ValueError("no parquet footer at its end")
            f.seek(size - 8 - length)
            return hashlib.sha256(f.read(length)).hexdigest()
    except OSError as exc:
        raise storage_error(exc, path, "read") from None


def fingerprint(name: str, declaration: dict, root: Path | None) -> dict:
    """What a declared dataset's files are, cheaply: the name and size of every file its train and test splits are
    read from (ImageFolder: every file under the split folders, by relative path; parquet: the split's files, plus a
    hash of each one's footer), hashed, with their count and total bytes. File contents are not hashed (an ImageNet
    copy is ~150 GB) and modification times are left out (a copy of the same files on another machine gets the same
    run ids): a file rewritten in place at the same size is not seen; bump the declaration's ``version`` then.

    Taken where the suite loads (it needs the data); a dataset found nowhere fails here in one line. Only from the
    hub (a ``hub_id`` and no local folder), the fingerprint is the hub id."""
    decl = declaration
    folder = _declared_folder(name, decl, root)
    if folder is None:
        return {"hub": decl["hub_id"]}
    listing = []
    for split in ("train", "test"):
        wanted = decl["splits"][split]
        if decl["layout"] == "parquet":
            files = sorted(folder.glob(f"{wanted}-*.parquet"))
            if not files:
                raise _no_parquet(name, folder, split, wanted)
            for p in files:
                try:
                    footer = _parquet_footer(p)
                except ValueError as exc:
                    raise UserError(f"dataset {name}: {split} split file {p} is not a parquet file ({exc}); it is "
                                    f"truncated or corrupt: copy it again from its source") from None
                listing.append([p.name, p.stat().st_size, footer])
            continue
        split_dir = folder / wanted
        if not split_dir.is_dir():
            raise _split_folder_error(name, folder, split, (wanted,), decl["splits"], True)
        for dirpath, dirnames, filenames in os.walk(split_dir):
            dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
            for f in sorted(filenames):
                if not _hidden(f):
                    p = Path(dirpath) / f
                    listing.append([p.relative_to(folder).as_posix(), p.stat().st_size])
    if decl["layout"] == "imagefolder":
        _check_class_folders(name, folder, decl)
    digest = hashlib.sha256(json.dumps(listing, separators=(",", ":")).encode()).hexdigest()
    return {"count": len(listing), "bytes": sum(row[1] for row in listing), "sha256": digest[:16]}


def _check_class_folders(name: str, folder: Path, decl: dict) -> None:
    """ImageFolder labels are the sorted class folder names of each split: both splits need the same ones, as many
    as the declaration says (a split without class folders is left to the loader)."""
    train = _subfolders(folder / decl["splits"]["train"])
    test = _subfolders(folder / decl["splits"]["test"])
    if train and len(train) != decl["num_classes"]:
        raise UserError(f"dataset {name}: its train split {folder / decl['splits']['train']} holds {len(train)} "
                        f"class folders but the declaration says num_classes: {decl['num_classes']}; set "
                        f"num_classes: {len(train)}")
    if train and test and train != test:
        odd = sorted(set(train) ^ set(test))
        raise UserError(f"dataset {name}: its train and test split folders hold different class folders "
                        f"({', '.join(odd[:5])}{' ...' if len(odd) > 5 else ''} in one only); labels are numbered by "
                        f"the sorted class folder names of each split, so both need the same class folders")


def _no_parquet(name: str, folder: Path, split: str, wanted: str) -> UserError:
    present = sorted({p.name.split("-")[0] for p in folder.glob("*.parquet")})
    subs = _subfolders(folder)
    if present:
        rest = [p for p in present if p != "train"]
        example = f" {{train: train, test: {rest[0]}}}" if "train" in present and len(rest) == 1 else ""
        hint = (f"it holds parquet files of split(s) {', '.join(present)}: map the names in the declaration's "
                f"splits:{example}")
    elif subs:
        hint = (f"it holds folders {', '.join(subs[:8])}: an ImageFolder? declare layout: imagefolder (or point "
                f"folder: at the subfolder holding the parquet files)")
    else:
        hint = "expected the Hugging Face hub layout (<split>-00000-of-0000N.parquet)"
    return UserError(f"dataset {name}: {folder} has no {wanted}-*.parquet files for its {split} split; {hint} "
                     f"({HOWTO})")


def _declared_folder(name: str, decl: dict, root: Path | None) -> Path | None:
    """The declared dataset's folder under the data root, or None when it is to come from the hub; one line when it
    is nowhere."""
    hub = decl.get("hub_id")
    if root is not None and (root / decl["folder"]).is_dir():
        return root / decl["folder"]
    if hub and not _offline():
        return None
    if root is None:
        raise UserError(f"dataset {name}: no data root is set, so its folder {decl['folder']} cannot be found; set "
                        f"PROGBENCH_DATA to the folder that holds it ({HOWTO})")
    if not root.is_dir():
        raise UserError(f"dataset {name}: the data root {root} does not exist; point PROGBENCH_DATA at the folder "
                        f"that holds {decl['folder']}/ ({HOWTO})")
    offline = f" (its hub copy {hub} cannot be used offline: HF_HUB_OFFLINE/HF_DATASETS_OFFLINE)" if hub else ""
    raise UserError(f"dataset {name}: folder {decl['folder']} not found under the data root {root}{offline}; copy "
                    f"the dataset to {root / decl['folder']}, point PROGBENCH_DATA at the folder that holds it, "
                    f"or fix the declaration's folder: ({HOWTO})")


def resolve(value, declared: dict | None = None, root: str | os.PathLike | None = None, base: Path | None = None,
            memo: dict | None = None, where: str = "dataset") -> DatasetSpec:
    """A suite's ``dataset`` value (a name, a mapping with ``name``, or either naming a dataset ``.yaml`` file) as a
    :class:`DatasetSpec`. A built-in name gives the spec it always has; any other name is looked up in ``declared``
    (the suite's ``datasets:``, checked), then the ``progbench.datasets`` entry points, and its spec gets the
    declaration and the fingerprint of its files under the data root (``root``, else ``PROGBENCH_DATA``). ``memo``
    keeps one fingerprint per dataset for a suite's lifetime; ``base`` is the folder a file name is relative to."""
    declared = declared or {}
    d = {"name": value} if isinstance(value, str) else value
    mapping(d, where)
    if "declaration" in d:
        raise UserError(f"{where}: 'declaration' is filled in by progbench; declare the dataset in the suite's "
                        f"datasets: section, a dataset .yaml file or an entry point ({HOWTO})")
    name = d.get("name")
    if isinstance(name, str) and name.endswith((".yaml", ".yml")):
        path = Path(name) if base is None or Path(name).is_absolute() else base / name
        decl = read_declaration(path)
        name = decl.pop("name")
    elif name in REGISTRY or not isinstance(name, str):
        return DatasetSpec.from_dict(d)
    elif name in declared:
        decl = declared[name]
    else:
        eps = dataset_entry_points()
        if name not in eps:
            raise unknown_dataset(name, declared)
        decl = declaration_from_entry_point(eps[name])
    spec = DatasetSpec.from_dict({**d, "name": name})
    root_path = data_root(root)
    memo = {} if memo is None else memo
    key = (name, json.dumps(decl, sort_keys=True), str(root_path))
    if key not in memo:
        memo[key] = fingerprint(name, decl, root_path)
    return replace(spec, declaration={**decl, "files": memo[key]})


def declarations(section, base: Path | None, where: str) -> dict[str, dict]:
    """A suite's ``datasets:`` section (name -> a declaration mapping, or the path of a dataset ``.yaml`` file
    relative to the suite's folder), each checked."""
    if section is None:
        return {}
    mapping(section, f"{where}: datasets")
    out = {}
    for name, decl in section.items():
        if isinstance(decl, str):
            path = Path(decl) if base is None or Path(decl).is_absolute() else base / decl
            decl = read_declaration(path, name)
            decl.pop("name")
            out[name] = decl
        else:
            out[name] = {k: v for k, v in check_declaration(decl, name, f"{where}: datasets").items()
                         if k != "files"}
    return out


@dataclass(frozen=True)
class DatasetSpec:
    """What a run trains and tests on; part of the run's spec (and so of its id)."""
    name: str
    image_size: int | None = None  # resize at decode time; None keeps the native size
    val_per_class: int = 500  # carved from train
    train_per_class: int | None = None  # None: all that remain after the carve
    test_per_class: int | None = None  # None: the whole test split
    classes: tuple | None = None  # imagenet1k subsets: class indices or wnids
    per_class: int | None = None  # imagenet1k subsets: images per class taken from train before the carve
    # A declared (not built-in) dataset: its checked declaration and the fingerprint of its files ("files"), filled
    # in when the suite loads (progbench.data.resolve). Added later: a built-in's spec leaves it out (its legacy
    # value), so runs recorded before it keep their ids.
    declaration: dict | None = field(default=None, metadata={"legacy": None})

    @classmethod
    def from_dict(cls, d: dict | str) -> DatasetSpec:
        if isinstance(d, str):
            d = {"name": d}
        mapping(d, "dataset")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            known = sorted(set(cls.__dataclass_fields__) - {"declaration"})
            raise UserError(f"dataset: unknown field(s) {sorted(unknown)}; known: {known} (a new dataset is declared "
                            f"in the suite's datasets: section; {HOWTO})")
        if not isinstance(d.get("name"), str):
            raise UserError(f"dataset: 'name' must be a dataset name (e.g. cifar10), not {d.get('name')!r}")
        whole(d.get("val_per_class", 0), "dataset.val_per_class", lo=0)
        for key in ("image_size", "train_per_class", "test_per_class", "per_class"):
            whole(d.get(key), f"dataset.{key}", optional=True)
        d = dict(d)
        if d.get("classes") is not None:
            classes = d["classes"]
            if not isinstance(classes, (list, tuple)) or not classes or not all(
                    (is_whole(c) and c >= 0) or isinstance(c, str) for c in classes):
                raise UserError(f"dataset.classes must be a list of class indices or names, not {classes!r}")
            d["classes"] = tuple(classes)
        if d.get("declaration") is not None:
            d["declaration"] = check_declaration(d["declaration"], d["name"], "dataset.declaration")
        return cls(**d)

    def to_dict(self) -> dict:
        legacy = {f.name: f.metadata["legacy"] for f in fields(self) if "legacy" in f.metadata}
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
                if k not in legacy or v != legacy[k]}

    @property
    def source(self) -> Source:
        if self.declaration is not None:
            return source_of(self.declaration)
        if self.name in REGISTRY:
            return REGISTRY[self.name]
        eps = dataset_entry_points()  # a declared dataset named outside a suite (data.load(DatasetSpec("name")))
        if self.name in eps:
            return source_of(declaration_from_entry_point(eps[self.name]))
        raise unknown_dataset(self.name)

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else self.source.num_classes

    @property
    def resolution(self) -> int:
        size = self.image_size or self.source.native_size
        if size is None:
            raise UserError(f"dataset {self.name}: set image_size (its images have no single native size)")
        return size


@dataclass
class Split:
    images: torch.Tensor  # uint8, N x 3 x H x W (channels-last strides: the NHWC cache viewed as NCHW)
    labels: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Data:
    spec: DatasetSpec
    train: Split
    val: Split
    test: Split
    mean: tuple = field(default=CIFAR_MEAN)
    std: tuple = field(default=CIFAR_STD)


def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    root = explicit or os.environ.get("PROGBENCH_DATA")
    return Path(root).expanduser() if root else None


def cache_root() -> Path:
    return Path(os.environ.get("PROGBENCH_CACHE", Path.home() / ".cache" / "progbench")).expanduser()


MEMMAP_BYTES = 8 * 2**30  # decoded datasets larger than this are memory-mapped from the cache (PROGBENCH_MEMMAP_BYTES)


def memmap_threshold() -> int:
    """Decoded bytes above which a dataset is read memory-mapped from disk rather than held in memory."""
    value = os.environ.get("PROGBENCH_MEMMAP_BYTES")
    if value is None:
        return MEMMAP_BYTES
    try:
        return int(float(value))
    except ValueError:
        raise UserError(f"PROGBENCH_MEMMAP_BYTES must be a number of bytes (e.g. 8e9), not {value!r}") from None


def _check_disk(folder: Path, needed: int, what: str) -> None:
    """One line naming the bytes needed when the cache folder's disk cannot hold a decoded split."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, folder, "create") from None
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise UserError(f"{what} needs {needed / 1e9:.1f} GB of disk in {folder} but only {free / 1e9:.1f} GB is "
                        f"free; point PROGBENCH_CACHE at a larger disk or use a subset (dataset classes / per_class / "
                        f"train_per_class)")


def _find_local(source: Source, root: Path | None) -> tuple[str, Path] | None:
    if root is None:
        return None
    if not root.is_dir():
        raise UserError(f"data root {root} does not exist; point PROGBENCH_DATA or --data-root at the folder that "
                        f"holds the dataset folders (e.g. ../shared/data)")
    for rel in source.local_dirs:
        d = root / rel
        if d.is_dir() and any(d.glob(f"{source.splits['train']}-*.parquet")):
            return "parquet", d
    for rel in source.image_folder_dirs:
        d = root / rel
        if (d / source.splits["train"]).is_dir() or (d / "train").is_dir():
            return "imagefolder", d
    return None


def progress_bars() -> bool:
    """Whether progress bars may be drawn (``--no-progress`` sets PROGBENCH_NO_PROGRESS=1, inherited by workers)."""
    return os.environ.get("PROGBENCH_NO_PROGRESS") != "1"


def _offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick connection to the hub: without it, ``load_dataset`` spends ~40 s in retries before failing."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


def _check_parquet(spec: DatasetSpec, files: list[str], split: str = "train") -> None:
    """Each file's footer read (cheap): a truncated or corrupt file is named before the hub loader trips on it."""
    import pyarrow.parquet as pq

    for f in files:
        try:
            pq.read_metadata(f)
        except Exception as exc:  # noqa: BLE001 -- pyarrow raises several kinds for a bad file
            raise UserError(f"dataset {spec.name}: {split} split file {f} is not a readable parquet file "
                            f"({describe_error(exc)}); it is truncated or corrupt: copy it again from its source") \
                from None


def describe_error(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _load_split(spec: DatasetSpec, split: str, root: Path | None):
    """The raw ``datasets.Dataset`` of one split, local copy first, then the hub."""
    import datasets

    if not progress_bars():
        datasets.disable_progress_bars()  # its own bars (arrow conversion, shards), on a terminal too
    source = spec.source
    hf_split = source.splits[split]
    if spec.declaration is not None:  # its one folder, or None: from the hub
        d = _declared_folder(spec.name, spec.declaration, root)
        found = None if d is None else (spec.declaration["layout"], d)
    else:
        found = _find_local(source, root)
    if found is not None:
        kind, d = found
        if kind == "parquet":
            files = sorted(str(p) for p in d.glob(f"{hf_split}-*.parquet"))
            if not files:
                raise _no_parquet(spec.name, d, split, hf_split)
            _check_parquet(spec, files, split)
            return _read(spec, split, f"{d}/{hf_split}-*.parquet", lambda: datasets.load_dataset(
                "parquet", data_files={hf_split: files}, split=hf_split), files)
        folder = d / hf_split if (d / hf_split).is_dir() else d / split
        if not folder.is_dir():
            wanted = (hf_split,) if spec.declaration is not None or hf_split == split else (hf_split, split)
            raise _split_folder_error(spec.name, d, split, wanted, source.splits, spec.declaration is not None)
        return _read(spec, split, str(folder), lambda: datasets.load_dataset("imagefolder", data_dir=str(folder),
                                                                             split="train"))
    where = f"under the data root {root}" if root else "(no data root set: PROGBENCH_DATA / --data-root)"
    expected = " or ".join(str(Path("<root>") / rel) for rel in source.local_dirs)
    if source.hub_id is None or _offline():
        raise UserError(f"dataset {spec.name} not found {where}: expected hub-layout parquet files in {expected}; "
                        f"set PROGBENCH_DATA or --data-root to the folder holding them")
    if not _hub_reachable():
        raise UserError(f"dataset {spec.name} not found {where}, and the Hugging Face hub cannot be reached to "
                        f"download {source.hub_id}; put hub-layout parquet files in {expected}")
    try:
        return datasets.load_dataset(source.hub_id, split=hf_split), f"hub:{source.hub_id}:{hf_split}"
    except Exception as exc:  # offline, gated, or a typo in the hub id
        raise UserError(f"dataset {spec.name} not found {where} and the hub copy {source.hub_id} could not be "
                        f"loaded ({type(exc).__name__}); put it in hub layout at {expected}") from None


def _read(spec: DatasetSpec, split: str, origin: str, load, files: list[str] = ()):
    """``load()`` (a ``datasets`` loader of local files) with its failure as one line naming the file that failed."""
    try:
        return load(), origin
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 -- arrow, the builder and the OS each raise their own kind
        cause = exc
        while cause.__cause__ is not None:  # the builder wraps what arrow said
            cause = cause.__cause__
        culprit = _unreadable(files)
        if culprit:
            origin, cause = culprit
    raise UserError(f"dataset {spec.name}: reading its {split} split from {origin} failed ({describe_error(cause)}); "
                    f"the file is truncated or corrupt: copy it again from its source")


def _unreadable(files: list[str]) -> tuple[str, BaseException] | None:
    """The first parquet file whose data cannot be read whole, with the error (read only once loading failed)."""
    import pyarrow.parquet as pq

    for f in files:
        try:
            pq.read_table(f)
        except Exception as exc:  # noqa: BLE001 -- as above
            return f, exc
    return None


def _fingerprint(ds) -> str:
    files = [f["filename"] for f in getattr(ds, "cache_files", [])]
    parts = [f"{Path(f).name}:{os.path.getsize(f)}" for f in files if os.path.exists(f)] or [str(len(ds))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def _columns(spec: DatasetSpec, ds, origin: str) -> tuple[str, str]:
    source = spec.source
    image = source.image_column if source.image_column in ds.column_names else "image"
    label = source.label_column if source.label_column in ds.column_names else "label"
    if image not in ds.column_names or label not in ds.column_names:
        raise UserError(f"dataset {spec.name} at {origin}: columns {ds.column_names} lack the image/label columns "
                        f"{source.image_column!r}/{source.label_column!r}; is this the right folder?")
    return image, label


def _decode(ds, rows: np.ndarray, image_column: str, size: int, out: np.ndarray | None = None) -> np.ndarray:
    from PIL import Image
    from tqdm import tqdm

    images = np.empty((len(rows), size, size, 3), dtype=np.uint8) if out is None else out
    step = 1000
    # disable=None: a bar on a terminal, nothing in logs or captured output
    for start in tqdm(range(0, len(rows), step), desc=f"decoding {len(rows)} images", leave=False,
                      disable=None if progress_bars() else True):
        chunk = rows[start:start + step]
        contiguous = len(chunk) and chunk[-1] - chunk[0] == len(chunk) - 1
        try:
            batch = ds[int(chunk[0]):int(chunk[-1]) + 1] if contiguous else ds.select(chunk.tolist())[:]
        except Exception as exc:  # noqa: BLE001 -- arrow's errors for a damaged file, PIL's for a damaged image
            raise UserError(_unreadable_row(ds, chunk, image_column) or
                            f"rows {int(chunk[0])}-{int(chunk[-1])} cannot be read ({describe_error(exc)})") from None
        for i, img in enumerate(batch[image_column]):
            try:
                img = img.convert("RGB")
                if img.size != (size, size):
                    img = img.resize((size, size), Image.BICUBIC)
            except Exception as exc:  # noqa: BLE001 -- PIL's errors for a damaged image
                raise UserError(f"image {int(rows[start + i])}{_image_file(ds, rows[start + i], image_column)} "
                                f"cannot be decoded ({describe_error(exc)})") from None
            images[start + i] = np.asarray(img)
    return images


def _image_file(ds, row, image_column: str) -> str:
    """`` (file NAME)`` for the image of ``row`` where the dataset knows its file (ImageFolder), else ''."""
    try:
        import datasets
        raw = ds.cast_column(image_column, datasets.Image(decode=False))[int(row)][image_column]
        return f" (file {raw['path']})" if raw.get("path") else ""
    except Exception:  # noqa: BLE001 -- only a better message was at stake
        return ""


def _unreadable_row(ds, chunk: np.ndarray, image_column: str) -> str | None:
    """The first row of ``chunk`` that cannot be read, named with its file where known (read once a chunk failed)."""
    for row in chunk.tolist():
        try:
            ds[int(row)][image_column].convert("RGB")
        except Exception as exc:  # noqa: BLE001 -- as above
            return f"image {row}{_image_file(ds, row, image_column)} cannot be decoded ({describe_error(exc)})"
    return None


def decoded_rows(spec: DatasetSpec, split: str, ds, origin: str, rows: np.ndarray, mmap: bool = False
                 ) -> np.ndarray:
    """Images ``rows`` (ascending) of a split decoded at ``spec.resolution`` as NHWC uint8, cached on disk.

    With ``mmap`` the images are decoded straight into the cache file and the array returned is memory-mapped from
    it (copy-on-write, so torch may wrap it; nothing is ever written back)."""
    image_column, _ = _columns(spec, ds, origin)
    which = "all" if len(rows) == len(ds) else hashlib.sha256(rows.tobytes()).hexdigest()[:12]
    files = (spec.declaration or {}).get("files", {})
    name = f"{spec.name}.{files['sha256'][:8]}" if "sha256" in files else spec.name  # declared: its files too
    path = cache_root() / f"{name}-{split}-{spec.resolution}px-{_fingerprint(ds)}-{which}.npy"
    shape = (len(rows), spec.resolution, spec.resolution, 3)
    if path.exists():
        try:
            images = np.load(path, mmap_mode="c" if mmap else None)
            if images.shape == shape:
                return images
            del images
        except Exception:  # a torn or corrupt cache file is rebuilt, never trusted
            pass
        path.unlink()
    _check_disk(path.parent, math.prod(shape), f"decoding {len(rows)} {split} images of {spec.name} at "
                                               f"{spec.resolution} px")
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npy")
    try:
        if mmap:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            _decode(ds, rows, image_column, spec.resolution, out)
            out.flush()
            del out
            os.replace(tmp, path)
            return np.load(path, mmap_mode="c")
        images = _decode(ds, rows, image_column, spec.resolution)
        np.save(tmp, images)
        os.replace(tmp, path)
        return images
    except UserError as exc:
        raise UserError(f"dataset {spec.name}, {split} split, at {origin}: {exc}; a file there may be corrupt: copy "
                        f"it again from its source") from None
    except OSError as exc:  # the cache's disk (full, read-only)
        raise storage_error(exc, tmp) from None
    finally:
        tmp.unlink(missing_ok=True)  # never a half-written cache file holding the space


def _per_class(labels: np.ndarray, classes: np.ndarray, count: int | None, rng: np.random.Generator,
               exclude: np.ndarray | None = None, why: tuple = ()) -> np.ndarray:
    """Indices of ``count`` examples of each class (all when None), drawn with ``rng``, in ascending order.

    ``why`` is (spec, split, the field asking, class names or None) for the one line a class with too few examples
    gets: the dataset, the class, and what to set."""
    chosen = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if exclude is not None:
            idx = np.setdiff1d(idx, exclude)
        if count is not None:
            if len(idx) < count:
                raise _too_few(labels, classes, count, exclude, int(c), len(idx), *why)
            idx = rng.choice(idx, size=count, replace=False)
        chosen.append(idx)
    return np.sort(np.concatenate(chosen))


def _too_few(labels, classes, count, exclude, c: int, have: int, spec: DatasetSpec | None = None,
             split: str = "train", asked: str = "", names=None) -> UserError:
    label = f"class {c}" + (f" ({names[c]})" if names is not None and 0 <= c < len(names) else "")
    asked = asked or "the count"
    if spec is None:
        return UserError(f"{label} has only {have} examples, fewer than the {count} asked for")
    where = f"its {split} split" + (" after the val carve" if exclude is not None else "")
    where += f" (within the per_class: {spec.per_class} images taken of each class)" if spec.per_class and \
        split == "train" and asked != "per_class" else ""
    if have:
        fewest = min(len(np.setdiff1d(np.flatnonzero(labels == k), exclude if exclude is not None else []))
                     for k in classes)
        return UserError(f"dataset {spec.name}: {label} has only {have} examples in {where}, fewer than the {count} of "
                         f"each class that {asked} asks for; set {asked} to at most {fewest} (the fewest "
                         f"any class has there)")
    present = np.unique(labels[labels >= 0])
    shown = (f"labels {present[0]}-{present[-1]}" if len(present) and present[-1] - present[0] == len(present) - 1
             else ", ".join(map(str, present[:10])) + (" ..." if len(present) > 10 else ""))
    if spec.classes:
        fix = f"drop class {spec.classes[list(classes).index(c)]!r} from the dataset's classes:"
    else:
        example = ", ".join(map(str, present[:3])) + (", ..." if len(present) > 3 else "")
        fix = (f"pick the classes you have with the dataset's classes: (e.g. classes: [{example}]), or declare the "
               f"folder as a dataset of its own with num_classes: {len(present)} ({HOWTO})")
    return UserError(f"dataset {spec.name}: {label} has no examples in {where}, but {asked} asks for {count} "
                     f"of each of its {len(classes)} classes; the split holds examples of {len(present)} "
                     f"classes only ({shown}): {fix}")


def _class_ids(spec: DatasetSpec, ds, label_column: str) -> np.ndarray | None:
    if not spec.classes:
        return None
    if all(isinstance(c, int) for c in spec.classes):
        return np.asarray(spec.classes)
    names = ds.features[label_column].names  # wnids or class names: map through the ClassLabel names
    missing = [c for c in spec.classes if c not in names]
    if missing:
        shown = ", ".join(map(str, names[:10])) + (", ..." if len(names) > 10 else "")
        raise UserError(f"dataset {spec.name}: unknown classes {missing[:5]}; use class indices or names from the "
                        f"dataset's label feature ({shown})")
    return np.asarray([names.index(c) for c in spec.classes])


def _check_files(spec: DatasetSpec, root: Path | None) -> None:
    """A declared dataset's files are those its run was planned with (its spec, and so its run id, names them)."""
    planned = spec.declaration["files"]
    decl = {k: v for k, v in spec.declaration.items() if k != "files"}
    now = fingerprint(spec.name, decl, root)
    if now != planned:
        def say(f: dict) -> str:
            return f"hub {f['hub']}" if "hub" in f else f"{f['count']} files, {f['bytes']} bytes, {f['sha256']}"
        raise UserError(f"dataset {spec.name}: its files under {root} are not those this run was planned with "
                        f"(planned: {say(planned)}; found: {say(now)}); a run's id names its data: plan the suite "
                        f"again where the data is (`progbench plan`) to get the runs of the data as it is now")


def _check_labels(spec: DatasetSpec, train_ds, train_label: str, train_y, test_ds, test_label: str, test_y) -> None:
    """Labels that fit the dataset's classes, numbered alike in both splits (an ImageFolder numbers each split's
    sorted class folders)."""
    num = spec.source.num_classes
    for split, y in (("train", train_y), ("test", test_y)):
        if len(y) and (y.min() < 0 or y.max() >= num):
            fix = (f"set num_classes: {int(y.max()) + 1} in its declaration" if spec.declaration is not None else
                   f"is this the right folder? ({HOWTO} declares a dataset of your own)")
            raise UserError(f"dataset {spec.name}: its {split} split has labels {int(y.min())}..{int(y.max())}, "
                            f"outside the {num} classes it has (0..{num - 1}); {fix}")
    names = [getattr(ds.features[col], "names", None) for ds, col in ((train_ds, train_label), (test_ds, test_label))]
    if names[0] is not None and names[1] is not None and names[0] != names[1]:
        odd = sorted(set(names[0]) ^ set(names[1]))
        raise UserError(f"dataset {spec.name}: its train and test splits name their classes differently "
                        f"({', '.join(map(str, odd[:5])) or 'the same names in another order'}); labels are numbered "
                        f"by class name, so both splits need the same classes (ImageFolder: the same class folders)")


def load(spec: DatasetSpec, root: str | os.PathLike | None = None) -> Data:
    """Train (minus the carve), val (the carve) and test splits of ``spec`` as uint8 tensors.

    Rows are chosen from the label columns first and only the chosen images are decoded, so a subset of a large
    local ImageNet-1K costs what the subset costs. A file that cannot be read is one line naming it.
    """
    try:
        return _load(spec, root)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 -- a damaged file surfaces as whatever arrow or PIL raise
        raise UserError(f"dataset {spec.name}: reading it from {data_root(root) or 'the hub'} failed "
                        f"({describe_error(exc)}); a file there may be truncated or corrupt: copy it again from its "
                        f"source") from None


def _load(spec: DatasetSpec, root: str | os.PathLike | None) -> Data:
    root_path = data_root(root)
    if spec.declaration is not None and "files" in spec.declaration:
        _check_files(spec, root_path)
    train_ds, train_origin = _load_split(spec, "train", root_path)
    test_ds, test_origin = _load_split(spec, "test", root_path)
    _, train_label = _columns(spec, train_ds, train_origin)
    _, test_label = _columns(spec, test_ds, test_origin)
    train_y = np.asarray(train_ds[train_label], dtype=np.int64)
    test_y = np.asarray(test_ds[test_label], dtype=np.int64)
    _check_labels(spec, train_ds, train_label, train_y, test_ds, test_label, test_y)
    class_ids = _class_ids(spec, train_ds, train_label)
    classes = class_ids if class_ids is not None else np.arange(spec.source.num_classes)
    names = getattr(train_ds.features[train_label], "names", None)
    rng = np.random.default_rng(VAL_CARVE_SEED)
    labels_pool = train_y
    if spec.per_class:
        pool = _per_class(train_y, classes, spec.per_class, rng, why=(spec, "train", "per_class", names))
        labels_pool = np.full_like(train_y, -1)
        labels_pool[pool] = train_y[pool]
    val_idx = _per_class(labels_pool, classes, spec.val_per_class, rng, why=(spec, "train", "val_per_class", names))
    train_idx = _per_class(labels_pool, classes, spec.train_per_class, rng, exclude=val_idx,
                           why=(spec, "train", "train_per_class", names))
    test_idx = _per_class(test_y, classes, spec.test_per_class, np.random.default_rng(VAL_CARVE_SEED + 1),
                          why=(spec, "test", "test_per_class", names))
    train_rows = np.union1d(train_idx, val_idx)
    remap = None
    if class_ids is not None:  # subsets are relabelled 0..k-1 in the order given
        remap = np.full(max(int(train_y.max()), int(test_y.max())) + 1, -1)
        remap[class_ids] = np.arange(len(class_ids))

    def split(x: np.ndarray, rows: np.ndarray, y: np.ndarray, idx: np.ndarray) -> Split:
        labels = y[idx] if remap is None else remap[y[idx]]
        images = x if len(rows) == len(idx) else x[np.searchsorted(rows, idx)]  # rows == idx: the whole array
        return Split(torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(labels))

    source = spec.source
    if (len(train_rows) + len(test_idx)) * spec.resolution ** 2 * 3 > memmap_threshold():
        # too big for memory: each split decoded in its own order into its own file (no gather copy), memory-mapped
        parts = [(decoded_rows(spec, name, ds, origin, idx, mmap=True), idx, y, idx)
                 for name, ds, origin, idx, y in (("train", train_ds, train_origin, train_idx, train_y),
                                                   ("train", train_ds, train_origin, val_idx, train_y),
                                                   ("test", test_ds, test_origin, test_idx, test_y))]
        return Data(spec, *(split(*p) for p in parts), source.mean, source.std)
    train_x = decoded_rows(spec, "train", train_ds, train_origin, train_rows)
    test_x = decoded_rows(spec, "test", test_ds, test_origin, test_idx)
    return Data(spec, split(train_x, train_rows, train_y, train_idx), split(train_x, train_rows, train_y, val_idx),
                split(test_x, test_idx, test_y, test_idx), source.mean, source.std)


# --- batched augmentation on the training device -------------------------------------------------------------------

PADDING_MODES = ("reflect", "constant", "replicate", "circular")  # torch.nn.functional.pad's


@dataclass(frozen=True)
class AugmentSpec:
    crop_padding: int = 4  # random crop after padding by this many pixels (0: off)
    padding_mode: str = "reflect"
    flip: bool = True
    rotation: float = 0.0  # max degrees, uniform in [-rotation, rotation] (0: off)
    resize: int | None = None  # train/eval at this size (e.g. CIFAR at 224 for the paper ViT)

    @classmethod
    def from_dict(cls, d: dict | None) -> AugmentSpec:
        d = mapping(d or {}, "budget.augment")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise UserError(f"augment: unknown field(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        whole(d.get("crop_padding", 0), "budget.augment.crop_padding", lo=0)
        if d.get("padding_mode", "reflect") not in PADDING_MODES:
            raise UserError(f"budget.augment.padding_mode must be one of {', '.join(PADDING_MODES)}, not "
                            f"{d['padding_mode']!r}")
        flag(d.get("flip", True), "budget.augment.flip")
        number(d.get("rotation", 0.0), "budget.augment.rotation", 0, 180)
        whole(d.get("resize"), "budget.augment.resize", optional=True)
        return cls(**d)


class Preprocess:
    """uint8 batch -> normalised float batch; with ``train=True`` also the random augmentation, all batched."""

    def __init__(self, mean, std, augment: AugmentSpec, device: torch.device):
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255
        self.augment = augment
        self.device = device

    def __call__(self, images: torch.Tensor, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True)
        if train:
            x = self._augment(x, generator)
        x = (x.float() - self.mean) / self.std
        if self.augment.resize and x.shape[-1] != self.augment.resize:
            x = F.interpolate(x, size=self.augment.resize, mode="bilinear", align_corners=False)
        return x.contiguous(memory_format=torch.channels_last)

    def _augment(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        a = self.augment
        b, _, h, w = x.shape
        if a.crop_padding:
            p = a.crop_padding
            padded = F.pad(x.float(), (p, p, p, p), mode=a.padding_mode).to(torch.uint8)
            dy = torch.randint(0, 2 * p + 1, (b,), generator=g, device=g.device if g else None).to(x.device)
            dx = torch.randint(0, 2 * p + 1, (b,), generator=g, device=g.device if g else None).to(x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
            x = padded[torch.arange(b, device=x.device)[:, None, None, None],
                       torch.arange(3, device=x.device)[None, :, None, None], rows, cols]
        if a.flip:
            flip = torch.rand(b, generator=g, device=g.device if g else None).to(x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if a.rotation:
            angle = (torch.rand(b, generator=g, device=g.device if g else None).to(x.device) * 2 - 1)
            angle = angle * math.radians(a.rotation)
            cos, sin = angle.cos(), angle.sin()
            theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], 1),
                                 torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection",
                              align_corners=False).round().clamp(0, 255).to(torch.uint8)
        return x


def batches(split: Split, batch_size: int, shuffle: bool, generator: torch.Generator | None = None,
            drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(indices, uint8 images, labels) batches of an in-memory split."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield idx, split.images[idx], split.labels[idx]


def describe(spec: DatasetSpec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True)
