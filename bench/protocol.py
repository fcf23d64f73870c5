"""The contract between the harness and a method.

A method is a small ``nn.Module`` subclass of :class:`Method` (all it trains are its submodules, so its state dict is
its checkpoint). Given a :class:`Context` (the task, the frozen teacher, a model factory) it

* yields training :class:`Phase`\\ s -- each a module to train and a step that returns *named* losses -- which the
  harness runs with one shared loop (optimiser, schedule, precision, checkpoints, logs, timing), and
* returns its *anytime family*: :class:`OperatingPoint`\\ s, cheapest first, each an ``nn.Module`` whose state dict
  is exactly the weights that point needs and whose forward gives logits.

The harness, not the method, evaluates every operating point (accuracy, params, FLOPs, bytes, load time, latency,
memory) and stores the run. Methods are found by name through :data:`BUILTIN`, the entry-point group
``progbench.methods`` (a user's own package), or a ``path/to/file.py:ClassName`` reference.
"""
from __future__ import annotations

import ast
import collections.abc
import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import sys
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .data import AugmentSpec, Data, DatasetSpec
from .errors import UserError, flag, is_number, is_whole, mapping, number, whole

ENTRY_POINT_GROUP = "progbench.methods"
OPTIMIZER_KEYS = {"sgd": {"name", "lr", "momentum", "weight_decay", "nesterov"},
                  "adamw": {"name", "lr", "weight_decay", "betas"}}
SCHEDULE_KEYS = {"name", "warmup_epochs", "min_lr_ratio"}

# The built-in methods: adding one is a file in methods/ plus a line here.
BUILTIN = {
    "scratch": "progbench.methods.scratch:Scratch",
    "kd": "progbench.methods.kd:KD",
    "pwl": "progbench.methods.pwl:PWL",
    "sws": "progbench.methods.sws:SWS",
    "des_scratch": "progbench.methods.des_baselines:DesScratch",
    "des_pretrain": "progbench.methods.des_baselines:DesPretrain",
    "bdistil": "progbench.methods.bdistil:BDistil",
    "resched": "progbench.methods.bdistil_baselines:Resched",
    "noresched": "progbench.methods.bdistil_baselines:NoResched",
}

# Runs recorded before records kept their architectures (points.pt), of methods whose family the run's data or
# training decided: "module:function(method, points) -> [OperatingPoint]" rebuilds that family on the untrained method
# from the record's points, for latency passes. Apart from the methods' own files, which the stale-code guard hashes:
# they change nothing a run computes.
RECORDED_FAMILIES = {
    "bdistil": "progbench.methods.recorded_families:bdistil",
    "resched": "progbench.methods.recorded_families:resched",
}


def recorded_family(method: Method, points: list[dict]) -> list[OperatingPoint] | None:
    """``method``'s family as a finished run recorded it (:data:`RECORDED_FAMILIES`), or None where none is known."""
    ref = RECORDED_FAMILIES.get(method.name)
    if ref is None:
        return None
    module_name, _, function = ref.partition(":")
    return getattr(importlib.import_module(module_name), function)(method, points)


@dataclass(frozen=True)
class Budget:
    """How much training a run gets, and with what recipe. Part of the run's spec."""
    epochs: int
    batch_size: int = 128
    optimizer: dict = field(default_factory=lambda: {"name": "sgd", "lr": 0.05, "momentum": 0.9,
                                                     "weight_decay": 5e-4, "nesterov": True})
    schedule: dict = field(default_factory=lambda: {"name": "cosine", "warmup_epochs": 1})
    label_smoothing: float = 0.0
    augment: dict = field(default_factory=dict)
    precision: str = "bf16"  # bf16 autocast (AMX on CPU, tensor cores on GPU) or fp32
    compile: bool = False  # torch.compile the trained module (measured: no gain for these models on CPU)

    @classmethod
    def from_dict(cls, d: dict) -> Budget:
        """A validated budget: every mistake is caught here, when the suite loads, not mid-suite."""
        mapping(d, "budget")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise UserError(f"budget: unknown field(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        if "epochs" not in d:
            raise UserError("budget: 'epochs' must be given (a whole number >= 1)")
        whole(d["epochs"], "budget: 'epochs'")
        if "batch_size" in d:
            whole(d["batch_size"], "budget: 'batch_size'")
        if d.get("precision", "bf16") not in ("bf16", "fp32"):
            raise UserError(f"budget.precision must be bf16 or fp32, not {d['precision']!r}")
        number(d.get("label_smoothing", 0.0), "budget.label_smoothing", 0, 1, hi_open=True)
        flag(d.get("compile", False), "budget.compile")
        for key in ("optimizer", "schedule", "augment"):
            if key in d:
                mapping(d[key], f"budget.{key}")
        budget = cls(**d)
        opt = budget.optimizer
        allowed = OPTIMIZER_KEYS.get(opt.get("name", "sgd"))
        if allowed is None:
            raise UserError(f"budget.optimizer.name must be one of {sorted(OPTIMIZER_KEYS)}, not {opt.get('name')!r}")
        if not is_number(opt.get("lr")):
            raise UserError(f"budget.optimizer needs a numeric 'lr' (e.g. 0.05), not {opt.get('lr')!r}")
        if set(opt) - allowed:
            raise UserError(f"budget.optimizer: unknown key(s) {sorted(set(opt) - allowed)}; {opt.get('name', 'sgd')} "
                            f"takes {sorted(allowed)}")
        number(opt["lr"], "budget.optimizer.lr", 0, lo_open=True)
        number(opt.get("weight_decay", 0.0), "budget.optimizer.weight_decay", 0)
        number(opt.get("momentum", 0.0), "budget.optimizer.momentum", 0, 1)
        flag(opt.get("nesterov", False), "budget.optimizer.nesterov")
        betas = opt.get("betas", (0.9, 0.999))
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise UserError(f"budget.optimizer.betas must be two numbers in [0, 1), not {betas!r}")
        for b in betas:
            number(b, "budget.optimizer.betas", 0, 1, hi_open=True)
        sched = budget.schedule
        if sched.get("name", "cosine") not in ("cosine", "constant") or set(sched) - SCHEDULE_KEYS:
            raise UserError(f"budget.schedule: name must be cosine or constant, keys among {sorted(SCHEDULE_KEYS)}; "
                            f"got {sched}")
        number(sched.get("warmup_epochs", 0), "budget.schedule.warmup_epochs", 0)
        number(sched.get("min_lr_ratio", 0.0), "budget.schedule.min_lr_ratio", 0, 1)
        AugmentSpec.from_dict(budget.augment)
        return budget

    @property
    def augment_spec(self) -> AugmentSpec:
        return AugmentSpec.from_dict(self.augment)


@dataclass(frozen=True)
class Task:
    """Everything about a run except the method: resolved, hashed into the run id."""
    dataset: DatasetSpec
    family: str  # vgg | resnet | vit | ... (groups runs in reports)
    arch: str  # the timm name of the model the method trains (for students: the student)
    budget: Budget
    seed: int
    arch_kwargs: dict = field(default_factory=dict)
    teacher_arch: str | None = None
    teacher_kwargs: dict = field(default_factory=dict)
    teacher_run: str | None = None  # run id of the teacher in the store
    role: str = "student"  # "teacher" runs produce the teachers other runs distil from
    # How the run's arithmetic is laid out, which moves its numbers (float reduction order): CPU threads per process
    # and data-parallel processes. The defaults are what every run before these fields were added used (2 threads,
    # one process); they are left out of the spec, so those runs keep their ids.
    threads: int = 2
    world_size: int = 1

    @property
    def input_size(self) -> int:
        """The side of the square image the models see: the budget's resize, else the dataset's own resolution."""
        return self.budget.augment_spec.resize or self.dataset.resolution

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["dataset"] = self.dataset.to_dict()
        for key, default in PLACEMENT_DEFAULTS.items():
            if d[key] == default:
                del d[key]
        return d


PLACEMENT_DEFAULTS = {"threads": 2, "world_size": 1}


@dataclass
class Batch:
    x: torch.Tensor  # augmented, normalised images
    y: torch.Tensor  # labels
    index: torch.Tensor  # positions in the training split (for methods that weight samples, e.g. B-DISTIL)


@dataclass
class Phase:
    """One stretch of training: ``step`` returns named, already weighted losses; the harness sums them."""
    name: str
    module: nn.Module  # trained; its parameters (or ``param_groups``) go to the optimiser
    step: Callable[[Batch], dict[str, torch.Tensor]]
    eval_model: nn.Module | None = None  # scored on val each epoch (default: ``module``)
    param_groups: list[dict] | None = None  # e.g. [{"params": ..., "lr_scale": 0.2}]
    epochs: int | None = None  # default: the budget's epochs
    optimizer: dict | None = None  # overrides of the budget's optimiser for this phase
    schedule: dict | None = None
    max_grad_norm: float | None = None  # clip the global gradient norm of the phase's parameters (None: no clipping)
    validate: bool = True  # score eval_model on val after every epoch (off where nobody reads it: a pass saved)


@dataclass
class OperatingPoint:
    """One point of an anytime family: its state dict is what must be loaded, its forward gives logits."""
    name: str
    model: nn.Module
    info: dict = field(default_factory=dict)  # method-specific facts reported with the point (e.g. the mask)


@dataclass
class Context:
    task: Task
    device: torch.device
    num_classes: int
    image_size: int  # what the model sees (after any resize)
    teacher: nn.Module | None = None  # frozen, eval mode, on device (methods with needs_teacher only)
    data: Data | None = None  # the run's splits, for methods that need passes over them (e.g. B-DISTIL's weights)

    def create_model(self, name: str | None = None, **kwargs) -> nn.Module:
        """Build an architecture (the task's own by default) for this dataset."""
        from .models import create_model
        if name is None:
            name, kwargs = self.task.arch, {**self.task.arch_kwargs, **kwargs}
        return create_model(name, num_classes=self.num_classes, **kwargs)

    def predict(self, model: nn.Module, split, batch_size: int = 500) -> torch.Tensor:
        """``model``'s outputs over a split of the run's data (e.g. ``self.data.val``), un-augmented, in eval mode,
        at the run's precision, on the CPU: the harness's own evaluation pass."""
        from .data import Preprocess
        from .evaluate import predict
        prep = Preprocess(self.data.mean, self.data.std, self.task.budget.augment_spec, self.device)
        return predict(model, split, prep, self.device, self.task.budget.precision, batch_size)

    @torch.no_grad()
    def estimate_bn_statistics(self, model: nn.Module, split, only: nn.Module | None = None,
                               max_images: int | None = None, batch_size: int = 500) -> None:
        """Re-estimate the running statistics of every BatchNorm in ``only`` (default: all of ``model``) from
        ``model``'s own forward passes over a split (un-augmented, at the run's precision; exact averages, not
        momentum); the weights, and every other BatchNorm, stay as they are."""
        from .data import Preprocess, batches
        from .precision import autocast
        norms = [m for m in (only or model).modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        prep = Preprocess(self.data.mean, self.data.std, self.task.budget.augment_spec, self.device)
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches
        model.eval()
        for m in norms:
            m.train()
        seen = 0
        with autocast(self.device, self.task.budget.precision):
            for _, images, _ in batches(split, batch_size, shuffle=False):
                model(prep(images, train=False))
                seen += len(images)
                if max_images and seen >= max_images:
                    break
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()


class Method(nn.Module):
    """Base class of every method: subclass, set ``name``/``version``/``Config``, implement two methods."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"  # bump when a change alters results: it is part of every run id

    @dataclass(frozen=True)
    class Config:
        pass

    needs_teacher: ClassVar[bool] = False

    def __init__(self, ctx: Context, config: Method.Config):
        super().__init__()
        self.config = config
        object.__setattr__(self, "ctx", ctx)  # not a submodule: the teacher is never part of the checkpoint

    @property
    def teacher(self) -> nn.Module:
        if self.ctx.teacher is None:
            raise UserError(f"method {self.name} needs a teacher; give the run a family with a teacher in the suite")
        return self.ctx.teacher

    def phases(self) -> Iterator[Phase]:
        raise NotImplementedError

    def anytime_family(self) -> list[OperatingPoint]:
        raise NotImplementedError

    def extra_points(self) -> list[OperatingPoint]:
        """Further models of the same trained run scored for accuracy only (e.g. PWL's other loading orders)."""
        return []

    @classmethod
    def config_spec(cls, config) -> dict:
        """The config as it enters a run's spec: every field, except those added after runs were recorded
        (:func:`later_field`) while they hold the value that reproduces those runs, so their ids stay."""
        out = {}
        for f in dataclasses.fields(config):
            value = getattr(config, f.name)
            if f.metadata.get("legacy", _NO_LEGACY) == value:
                continue
            out[f.name] = value
        return out

    @classmethod
    def make_config(cls, overrides: dict | None) -> Any:
        """The config from a suite's (or ``--config``'s) overrides, checked against the fields' declared types."""
        overrides = {} if overrides is None else overrides
        if not isinstance(overrides, dict):
            raise UserError(f"method {cls.name}: config must be a mapping of its fields, not {overrides!r}")
        known = {f.name for f in dataclasses.fields(cls.Config)}
        unknown = set(overrides) - known
        if unknown:
            raise UserError(f"method {cls.name}: unknown config field(s) {sorted(unknown)}; "
                            f"known: {sorted(known) or 'none'}")
        check_config_types(cls, overrides)
        try:
            return cls.Config(**overrides)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 -- a method's own check of its config, in whatever form it raises
            raise UserError(f"method {cls.name}: config {overrides} was refused ({describe_exception(exc)})") \
                from None


def check_config_types(cls: type[Method], values: dict) -> None:
    """Each value against its field's declared type (``float`` takes whole numbers, not booleans; ``tuple`` takes a
    YAML list); annotations this check does not understand are left to the method."""
    try:
        hints = typing.get_type_hints(cls.Config)
    except Exception:  # noqa: BLE001 -- an annotation that does not resolve: nothing to check against
        return
    defaults = {f.name: f.default for f in dataclasses.fields(cls.Config)}
    for name, value in values.items():
        hint = hints.get(name)
        if hint is None or (value is None and defaults.get(name) is None) or _fits(value, hint):
            continue
        raise UserError(f"method {cls.name}: config field {name} must be {_type_name(hint)}, not {value!r}")


def _fits(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return is_whole(value)
    if hint is float:
        return is_number(value)
    base = origin or hint
    if base in (tuple, list, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        items = {a for a in args if a is not Ellipsis}
        return len(items) != 1 or all(_fits(v, next(iter(items))) for v in value)
    if base in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    return not isinstance(base, type) or isinstance(value, base)


def _type_name(hint) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", type(None): "null",
             tuple: "a list", list: "a list", dict: "a mapping"}
    return names.get(typing.get_origin(hint) or hint, getattr(hint, "__name__", str(hint)))


def describe_exception(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__


def raised_in(exc: BaseException, cls: type[Method]) -> str | None:
    """``file:line`` of the deepest frame of ``exc``'s traceback in the method's own source files, or None when its
    code is not on the traceback (the harness or a library raised)."""
    import traceback
    files = set(method_files(cls))
    ours = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() in files]
    return f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else None


_NO_LEGACY = object()


def later_field(default, legacy=_NO_LEGACY, doc: str = ""):
    """A config field added after runs were recorded: it enters a run's spec only when it differs from ``legacy``
    (the behaviour those runs had; by default the field's default), so their ids, and so their records, stay valid."""
    return field(default=default, metadata={"legacy": default if legacy is _NO_LEGACY else legacy, "doc": doc})


def load_source_file(name: str, path: Path | str) -> types.ModuleType:
    """Import a user's .py file as module ``name`` from its source, never from a cached .pyc: the bytecode cache
    checks only whole-second mtime and size, so an edit that keeps the size within a second would run the old code."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(Path(path).read_bytes(), str(path), "exec"), module.__dict__)
    return module


def _load_reference(ref: str) -> type:
    module_name, _, attr = ref.partition(":")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise UserError(f"method file {path} not found")
        module = load_source_file(f"progbench_user_{path.stem}", path)
    else:
        module = importlib.import_module(module_name)
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise UserError(f"method reference {ref!r}: {module_name} has no {attr!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise UserError(f"method reference {ref!r} is not a subclass of progbench.protocol.Method")
    if not cls.__dict__.get("name"):  # an inherited name would give it another method's run ids and results
        raise UserError(f"method {ref!r} must set its own class attribute `name`")
    registered = available_methods().get(cls.name)
    if registered and registered != ref and _load_reference(registered) is not cls:
        raise UserError(f"method {ref!r} is named {cls.name!r}, which is taken by {registered}; choose another name")
    method_source(cls)  # taken now, as loaded: a later edit of the file is not the code that runs
    return cls


_SOURCES: dict[type, tuple[dict, list[bytes]]] = {}  # class -> (method_source, its files' bytes as loaded)
REPO = Path(__file__).resolve().parents[1]


def method_files(cls: type[Method]) -> list[Path]:
    """The source files of a method's class and of the method classes it derives from (their modules; for a file
    method, the file), resolved."""
    files: list[Path] = []
    for klass in cls.__mro__:
        if klass is Method or not issubclass(klass, Method):
            continue
        try:
            path = Path(inspect.getsourcefile(klass) or "").resolve()
        except TypeError:  # defined where no file is (an interactive session)
            continue
        if path.is_file() and path not in files:
            files.append(path)
    return files


SOURCE_FINGERPRINT = "ast-2"  # how method_source's sha256 is taken; records without the key hold raw-byte digests
# ast-1 digested ast.dump, whose text depends on the Python version (3.12 gave every function and class a
# `type_params` field): its records are compared by re-dumping as their Python did (env.json's "python").
_TYPE_PARAMS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _code_tree(source: bytes) -> ast.Module:
    """A module's syntax tree without what cannot change what it does: comments and layout (gone in the AST) and
    docstrings. A method's runs stay valid through edits of its prose."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _imports_sorted(tree: ast.Module, key) -> ast.Module:
    """The order of a module's top-level imports does not change what it does either."""
    imports = sorted((n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))), key=key)
    tree.body = imports + [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    return tree


def canonical_dump(node) -> str:
    """A syntax tree as text that no Python version changes: fields left empty (None, []) are left out, so a field a
    later Python adds (3.12's `type_params`) is invisible where code does not use it."""
    if isinstance(node, ast.AST):
        fields = ((name, getattr(node, name, None)) for name in node._fields)
        shown = ", ".join(f"{name}={canonical_dump(value)}" for name, value in fields if value not in (None, []))
        return f"{type(node).__name__}({shown})"
    if isinstance(node, list):
        return f"[{', '.join(canonical_dump(v) for v in node)}]"
    return repr(node)


def code_of(source: bytes) -> str:
    """A module's code as the stale-code guard compares it (fingerprint ast-2): see :func:`_code_tree`."""
    return canonical_dump(_imports_sorted(_code_tree(source), canonical_dump))


def code_of_ast1(source: bytes, python: str | None) -> str:
    """A module's code as fingerprint ast-1 took it under Python ``python`` (e.g. "3.12.3"; None: this one)."""
    version = tuple(int(x) for x in python.split(".")[:2]) if python else sys.version_info[:2]
    fields = {c: c._fields for c in _TYPE_PARAMS}
    try:
        for c, names in fields.items():
            names = tuple(n for n in names if n != "type_params")
            c._fields = names + ("type_params",) if version >= (3, 12) else names
        tree = _imports_sorted(_code_tree(source), ast.dump)
        for node in ast.walk(tree):
            if isinstance(node, _TYPE_PARAMS) and not hasattr(node, "type_params"):
                node.type_params = []
        return ast.dump(tree, **({"show_empty": True} if sys.version_info >= (3, 13) else {}))
    finally:
        for c, names in fields.items():
            c._fields = names


def method_source(cls: type[Method]) -> dict:
    """What a method's runs are made from, for the stale-code guard: a sha256 of its source files' code
    (:func:`method_files`, :func:`code_of`), read when the class was first loaded, and those files' names."""
    if cls not in _SOURCES:
        files = method_files(cls)
        sources = [path.read_bytes() for path in files]
        names = [str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p) for p in files]
        _SOURCES[cls] = ({"sha256": _digest(sources, code_of), "fingerprint": SOURCE_FINGERPRINT, "files": names},
                         sources)
    return _SOURCES[cls][0]


def _digest(sources: list[bytes], take) -> str:
    """sha256 over each file's sha256 of ``take(source)`` (text or bytes)."""
    digest = hashlib.sha256()
    for source in sources:
        taken = take(source)
        digest.update(hashlib.sha256(taken.encode() if isinstance(taken, str) else taken).digest())
    return digest.hexdigest()


_OLDER_DIGESTS: dict[tuple[type, str | None, str | None], str] = {}  # (class, fingerprint, Python) -> its digest


def source_changed(cls: type[Method], recorded: dict, python: str | None = None) -> bool:
    """Whether ``cls``'s source differs from the ``method_source`` a record holds, the record made under Python
    ``python`` (env.json's "python"; it matters to fingerprint ast-1 only; older records: raw bytes)."""
    current = method_source(cls)
    fingerprint = recorded.get("fingerprint")
    if fingerprint == current["fingerprint"]:
        return recorded["sha256"] != current["sha256"]
    # taken once per class, fingerprint and Python: a store holds many records of each
    key = (cls, fingerprint, python if fingerprint == "ast-1" else None)
    if key not in _OLDER_DIGESTS:
        take = (lambda source: code_of_ast1(source, python)) if fingerprint == "ast-1" else (lambda source: source)
        _OLDER_DIGESTS[key] = _digest(_SOURCES[cls][1], take)
    return recorded["sha256"] != _OLDER_DIGESTS[key]


def available_methods() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def get_method(name: str) -> type[Method]:
    """A method class by registered name, entry point, or ``path/to/file.py:ClassName``."""
    if ":" in name:
        return _load_reference(name)
    methods = available_methods()
    if name not in methods:
        raise UserError(f"unknown method {name!r}; available: {', '.join(sorted(methods))} "
                        f"(or a path/to/file.py:ClassName, or a package exposing the {ENTRY_POINT_GROUP!r} "
                        f"entry point)")
    return _load_reference(methods[name])
