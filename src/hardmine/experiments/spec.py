"""Strategy specs from text: `name:key=value,key=value+guard:key=value`, and lists of them.

A spec is a strategy name (a registered policy or in-batch loss) with parameters, then any number of guards,
each joined by "+" with its own parameters: `importance:alpha=0.7,mix=0.2`, `ohem+noise_guard`,
`rank+class_balance:power=0.5+weight_cap`. Values are parsed as int, float, true/false, none, else kept as text;
a parameter whose default is text (e.g. `normalize="none"`) gets the text as written.

In a comma-separated list of specs, an item of the form `key=value` continues the parameters of the last part
(strategy or guard) before it, so `uniform,importance:alpha=0.7,mix=0.2,ohem` is three specs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class Part:
    """One name with its parameters: the strategy itself or one of its guards."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """The canonical text: `name` or `name:key=value,...` with keys sorted."""
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={format_value(v)}" for k, v in sorted(self.params.items()))


@dataclass(frozen=True)
class StrategySpec:
    """A strategy and its guards, as parsed from text; `label` is its canonical text (a stable key)."""

    strategy: Part
    guards: tuple[Part, ...] = ()

    @property
    def label(self) -> str:
        """`strategy+guard+...` in canonical form: parameters sorted, values normalised."""
        return "+".join(part.text() for part in (self.strategy, *self.guards))


def parse_value(text: str) -> Any:
    """'3' -> 3, '0.5' -> 0.5, 'true'/'false' -> bool, 'none' -> None, anything else the text itself."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def format_value(value: Any) -> str:
    """The text of a parsed value: the inverse of `parse_value` up to case."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _parse_params(text: str, where: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _NAME.match(key) or not value.strip():
            raise ValueError(f"bad parameter {item!r} in {where!r}: write key=value")
        if key in params:
            raise ValueError(f"parameter {key!r} given twice in {where!r}")
        params[key] = parse_value(value.strip())
    return params


def _parse_part(text: str, where: str) -> Part:
    name, sep, params = text.partition(":")
    name = name.strip()
    if not _NAME.match(name):
        raise ValueError(f"bad strategy or guard name {name!r} in {where!r}")
    return Part(name, _parse_params(params, where) if sep else {})


def parse_spec(text: str) -> StrategySpec:
    """One spec: `name[:k=v,...][+guard[:k=v,...]]...`."""
    text = text.strip()
    if not text:
        raise ValueError("empty strategy")
    parts = [_parse_part(piece, text) for piece in text.split("+")]
    guards = parts[1:]
    names = [g.name for g in guards]
    if len(set(names)) != len(names):
        raise ValueError(f"a guard is given twice in {text!r}")
    return StrategySpec(parts[0], tuple(guards))


def split_specs(text: str) -> list[str]:
    """The spec texts of a comma-separated list; `key=value` items continue the item before them."""
    items: list[str] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        continues = "=" in item and ":" not in item.split("=", 1)[0] and "+" not in item.split("=", 1)[0]
        if continues:
            if not items:
                raise ValueError(f"parameter {item!r} comes before any strategy name")
            last_part = items[-1].rsplit("+", 1)[-1]
            items[-1] += ("," if ":" in last_part else ":") + item
        else:
            items.append(item)
    return items


def parse_specs(text: str) -> list[StrategySpec]:
    """Every spec of a comma-separated list, in order; a spec given twice is an error."""
    specs = [parse_spec(item) for item in split_specs(text)]
    if not specs:
        raise ValueError("no strategy given")
    labels = [s.label for s in specs]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ValueError(f"strategy given twice: {', '.join(twice)}")
    return specs
