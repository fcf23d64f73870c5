"""User-facing errors: printed as one line (what is wrong and how to fix it), never as a traceback; and the checks of
declared types and ranges that produce them when a suite loads."""
from __future__ import annotations

import errno
import shutil
from pathlib import Path


class RunFailed(Exception):
    """A run stopped (e.g. NaN loss); one line, with the run id and what to change."""


class UserError(Exception):
    """A mistake in the user's input or environment, with the fix in the message."""


class StorageError(OSError, UserError):
    """A filesystem failure (full, read-only) named with its path: a :class:`UserError` to report in one line, and
    still an ``OSError`` to code that tolerates failed writes (a progress file)."""


# --- values from suite files and the command line: booleans are not numbers --------------------------------------

def is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def whole(value, what: str, lo: int = 1, optional: bool = False):
    """``value`` if it is a whole number >= ``lo`` (or None when ``optional``); else a one-line error."""
    if optional and value is None:
        return value
    if not is_whole(value) or value < lo:
        raise UserError(f"{what} must be a whole number >= {lo}{' (or null)' if optional else ''}, not {value!r}")
    return value


def number(value, what: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False):
    """``value`` if it is a number (not a boolean) within the bounds; else a one-line error."""
    ok = is_number(value) and value == value  # NaN is no setting
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        bounds = [f"{'>' if lo_open else '>='} {lo:g}" if lo is not None else "",
                  f"{'<' if hi_open else '<='} {hi:g}" if hi is not None else ""]
        rule = " and ".join(b for b in bounds if b)
        raise UserError(f"{what} must be a number{' ' + rule if rule else ''}, not {value!r}")
    return value


def flag(value, what: str):
    if not isinstance(value, bool):
        raise UserError(f"{what} must be true or false, not {value!r}")
    return value


def mapping(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise UserError(f"{what} must be a mapping (key: value, ...), not {value!r}")
    return value


# --- the filesystem: a full disk or a read-only store, named with its path ------------------------------------------

_FULL = "the disk is full: free space there, or point --results (PROGBENCH_CACHE for the data cache) at another disk"
_HINTS = {
    errno.ENOSPC: _FULL,
    errno.EDQUOT: "the disk quota is used up: free space there, or point --results at another disk",
    errno.EFBIG: "the file size limit was reached (ulimit -f)",
    errno.EROFS: "the filesystem is read-only: pass --results a writable folder",
    errno.EACCES: "permission denied: pass --results a folder you can write, or fix its permissions",
    errno.EPERM: "not permitted: pass --results a folder you can write, or fix its permissions",
}


def storage_error(exc: BaseException, path: str | Path | None = None, doing: str = "write") -> StorageError:
    """A failed read or write of the store, the data cache or the report as one line: the path, the reason, the fix.

    ``exc`` is an ``OSError``, or what a library raised instead (torch.save's writer raises ``RuntimeError`` on a
    full disk); ``path`` is the file being written when the error does not name it."""
    if isinstance(exc, StorageError):
        return exc  # said already
    path = path or getattr(exc, "filename", None) or "a file"
    code = getattr(exc, "errno", None)
    reason = getattr(exc, "strerror", None) or \
        f"the {doing} failed ({(str(exc).strip().splitlines() or [type(exc).__name__])[-1].strip()})"
    hint = _HINTS.get(code)
    if hint is None and doing != "write":
        hint = "check that it exists and that you may use it"
    if hint is None:
        try:
            folder = Path(path).parent
            free = shutil.disk_usage(folder).free
            hint = _FULL if free < 64 * 2**20 else f"{free / 2**30:.1f} GiB free there; check that its folder is " \
                                                   f"writable"
        except OSError:
            hint = "check that its folder exists and is writable"
    return StorageError(f"cannot {doing} {path}: {reason}; {hint}")
