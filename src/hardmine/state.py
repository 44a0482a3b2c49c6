"""One state protocol: `state_dict()` is pure (tensors and plain values), `load_state_dict()` validates the whole
state first and assigns in one step, and every top-level state carries a `state_version`.

`Stateful` (below) is the one base that implements it: a class declares its fields once and the base does the
rest. Underneath: `to_saved` / `from_saved` are the one conversion between in-memory values (numpy arrays) and saved
ones (CPU tensors, loadable with `torch.load(weights_only=True)`). A state is declared as a schema of `Field`s
(`Int`, `Float`, `Choice`, `Array`, `Tensor`) and checked with `check_fields`; `compare_config` compares the saved
constructor arguments with the current ones (a mismatch is an error unless the caller passes
`use_saved_config=True`).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, ClassVar

import numpy as np
import torch

from hardmine._checks import check_choice


def to_saved(value: Any) -> Any:
    """numpy arrays become CPU tensors (copies), tensors are copied, numpy scalars Python numbers, dicts and lists
    are converted item by item, the rest is kept."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
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
    """`state` checked to be a dict holding `keys` (and `state_version == version` when version is given; another
    version is named first, since its keys may differ).

    owner names the object in errors ("ScoreMemory", "policy 'importance'").
    """
    if not isinstance(state, dict):
        raise TypeError(f"{owner} state must be a dict, got {type(state).__name__}")
    if version is not None and "state_version" in state and state["state_version"] != version:
        raise ValueError(f"{owner} state has state_version {state['state_version']!r}, expected {version}")
    missing = [k for k in (*keys, *(("state_version",) if version is not None else ())) if k not in state]
    if missing:
        raise ValueError(f"{owner} state is missing keys {missing}")
    return state


def check_same_keys(name: str, found: Iterable[str], expected: Iterable[str]) -> None:
    """Raise unless `found` and `expected` hold the same keys; `name` is the state entry, for the error."""
    found, expected = sorted(found), sorted(expected)
    if found != expected:
        raise ValueError(f"{name} has keys {found}, expected {expected}")


@dataclass(frozen=True)
class Field:
    """One entry of a declared state schema, checked by `check_fields` before anything is assigned.

    kind: "int", "float", "str", "array", "tensor" (kept a tensor, on its device), "pairs" (a list of [int, int])
        or "any" (checked by its owner).
    low, high: closed bounds of a number (or a size name) or of an array's values. below: an exclusive upper
        bound of an array's values given as a size name ("N", the data set's size) or a number.
    dtype: an array's numpy dtype ("int64", "float64", "float32", "bool"), a tensor's torch dtype name (None: any;
        the owner checks it against its buffers); array values are converted to it only when they are of the same
        kind (an int array for an int dtype), never from float to int.
    length: an array's first dimension: a size name ("N"), a number, or None for any; `empty_ok` also accepts
        an empty array (the state before the first epoch). ndim: an array's number of dimensions.
    choices: the values a "str" may take. optional: None is accepted too. finite: numbers and float arrays
        must be finite (NaN allowed in arrays only with `nan_ok`).
    """

    kind: str
    low: float | str | None = None
    high: float | str | None = None
    below: str | float | None = None
    dtype: str | None = None
    length: str | int | None = None
    empty_ok: bool = False
    ndim: int | None = 1
    choices: tuple[str, ...] = ()
    optional: bool = False
    finite: bool = True
    nan_ok: bool = False


def Int(low: float | str | None = None, high: float | str | None = None,  # noqa: N802
        optional: bool = False) -> Field:
    """An integer (bools refused) in [low, high]; a bound may be a size name ("N")."""
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


def Tensor(dtype: str | None = None, ndim: int | None = 1, low: float | None = None) -> Field:  # noqa: N802
    """A torch tensor (kept as a tensor, copied, on its device: bfloat16 has no numpy dtype) of torch dtype `dtype`
    (None: any) with `ndim` dimensions (None: any), finite when floating-point, its values >= low."""
    return Field("tensor", dtype=dtype, ndim=ndim, low=low)


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


def _check_number(name: str, value: Any, field: Field, sizes: dict[str, int]) -> Any:
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
    low, high = _size(field.low, sizes, name), _size(field.high, sizes, name)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
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


def _check_tensor(name: str, value: Any, field: Field) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(value).__name__}")
    if field.dtype is not None and value.dtype != getattr(torch, field.dtype):
        raise ValueError(f"{name} must hold torch.{field.dtype}, got {value.dtype}")
    if field.ndim is not None and value.dim() != field.ndim:
        raise ValueError(f"{name} must have {field.ndim} dimension(s), got shape {tuple(value.shape)}")
    if value.is_floating_point() and field.finite and not bool(torch.isfinite(value).all()):
        bad = ~torch.isfinite(value) if value.dim() < 2 else ~torch.isfinite(value).flatten(1).all(1)
        rows = torch.nonzero(bad).flatten()
        raise ValueError(f"{name} has non-finite values (NaN or inf) in {rows.numel()} row(s), e.g. rows "
                         f"{rows[:10].tolist()}")
    if field.low is not None and value.numel() and float(value.min()) < field.low:
        raise ValueError(f"{name} must be >= {field.low:g} in every entry, got {float(value.min()):g}")
    return value.detach().clone()


def _check_field(name: str, value: Any, field: Field, sizes: dict[str, int]) -> Any:
    if value is None:
        if field.optional or field.kind == "any":
            return None
        raise ValueError(f"{name} must not be None")
    if field.kind in ("int", "float"):
        return _check_number(name, value, field, sizes)
    if field.kind == "str":
        if field.choices:
            return check_choice(name, value, field.choices)
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        return value
    if field.kind == "array":
        return _check_array(name, value, field, sizes)
    if field.kind == "tensor":
        return _check_tensor(name, value, field)
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


@dataclass(frozen=True)
class Parsed:
    """What `Stateful._parse_state` checked, ready to assign: the object rebuilt from a saved configuration that
    differs (None when it is this object's), the field values, and each child's Parsed (a list for a list)."""

    rebuilt: Any
    values: dict[str, Any]
    children: dict[str, Any] = dataclass_field(default_factory=dict)


_CONFIG_NAMES: dict[type, tuple[str, ...]] = {}


class Stateful:
    """The one state base: a class declares its state once; the base implements `state_dict()` and
    `load_state_dict(state, *, use_saved_config=False, num_samples=None)`.

    Declare (class attributes; every one but `state_version` is merged over the class hierarchy, base first, so a
    subclass declares only what it adds):
    - `state_fields`: name -> Field (`Int`, `Float`, `Choice`, `Array`, `Tensor`, ...), the values that change
      while the object works; size names in a Field ("N": the data set's size) come from `_state_sizes()` and from
      `num_samples` (and "N" is passed on to the children). A schema that depends on the object (columns declared
      at run time) overrides `state_schema` as a method.
    - `state_version`: bumped when the saved layout changes; None for a part saved inside its owner's state (the
      sampler's ledger), which the owner's version covers: its state has no "state_version" entry.
    - `state_in`: None (each field is the attribute of its name, or `_name`) or the name of one dict attribute
      holding them all ("_state"). `state_key`: None (fields at the saved state's top level) or the key they are
      saved under ("state").
    - `state_children`: saved key -> attribute holding a Stateful (or a list of them, or None: saved as None,
      and a saved None matches only None) saved and loaded with this one, in the same validate-then-assign step.
    - `state_name_key`: a key under which the registered `name` is saved and checked first ("name").
    - `config_exclude`: constructor arguments that are not saved (objects, callables, data restored otherwise).
      `config_fixed`: saved arguments that must match even with `use_saved_config=True` (sizes).
      `save_config`: False for an adapter whose arguments are rebuilt by its framework.
    - `keep_on_load`: attributes (links to the outside) kept when a saved configuration rebuilds the object.

    The saved configuration is derived from the `__init__` signature (followed through `**kwargs` into the base
    classes' `__init__`): each argument is read back from the attribute of its name (or `_name`), so a subclass
    that adds an argument has it saved, and one that does not store it gets an error at its first `state_dict()`.

    `load_state_dict` checks the whole state before assigning anything: the name, the keys, `state_version`, the
    configuration (another value is an error naming both, unless `use_saved_config=True`, which rebuilds the object
    with the saved arguments through its constructor, so they are validated as the constructor validates them),
    every field (dtype, shape, range), the children, then the subclass's `_check_state`; it then assigns in one
    step and calls `_after_load`. Hooks to override: `_state_sizes`, `_check_state`, `_assign_state`,
    `_after_load`, `_upgrade_state` (an older layout brought to the current one); `_state_values` where a field
    is not an attribute.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "load_state_dict" in vars(cls):  # an owner loads its parts in two steps and would skip the override
            warnings.warn(f"{cls.__qualname__} overrides load_state_dict: a HardExampleSampler (or another owner) "
                          "loads it through _parse_state / _assign_parsed, which skip that override; override "
                          "_check_state, _assign_state or _after_load instead", UserWarning, stacklevel=2)

    state_version: ClassVar[int | None] = 1
    state_fields: ClassVar[dict[str, Field]] = {}
    state_in: ClassVar[str | None] = None
    state_key: ClassVar[str | None] = None
    state_children: ClassVar[dict[str, str]] = {}
    state_name_key: ClassVar[str | None] = None
    config_exclude: ClassVar[tuple[str, ...]] = ()
    config_fixed: ClassVar[tuple[str, ...]] = ()
    save_config: ClassVar[bool] = True
    keep_on_load: ClassVar[tuple[str, ...]] = ()

    # ---- declarations, merged over the hierarchy

    @classmethod
    def _merged(cls, attribute: str) -> Any:
        dicts = [vars(k)[attribute] for k in reversed(cls.__mro__) if attribute in vars(k)]
        if dicts and isinstance(dicts[0], dict):
            return {key: value for d in dicts for key, value in d.items()}
        return tuple(dict.fromkeys(item for d in dicts for item in d))

    @classmethod
    def state_schema(cls) -> dict[str, Field]:
        """Every class's `state_fields` in the hierarchy, base first."""
        return cls._merged("state_fields")

    @classmethod
    def config_names(cls) -> tuple[str, ...]:
        """The constructor arguments saved as the configuration: the named parameters of `__init__`, followed
        through `**kwargs` into the base classes' `__init__`, less `config_exclude`."""
        if cls not in _CONFIG_NAMES:
            names: list[str] = []
            for klass in cls.__mro__:
                if "__init__" not in vars(klass) or klass in (Stateful, object):
                    continue
                params = list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]
                names += [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
                if not any(p.kind is p.VAR_KEYWORD for p in params):
                    break
            exclude = cls._merged("config_exclude")
            _CONFIG_NAMES[cls] = tuple(n for n in dict.fromkeys(names) if n not in exclude)
        return _CONFIG_NAMES[cls]

    # ---- saving

    def _attribute(self, name: str) -> str:
        """The attribute holding `name`: `name` itself or `_name`."""
        for attribute in (name, f"_{name}"):
            if attribute in self.__dict__:
                return attribute
        for attribute in (name, f"_{name}"):
            if hasattr(self, attribute):
                return attribute
        raise AttributeError(f"{type(self).__name__} stores no attribute {name!r} (nor '_{name}') for its "
                             f"{'constructor argument' if name in self.config_names() else 'state field'} "
                             f"{name!r}: store it (or list it in config_exclude)")

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (as the object holds them) named by `config_names()`."""
        return {name: getattr(self, self._attribute(name)) for name in self.config_names()}

    def saved_config(self) -> dict[str, Any]:
        """`get_params()` as saved: schedules by `to_config()`, torch dtypes by name, arrays as tensors."""
        return {name: _saved_config_value(value) for name, value in self.get_params().items()}

    def _state_values(self) -> dict[str, Any]:
        """The current values of the declared fields (numpy arrays and plain values, or tensors)."""
        schema = self.state_schema()
        if self.state_in is not None:
            store = getattr(self, self.state_in)
            if set(store) != set(schema):
                raise RuntimeError(f"{type(self).__name__}.{self.state_in} holds {sorted(store)}, but the declared "
                                   f"state_fields are {sorted(schema)}: declare every entry it holds")
            return {name: store[name] for name in schema}
        return {name: getattr(self, self._attribute(name)) for name in schema}

    def state_dict(self) -> dict[str, Any]:
        """The state as tensors and plain values (copies; loadable with `torch.load(weights_only=True)`): the
        name, the constructor's configuration under "config", the fields, the children's states and
        "state_version"."""
        out: dict[str, Any] = {}
        if self.state_name_key is not None:
            out[self.state_name_key] = self.name
        if self.save_config:
            out["config"] = self.saved_config()
        values = to_saved(self._state_values())
        if self.state_key is not None:
            out[self.state_key] = values
        else:
            out.update(values)
        for key, attribute in self._merged("state_children").items():
            child = getattr(self, attribute)
            out[key] = (None if child is None else [c.state_dict() for c in child]
                        if isinstance(child, (list, tuple)) else child.state_dict())
        if self.state_version is not None:  # None: a part saved inside its owner's state, versioned by it
            out["state_version"] = self.state_version
        return out

    # ---- loading

    def load_state_dict(self, state: dict[str, Any], *, use_saved_config: bool = False,
                        num_samples: int | None = None) -> None:
        """Restore `state_dict()`: everything is checked (see the class) before anything is assigned, then
        assigned in one step; a refused state leaves the object unchanged.

        use_saved_config: take the saved constructor arguments (by default one that differs is an error naming
            both values). num_samples: the data set's size N, for fields with per-sample arrays, when the object
            does not know it (a policy; the sampler passes its memory's)."""
        self._assign_parsed(self._parse_state(state, num_samples, use_saved_config))

    def _state_owner(self) -> str:
        """How errors name this object."""
        return type(self).__name__

    def _state_sizes(self) -> dict[str, int]:
        """Hook: the sizes the fields name ({"Q": queries}); "N" comes from `num_samples`."""
        return {}

    def _upgrade_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """Hook: a state saved in an older layout of the same version brought to the current one (a new copy)."""
        return state

    def _check_state(self, values: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        """Hook: check what the fields cannot say alone (values against each other, against this object's
        buffers) and return the values to assign; `state` is the saved state (for entries the hook parses).
        It runs on the object the values will go into (the rebuilt one under a saved configuration) and must
        change nothing."""
        return values

    def _assign_state(self, values: dict[str, Any]) -> None:
        """Hook: store checked values (cannot fail); the default sets the fields' attributes, or `state_in`."""
        if self.state_in is not None:
            setattr(self, self.state_in, values)
            return
        for name, value in values.items():
            setattr(self, self._attribute(name), value)

    def _after_load(self) -> None:
        """Hook: reset what was derived from the old state (caches, agreements); runs after the assignment."""

    def _parse_state(self, state: Any, num_samples: int | None = None,
                     use_saved_config: bool = False) -> Parsed:
        """`state` checked whole (name, keys, version, configuration, fields, children, `_check_state`) against
        this object; nothing changes. `_assign_parsed` assigns the result."""
        owner = self._state_owner()
        if not isinstance(state, dict):
            raise TypeError(f"{owner} state must be a dict, got {type(state).__name__}")
        name = getattr(self, "name", None)
        if self.state_name_key is not None and state.get(self.state_name_key) != name:
            kind = getattr(getattr(self, "registry", None), "kind", type(self).__name__)
            raise ValueError(f"state is not a {name!r} {kind}'s state: got a dict named "
                             f"{state.get(self.state_name_key)!r}")
        state = self._upgrade_state(state)
        schema, children = self.state_schema(), self._merged("state_children")
        keys = [*([self.state_name_key] if self.state_name_key else []), *(["config"] if self.save_config else []),
                *([self.state_key] if self.state_key else schema), *children]
        check_state(state, owner, self.state_version, keys)
        unknown = sorted(set(state) - {*keys, "state_version"})
        if unknown:
            raise ValueError(f"{owner} state holds unknown keys {unknown}")
        rebuilt = self._parse_config(state["config"], use_saved_config) if self.save_config else None
        target = self if rebuilt is None else rebuilt
        sizes = {**target._state_sizes(), **({} if num_samples is None else {"N": num_samples})}
        num_samples = sizes.get("N")  # the children see the data set's size this object knows
        raw = state[self.state_key] if self.state_key else {name: state[name] for name in schema}
        where = f"{owner} state" + (f"[{self.state_key!r}]" if self.state_key else "")
        values = check_fields(raw, schema, where, sizes)
        parsed: dict[str, Any] = {}
        for key, attribute in children.items():
            child, saved = getattr(target, attribute), state[key]
            if child is None or saved is None:  # an optional child (a stream's replay buffer): None in both
                if (child is None) != (saved is None):
                    raise ValueError(f"{owner} state[{key!r}] is {'None' if saved is None else 'a state'}, but "
                                     f"this {owner} has {'no ' if child is None else 'a '}{key}")
                parsed[key] = None
            elif isinstance(child, (list, tuple)):
                if not isinstance(saved, list) or len(saved) != len(child):
                    found = f"{len(saved)} states" if isinstance(saved, list) else type(saved).__name__
                    raise ValueError(f"{owner} state[{key!r}] must be a list of {len(child)} states, got {found}")
                parsed[key] = [c._parse_state(s, num_samples, use_saved_config) for c, s in zip(child, saved)]
            else:
                parsed[key] = child._parse_state(saved, num_samples, use_saved_config)
        return Parsed(rebuilt, target._check_state(values, state), parsed)

    def _parse_config(self, saved: Any, use_saved_config: bool) -> Stateful | None:
        """The saved configuration compared with this object's; None when equal, else (use_saved_config) this
        class rebuilt through its constructor with the saved arguments (the fixed and excluded ones: this
        object's)."""
        owner = self._state_owner()
        if not isinstance(saved, dict):
            raise ValueError(f"{owner} state['config'] must be a dict, got {type(saved).__name__}")
        current = self.saved_config()
        check_same_keys(f"{owner} state['config']", saved, current)
        fixed = self._merged("config_fixed")
        compare_config(owner, {k: saved[k] for k in fixed}, {k: current[k] for k in fixed}, False)
        compare_config(owner, saved, current, use_saved_config)
        if all(_same(saved[k], current[k]) for k in current):
            return None
        args = {name: getattr(self, attribute) for name in self._merged("config_exclude")
                if (attribute := next((a for a in (name, f"_{name}") if hasattr(self, a)), None))}
        args.update(self.get_params())
        args.update({k: from_saved(v) for k, v in saved.items() if k not in fixed})
        try:
            return type(self)(**args)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{owner} state['config']: {error}") from None

    def _assign_parsed(self, parsed: Parsed) -> None:
        """Assign what `_parse_state` returned, children first (cannot fail)."""
        if parsed.rebuilt is not None:
            kept = {k: self.__dict__[k] for k in self._merged("keep_on_load") if k in self.__dict__}
            self.__dict__.update(parsed.rebuilt.__dict__)
            self.__dict__.update(kept)
        for key, attribute in self._merged("state_children").items():
            child, done = getattr(self, attribute), parsed.children[key]
            for c, p in zip(child, done) if isinstance(child, (list, tuple)) else ((child, done),) if done else ():
                c._assign_parsed(p)
        self._assign_state(parsed.values)
        self._after_load()


def _saved_config_value(value: Any) -> Any:
    if callable(getattr(value, "to_config", None)):
        return value.to_config()
    if isinstance(value, torch.dtype):
        return str(value)
    return to_saved(value)
