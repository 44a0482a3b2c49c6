"""WithIndex: a data set wrapper whose items carry their index, so that the index travels with the batch."""

from __future__ import annotations

from typing import Any

import torch


class WithIndex(torch.utils.data.Dataset):
    """Wraps a map-style data set so that item i is `(i, *dataset[i])`: the index travels with the batch.

    A tuple item is unpacked after the index; any other item becomes `(i, item)`. Attributes of the wrapped
    data set (e.g. `targets`) are reachable through the wrapper.
    """

    def __init__(self, dataset: Any) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"dataset must be map-style (with __getitem__ and __len__), got {type(dataset).__name__}")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple:
        item = self.dataset[index]
        return (index, *item) if isinstance(item, tuple) else (index, item)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
