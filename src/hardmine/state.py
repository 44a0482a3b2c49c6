"""One state protocol: `state_dict()` is pure (tensors and plain values), `load_state_dict()` validates the whole
state first and assigns in one step, and every top-level state carries a `state_version`.

`to_saved` / `from_saved` are the one conversion between in-memory values (numpy arrays) and saved ones (CPU
tensors, loadable with `torch.load(weights_only=True)`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch


def to_saved(value: Any) -> Any:
    """numpy arrays become CPU tensors (copies), dicts and lists are converted item by item, the rest is kept."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, dict):
        return {k: to_saved(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_saved(v) for v in value]
    return value


def from_saved(value: Any) -> Any:
    """The inverse of `to_saved`: tensors become numpy arrays (copies), containers are converted item by item."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    if isinstance(value, dict):
        return {k: from_saved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_saved(v) for v in value]
    return value


def check_state(state: Any, owner: str, version: int | None, keys: Iterable[str]) -> dict[str, Any]:
    """`state` checked to be a dict holding `keys` (and `state_version == version` when version is given).

    owner names the object in errors ("ScoreMemory", "policy 'importance'").
    """
    if not isinstance(state, dict):
        raise TypeError(f"{owner} state must be a dict, got {type(state).__name__}")
    missing = [k for k in (*keys, *(("state_version",) if version is not None else ())) if k not in state]
    if missing:
        raise ValueError(f"{owner} state is missing keys {missing}")
    if version is not None and state["state_version"] != version:
        raise ValueError(f"{owner} state has state_version {state['state_version']!r}, expected {version}")
    return state


def check_same_keys(name: str, found: Iterable[str], expected: Iterable[str]) -> None:
    """Raise unless `found` and `expected` hold the same keys; `name` is the state entry, for the error."""
    found, expected = sorted(found), sorted(expected)
    if found != expected:
        raise ValueError(f"{name} has keys {found}, expected {expected}")
