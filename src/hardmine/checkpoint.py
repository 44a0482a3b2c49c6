"""Saving and loading state dicts: atomic writes, and loads that never unpickle arbitrary objects."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def save_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write `state` (tensors, numbers, strings, lists, dicts, None) to `path` atomically.

    The file is written beside its destination and renamed over it, so a crash leaves the old file intact.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a state written by `save_state`, with `torch.load(weights_only=True)`: no arbitrary code runs."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)
