"""Progressive loading, measured for real: a deployment answers with the first operating point, then loads only what
each next point adds, swaps it in and answers better, until the last point.

The anytime family's points name their weights consistently (a tensor two points share has the same key in both,
as PWL's ``teacher.blocks.0`` ...), so :func:`write_stages` can split them into one safetensors file per stage
holding just the tensors that stage adds. :func:`measure` then runs the timeline in a *fresh Python process*
(``python -m progbench.progressive DIR``) -- nothing imported, allocated or cached by the training process helps it.
The first and last points loaded whole (the same tensors as the first and last stages, one file each) are timed the
same way, interleaved trial by trial so they share conditions. One untimed pass of every mode comes first, so every
timed trial finds the process in the same state (kernels for these shapes compiled, as in a running server): the
one-time costs of a brand-new process are not in these numbers, for any mode.

* ``load_s``: read the stage's file + build the stage's module (copy the skeleton, place the tensors in the device
  layout);
* ``infer_s``: the first inference of that stage (batch 1);
* ``ready_s``/``answer_s``: time since the start of loading at which the stage is built / has answered, with every
  earlier stage's answer on the way (one thread: load, answer, load, answer ...).

Cold page cache: before each cold trial every file is flushed and evicted with ``posix_fadvise(POSIX_FADV_DONTNEED)``
(no root needed; dropping the whole cache is not permitted here).
"""
from __future__ import annotations

import argparse
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

from .evaluate import meta_copies, unique_tensors
from .models import prepare_for_device, wants_channels_last
from .precision import autocast
from .protocol import load_source_file
from .store import atomic_save, atomic_write_text, replacing

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


def write_stages(points: list, directory: Path, image: torch.Tensor, whole: dict[str, Path], device: torch.device
                 ) -> None:
    """One file per stage with the tensors it adds, the skeletons to build each stage, the test image, an index."""
    directory.mkdir(parents=True, exist_ok=True)
    loaded: set[str] = set()
    stages = []
    for k, p in enumerate(points):
        tensors = unique_tensors(p.model)
        new = {key: t.detach().contiguous().cpu() for key, t in tensors.items() if key not in loaded}
        name = f"stage{k}.safetensors"
        with replacing(directory / name) as tmp:
            save_file(new, str(tmp))
        loaded |= set(new)
        stages.append({"point": p.name, "file": name, "new_keys": len(new),
                       "new_bytes": (directory / name).stat().st_size})
    skeletons = meta_copies([p.model for p in points])  # copied together: they share what the points share
    for skeleton in skeletons:
        prepare_for_device(skeleton, device).eval()  # layout and kernel choices ride along
    atomic_save(skeletons, directory / "skeletons.pt")
    atomic_save(image.cpu(), directory / "image.pt")
    # Classes of a method given as path/to/file.py:Class live in a module (progbench.protocol names it
    # progbench_user_<stem>) that the measuring process cannot import by name: the index names their files.
    user_modules = {type(m).__module__ for p in points for m in p.model.modules()
             if type(m).__module__.startswith("progbench_user_")}
    # the whole-model files relative to this folder: a store copied elsewhere (from a cluster or a GPU machine) still
    # finds them
    index = {"stages": stages, "whole": {role: os.path.relpath(path, directory) for role, path in whole.items()},
             "modules": {name: os.path.abspath(sys.modules[name].__file__) for name in sorted(user_modules)}}
    atomic_write_text(directory / INDEX, json.dumps(index, indent=1))


def instantiate(skeleton: nn.Module, built: dict, made_now: list) -> nn.Module:
    """A new module tree shaped like ``skeleton`` (parameters still the skeleton's meta placeholders).

    Much cheaper than ``copy.deepcopy``: each module gets its own attribute, parameter, buffer and child dicts (and
    fresh hook dicts), but no other object is copied. ``built`` maps skeleton submodules to what was already made
    from them; those are reused as they are. Modules made by this call are appended to ``made_now``.
    """
    made = built.get(id(skeleton))
    if made is None:
        made = skeleton.__class__.__new__(skeleton.__class__)
        state = {k: (type(v)() if isinstance(v, dict) and not v else v) for k, v in skeleton.__dict__.items()}
        state.update(_parameters=dict(skeleton._parameters), _buffers=dict(skeleton._buffers),
                     _modules={k: instantiate(m, built, made_now) for k, m in skeleton._modules.items()})
        object.__setattr__(made, "__dict__", state)
        built[id(skeleton)] = made
        made_now.append(made)
    return made


def build(skeleton: nn.Module, tensors: dict[str, torch.Tensor], built: dict | None = None) -> nn.Module:
    """Make the module from its skeleton (in eval mode, already laid out for the device) and the tensors it lacks.

    ``built`` holds what earlier stages made: a submodule an earlier stage built (the skeletons share it) is reused
    as it is -- swapped in, not rebuilt -- and only the new tensors are placed, so a stage costs what it adds, not
    what the whole network holds. The same function builds a model loaded whole (nothing built before).
    """
    made_now: list[nn.Module] = []
    model = instantiate(skeleton, built if built is not None else {}, made_now)
    channels_last = wants_channels_last(model)
    for key, tensor in tensors.items():
        path, _, name = key.rpartition(".")
        module = model.get_submodule(path)
        if channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        if name in module._parameters:
            module._parameters[name] = nn.Parameter(tensor, requires_grad=False)
        else:
            module._buffers[name] = tensor
    if any(t.is_meta for m in made_now for t in [*m._parameters.values(), *m._buffers.values()] if t is not None):
        raise RuntimeError(f"the stage files lack some of {type(model).__name__}'s tensors (still meta after loading)")
    return model


def evict(paths: list[Path]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _answer(model: nn.Module, image: torch.Tensor, device: torch.device, precision: str) -> None:
    with torch.no_grad(), autocast(device, precision):
        model(image)
    _sync(device)


def _progressive_trial(directory: Path, index: dict, skeletons: list, image, device, precision) -> list[dict]:
    rows, built = [], {}
    image = image.to(device)
    t0 = time.perf_counter()
    for stage, skeleton in zip(index["stages"], skeletons):
        ta = time.perf_counter()
        model = build(skeleton, load_file(str(directory / stage["file"]), device=str(device)), built)
        _sync(device)
        tb = time.perf_counter()
        _answer(model, image, device, precision)
        tc = time.perf_counter()
        rows.append({"load_s": tb - ta, "infer_s": tc - tb, "ready_s": tb - t0, "answer_s": tc - t0})
    return rows


def _whole_trial(path: Path, skeleton: nn.Module, image, device, precision) -> dict:
    image = image.to(device)
    t0 = time.perf_counter()
    model = build(skeleton, load_file(str(path), device=str(device)))
    _sync(device)
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


def whole_file(directory: Path, recorded: str) -> Path:
    """A whole-model file the index names: relative to the stages folder. Older indexes hold the absolute path where
    the run trained; in a store moved since, the file is where it was beside the stages folder (``work/weights``)."""
    path = Path(recorded)
    if not path.is_absolute():
        return directory / path
    return path if path.exists() else directory.parent / path.parent.name / path.name


def timeline(directory: Path, trials: int, device: torch.device, precision: str) -> dict:
    """The measurement itself (run it in a fresh process: see :func:`measure`)."""
    index = json.loads((directory / INDEX).read_text())
    for name, path in index.get("modules", {}).items():  # a method file's classes, before unpickling them
        load_source_file(name, path)
    skeletons = torch.load(directory / "skeletons.pt", weights_only=False)
    image = torch.load(directory / "image.pt")
    whole = {role: whole_file(directory, p) for role, p in index["whole"].items()}
    whole_skeleton = {"first": skeletons[0], "last": skeletons[-1]}  # the first/last point, loaded whole
    files = [directory / s["file"] for s in index["stages"]] + list(whole.values())
    result = {"trials": trials, "cold_cache_method": "fsync + posix_fadvise(POSIX_FADV_DONTNEED) on every file",
              "process": "a fresh process; one untimed pass of every mode first, then interleaved timed trials",
              "threads": torch.get_num_threads(), "loadavg_1min_before": os.getloadavg()[0]}
    for cache in ("warm", "cold"):
        prog, plain = [], {role: [] for role in whole}
        if cache == "warm":  # one untimed pass of every mode: files in the page cache, kernels compiled, for all alike
            _progressive_trial(directory, index, skeletons, image, device, precision)
            for mode in whole:
                _whole_trial(whole[mode], whole_skeleton[mode], image, device, precision)
        for trial in range(trials):
            order = ["progressive", *whole]
            order = order[trial % len(order):] + order[:trial % len(order)]  # rotate: no mode always goes first
            for mode in order:
                if cache == "cold":
                    evict(files)
                if mode == "progressive":
                    prog.append(_progressive_trial(directory, index, skeletons, image, device, precision))
                else:
                    plain[mode].append(_whole_trial(whole[mode], whole_skeleton[mode], image, device, precision))
        stages = [{"point": s["point"], "new_bytes": s["new_bytes"], **_summary([t[k] for t in prog])}
                  for k, s in enumerate(index["stages"])]
        result[cache] = {"stages": stages, **{role: _summary(rows) for role, rows in plain.items()}}
    result["loadavg_1min_after"] = os.getloadavg()[0]  # other work on the machine would show here
    return result


def measure(directory: Path, trials: int, device: torch.device, precision: str) -> dict:
    """Run :func:`timeline` in a fresh Python process with this process's thread count; returns its result."""
    cmd = [sys.executable, "-m", "progbench.progressive", str(directory), "--trials", str(trials), "--device",
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
