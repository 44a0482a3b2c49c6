"""Atomic file writes: a temporary file beside the destination, then os.replace, so a reader never sees half.

The one place the project writes files: checkpoints, results, plots and mined negatives all go through it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_with(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write(file)` on a temporary binary file beside `path`, then move it over `path` atomically.

    The directory must exist. On any error the temporary file is removed and `path` keeps its old content.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
