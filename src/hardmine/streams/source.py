"""Where a stream's samples come from: the source of an epoch, split into shards (one a DataLoader worker of a
rank), and the stream ids that say where each sample stood.

A shard is every `shards`-th sample of the source (round robin), or, for a Hugging Face `datasets`
IterableDataset whose number of data sources the shards divide, its own `shard()` (each shard reads only its
files). A stream id is `epoch * 2**40 + position * shards + shard`: unique over a run, int64, and it names the
shard and the position in it that a resumed run skips to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import numpy as np

EPOCH_SPAN = 2**40
"""Stream ids of one epoch lie in [epoch * EPOCH_SPAN, (epoch + 1) * EPOCH_SPAN): at most 2**40 samples an epoch."""


def is_hf_iterable(source: Any) -> bool:
    """Whether `source` is a Hugging Face `datasets.IterableDataset` (which splits itself by DataLoader worker when
    iterated there: a stream reads it through `.iter()` and its own `shard()` instead)."""
    return type(source).__module__.startswith("datasets.") and hasattr(source, "shard") and \
        hasattr(source, "num_shards") and hasattr(source, "iter")


def describe(source: Any) -> str:
    """What a saved state names as its stream: a factory's name, else the source's class (and a `datasets` set's
    features, split and number of data sources)."""
    if callable(source) and not isinstance(source, Iterable) and hasattr(source, "__qualname__"):
        return f"{getattr(source, '__module__', '?')}.{source.__qualname__}"
    name = f"{type(source).__module__}.{type(source).__qualname__}"
    if is_hf_iterable(source):
        name += f"(features={source.features!r}, split={source.split!r}, num_shards={source.num_shards})"
    return name


def epoch_source(source: Iterable | Callable[[int], Iterable], epoch: int) -> Iterable:
    """The iterable of `epoch`: `source(epoch)` for a factory; else the source, told the epoch by its
    `set_epoch` when it has one (a `datasets` set reshuffles with it)."""
    if callable(source) and not isinstance(source, Iterable):
        return source(epoch)
    if hasattr(source, "set_epoch"):
        source.set_epoch(epoch)
    return source


def _hf_rows(dataset: Any) -> Iterator[Any]:
    """The rows of a `datasets` IterableDataset, read through `.iter()` (which does not split by worker)."""
    for batch in dataset.iter(batch_size=1):
        yield {key: value[0] for key, value in batch.items()}


def shard_samples(source: Iterable, shard: int, shards: int) -> Iterator[Any]:
    """The samples of shard `shard` of `shards` of the iterable `source`, in order."""
    if is_hf_iterable(source):
        if shards > 1 and source.num_shards % shards == 0:
            return _hf_rows(source.shard(num_shards=shards, index=shard, contiguous=False))
        return islice(_hf_rows(source), shard, None, shards)
    return islice(iter(source), shard, None, shards)


def stream_ids(epoch: int, shard: int, shards: int, first: int, count: int) -> np.ndarray:
    """Ids (int64 [count]) of the samples at positions first .. first + count - 1 of shard `shard`."""
    return epoch * EPOCH_SPAN + (first + np.arange(count, dtype=np.int64)) * shards + shard


def locate(ids: np.ndarray, epoch: int, shards: int) -> tuple[np.ndarray, np.ndarray]:
    """(shard [B], position [B]) of stream ids of `epoch`; raises ValueError naming the first id of another
    epoch (a batch from before `set_epoch`, or not this stream's)."""
    local = ids - epoch * EPOCH_SPAN
    bad = (local < 0) | (local >= EPOCH_SPAN)
    if bad.any():
        first = int(ids[np.flatnonzero(bad)[0]])
        raise ValueError(f"ids hold {first}, which is not a stream id of epoch {epoch} (ids of epoch e lie in "
                         f"[e * 2**40, (e + 1) * 2**40)): pass the ids of a batch this stream yielded this epoch")
    return local % shards, local // shards
