"""Saving and loading state dicts: atomic writes, and loads that never unpickle arbitrary objects."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from hardmine.atomic import write_with


def save_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write `state` (tensors, numbers, strings, lists, dicts, None) to `path` atomically.

    The file is written beside its destination and renamed over it, so a crash leaves the old file intact.
    """
    write_with(path, lambda f: torch.save(state, f))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a state written by `save_state`, with `torch.load(weights_only=True)`: no arbitrary code runs."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)
