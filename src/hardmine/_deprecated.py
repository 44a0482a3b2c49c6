"""One way to keep an old name working for a release: a module `__getattr__` that warns and returns the new one."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any


def renamed(module: str, names: Mapping[str, tuple[str, Callable[[], Any]]],
            otherwise: Callable[[str], Any] | None = None) -> Callable[[str], Any]:
    """A module `__getattr__`: each old name -> (what to write instead, a loader of the value). Reading an old
    name returns the loaded value with a DeprecationWarning "{module}.{name} is deprecated: use `{instead}`",
    pointing at the caller's line; any other name goes to `otherwise` (or raises AttributeError)."""

    def __getattr__(name: str) -> Any:
        if name in names:
            instead, load = names[name]
            warnings.warn(f"{module}.{name} is deprecated: use `{instead}`", DeprecationWarning, stacklevel=2)
            return load()
        if otherwise is not None:
            return otherwise(name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
