"""Time and peak memory of hardmine's metric miners against each miner's hardware floor and against
pytorch-metric-learning's (PML) miners, in the same run.

Random embeddings (dim 128, 16 classes), batch sizes 256, 1024 and 4096, one CPU thread, denormals flushed.
Each repeat runs the floor, hardmine and PML back to back (interleaved, so load on the shared machine hits all
three alike), each as an untimed call then a timed one, so every timed call finds its own code and data in
cache rather than the previous miner's; the table shows medians, and the ratios are medians of the per-repeat
ratios; in brackets, the ratio of the fastest calls, which load on a shared machine disturbs least. (Timed
straight after a PML call instead, the many small kernels of hardmine's B=256 path lose about
0.15-0.25 ms to cold caches, the floor's two kernels almost nothing.) The floor of a
miner is the least dense work its definition needs, on already-normalised embeddings and without labels (see
FLOORS): the [B, 128] x [128, B] matrix product plus the passes over the [B, B] matrix that the selection rule
cannot avoid. Peak memory is measured per (miner, batch size) in a fresh subprocess: the rise of the peak
resident set (VmHWM, reset just before the call) over the resident set at that moment. PML's
triplet-materialising miners are skipped where their triplet tensor alone would not fit (about 24 bytes per
candidate triplet).

    python benchmarks/bench_metric.py [--sizes 256 1024 4096] [--miners ...] [--repeats 31] [--no-memory] [--no-pml]
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
PML_DISTANCE_WEIGHTED_MAX = 1024  # PML's takes about 2 minutes a call at B=4096 (README): not rerun there


def _distances(x: torch.Tensor) -> torch.Tensor:
    return (x @ x.T).clamp_(min=0.0)


def _euclidean(x: torch.Tensor) -> torch.Tensor:
    """|x_i - x_j| of unit rows: the product with 2 - 2 x.y fused into its epilogue, then one pass (clamp, sqrt)."""
    return torch.addmm(x.new_tensor(2.0), x, x.T, alpha=-2.0).clamp_(min=0.0).sqrt_()


def _floor_selection(x: torch.Tensor) -> torch.Tensor:
    return torch.nonzero(_euclidean(x) < 0.8)  # the pairs a margin selects: one comparison pass, compacted


def _floor_multi_similarity(x: torch.Tensor) -> torch.Tensor:
    s = x @ x.T  # cosine similarities
    hardest_pos = s.amin(1, keepdim=True)  # the row extremes (the positives' minimum, the negatives' maximum)
    hardest_neg = s.amax(1, keepdim=True)
    return torch.nonzero((s > hardest_pos.sub_(0.1)) & (s < hardest_neg))  # one selection pass, compacted


def _floor_sorted(x: torch.Tensor) -> torch.Tensor:
    d = _euclidean(x)
    ordered = d.sort(dim=1).values  # each row's negatives in order: what a binary search per positive needs
    return torch.searchsorted(ordered, d[:, : ordered.shape[1] // CLASSES].contiguous())


def _floor_weighted(x: torch.Tensor) -> torch.Tensor:
    d = _euclidean(x).clamp_(min=0.5).double()
    beyond = d >= 1.4
    log_w = torch.log1p(d.square().mul_(-0.25)).mul_((3 - DIM) / 2.0).add_(d.log_().mul_(2.0 - DIM))
    log_w.masked_fill_(beyond, float("-inf"))  # zero weight at and beyond the loss cutoff
    cdf = log_w.sub_(log_w.amax(1, keepdim=True)).exp_().cumsum(1)  # weights, then one draw per row
    return torch.searchsorted(cdf, torch.rand(cdf.shape[0], 1, dtype=cdf.dtype) * cdf[:, -1:])


# each miner's floor and what it counts (prose for the table)
FLOORS = {
    "batch_hard": (_distances, "GEMM + 1 in-place pass"),
    "easy_positive_hard_negative": (_distances, "GEMM + 1 in-place pass"),
    "semi_hard": (_floor_sorted, "GEMM + 1 pass + row sort + search"),
    "triplet_margin_semihard": (_floor_sorted, "GEMM + 1 pass + row sort + search"),
    "batch_all": (_floor_sorted, "GEMM + 1 pass + row sort + search"),
    "distance_weighted": (_floor_weighted, "GEMM + 1 pass + float64 weights + cutoff mask + cumsum + search"),
    "multi_similarity": (_floor_multi_similarity, "GEMM + 2 row extremes + 1 selection pass"),
    "pair_margin": (_floor_selection, "GEMM + 1 pass + 1 selection pass"),
}


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
    if name == "distance_weighted" and size > PML_DISTANCE_WEIGHTED_MAX:
        return False
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


def timed(fn, *args) -> tuple[float, int]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, len(out[0])


def bench(name: str, size: int, with_pml: bool, repeats: int) -> dict:
    x, y = data(size)
    xn = torch.nn.functional.normalize(x)
    floor = FLOORS[name][0]
    ours = hardmine_miner(name) if runs(name, size, "hardmine") else None
    theirs = pml_miner(name) if with_pml and runs(name, size, "pml") else None
    slow = theirs is not None and (name in ALL_TRIPLETS or name == "distance_weighted") and size >= 1024
    n = 3 if slow else repeats
    times: dict[str, list[float]] = {"floor": [], "ours": [], "theirs": []}
    count = None
    for _ in range(1 if slow else 3):  # warm-up: first calls pay for allocations and lazy initialisation
        floor(xn)
        for fn in (ours, theirs):
            if fn is not None:
                fn(x, y)
    for _ in range(n):  # each timed call follows an untimed one of the same code: warm caches for all three
        floor(xn)
        times["floor"].append(timed(floor, xn)[0])
        if ours is not None:
            ours(x, y)
            elapsed, count = timed(ours, x, y)
            times["ours"].append(elapsed)
        if theirs is not None:
            if not slow:
                theirs(x, y)
            times["theirs"].append(timed(theirs, x, y)[0])
    row = {"miner": name, "B": size, "out": count}
    for key, values in times.items():
        row[key + "_ms"] = statistics.median(values) * 1e3 if values else None
    if times["ours"]:
        row["ours_floor"] = statistics.median(a / b for a, b in zip(times["ours"], times["floor"]))
        row["ours_floor_best"] = min(times["ours"]) / min(times["floor"])
    if times["ours"] and times["theirs"]:
        row["ratio"] = statistics.median(b / a for a, b in zip(times["ours"], times["theirs"]))
    return row


def fmt(value, spec: str, missing: str) -> str:
    return missing if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--miners", nargs="+", default=MINERS, choices=MINERS)
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-pml", action="store_true")
    parser.add_argument("--one", nargs=3, metavar=("MINER", "B", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one[0], int(args.one[1]), args.one[2])
        return
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    with_pml = not args.no_pml
    if with_pml:
        try:
            import pytorch_metric_learning  # noqa: F401
        except ImportError:
            with_pml = False
    print(f"torch {torch.__version__}, 1 thread, dim {DIM}, {CLASSES} classes; '-' = not run (see docstring)")
    print("| miner | B | output | floor | floor ms | hardmine ms | hardmine / floor (fastest) | PML ms "
          "| PML / hardmine | hardmine peak MiB | PML peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        for name in args.miners:
            row = bench(name, size, with_pml, args.repeats if size <= 1024 else max(5, args.repeats // 4))
            mem = {impl: None for impl in ("hardmine", "pml")}
            if not args.no_memory:
                for impl in mem:
                    if runs(name, size, impl) and (impl == "hardmine" or with_pml):
                        mem[impl] = peak_in_subprocess(name, size, impl)
            print(f"| {name} | {size} | {fmt(row['out'], 'd', '-')} | {FLOORS[name][1]} | "
                  f"{fmt(row['floor_ms'], '.2f', '-')} | {fmt(row['ours_ms'], '.2f', '-')} | "
                  f"{fmt(row.get('ours_floor'), '.2f', '-')}x ({fmt(row.get('ours_floor_best'), '.2f', '-')}x) | "
                  f"{fmt(row['theirs_ms'], '.2f', '-')} | "
                  f"{fmt(row.get('ratio'), '.1f', '-')}x | {fmt(mem['hardmine'], '.0f', '-')} | "
                  f"{fmt(mem['pml'], '.0f', '-')} |", flush=True)


if __name__ == "__main__":
    main()
