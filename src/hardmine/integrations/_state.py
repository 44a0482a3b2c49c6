"""What the integrations checkpoint: the memory, the sampler and any extra stateful objects, restored together."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import hardmine as hm
from hardmine.state import Stateful


def check_extra(extra: Any) -> dict[str, Any]:
    """`extra` as a dict of name -> object with `state_dict()` and `load_state_dict()` (CrossBatchMemory,
    NegativePool, ...), or raise naming the bad entry."""
    if not isinstance(extra, Mapping):
        raise TypeError(f"extra_state must be a mapping of name -> stateful object, got {type(extra).__name__}")
    for name, obj in extra.items():
        if not isinstance(name, str) or not callable(getattr(obj, "state_dict", None)) or \
                not callable(getattr(obj, "load_state_dict", None)):
            raise TypeError(f"extra_state[{name!r}] must have state_dict() and load_state_dict(), got "
                            f"{type(obj).__name__}")
    return dict(extra)


def state_of(memory: hm.ScoreMemory, sampler: hm.HardExampleSampler, extra: dict[str, Any]) -> dict[str, Any]:
    """{"memory", "sampler", "extra": {name: state}}: tensors and plain values (weights_only-loadable)."""
    return {"memory": memory.state_dict(), "sampler": sampler.state_dict(),
            "extra": {name: obj.state_dict() for name, obj in extra.items()}}


def restore(memory: hm.ScoreMemory, sampler: hm.HardExampleSampler, extra: dict[str, Any],
            state: Any) -> None:
    """Load `state_of(...)`: every part is checked first (`Stateful._parse_state`), then all are assigned in one
    step, so a refused part leaves every part unchanged. An extra object outside `hardmine.state.Stateful` (a
    user's) loads through its own `load_state_dict` after the checks; if one refuses, those objects get their
    previous state back and nothing else changed."""
    if not isinstance(state, dict) or set(state) != {"memory", "sampler", "extra"}:
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"hardmine state must have keys ['extra', 'memory', 'sampler'], got {got}")
    if set(state["extra"]) != set(extra):
        raise ValueError(f"hardmine state holds extra states {sorted(state['extra'])}, this run has "
                         f"{sorted(extra)}")
    parts = [(memory, state["memory"])] + [(extra[name], state["extra"][name]) for name in sorted(extra)]
    parts.append((sampler, state["sampler"]))  # after the memory: its check reads the memory's size
    checked = [(obj, obj._parse_state(saved)) for obj, saved in parts if isinstance(obj, Stateful)]
    others = [(obj, saved) for obj, saved in parts if not isinstance(obj, Stateful)]
    before = [obj.state_dict() for obj, _ in others]
    try:
        for obj, saved in others:
            obj.load_state_dict(saved)
    except Exception:
        for (obj, _), old in zip(others, before):
            obj.load_state_dict(old)
        raise
    for obj, parsed in checked:
        obj._assign_parsed(parsed)


def load_from_checkpoint(checkpoint: str, file: str, writer: str) -> Any:
    """The hardmine state saved as `file` in the checkpoint folder `checkpoint` (loaded without pickle); raises
    FileNotFoundError naming the folder, the file and `writer` (the trainer class that writes it) when it is not
    there."""
    path = os.path.join(checkpoint, file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"resume_from_checkpoint {checkpoint!r} has no {file}: it was not written by "
                                f"{writer}")
    return hm.load_state(path)
