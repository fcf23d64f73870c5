"""Progressive loading, measured for real: a deployment answers with the first operating point, then loads only what
each next point adds, swaps it in and answers better, until the last point.

The anytime family's points name their weights consistently (a tensor two points share has the same key in both,
as PWL's ``teacher.blocks.0`` ...), so :func:`write_stages` can split them into one safetensors file per stage
holding just the tensors that stage adds. :func:`measure` then runs the timeline in a *fresh Python process*
(``python -m bench.progressive DIR``) -- nothing imported, allocated or cached by the training process helps it --
together with the plain first and last points loaded whole, interleaved trial by trial so they share conditions:

* ``load_s``: read the stage's file + build the stage's module (skeleton + assign + device layout);
* ``infer_s``: the first inference of that stage (batch 1);
* ``ready_s``/``answer_s``: time since the start of loading at which the stage is built / has answered, with every
  earlier stage's answer on the way (one thread: load, answer, load, answer ...).

Cold page cache: before each cold trial every file is flushed and evicted with ``posix_fadvise(POSIX_FADV_DONTNEED)``
(no root needed; dropping the whole cache is not permitted here).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .evaluate import unique_tensors
from .models import prepare_for_device
from .train import autocast

INDEX = "stages.json"


def nested_keys(points: list) -> str | None:
    """Why the family cannot be loaded progressively by name, or None when it can."""
    seen: dict[str, int] = {}
    for p in points:
        for k, v in unique_tensors(p.model).items():
            if k in seen and seen[k] != v.data_ptr():
                return f"points name different tensors {k!r}"
            seen[k] = v.data_ptr()
    return None


def write_stages(points: list, directory: Path, image: torch.Tensor, whole: dict[str, Path]) -> None:
    """One file per stage with the tensors it adds, the skeletons to build each stage, the test image, an index."""
    directory.mkdir(parents=True, exist_ok=True)
    loaded: set[str] = set()
    stages = []
    for k, p in enumerate(points):
        tensors = unique_tensors(p.model)
        new = {key: t.detach().contiguous().cpu() for key, t in tensors.items() if key not in loaded}
        name = f"stage{k}.safetensors"
        save_file(new, str(directory / name))
        loaded |= set(new)
        stages.append({"point": p.name, "file": name, "keys": sorted(tensors), "new_keys": len(new),
                       "new_bytes": (directory / name).stat().st_size})
    with torch.device("meta"):  # copied together, so the skeletons share what the points share
        skeletons = copy.deepcopy([p.model for p in points])
        for skeleton in skeletons:
            skeleton.to("meta")
    torch.save(skeletons, directory / "skeletons.pt")
    torch.save(image.cpu(), directory / "image.pt")
    index = {"stages": stages, "whole": {role: str(path) for role, path in whole.items()}}
    (directory / INDEX).write_text(json.dumps(index, indent=1))


def build(skeleton: nn.Module, tensors: dict[str, torch.Tensor], device: torch.device, built: dict | None = None
          ) -> nn.Module:
    """Make the module from its skeleton and the tensors it lacks.

    ``built`` is the deep-copy memo of earlier stages: a submodule an earlier stage built (the skeletons share it) is
    reused as it is -- swapped in, not rebuilt -- so a stage only builds and fills what it adds.
    """
    model = copy.deepcopy(skeleton, built if built is not None else {})
    model.load_state_dict(tensors, strict=False, assign=True)  # strict=False: only what is new, shared tensors once
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise RuntimeError(f"stage files lack {leftover[:3]}")
    return prepare_for_device(model, device).eval()


def evict(paths: list[Path]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _answer(model: nn.Module, image: torch.Tensor, device: torch.device, precision: str) -> None:
    with torch.no_grad(), autocast(device, precision):
        model(image)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _progressive_trial(directory: Path, index: dict, skeletons: list, image, device, precision) -> list[dict]:
    rows, built = [], {}
    t0 = time.perf_counter()
    for stage, skeleton in zip(index["stages"], skeletons):
        ta = time.perf_counter()
        model = build(skeleton, load_file(str(directory / stage["file"]), device=str(device)), device, built)
        tb = time.perf_counter()
        _answer(model, image, device, precision)
        tc = time.perf_counter()
        rows.append({"load_s": tb - ta, "infer_s": tc - tb, "ready_s": tb - t0, "answer_s": tc - t0})
    return rows


def _whole_trial(path: Path, skeleton: nn.Module, image, device, precision) -> dict:
    t0 = time.perf_counter()
    model = build(skeleton, load_file(str(path), device=str(device)), device)
    t1 = time.perf_counter()
    _answer(model, image, device, precision)
    t2 = time.perf_counter()
    return {"load_s": t1 - t0, "infer_s": t2 - t1, "ready_s": t1 - t0, "answer_s": t2 - t0}


def _summary(rows: list[dict]) -> dict:
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        out[key] = statistics.median(values)
        out[f"{key}_min"], out[f"{key}_max"] = min(values), max(values)
    return out


def timeline(directory: Path, trials: int, device: torch.device, precision: str) -> dict:
    """The measurement itself (run it in a fresh process: see :func:`measure`)."""
    index = json.loads((directory / INDEX).read_text())
    skeletons = torch.load(directory / "skeletons.pt", weights_only=False)
    image = torch.load(directory / "image.pt").to(device)
    whole = {role: Path(p) for role, p in index["whole"].items()}
    files = [directory / s["file"] for s in index["stages"]] + list(whole.values())
    result = {"trials": trials, "cold_cache_method": "fsync + posix_fadvise(POSIX_FADV_DONTNEED) on every file",
              "threads": torch.get_num_threads()}
    for cache in ("warm", "cold"):
        prog, plain = [], {role: [] for role in whole}
        if cache == "warm":  # one untimed pass so "warm" means the files are in the page cache
            _progressive_trial(directory, index, skeletons, image, device, precision)
        for trial in range(trials):
            order = ["progressive", *whole]
            order = order[trial % len(order):] + order[:trial % len(order)]  # rotate: no mode always goes first
            for mode in order:
                if cache == "cold":
                    evict(files)
                if mode == "progressive":
                    prog.append(_progressive_trial(directory, index, skeletons, image, device, precision))
                else:
                    skeleton = skeletons[0] if mode == "first" else skeletons[-1]  # the first/last point whole
                    plain[mode].append(_whole_trial(whole[mode], skeleton, image, device, precision))
        stages = [{"point": s["point"], "new_bytes": s["new_bytes"], **_summary([t[k] for t in prog])}
                  for k, s in enumerate(index["stages"])]
        result[cache] = {"stages": stages, **{role: _summary(rows) for role, rows in plain.items()}}
    return result


def measure(directory: Path, trials: int, device: torch.device, precision: str) -> dict:
    """Run :func:`timeline` in a fresh Python process with this process's thread count; returns its result."""
    cmd = [sys.executable, "-m", "bench.progressive", str(directory), "--trials", str(trials), "--device",
           device.type, "--precision", precision, "--threads", str(torch.get_num_threads())]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"progressive loading measurement failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", type=Path)
    ap.add_argument("--trials", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(timeline(args.directory, args.trials, torch.device(args.device), args.precision)))


if __name__ == "__main__":
    main()
