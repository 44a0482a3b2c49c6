"""Argument checks shared by every public boundary: each error names the argument and the bad value."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def to_numpy(x: Any) -> np.ndarray:
    """Return `x` as a numpy array without copying when it already is one (CPU tensors are viewed, not copied)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """Return `value` as an int, or raise if it is not an integer >= `minimum` and, with `maximum`, <= it
    (bools are refused): "history_size must be at most 1048576, got 2000000"."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return int(value)


def check_choice(name: str, value: Any, choices: Iterable[Any], alternative: str = "",
                 error: type[ValueError] = ValueError) -> Any:
    """Return `value` when it is one of `choices` (equal and of the same type), or raise ValueError
    "{name} must be one of [...], got 'x'"; `alternative` names what else the argument takes, after the list:
    check_choice("index", "annoy", ["exact", "hnsw"], "a SearchBackend") -> "index must be one of ['exact',
    'hnsw'] or a SearchBackend, got 'annoy'". The one "must be one of" check (registries raise their
    `UnknownName`, a ValueError, through `error`)."""
    choices = list(choices)
    for choice in choices:
        if type(choice) is type(value) and choice == value:
            return value
    other = f" or {alternative}" if alternative else ""
    raise error(f"{name} must be one of {choices}{other}, got {value!r}")


def check_number(name: str, value: Any, low: float = -math.inf, high: float = math.inf,
                 low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Return `value` as a finite float in the interval [low, high] (open ends when not inclusive), or raise;
    the default interval takes any finite number (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    ok_low = value >= low if low_inclusive else value > low
    ok_high = value <= high if high_inclusive else value < high
    if not (np.isfinite(value) and ok_low and ok_high):
        lo, hi = "[" if low_inclusive else "(", "]" if high_inclusive else ")"
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}, got {value}")
    return value


def check_finite(name: str, value: Any, minimum: float | None = None) -> float:
    """Return `value` as a float, or raise ValueError unless it is a finite real number (bools are refused)
    and, with `minimum`, at least that: "gamma must be a finite number >= 0, got -1"."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and (minimum is None or value >= minimum)):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def check_not_meta(name: str, value: Any) -> None:
    """Raise ValueError naming `name` when `value` is a tensor on the meta device (it holds no values)."""
    if isinstance(value, torch.Tensor) and value.device.type == "meta":
        raise ValueError(f"{name} is a meta tensor (shape {tuple(value.shape)}): it holds no values; "
                         "materialise it on a real device first")


def check_indices(name: str, indices: Any, num_samples: int) -> np.ndarray:
    """Return `indices` as a 1-D int64 numpy array, or raise if empty, not integer-typed, or out of [0, num_samples)."""
    check_not_meta(name, indices)
    arr = to_numpy(indices)
    if arr.size == 0:  # before the dtype: np.array([]) is float64
        raise ValueError(f"{name} is empty (shape {tuple(arr.shape)}): an update needs at least one index")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers (int64 preferred), got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(arr.shape)}")
    if arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:  # would wrap to a negative int64
        where = int(np.argmax(arr))
        raise ValueError(f"{name} out of range [0, {num_samples}): e.g. {name}[{where}] = {int(arr[where])}")
    arr = arr.astype(np.int64, copy=False)
    if arr.min() < 0 or arr.max() >= num_samples:
        bad = (arr < 0) | (arr >= num_samples)
        where = np.flatnonzero(bad)
        raise ValueError(
            f"{name} out of range [0, {num_samples}): {bad.sum()} bad, e.g. {name}[{where[0]}] = {arr[where[0]]}"
        )
    return arr


def check_values(name: str, values: Any, length: int, indices: np.ndarray | None = None,
                 nonnegative: bool = False) -> np.ndarray:
    """Return `values` as a 1-D float64 array of `length` finite numbers, or raise naming the offending entries.

    `indices`, when given, are the data set indices the values belong to; they are named in the error.
    """
    check_not_meta(name, values)
    arr = to_numpy(values)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False).reshape(-1) if arr.ndim <= 1 else arr
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(arr.shape)}")
    if arr.shape[0] != length:
        raise ValueError(f"{name} has length {arr.shape[0]} but the indices have length {length}")
    bad = ~np.isfinite(arr)
    if bad.any():
        pos = np.flatnonzero(bad)
        where = indices[pos] if indices is not None else pos
        label = "at indices" if indices is not None else "at positions"
        raise ValueError(f"{name} has {pos.size} non-finite value(s) (NaN or inf) {label} {where[:10].tolist()}"
                         + (" ..." if pos.size > 10 else ""))
    if nonnegative and (arr < 0).any():
        pos = np.flatnonzero(arr < 0)
        raise ValueError(f"{name} must be non-negative: {pos.size} negative, e.g. {arr[pos[0]]} at position {pos[0]}")
    return arr


def last_occurrence(indices: np.ndarray) -> np.ndarray:
    """Positions (in the order of their index values) of the last occurrence of each distinct index: the rule
    'duplicates take the last value'.

    `indices` is a 1-D array of non-negative int64.
    """
    size = indices.size
    if size < 2 or (indices[1:] > indices[:-1]).all():  # strictly increasing: no duplicate, no sort
        return np.arange(size)
    if int(indices.max()) < (2**62) // size:  # one unstable sort of (index, position) keys, which are unique
        keys = np.sort(indices * size + np.arange(size))
        ordered, position = np.divmod(keys, size)
    else:
        position = np.argsort(indices, kind="stable")
        ordered = indices[position]
    is_last = np.ones(size, dtype=bool)
    is_last[:-1] = ordered[1:] != ordered[:-1]
    return position[is_last]


def check_device(name: str, device: Any) -> torch.device | None:
    """`device` (None, a string or a torch.device) as a torch.device that exists here, or None; raises
    ValueError naming the argument for an unknown device or a CUDA/MPS device that is not available."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} must be a torch.device or a device string such as 'cpu' or 'cuda:0', "
                         f"got {device!r}") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"{name}={device!r}, but CUDA is not available here "
                         f"({torch.cuda.device_count()} device(s))")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={device!r}, but MPS is not available here")
    if dev.type == "meta":
        raise ValueError(f"{name}={device!r}: a meta device holds no data")
    return dev


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """One way to turn a seed, a Generator or None into a numpy Generator (None means fresh OS entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be an int, a numpy.random.Generator or None, got {seed!r}")


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits_in_memory(what: str, needed: int, purpose: str) -> None:
    """Raise ValueError "`what` needs N GiB `purpose`, more than this machine's M GiB of memory" when `needed`
    bytes exceed physical memory: numpy would raise a MemoryError naming no argument, or the OS would kill the
    process while the pages are filled."""
    available = physical_memory()
    if available is not None and needed > available:
        raise ValueError(f"{what} needs {format_bytes(needed)} {purpose}, more than this machine's "
                         f"{format_bytes(available)} of memory")


def format_bytes(n: float) -> str:
    """`n` bytes as "1.5 GiB"."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
