"""One state protocol: `state_dict()` is pure (tensors and plain values), `load_state_dict()` validates the whole
state first and assigns in one step, and every top-level state carries a `state_version`.

`to_saved` / `from_saved` are the one conversion between in-memory values (numpy arrays) and saved ones (CPU
tensors, loadable with `torch.load(weights_only=True)`). A state is declared as a schema of `Field`s
(`Int`, `Float`, `Choice`, `Array`) and checked with `check_fields`; `compare_config` compares the saved
constructor arguments with the current ones (a mismatch is an error unless the caller passes
`use_saved_config=True`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


def to_saved(value: Any) -> Any:
    """numpy arrays become CPU tensors (copies), numpy scalars Python numbers, dicts and lists are converted item
    by item, the rest is kept."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
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


@dataclass(frozen=True)
class Field:
    """One entry of a declared state schema, checked by `check_fields` before anything is assigned.

    kind: "int", "float", "str", "array", "pairs" (a list of [int, int]) or "any" (checked by its owner).
    low, high: closed bounds of a number or of an array's values. below: an exclusive upper bound of an array's
        values given as a size name ("N", the data set's size) or a number.
    dtype: an array's numpy dtype ("int64", "float64", "float32", "bool"); values are converted to it only when
        they are of the same kind (an int array for an int dtype), never from float to int.
    length: an array's first dimension: a size name ("N"), a number, or None for any; `empty_ok` also accepts
        an empty array (the state before the first epoch). ndim: an array's number of dimensions.
    choices: the values a "str" may take. optional: None is accepted too. finite: numbers and float arrays
        must be finite (NaN allowed in arrays only with `nan_ok`).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    below: str | float | None = None
    dtype: str | None = None
    length: str | int | None = None
    empty_ok: bool = False
    ndim: int = 1
    choices: tuple[str, ...] = ()
    optional: bool = False
    finite: bool = True
    nan_ok: bool = False


def Int(low: float | None = None, high: float | None = None, optional: bool = False) -> Field:  # noqa: N802
    """An integer (bools refused) in [low, high]."""
    return Field("int", low=low, high=high, optional=optional)


def Float(low: float | None = None, high: float | None = None, optional: bool = False) -> Field:  # noqa: N802
    """A finite real number in [low, high]."""
    return Field("float", low=low, high=high, optional=optional)


def Choice(*choices: str) -> Field:  # noqa: N802
    """One of the strings `choices`."""
    return Field("str", choices=choices)


def Array(dtype: str, length: str | int | None = None, **options: Any) -> Field:  # noqa: N802
    """A numpy array (or tensor) of `dtype` whose first dimension is `length`; see Field for the options."""
    return Field("array", dtype=dtype, length=length, **options)


def check_fields(values: Any, schema: dict[str, Field], where: str,
                 sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """`values` checked against `schema` (the same keys, each value valid): a new dict of checked values, arrays
    as numpy copies. `where` names the entry in errors ("state['policy']['state']"); `sizes` gives the sizes that
    fields name ({"N": 1000}). Nothing is assigned: the caller assigns the result in one step."""
    if not isinstance(values, dict):
        raise TypeError(f"{where} must be a dict, got {type(values).__name__}")
    check_same_keys(where, values, schema)
    sizes = sizes or {}
    return {key: _check_field(f"{where}[{key!r}]", values[key], field, sizes) for key, field in schema.items()}


def _size(value: str | float | None, sizes: dict[str, int], name: str) -> float | None:
    if isinstance(value, str):
        return sizes.get(value)  # unknown here (a policy loaded on its own does not know N): not checked
    return value


def _check_number(name: str, value: Any, field: Field) -> Any:
    if field.kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
        value = int(value)
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} must be a number, got {value!r} of type {type(value).__name__}")
        value = float(value)
        if field.finite and not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    if (field.low is not None and value < field.low) or (field.high is not None and value > field.high):
        raise ValueError(f"{name} must be in [{field.low}, {field.high}], got {value}")
    return value


def _check_array(name: str, value: Any, field: Field, sizes: dict[str, int]) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        arr = value.detach().cpu().numpy().copy()
    elif isinstance(value, np.ndarray):
        arr = value.copy()
    else:
        raise ValueError(f"{name} must be an array or tensor, got {type(value).__name__}")
    dtype = np.dtype(field.dtype)
    if arr.dtype != dtype:
        same_kind = arr.dtype.kind == dtype.kind or (arr.dtype.kind in "iu" and dtype.kind in "iu")
        if not same_kind:
            raise ValueError(f"{name} must hold {dtype}, got {arr.dtype}")
        arr = arr.astype(dtype)
    if arr.ndim != field.ndim and not (field.empty_ok and arr.size == 0):
        raise ValueError(f"{name} must have {field.ndim} dimension(s), got shape {tuple(arr.shape)}")
    length = _size(field.length, sizes, name)
    if length is not None and arr.shape[0] != length and not (field.empty_ok and arr.size == 0):
        raise ValueError(f"{name} must have length {length}{' (or 0)' if field.empty_ok else ''}, got shape "
                         f"{tuple(arr.shape)}")
    if arr.size and dtype.kind in "fiu":
        data = arr.astype(np.float64)
        nan = np.isnan(data)
        if dtype.kind == "f" and field.finite and (np.isinf(data).any() or (nan.any() and not field.nan_ok)):
            raise ValueError(f"{name} must be finite: {int((~np.isfinite(data)).sum())} NaN or infinite value(s)")
        data = data[~nan]
        below = _size(field.below, sizes, name)
        for bad, text in ((field.low is not None and data.size and data.min() < field.low, f">= {field.low}"),
                          (field.high is not None and data.size and data.max() > field.high, f"<= {field.high}"),
                          (below is not None and data.size and data.max() >= below, f"< {below}")):
            if bad:
                worst = data.min() if text.startswith(">") else data.max()
                raise ValueError(f"{name} must hold values {text}, got {worst:g}")
    return arr


def _check_field(name: str, value: Any, field: Field, sizes: dict[str, int]) -> Any:
    if value is None:
        if field.optional or field.kind == "any":
            return None
        raise ValueError(f"{name} must not be None")
    if field.kind in ("int", "float"):
        return _check_number(name, value, field)
    if field.kind == "str":
        if not isinstance(value, str) or (field.choices and value not in field.choices):
            raise ValueError(f"{name} must be one of {list(field.choices)}, got {value!r}")
        return value
    if field.kind == "array":
        return _check_array(name, value, field, sizes)
    if field.kind == "pairs":
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                    for v in p) for p in value):
            raise ValueError(f"{name} must be a list of [int, int] pairs, got {value!r}")
        return [list(p) for p in value]
    return value


def compare_config(owner: str, saved: dict[str, Any], current: dict[str, Any], use_saved_config: bool) -> None:
    """Raise unless the saved constructor arguments equal the current ones (or `use_saved_config` is True).

    A mismatch names each differing argument with both values; `use_saved_config=True` is how a caller asks to
    take the saved values instead of the ones it constructed with.
    """
    if use_saved_config:
        return
    keys = sorted(set(saved) | set(current))
    differ = [k for k in keys if not _same(saved.get(k), current.get(k))]
    if differ:
        pairs = "; ".join(f"{k}: saved {_show(saved.get(k))}, constructed with {_show(current.get(k))}"
                          for k in differ)
        raise ValueError(f"{owner} was constructed with other arguments than the saved state's ({pairs}); "
                         "construct it with the saved ones, or pass use_saved_config=True to take them")


def _show(value: Any) -> str:
    """A config value for an error: a saved schedule ({"schedule": "linear", ...}) as linear(start=..., ...),
    a constant one as its number."""
    if isinstance(value, dict) and "schedule" in value:
        params = {k: v for k, v in value.items() if k != "schedule"}
        if value["schedule"] == "constant" and "value" in params:
            return repr(params["value"])
        return f"{value['schedule']}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
    return repr(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (torch.Tensor, np.ndarray)) or isinstance(b, (torch.Tensor, np.ndarray)):
        return np.array_equal(from_saved(a) if isinstance(a, torch.Tensor) else np.asarray(a),
                              from_saved(b) if isinstance(b, torch.Tensor) else np.asarray(b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b
