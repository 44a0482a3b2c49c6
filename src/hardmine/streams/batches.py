"""The structure of a default-collated batch: a tensor, or tuples, lists and dicts of them, taken apart into
leaves [C, ...] and put together again, so that a stream can keep some rows, append replayed ones, and name
the sample that does not fit the others."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

Spec = Any  # "tensor", ["tuple" | "list", [specs]] or ["dict", [keys], [specs]]: plain values, saved as they are


def flatten(batch: Any, where: str = "batch") -> tuple[list[torch.Tensor], Spec]:
    """(leaves, spec): the tensors of `batch` in a fixed order and its structure; raises TypeError naming the
    part that is neither a tensor, a tuple, a list nor a dict with string keys."""
    if isinstance(batch, torch.Tensor):
        return [batch], "tensor"
    if isinstance(batch, Mapping):
        keys = list(batch)
        if not all(isinstance(k, str) for k in keys):
            raise TypeError(f"{where} has a dict with non-string keys {keys!r}")
        parts = [flatten(batch[k], f"{where}[{k!r}]") for k in keys]
        return [leaf for leaves, _ in parts for leaf in leaves], ["dict", keys, [s for _, s in parts]]
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        parts = [flatten(v, f"{where}[{i}]") for i, v in enumerate(batch)]
        kind = "list" if isinstance(batch, list) else "tuple"
        return [leaf for leaves, _ in parts for leaf in leaves], [kind, [s for _, s in parts]]
    raise TypeError(f"{where} is a {type(batch).__name__}: a stream keeps and replays tensors only (a default-"
                    "collated batch of numbers, arrays and tensors, in tuples, lists and dicts)")


def unflatten(leaves: Sequence[torch.Tensor], spec: Spec) -> Any:
    """The batch `flatten` took apart: `unflatten(*flatten(batch))` has batch's structure and tensors."""
    out, rest = _build(list(leaves), spec, 0)
    if rest != len(leaves):
        raise ValueError(f"{len(leaves)} leaves for a structure of {rest}")
    return out


def _build(leaves: list[torch.Tensor], spec: Spec, at: int) -> tuple[Any, int]:
    if spec == "tensor":
        return leaves[at], at + 1
    if spec[0] == "dict":
        out = {}
        for key, sub in zip(spec[1], spec[2]):
            out[key], at = _build(leaves, sub, at)
        return out, at
    items = []
    for sub in spec[1]:
        item, at = _build(leaves, sub, at)
        items.append(item)
    return (items if spec[0] == "list" else tuple(items)), at


def rows(batch: Any) -> int:
    """The number of samples of a collated batch (the first dimension its leaves share)."""
    leaves, _ = flatten(batch)
    sizes = {leaf.shape[0] if leaf.ndim else -1 for leaf in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"the batch's tensors do not share a first dimension: shapes "
                         f"{[tuple(leaf.shape) for leaf in leaves]}")
    return sizes.pop()


def take(batch: Any, positions: np.ndarray) -> Any:
    """The rows `positions` (int64 [b]) of every tensor of `batch`, in that order."""
    leaves, spec = flatten(batch)
    index = torch.from_numpy(np.ascontiguousarray(positions, dtype=np.int64))
    return unflatten([leaf.index_select(0, index.to(leaf.device)) for leaf in leaves], spec)


def signature(sample: Any) -> Any:
    """What must agree between the samples of one batch: the structure, and each array's dtype and shape (a
    number's type), as plain values to compare."""
    if isinstance(sample, (torch.Tensor, np.ndarray)):
        return (type(sample).__name__, str(sample.dtype), tuple(sample.shape))
    if isinstance(sample, Mapping):
        return ("dict", tuple((k, signature(v)) for k, v in sample.items()))
    if isinstance(sample, Sequence) and not isinstance(sample, (str, bytes)):
        return (type(sample).__name__, tuple(signature(v) for v in sample))
    return type(sample).__name__

