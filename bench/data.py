"""Datasets: a registry of named datasets read through Hugging Face ``datasets``, decoded once into a uint8 cache.

A data root (``PROGBENCH_DATA`` or ``--data-root``) holding hub-layout folders is searched before the hub, so the
suite runs offline. Decoded images are kept as one NHWC uint8 array per split on disk; in memory a split is a uint8
tensor, and augmentation runs batched in torch on the training device (no per-image PIL work while training).
A fixed validation split (the same for every run and seed) is carved from train; test is never used for choices.

A dataset whose decoded images exceed ``PROGBENCH_MEMMAP_BYTES`` (default 8 GiB; ImageNet-1K at 224 px is ~200 GB) is
decoded split by split straight into ``.npy`` files under the cache folder and read back memory-mapped: the same
arrays and batches, with pages read from disk as batches touch them.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
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

    @classmethod
    def from_dict(cls, d: dict | str) -> DatasetSpec:
        if isinstance(d, str):
            d = {"name": d}
        mapping(d, "dataset")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise UserError(f"dataset: unknown field(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
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
        return cls(**d)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @property
    def source(self) -> Source:
        if self.name not in REGISTRY:
            raise UserError(f"unknown dataset {self.name!r}; known datasets: {', '.join(REGISTRY)}")
        return REGISTRY[self.name]

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


def _check_parquet(spec: DatasetSpec, files: list[str]) -> None:
    """Each file's footer read (cheap): a truncated or corrupt file is named before the hub loader trips on it."""
    import pyarrow.parquet as pq

    for f in files:
        try:
            pq.read_metadata(f)
        except Exception as exc:  # noqa: BLE001 -- pyarrow raises several kinds for a bad file
            raise UserError(f"dataset {spec.name}: {f} is not a readable parquet file ({describe_error(exc)}); it "
                            f"is truncated or corrupt: copy it again from its source") from None


def describe_error(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _load_split(spec: DatasetSpec, split: str, root: Path | None):
    """The raw ``datasets.Dataset`` of one split, local copy first, then the hub."""
    import datasets

    if not progress_bars():
        datasets.disable_progress_bars()  # its own bars (arrow conversion, shards), on a terminal too
    source = spec.source
    found = _find_local(source, root)
    hf_split = source.splits[split]
    if found is not None:
        kind, d = found
        if kind == "parquet":
            files = sorted(str(p) for p in d.glob(f"{hf_split}-*.parquet"))
            if not files:
                raise UserError(f"dataset {spec.name}: {d} has no {hf_split}-*.parquet files; expected the Hugging "
                                f"Face hub layout ({hf_split}-00000-of-0000N.parquet)")
            _check_parquet(spec, files)
            return _read(spec, f"{d}:{hf_split}", lambda: datasets.load_dataset(
                "parquet", data_files={hf_split: files}, split=hf_split), files)
        folder = d / hf_split if (d / hf_split).is_dir() else d / split
        return _read(spec, str(folder), lambda: datasets.load_dataset("imagefolder", data_dir=str(folder),
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


def _read(spec: DatasetSpec, origin: str, load, files: list[str] = ()):
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
    raise UserError(f"dataset {spec.name}: reading {origin} failed ({describe_error(cause)}); the file is "
                    f"truncated or corrupt: copy it again from its source")


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
        except Exception as exc:  # noqa: BLE001 -- arrow's errors for a damaged file
            raise UserError(f"rows {int(chunk[0])}-{int(chunk[-1])} cannot be read ({describe_error(exc)})") from None
        for i, img in enumerate(batch[image_column]):
            try:
                img = img.convert("RGB")
                if img.size != (size, size):
                    img = img.resize((size, size), Image.BICUBIC)
            except Exception as exc:  # noqa: BLE001 -- PIL's errors for a damaged image
                raise UserError(f"image {int(rows[start + i])} cannot be decoded ({describe_error(exc)})") from None
            images[start + i] = np.asarray(img)
    return images


def decoded_rows(spec: DatasetSpec, split: str, ds, origin: str, rows: np.ndarray, mmap: bool = False
                 ) -> np.ndarray:
    """Images ``rows`` (ascending) of a split decoded at ``spec.resolution`` as NHWC uint8, cached on disk.

    With ``mmap`` the images are decoded straight into the cache file and the array returned is memory-mapped from
    it (copy-on-write, so torch may wrap it; nothing is ever written back)."""
    image_column, _ = _columns(spec, ds, origin)
    which = "all" if len(rows) == len(ds) else hashlib.sha256(rows.tobytes()).hexdigest()[:12]
    path = cache_root() / f"{spec.name}-{split}-{spec.resolution}px-{_fingerprint(ds)}-{which}.npy"
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
        raise UserError(f"dataset {spec.name} at {origin}: {exc}; a file there may be corrupt: copy it again from "
                        f"its source") from None
    except OSError as exc:  # the cache's disk (full, read-only)
        raise storage_error(exc, tmp) from None
    finally:
        tmp.unlink(missing_ok=True)  # never a half-written cache file holding the space


def _per_class(labels: np.ndarray, classes: np.ndarray, count: int | None, rng: np.random.Generator,
               exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``count`` examples of each class (all when None), drawn with ``rng``, in ascending order."""
    chosen = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if exclude is not None:
            idx = np.setdiff1d(idx, exclude)
        if count is not None:
            if len(idx) < count:
                raise UserError(f"class {c} has only {len(idx)} examples, fewer than the {count} asked for")
            idx = rng.choice(idx, size=count, replace=False)
        chosen.append(idx)
    return np.sort(np.concatenate(chosen))


def _class_ids(spec: DatasetSpec, ds, label_column: str) -> np.ndarray | None:
    if not spec.classes:
        return None
    if all(isinstance(c, int) for c in spec.classes):
        return np.asarray(spec.classes)
    names = ds.features[label_column].names  # wnids or class names: map through the ClassLabel names
    missing = [c for c in spec.classes if c not in names]
    if missing:
        raise UserError(f"dataset {spec.name}: unknown classes {missing[:5]}; use class indices or names from the "
                        f"dataset's label feature")
    return np.asarray([names.index(c) for c in spec.classes])


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
    train_ds, train_origin = _load_split(spec, "train", root_path)
    test_ds, test_origin = _load_split(spec, "test", root_path)
    _, train_label = _columns(spec, train_ds, train_origin)
    _, test_label = _columns(spec, test_ds, test_origin)
    train_y = np.asarray(train_ds[train_label], dtype=np.int64)
    test_y = np.asarray(test_ds[test_label], dtype=np.int64)
    class_ids = _class_ids(spec, train_ds, train_label)
    classes = class_ids if class_ids is not None else np.arange(spec.source.num_classes)
    rng = np.random.default_rng(VAL_CARVE_SEED)
    labels_pool = train_y
    if spec.per_class:
        pool = _per_class(train_y, classes, spec.per_class, rng)
        labels_pool = np.full_like(train_y, -1)
        labels_pool[pool] = train_y[pool]
    val_idx = _per_class(labels_pool, classes, spec.val_per_class, rng)
    train_idx = _per_class(labels_pool, classes, spec.train_per_class, rng, exclude=val_idx)
    test_idx = _per_class(test_y, classes, spec.test_per_class, np.random.default_rng(VAL_CARVE_SEED + 1))
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
