"""Where and how runs execute: the ``executor:`` settings of a suite, a user's config file and the command line.

Two of them change a run's numbers and so enter its spec (``progbench.protocol.Task``): ``threads_per_worker`` (CPU
threads of each process of a run) and ``nproc_per_run`` (its data-parallel processes). The rest only decide where
runs go: the executor (``local``: a pool of worker processes on this machine; ``slurm``: one job per run through
submitit), how many local workers, and the Slurm job settings.

Precedence, lowest first: the defaults, the suite's ``executor:`` section, the user's config file
(``$PROGBENCH_CONFIG``, else ``~/.config/progbench/config.yaml``, its ``executor:`` section), the command line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .errors import UserError

EXECUTORS = ("local", "slurm")
SLURM_KEYS = {"partition", "time", "cpus_per_task", "gpus_per_task", "mem_gb", "account", "qos", "constraint",
              "sbatch", "max_requeues"}


def _whole(value, what: str, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise UserError(f"{what} must be a whole number >= {lo}, not {value!r}")
    return value


@dataclass(frozen=True)
class ExecutorConfig:
    name: str = "local"
    workers: int | None = None  # local: concurrent runs (default: the cores / (threads x processes) of each run)
    threads_per_worker: int | None = None  # in the spec; None: the spec's default (2, the committed runs' setting)
    nproc_per_run: int = 1  # in the spec (world_size)
    slurm: dict = field(default_factory=dict)

    def checked(self, cores: int | None = None) -> ExecutorConfig:
        if self.name not in EXECUTORS:
            raise UserError(f"executor {self.name!r} is unknown; choose one of {', '.join(EXECUTORS)}")
        if self.workers is not None:
            _whole(self.workers, "--workers (executor.workers)")
        if self.threads_per_worker is not None:
            _whole(self.threads_per_worker, "--threads-per-worker (executor.threads_per_worker)")
            cores = cores or os.cpu_count() or 1
            if self.name == "local" and self.threads_per_worker > cores:
                raise UserError(f"--threads-per-worker {self.threads_per_worker} is more than this machine's {cores} "
                                f"cores; use at most {cores}")
        _whole(self.nproc_per_run, "--nproc-per-run (executor.nproc_per_run)")
        if not isinstance(self.slurm, dict) or set(self.slurm) - SLURM_KEYS:
            raise UserError(f"executor.slurm: unknown key(s) {sorted(set(self.slurm) - SLURM_KEYS)}; "
                            f"known: {sorted(SLURM_KEYS)}")
        return self

    def merged(self, section: dict | None, where: str) -> ExecutorConfig:
        """These settings with a config section's values on top."""
        if not section:
            return self
        if not isinstance(section, dict):
            raise UserError(f"{where}: executor must be a mapping of settings")
        known = {f.name for f in fields(self)}
        unknown = set(section) - known
        if unknown:
            raise UserError(f"{where}: executor: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        slurm = {**self.slurm, **section.get("slurm", {})} if isinstance(section.get("slurm", {}), dict) else \
            section["slurm"]
        return replace(self, **{**section, "slurm": slurm}).checked()

    def placement(self) -> dict:
        """The Task fields these settings fix (only those given)."""
        out = {"world_size": self.nproc_per_run}
        if self.threads_per_worker is not None:
            out["threads"] = self.threads_per_worker
        return out


def user_config_path() -> Path:
    return Path(os.environ.get("PROGBENCH_CONFIG") or Path.home() / ".config" / "progbench" / "config.yaml")


def user_section() -> tuple[dict | None, str]:
    import yaml
    path = user_config_path()
    if not path.is_file():
        return None, str(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML ({str(exc).splitlines()[0]}); fix or remove it") \
            from None
    if not isinstance(raw, dict) or set(raw) - {"executor"}:
        raise UserError(f"config file {path}: expected a mapping with one key, executor")
    return raw.get("executor"), str(path)


def resolve(suite_section: dict | None, suite_where: str, cli: dict) -> ExecutorConfig:
    """The settings in force: defaults < the suite's section < the user's config file < the command line."""
    config = ExecutorConfig().merged(suite_section, suite_where)
    section, path = user_section()
    config = config.merged(section, f"config file {path}")
    return config.merged({k: v for k, v in cli.items() if v is not None}, "command line")
