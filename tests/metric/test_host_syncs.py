"""The miners' host synchronisations, counted on CPU: the operations that make the host wait for a CUDA device
(a scalar read: .item(), bool(), int(), float(); a result whose shape depends on the data: nonzero, unique,
boolean indexing). `benchmarks/gpu_check_metric.py` counts the same on a CUDA machine (plus .tolist())."""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hardmine.metric import (
    BatchHardMiner,
    DistanceWeightedMiner,
    EasyPositiveHardNegativeMiner,
    MultiSimilarityMiner,
    PairMarginMiner,
    SemiHardMiner,
)

SCALAR_READS = {"_local_scalar_dense"}
DATA_SHAPED = {"nonzero", "unique_consecutive", "_unique", "_unique2", "unique_dim", "masked_select"}


class CountSyncs(TorchDispatchMode):
    """Counts, by kind ("scalar", "shape"), the dispatched operations that would synchronise on CUDA."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in SCALAR_READS:
            self.counts["scalar"] += 1
        elif name in DATA_SHAPED:
            self.counts["shape"] += 1
        elif name in ("index", "index_put_", "_index_put_impl_") and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]):
            self.counts["shape"] += 1
        return func(*args, **(kwargs or {}))


def batch(size=256, singleton=False):
    g = torch.Generator().manual_seed(size)
    x, y = torch.randn(size, 32, generator=g), torch.randint(0, 8, (size,), generator=g)
    if singleton:
        y[0] = 99
    return x, y


def syncs(miner, *args):
    with CountSyncs() as mode:
        miner(*args)
    return dict(mode.counts)


@pytest.mark.parametrize("cls", [BatchHardMiner, EasyPositiveHardNegativeMiner])
def test_batch_hard_reads_only_the_finite_check_and_the_class_sizes(cls):
    # the finite check (one scalar) and the class list (one shape; its sizes come back by .tolist())
    assert syncs(cls(), *batch()) == {"scalar": 1, "shape": 1}
    # a single-sample class leaves anchors out: one compaction more
    assert syncs(cls(), *batch(singleton=True)) == {"scalar": 1, "shape": 2}


@pytest.mark.parametrize("make,compactions", [(PairMarginMiner, 2), (MultiSimilarityMiner, 2), (SemiHardMiner, 1),
                                              (lambda: DistanceWeightedMiner(seed=0), 2)])
def test_pair_and_triplet_miners_sync_only_for_sizes_and_outputs(make, compactions):
    got = syncs(make(), *batch())
    # scalars: the finite check and the widest class (DistanceWeighted: also how many draws it needs)
    assert got["scalar"] <= 3
    # shapes: the class list, then one compaction per output list (DistanceWeighted: the draws' scatter)
    assert got["shape"] == 1 + compactions
