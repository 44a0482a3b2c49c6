"""Atomic file writes: a temporary file beside the destination, then os.replace, so a reader never sees half.

The one place the project writes files: checkpoints, results, plots and mined negatives all go through it.
"""

from __future__ import annotations

import glob
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_with(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write(file)` on a temporary binary file beside `path`, then move it over `path` atomically.

    The directory must exist. On any error the temporary file is removed and `path` keeps its old content;
    temporaries of earlier writes of `path` whose process was killed are removed first.
    """
    path = Path(path)
    if "\0" in str(path):
        raise ValueError(f"cannot write {str(path)!r}: a path must not contain a NUL character")
    if not path.parent.is_dir():
        if path.parent.exists():
            raise NotADirectoryError(f"cannot write {path}: {path.parent} is not a directory")
        raise FileNotFoundError(f"cannot write {path}: its directory {path.parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that writes of `path` left behind when their process was killed; returns them.

    A temporary is named `.{name}.{pid}.{random}.tmp`; it is stale when no process `pid` runs on this machine
    (a temporary without a pid, from an older hardmine, when it is over an hour old). A live writer's file is
    never touched.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        try:
            stale = not _running(int(pid)) if pid.isdigit() else time.time() - tmp.stat().st_mtime > 3600
        except OSError:  # removed meanwhile
            continue
        if stale:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be writing it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (the directory must exist)."""
    write_with(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON atomically; NaN and infinities are written as null."""
    write_text(path, json.dumps(_no_nan(obj), indent=1, sort_keys=False) + "\n")


def _no_nan(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_no_nan(v) for v in obj]
    return obj
