"""One registry mechanism: components register under a short name by subclassing, and are looked up by name.

A base class creates a `Registry` and inherits from `Registered`; every subclass that sets a non-empty `name`
registers itself, so adding a component is one file. Every registry of the library works this way (policies,
guards, schedules, in-batch losses, selectors, miners, distances, search backends, data sets, models). Lookup
errors list the registered names. Components defined outside the package register when their file is imported:
`load_plugin(path)`, or `hardmine --plugin PATH ...`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from hardmine._checks import check_choice


class UnknownName(KeyError, ValueError):
    """A name that is not registered; a ValueError to callers, a KeyError to Mapping machinery."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Mapping[str, Any]):
    """Names -> registered classes (or functions) of one kind, e.g. Registry("policy").

    kind: what is registered, used in errors ("policy must be one of [...], got 'x'").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Any] = {}

    def add(self, name: str, item: Any) -> Any:
        """Register `item` as `name` (what `Registered` subclasses call); a second, different item under the same
        name is refused."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        old = self._items.get(name)
        if old is not None and old is not item and _origin(old) != _origin(item):
            raise ValueError(f"{self.kind} {name!r} is already registered, by {_origin(old)}")
        self._items[name] = item
        return item

    def lookup(self, name: Any) -> Any:
        """The item registered as `name`; ValueError listing the registered names otherwise."""
        check_choice(self.kind, name, sorted(self._items), error=UnknownName)
        return self._items[name]

    def __getitem__(self, name: str) -> Any:
        return self.lookup(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._items)})"


def _origin(item: Any) -> str:
    return f"{getattr(item, '__module__', '?')}.{getattr(item, '__qualname__', repr(item))}"


class Registered:
    """Mixin of a registered base class: set `registry` on the base, `name` on each concrete subclass."""

    registry: ClassVar[Registry]
    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if vars(cls).get("name"):
            cls.registry.add(cls.name, cls)


def load_plugin(source: str) -> ModuleType:
    """Import a Python file (a path ending in .py) or a module by name, so that the components it defines
    register themselves; a file already loaded is not run again. Returns the module."""
    if source.endswith(".py"):
        path = Path(source).resolve()
        if not path.is_file():
            raise ValueError(f"plugin {source!r} is not a file")
        name = f"hardmine_plugin_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}_{path.stem}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as error:
        raise ValueError(f"plugin {source!r} is neither a .py file nor an importable module: {error}") from None
