"""Suites: declarative YAML files that expand into fully resolved run specs.

    name: cpu
    dataset: {name: cifar10, val_per_class: 500}
    datasets:                     # optional: datasets of your own (docs/adding-a-dataset.md), by name
      imagenette5: {folder: imagenette5, layout: imagefolder, splits: {train: train, test: val}, num_classes: 5,
                    native_size: 128, mean: imagenet, std: imagenet}
      mydata: datasets/mydata.yaml  # or a dataset .yaml file of its own (relative to this file)
    budgets:                      # named training budgets (see progbench.protocol.Budget)
      cnn_teacher: {epochs: 20, batch_size: 128, optimizer: {...}, schedule: {...}}
    families:                     # a teacher/student architecture pair; each family's teacher is trained first
      vgg: {teacher: pb_vgg_teacher_cpu, student: pb_vgg_student_cpu, teacher_budget: cnn_teacher,
            budget: cnn_student}
      sws_cifar10:                # a family may distil from another family's teacher run (SWS's ancestry) ...
        teacher_from: resnet
        student: pb_vit_des_cpu
        budget: des_finetune
        dataset: {name: cifar10, val_per_class: 500, train_per_class: 500}  # ... on a train subset of its data
    runs:
      - {method: kd, families: [vgg], seeds: [0, 1, 2], config: {T: 4}}
      - {method: pwl, name: pwl-no-cross, families: [vgg], config: {drop: [cross]}}  # name: a label for logs
      - {method: kd, name: kd-half, families: [vgg], student_kwargs: {widths: [8, 16, 32, 64, 64]}}  # another size

A run's spec holds everything that determines its result -- method name, version and full config (defaults filled
in), dataset, architectures, budget, seed and the teacher's run id -- so the run id (a hash of the spec) changes
whenever any of them does. A declared dataset's spec also holds its declaration and a fingerprint of its files, taken
here when the suite loads (``progbench.data.resolve``).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from . import data, protocol
from .data import DatasetSpec
from .errors import UserError, whole
from .models import check_arch
from .placement import ExecutorConfig, resolve
from .protocol import Budget, Task
from .store import canonical_json, run_id

SUITE_KEYS = {"name", "description", "dataset", "datasets", "budgets", "families", "runs", "teacher_seed", "executor"}
FAMILY_KEYS = {"teacher", "student", "teacher_budget", "budget", "dataset", "teacher_kwargs", "student_kwargs",
               "teacher_from"}
TEACHER_KEYS = ("teacher", "teacher_budget", "teacher_kwargs")
RUN_KEYS = {"method", "families", "seeds", "config", "budget", "name", "student_kwargs"}


def task_of(spec: dict) -> Task:
    """The :class:`Task` a resolved spec (a run's ``spec.json``) describes."""
    t = dict(spec["task"])
    t["dataset"] = DatasetSpec.from_dict(t["dataset"])
    t["budget"] = Budget.from_dict(t["budget"])
    return Task(**t)


@dataclass
class RunSpec:
    spec: dict
    method: str
    family: str
    seed: int
    is_teacher: bool
    teacher_id: str | None
    method_ref: str  # how the suite named the method (a name, entry point or file.py:Class); not hashed
    label: str = ""
    needs_teacher: bool = True  # the method loads the teacher (scratch students only name it, for grouping)

    @property
    def depends_on(self) -> str | None:
        """The run whose record must exist before this one can start (its teacher, if it distils from one)."""
        return self.teacher_id if self.needs_teacher else None

    @property
    def run_id(self) -> str:
        return run_id(self.spec)

    @property
    def task(self) -> Task:
        return task_of(self.spec)


@dataclass
class Suite:
    name: str
    path: Path
    runs: list[RunSpec]
    description: str = ""
    expand: Callable[[dict, str], list[RunSpec]] | None = field(default=None, repr=False)  # a runs entry -> specs
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # where its runs go; placement is in the specs

    def add_runs(self, entry: dict, where: str = "extra run") -> list[RunSpec]:
        """Resolve one more runs entry (``{method, families, seeds, config, budget, name}``) exactly as the suite
        file's own entries are, add the specs the suite lacks and return all of the entry's specs."""
        specs = self.expand(entry, where)
        held = {r.run_id for r in self.runs}
        self.runs += [r for r in specs if r.run_id not in held]
        return specs

    def select(self, only: str | None) -> list[RunSpec]:
        """Runs matching ``key=value[,key=value]`` (keys: method, family, seed, id), plus the teachers they distil
        from."""
        if not only:
            return list(self.runs)
        wanted = parse_only(only)
        picked = [r for r in self.runs if matches(r, wanted)]
        if not picked:
            raise UserError(f"--only {only!r} selects no run of suite {self.name}; `progbench plan {self.name}` "
                            f"lists them")
        needed = {r.depends_on for r in picked if r.depends_on}
        teachers = [r for r in self.runs if r.run_id in needed and r not in picked]
        return teachers + picked


ONLY_KEYS = ("method", "family", "seed", "id")


def parse_only(only: str | None) -> dict[str, str]:
    """``key=value[,key=value]`` (keys: method, family, seed, id) as a dict; a malformed filter is one line."""
    wanted = {}
    for part in (only or "").split(","):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or key not in ONLY_KEYS:
            raise UserError(f"--only {only!r}: use key=value pairs joined by commas, keys {', '.join(ONLY_KEYS)}")
        wanted[key] = value
    return wanted


def matches(run: RunSpec, wanted: dict[str, str]) -> bool:
    """Whether ``run`` has every wanted value: ``id`` matches a prefix of the run id, and a teacher run's method is
    ``teacher`` (its id's prefix), whatever method trains it."""
    def value(key: str) -> str:
        return "teacher" if key == "method" and run.is_teacher else str(getattr(run, key))
    return all(run.run_id.startswith(v) if k == "id" else value(k) == v for k, v in wanted.items())


def suite_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not p.is_file():
            raise UserError(f"suite file {p} not found")
        return p
    builtin = resources.files("progbench") / "suites" / f"{name_or_path}.yaml"
    if not builtin.is_file():
        folder = resources.files("progbench") / "suites"
        names = sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".yaml"))
        raise UserError(f"unknown suite {name_or_path!r}; built-in suites: {', '.join(names)} (or a path to a .yaml)")
    return Path(str(builtin))


def _require(mapping: dict, where: str, allowed: set) -> None:
    if not isinstance(mapping, dict):
        raise UserError(f"{where} must be a mapping, got {type(mapping).__name__}")
    unknown = set(mapping) - allowed
    if unknown:
        raise UserError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _budget(value, budgets: dict, where: str) -> dict:
    if isinstance(value, str):
        if value not in budgets:
            raise UserError(f"{where}: unknown budget {value!r}; defined budgets: {', '.join(budgets) or 'none'}")
        value = budgets[value]
    if not isinstance(value, dict):
        raise UserError(f"{where}: a budget is a name or a mapping")
    try:
        return Budget.from_dict(value).__dict__
    except (TypeError, UserError) as exc:
        raise UserError(f"{where}: {exc}") from None


def _spec(method_cls, config: dict, task: Task) -> dict:
    cfg = method_cls.make_config(config)
    return {"method": method_cls.name, "method_version": method_cls.version,
            "config": method_cls.config_spec(cfg), "task": task.to_dict()}


def _shared_teacher(fam: str, f: dict, families: dict, teachers: dict, datasets: dict, where: str) -> RunSpec:
    """The teacher run of the family ``f['teacher_from']`` names, checked usable: a teacher trained on the same
    dataset, splits and image size (it may have used more training images), so it never saw this family's val or test
    images."""
    source = f["teacher_from"]
    if source not in families or "teacher_from" in families[source]:
        with_teacher = ", ".join(k for k, v in families.items() if "teacher_from" not in v)
        raise UserError(f"{where}: family {fam} has teacher_from {source!r}, which is not a family with a teacher of "
                        f"its own; families with teachers: {with_teacher}")
    given = [k for k in TEACHER_KEYS if k in f]
    if given:
        raise UserError(f"{where}: family {fam} takes its teacher from {source!r}; remove {given}")
    mine, theirs = datasets[fam].to_dict(), datasets[source].to_dict()
    differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k) and k != "train_per_class")
    if differ:
        raise UserError(f"{where}: family {fam}'s dataset differs from its teacher's (family {source}) in {differ}; "
                        f"a shared teacher needs the same dataset, splits and size (only train_per_class may differ)")
    return teachers[source]


def load_suite(name_or_path: str, executor: dict | None = None, data_root: str | None = None) -> Suite:
    """The suite's resolved runs; ``executor`` holds command-line executor settings (over the suite's own section
    and the user's config file), whose threads and processes per run enter every spec. ``data_root`` (default:
    ``PROGBENCH_DATA``) is where declared datasets' files are fingerprinted."""
    path = suite_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"suite file {path} is not valid YAML{where}: {problem}") from None
    where = f"suite file {path}"
    _require(raw, where, SUITE_KEYS)
    for key in ("name", "dataset", "families", "runs"):
        if key not in raw:
            raise UserError(f"{where}: missing required key {key!r}")
    config = resolve(raw.get("executor"), where, executor or {})
    placement = config.placement()
    if not isinstance(raw["name"], str) or not raw["name"]:
        raise UserError(f"{where}: name must be a non-empty string, not {raw['name']!r}")
    budgets = raw.get("budgets") or {}
    _require(budgets, f"{where}: budgets", set(budgets))
    families = raw["families"]
    _require(families, f"{where}: families", set(families))
    if not isinstance(raw["runs"], list):
        raise UserError(f"{where}: runs must be a list of entries ({{method: ..., families: [...]}}), not "
                        f"{raw['runs']!r}")
    default_dataset = raw["dataset"]
    declared = data.declarations(raw.get("datasets"), path.parent, where)
    fingerprints: dict = {}  # one per declared dataset for the suite's lifetime (add_runs too)
    datasets: dict[str, DatasetSpec] = {}  # each family's, resolved
    teacher_seed = whole(raw.get("teacher_seed", 0), f"{where}: teacher_seed", lo=0)
    runs: list[RunSpec] = []
    teachers: dict[str, RunSpec] = {}
    scratch = protocol.get_method("scratch")
    for fam, f in families.items():
        _require(f, f"{where}: family {fam}", FAMILY_KEYS)
        needed = ("student", "budget") if "teacher_from" in f else ("teacher", "student", "teacher_budget", "budget")
        for key in needed:
            if key not in f:
                raise UserError(f"{where}: family {fam} lacks {key!r}")
        # unknown dataset and architecture names fail here, before anything runs; so does a declared dataset's
        # missing folder (its files are fingerprinted into the spec)
        dataset = datasets[fam] = data.resolve(f.get("dataset", default_dataset), declared, data_root, path.parent,
                                               fingerprints)
        check_arch(f["student"])
        _build(f["student"], f.get("student_kwargs", {}), dataset, f"{where}: family {fam}'s student")
        if "teacher_from" in f:
            continue
        check_arch(f["teacher"])
        _build(f["teacher"], f.get("teacher_kwargs", {}), dataset, f"{where}: family {fam}'s teacher")
        task = Task(dataset=dataset, family=fam, arch=f["teacher"], arch_kwargs=f.get("teacher_kwargs", {}),
                    budget=Budget(**_budget(f["teacher_budget"], budgets, f"{where}: family {fam}")),
                    seed=teacher_seed, role="teacher", **placement)
        _check_split(task, f"{where}: family {fam}'s teacher")
        spec = _spec(scratch, {}, task)
        teachers[fam] = RunSpec(spec, "scratch", fam, teacher_seed, True, None, "scratch", label=f"teacher-{fam}")
        runs.append(teachers[fam])
    for fam, f in families.items():
        if "teacher_from" in f:
            teachers[fam] = _shared_teacher(fam, f, families, teachers, datasets, where)

    def expand(entry: dict, at: str) -> list[RunSpec]:
        """One runs entry -> its resolved specs (one per family and seed), each naming its family's teacher run."""
        _require(entry, at, RUN_KEYS)
        if "method" not in entry:
            raise UserError(f"{at} lacks 'method'")
        if not isinstance(entry["method"], str):
            raise UserError(f"{at}: method must be a name or path/to/file.py:ClassName, not {entry['method']!r}")
        method_cls = protocol.get_method(entry["method"])
        if not isinstance(entry.get("student_kwargs", {}), dict):
            raise UserError(f"{at}: student_kwargs must be a mapping of the student architecture's arguments")
        chosen = entry.get("families", list(families))
        if not isinstance(chosen, list) or not all(isinstance(x, str) for x in chosen):
            raise UserError(f"{at}: families must be a list of family names (e.g. [vgg]), not {chosen!r}")
        seeds = entry.get("seeds", [0])
        if not isinstance(seeds, list) or not seeds:
            raise UserError(f"{at}: seeds must be a list of whole numbers (e.g. [0, 1, 2]), not {seeds!r}")
        for seed in seeds:
            whole(seed, f"{at}: each seed", lo=0)
        if "name" in entry and not isinstance(entry["name"], str):
            raise UserError(f"{at}: name must be a string, not {entry['name']!r}")
        specs = []
        for fam in chosen:
            if fam not in families:
                raise UserError(f"{at} names unknown family {fam!r}; families: {', '.join(families)}")
            f = families[fam]
            budget = _budget(entry.get("budget", f["budget"]), budgets, at)
            if entry.get("student_kwargs"):
                _build(f["student"], {**f.get("student_kwargs", {}), **entry["student_kwargs"]}, datasets[fam],
                       f"{at}: family {fam}'s student")
            for seed in seeds:
                teacher = teachers[fam]
                teacher_family = families[f.get("teacher_from", fam)]
                task = Task(dataset=datasets[fam], family=fam,
                            arch=f["student"], budget=Budget(**budget),
                            # a runs entry may train the family's student at another size (a ladder rung)
                            arch_kwargs={**f.get("student_kwargs", {}), **entry.get("student_kwargs", {})},
                            seed=int(seed), teacher_arch=teacher_family["teacher"],
                            teacher_kwargs=teacher_family.get("teacher_kwargs", {}), teacher_run=teacher.run_id,
                            **placement)
                _check_split(task, at)
                spec = _spec(method_cls, entry.get("config", {}), task)
                specs.append(RunSpec(spec, method_cls.name, fam, int(seed), False, teacher.run_id, entry["method"],
                                     label=f"{entry.get('name', method_cls.name)}-{fam}-s{seed}",
                                     needs_teacher=method_cls.needs_teacher))
        return specs

    for i, entry in enumerate(raw["runs"]):
        runs += expand(entry, f"{where}: runs[{i}]")
    ids = [r.run_id for r in runs]
    dupes = {x for x in ids if ids.count(x) > 1}
    if dupes:
        raise UserError(f"{where}: runs repeat the same spec ({', '.join(sorted(dupes))}); remove the duplicate entry")
    return Suite(raw["name"], path, runs, raw.get("description", ""), expand, config)


_BUILT: dict[str, str | None] = {}


def _build(arch: str, kwargs, dataset: DatasetSpec, where: str) -> None:
    """Build the architecture with its kwargs on the meta device (nothing allocated): a wrong argument fails when the
    suite loads, in one line, not when its run starts."""
    if not isinstance(kwargs, dict):
        raise UserError(f"{where}: its kwargs must be a mapping of the architecture's arguments, not {kwargs!r}")
    key = canonical_json([arch, kwargs, dataset.num_classes])
    if key not in _BUILT:
        import torch

        from .models import create_model
        try:
            with torch.device("meta"):
                create_model(arch, num_classes=dataset.num_classes, **kwargs)
            _BUILT[key] = None
        except UserError as exc:
            _BUILT[key] = str(exc)
        except Exception as exc:  # noqa: BLE001 -- whatever the model's constructor raises for bad arguments
            _BUILT[key] = f"{arch} with {kwargs} cannot be built ({protocol.describe_exception(exc)})"
    if _BUILT[key]:
        raise UserError(f"{where}: {_BUILT[key]}")


def _check_split(task: Task, where: str) -> None:
    if task.budget.batch_size % task.world_size:
        raise UserError(f"{where}: batch size {task.budget.batch_size} does not split over {task.world_size} "
                        f"processes; choose --nproc-per-run dividing it")
