"""Time and peak memory of hardmine's metric miners against pytorch-metric-learning's (PML) in the same run.

Random embeddings (dim 128, 16 classes), batch sizes 256, 1024 and 4096, one CPU thread. Timings are medians
of repeats, hardmine and PML interleaved in one process so load on the machine hits both alike. Peak memory is
measured per (miner, batch size) in a fresh subprocess: the rise of the peak resident set (VmHWM, reset just
before the call) over the resident set at that moment. PML's triplet-materialising miners are skipped where
their triplet tensor alone would not fit (about 24 bytes per candidate triplet).

    python benchmarks/bench_metric.py [--sizes 256 1024 4096] [--no-memory] [--no-pml]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

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

DIM, CLASSES, MAX_PML_TRIPLETS = 128, 16, 2 * 10**8
TRIPLET_COUNT_LIMIT = 10**8  # hardmine miners whose output alone would be larger are not run


def hardmine_miner(name: str):
    return {
        "batch_hard": BatchHardMiner, "easy_positive_hard_negative": EasyPositiveHardNegativeMiner,
        "semi_hard": SemiHardMiner, "triplet_margin_semihard": lambda: TripletMarginMiner(0.2, "semihard"),
        "batch_all": BatchAllMiner, "distance_weighted": lambda: DistanceWeightedMiner(seed=0),
        "multi_similarity": MultiSimilarityMiner, "pair_margin": PairMarginMiner,
    }[name]()


def pml_miner(name: str):
    from pytorch_metric_learning import miners
    return {
        "batch_hard": miners.BatchHardMiner,
        "easy_positive_hard_negative": lambda: miners.BatchEasyHardMiner(pos_strategy="easy", neg_strategy="hard"),
        "semi_hard": lambda: miners.TripletMarginMiner(0.2, type_of_triplets="semihard"),
        "triplet_margin_semihard": lambda: miners.TripletMarginMiner(0.2, type_of_triplets="semihard"),
        "batch_all": lambda: miners.TripletMarginMiner(0.2, type_of_triplets="all"),
        "distance_weighted": miners.DistanceWeightedMiner,
        "multi_similarity": miners.MultiSimilarityMiner, "pair_margin": miners.PairMarginMiner,
    }[name]()


MINERS = ["batch_hard", "easy_positive_hard_negative", "semi_hard", "triplet_margin_semihard", "batch_all",
          "distance_weighted", "multi_similarity", "pair_margin"]
ALL_TRIPLETS = {"semi_hard", "triplet_margin_semihard", "batch_all"}  # PML enumerates every triplet first
OUTPUT_IS_ALL_TRIPLETS = {"triplet_margin_semihard", "batch_all"}  # the output itself is O(B^3)


def data(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(size)
    return torch.randn(size, DIM, generator=g), torch.randint(0, CLASSES, (size,), generator=g)


def candidate_triplets(size: int) -> float:
    return size * (size / CLASSES) * size * (1 - 1 / CLASSES)


def runs(name: str, size: int, impl: str) -> bool:
    if impl == "hardmine":
        return name not in OUTPUT_IS_ALL_TRIPLETS or candidate_triplets(size) <= TRIPLET_COUNT_LIMIT
    return name not in ALL_TRIPLETS or candidate_triplets(size) <= MAX_PML_TRIPLETS


def memory_status(field: str) -> int:
    """A field of /proc/self/status in bytes (VmRSS: resident now; VmHWM: peak resident of this image)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> None:
    """Reset VmHWM to the current resident set (Linux >= 4.0); ru_maxrss would also count the parent's peak."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_in_subprocess(name: str, size: int, impl: str) -> float | None:
    """MiB of peak resident memory added by one call, measured in a fresh interpreter."""
    cmd = [sys.executable, __file__, "--one", name, str(size), impl]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]


def one(name: str, size: int, impl: str) -> None:
    torch.set_num_threads(1)
    x, y = data(size)
    miner = hardmine_miner(name) if impl == "hardmine" else pml_miner(name)
    reset_peak()
    before = memory_status("VmRSS")
    miner(x, y)
    print(json.dumps({"peak_mib": max(memory_status("VmHWM") - before, 0) / 2**20}))


def timed(fn, x, y) -> tuple[float, int]:
    start = time.perf_counter()
    out = fn(x, y)
    return time.perf_counter() - start, len(out[0])


def bench(name: str, size: int, with_pml: bool, repeats: int) -> dict:
    x, y = data(size)
    ours = hardmine_miner(name) if runs(name, size, "hardmine") else None
    theirs = pml_miner(name) if with_pml and runs(name, size, "pml") else None
    slow = theirs is not None and name in ALL_TRIPLETS and size >= 1024
    n = 3 if slow else repeats
    t_ours, t_theirs, count = [], [], None
    for _ in range(1 if slow else 3):  # warm-up: first calls pay for allocations and lazy initialisation
        for fn in (ours, theirs):
            if fn is not None:
                fn(x, y)
    for _ in range(n):
        if ours is not None:
            elapsed, count = timed(ours, x, y)
            t_ours.append(elapsed)
        if theirs is not None:
            t_theirs.append(timed(theirs, x, y)[0])
    row = {"miner": name, "B": size, "out": count,
           "ours_ms": statistics.median(t_ours) * 1e3 if t_ours else None,
           "pml_ms": statistics.median(t_theirs) * 1e3 if t_theirs else None}
    if row["ours_ms"] and row["pml_ms"]:
        row["ratio"] = row["pml_ms"] / row["ours_ms"]
    return row


def fmt(value, spec: str, missing: str) -> str:
    return missing if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--miners", nargs="+", default=MINERS, choices=MINERS)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-pml", action="store_true")
    parser.add_argument("--one", nargs=3, metavar=("MINER", "B", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one[0], int(args.one[1]), args.one[2])
        return
    torch.set_num_threads(1)
    with_pml = not args.no_pml
    if with_pml:
        try:
            import pytorch_metric_learning  # noqa: F401
        except ImportError:
            with_pml = False
    print(f"torch {torch.__version__}, 1 thread, dim {DIM}, {CLASSES} classes; '-' = not run (see docstring)")
    print("| miner | B | output | hardmine ms | PML ms | PML / hardmine | hardmine peak MiB | PML peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        for name in args.miners:
            row = bench(name, size, with_pml, args.repeats if size <= 1024 else 5)
            mem = {impl: None for impl in ("hardmine", "pml")}
            if not args.no_memory:
                for impl in mem:
                    if runs(name, size, impl) and (impl == "hardmine" or with_pml):
                        mem[impl] = peak_in_subprocess(name, size, impl)
            print(f"| {name} | {size} | {fmt(row['out'], 'd', '-')} | {fmt(row['ours_ms'], '.1f', '-')} | "
                  f"{fmt(row['pml_ms'], '.1f', '-')} | {fmt(row.get('ratio'), '.1f', '-')}x | "
                  f"{fmt(mem['hardmine'], '.0f', '-')} | {fmt(mem['pml'], '.0f', '-')} |", flush=True)


if __name__ == "__main__":
    main()
