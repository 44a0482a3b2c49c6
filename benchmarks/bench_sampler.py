"""One step of prioritised sampling (draw B, then update those B priorities): hardmine against the usual ways.

Baselines, run in the same process on the same priorities:
- torch.multinomial on a weight tensor, then an in-place write of the B new weights (refuses N > 2^24);
- numpy cumsum + searchsorted, the cumulative sum recomputed every step because priorities change.
Columns: median ms per step for SumTree alone and for the whole HardExampleSampler step (draw a batch, update
memory and priorities), construction seconds, bytes per sample, and each baseline's time divided by SumTree's.

    python benchmarks/bench_sampler.py            # N in 1e5, 1e6, 1e7
    python benchmarks/bench_sampler.py --big      # and 1e8
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import hardmine as hm
from hardmine.sampling.sumtree import SumTree

TORCH_MULTINOMIAL_MAX = 2**24


def median_ms(step, repeats: int) -> float:
    """Median wall time of `step()` in milliseconds, after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def bench_row(n: int, batch: int, repeats: int, rng: np.random.Generator) -> dict[str, float | str]:
    """Time every method at one (N, B); returns the row's numbers."""
    priorities = rng.random(n, dtype=np.float32) + 1e-3
    start = time.perf_counter()
    tree = SumTree(priorities)
    build_s = time.perf_counter() - start

    def tree_step() -> None:
        drawn = tree.sample(batch, rng)
        tree.update(drawn, rng.random(batch))

    row: dict[str, float | str] = {"N": n, "B": batch, "build_s": build_s, "bytes": tree.nbytes / n}
    row["tree_ms"] = median_ms(tree_step, repeats)

    memory = hm.ScoreMemory(n)
    memory.update(np.arange(n), priorities)
    sampler = hm.HardExampleSampler(memory, batch_size=batch, num_batches=10**9, policy="importance", seed=0)
    batches = iter(sampler)
    next(batches)  # builds the tree once, outside the timed steps

    def sampler_step() -> None:
        drawn = next(batches)
        sampler.update(drawn, rng.random(drawn.size))

    row["sampler_ms"] = median_ms(sampler_step, repeats)

    if n <= TORCH_MULTINOMIAL_MAX:
        weights = torch.from_numpy(priorities.copy())

        def multinomial_step() -> None:
            drawn = torch.multinomial(weights, batch, replacement=True)
            weights[drawn] = torch.rand(batch)

        row["multinomial_ms"] = median_ms(multinomial_step, max(3, repeats // 10))
    else:
        row["multinomial_ms"] = "refuses N > 2^24"

    values = priorities.copy()

    def cumsum_step() -> None:
        cumulative = np.cumsum(values, dtype=np.float64)
        drawn = np.searchsorted(cumulative, rng.random(batch) * cumulative[-1], side="right")
        values[drawn] = rng.random(batch)

    row["cumsum_ms"] = median_ms(cumsum_step, max(3, repeats // 10))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", action="store_true", help="also run N = 1e8 (about 2.5 GB of memory)")
    parser.add_argument("--repeats", type=int, default=50, help="timed steps per method (baselines: a tenth)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [10**5, 10**6, 10**7] + ([10**8] if args.big else [])
    print(f"hardmine {hm.__version__}, torch {torch.__version__} on {torch.get_num_threads()} thread, numpy "
          f"{np.__version__}, {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    header = (f"{'N':>11} {'B':>5} | {'SumTree ms':>10} {'sampler ms':>10} {'build s':>8} {'B/sample':>8} | "
              f"{'multinomial ms':>16} {'ratio':>6} | {'cumsum ms':>9} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for n in sizes:
        for batch in (256, 4096):
            row = bench_row(n, batch, args.repeats, rng)
            multi = row["multinomial_ms"]
            multi_text = f"{multi:16.3f} {multi / row['tree_ms']:5.1f}x" if isinstance(multi, float) \
                else f"{multi:>16} {'-':>6}"
            print(f"{n:>11,} {batch:>5} | {row['tree_ms']:10.3f} {row['sampler_ms']:10.3f} {row['build_s']:8.3f} "
                  f"{row['bytes']:8.2f} | {multi_text} | {row['cumsum_ms']:9.3f} "
                  f"{row['cumsum_ms'] / row['tree_ms']:5.1f}x", flush=True)


if __name__ == "__main__":
    main()
