"""Rebuilding the report without losing it: built whole in a temporary folder, swapped in only when it succeeded.

``progbench.reports.generate.build_report`` writes straight into its folder and first empties its managed folders of
files a previous build left; run on a mistyped or empty store, or stopped by an error halfway, that loses the committed
report. Here the build goes to a temporary folder; only when it has finished are its files copied over (each file
atomically; unchanged files are left as they are), the managed folders' files it did not write removed, and the
README's headline block rewritten. A store that does not exist or holds no finished run is refused before anything
is touched, and a report of another store is not written into the committed report folder unless asked for.
"""
from __future__ import annotations

import filecmp
import shutil
import tempfile
from pathlib import Path

from .errors import UserError, storage_error
from .store import Store, replacing

# The folders build_report owns (it removes their stale files itself: see its "only this build's" loop); anything
# else under the report folder (its code, its published-numbers data, a user's notes) is never removed.
MANAGED = ("tables", "figures", "assets")
DEFAULT_OUT = "reports"


def check_store(results: str | Path) -> Store:
    """The store to report on, refused in one line when it is missing or holds no finished run."""
    store = Store(results)
    if not store.root.is_dir():
        raise UserError(f"results store {results} does not exist (a mistyped --results?); nothing was written and "
                        f"the report folder is as it was")
    if not store.runs.is_dir() or not any((d / "record.json").is_file() for d in store.runs.iterdir()):
        raise UserError(f"results store {results} holds no finished run; nothing to report (`progbench run SUITE "
                        f"--results {results}` fills it); the report folder is as it was")
    return store


def check_out(results: str | Path, out: str | Path | None, force: bool) -> Path:
    """The report folder: ``out`` when given; else the default ``reports``, which belongs to the store beside it
    (``results``): another store's report is refused there unless ``force``."""
    if out is not None:
        return Path(out)
    own = Path(DEFAULT_OUT).resolve().parent / "results"
    if not force and Path(results).resolve() != own:
        raise UserError(f"--results {results} is not the store whose report is {DEFAULT_OUT}/ ({own}); writing it "
                        f"there would overwrite that report: pass --out DIR for this store's report (or --force to "
                        f"overwrite {DEFAULT_OUT}/)")
    return Path(DEFAULT_OUT)


def build(results: str | Path, out: str | Path, readme: str | Path | None = None) -> list[Path]:
    """Build the report of ``results`` into ``out`` (and ``readme``'s headline block) only if the whole build
    succeeds; returns the files the build wrote, under ``out`` (and ``readme``)."""
    from progbench.reports.generate import build_report

    check_store(results)
    out = Path(out)
    staging = Path(tempfile.mkdtemp(prefix="progbench-report-"))
    try:
        written = build_report(results, staging, None)
        if not any(p.relative_to(staging).parts[0] in MANAGED for p in written if p.is_relative_to(staging)):
            raise UserError(f"results store {results} has no complete record to report (`progbench plan SUITE "
                            f"--results {results}` says why); the report folder is as it was")
        final = _swap(staging, out, written)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if readme:
        from progbench.reports import document
        final.append(document.update_readme(Path(readme), out))
    return final


def _swap(staging: Path, out: Path, written: list[Path]) -> list[Path]:
    """Copy the build's files into ``out`` (changed or new ones only) and remove the managed files it did not write."""
    new = {p.relative_to(staging): p for p in written if p.is_relative_to(staging) and p.is_file()}
    try:
        for rel, src in new.items():
            dest = out / rel
            if dest.is_file() and filecmp.cmp(src, dest, shallow=False):
                continue  # unchanged: left as it is
            dest.parent.mkdir(parents=True, exist_ok=True)
            with replacing(dest) as tmp:
                shutil.copyfile(src, tmp)
        for folder in MANAGED:
            for stale in sorted(out.glob(f"{folder}/*.*")):
                if stale.relative_to(out) not in new:
                    stale.unlink()
    except OSError as exc:
        raise storage_error(exc) from None
    return [out / rel for rel in new]
