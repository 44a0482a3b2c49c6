"""Host synchronisations and time of every metric miner on a CUDA device, one table.

Each miner runs on random CUDA embeddings (dim 128, 16 classes) at B=256 and 1024 with
`torch.cuda.set_sync_debug_mode("warn")`, which warns at every operation that makes the host wait for the
device (.item(), bool(), .tolist(), nonzero and other data-dependent shapes, device-to-host copies); the table
counts those warnings per call and names the source lines they came from. A miner's output length depends on
the data, so its final compaction is one synchronisation by nature; every other one is overhead to remove.
Also compares the CUDA output with the CPU output (other GEMM rounding can move near-ties, so a difference is
reported, not failed).

    python benchmarks/gpu_check_metric.py [--sizes 256 1024] [--repeats 20]

Exits with a message, and status 0, on a machine without CUDA.
"""

from __future__ import annotations

import argparse
import collections
import functools
import statistics
import warnings

import torch

from hardmine.metric import (
    BatchAllMiner,
    BatchHardMiner,
    DistanceWeightedMiner,
    EasyPositiveHardNegativeMiner,
    MultiSimilarityMiner,
    PairMarginMiner,
    SemiHardMiner,
    TripletMarginMiner,
)

DIM, CLASSES = 128, 16
MINERS = {
    "batch_hard": BatchHardMiner, "easy_positive_hard_negative": EasyPositiveHardNegativeMiner,
    "semi_hard": SemiHardMiner, "pair_margin": PairMarginMiner, "multi_similarity": MultiSimilarityMiner,
    "distance_weighted": lambda: DistanceWeightedMiner(seed=0),
    "triplet_margin_semihard": lambda: TripletMarginMiner(0.2, "semihard", max_triplets=20000, seed=0),
    "batch_all": lambda: BatchAllMiner(max_triplets=20000, seed=0),
}
SAMPLED = {"distance_weighted", "triplet_margin_semihard", "batch_all"}  # CPU generator: draws may differ


def count_syncs(fn) -> tuple[int, collections.Counter]:
    """Synchronising operations during one call of `fn`, and where they came from (file:line)."""
    where: collections.Counter = collections.Counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for w in caught:
        if "synchroniz" in str(w.message):
            where[f"{w.filename.rsplit('/', 1)[-1]}:{w.lineno}"] += 1
    return sum(where.values()), where


def time_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: this check counts the miners' host synchronisations on a CUDA machine; "
              "nothing to do")
        return
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    print("| miner | B | syncs per call | ms | same as CPU | where the syncs are |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        g = torch.Generator().manual_seed(size)
        x, y = torch.randn(size, DIM, generator=g), torch.randint(0, CLASSES, (size,), generator=g)
        xc, yc = x.cuda(), y.cuda()
        for name, make in MINERS.items():
            miner = make()
            for _ in range(3):
                miner(xc, yc)  # warm-up: kernels load, the caching allocator fills
            torch.cuda.synchronize()
            call = functools.partial(miner, xc, yc)
            syncs, where = count_syncs(call)
            ms = time_ms(call, args.repeats)
            if name in SAMPLED:
                same = "n/a (sampled)"
            else:
                same = all(torch.equal(a.cpu(), b) for a, b in zip(make()(xc, yc), make()(x, y)))
            sites = ", ".join(f"{k} x{v}" for k, v in where.most_common())
            print(f"| {name} | {size} | {syncs} | {ms:.3f} | {same} | {sites or '-'} |", flush=True)


if __name__ == "__main__":
    main()
