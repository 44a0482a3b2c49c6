"""What hardmine's whole mining path (draw, update, weights, reduce) adds to a real training step.

The step: an MLP 784-256-10 trained by SGD on N = 60,000 samples of fashion-mnist's shape (random pixels and labels,
or the real data with --fashion-mnist), one thread, denormals flushed. The bare step shuffles once an epoch,
gathers B rows, runs forward, mean cross-entropy, backward and the SGD step. A mined step replaces the shuffle by
a sampler and the mean by the mining path: next batch from the sampler, per-sample cross-entropy,
`sampler.update(idx, loss.detach())`, `hm.reduce(loss, sampler.weights(idx))`. Epoch starts (a policy's O(N) work,
the tree's construction) fall inside the timed steps, as they do in training.

Rows: every registered policy with its default parameters; TorchRL's PrioritizedSampler (alpha = beta = 1) and
torch.multinomial on a priority tensor doing the same job (draw B by priority, importance weights, B priorities
written back, weighted mean). TorchRL's C++ segment tree is used when its extension loads; otherwise it is rebuilt
from the C++ source torchrl ships (torch.utils.cpp_extension, once, cached); without torchrl the row is skipped.
Candidate policies (online_top_loss, rho_loss) run their own documented loop (a no-grad forward of `candidates x
B` samples, then forward and backward of the B chosen), so their share includes that extra forward; rho_loss's
reference-model losses are zeros (their computation, once before training, is not timed).
A first row, "per-sample loss, no sampler", is the bare loop with the loss every mining loop computes (per-sample
cross-entropy and a weighted mean by one dot product): what the mining API itself costs before any sampler work.

Timing: the CPU time of the training thread by default (`--clock wall` for elapsed time; with one torch thread
every op runs on it, and a machine shared with other jobs inflates wall time more than CPU time); blocks of a
quarter epoch, interleaved bare, v1, bare, v2, ..., bare in every round (the order rotates). A variant's share is
its total time over the total of the bare blocks around its blocks (the mean of the one before and the one after),
minus 1, so epoch starts count as often as they happen; the quartiles of the per-block shares show the noise (a
difference inside them is within noise). Printed: mean step ms, share, quartiles.

    python benchmarks/bench_step.py                 # B = 256 and 1024, 24 rounds
    python benchmarks/bench_step.py --rounds 3 --batch-sizes 256 --only uniform,importance
    python benchmarks/bench_step.py --parts --only uniform,importance   # us per call inside the loop
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

import hardmine as hm
from hardmine.sampling.policies import POLICIES, CandidatePolicy

NUM_SAMPLES = 60_000
Step = Callable[[], None]


def make_data(fashion_mnist: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N, 784] float32 in [0, 1], labels [N] int64)."""
    if fashion_mnist:
        from hardmine.datasets.fashion_mnist import load_fashion_mnist

        data = load_fashion_mnist()
        return torch.from_numpy(data.x_train.reshape(len(data.y_train), -1)), torch.from_numpy(data.y_train)
    g = torch.Generator().manual_seed(seed)
    return torch.rand(NUM_SAMPLES, 784, generator=g), torch.randint(0, 10, (NUM_SAMPLES,), generator=g)


def make_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    loss = loss_of(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bare(model, opt, x_all, y_all, batch: int) -> Step:
    """DataLoader(shuffle=True) without workers: a permutation an epoch, B rows gathered."""
    state = {"perm": torch.randperm(len(y_all)), "at": 0}

    def step() -> None:
        if state["at"] >= len(y_all):
            state["perm"], state["at"] = torch.randperm(len(y_all)), 0
        idx = state["perm"][state["at"]: state["at"] + batch]
        state["at"] += batch
        train_step(model, opt, x_all[idx], y_all[idx], F.cross_entropy)

    return step


def per_sample_floor(model, opt, x_all, y_all, batch: int) -> Step:
    """The bare loop with the loss any mining needs: per-sample cross-entropy and a weighted mean (weights of
    ones, made once): what the mining API costs before any sampler work."""
    state = {"perm": torch.randperm(len(y_all)), "at": 0}
    ones = torch.ones(batch)

    def step() -> None:
        if state["at"] >= len(y_all):
            state["perm"], state["at"] = torch.randperm(len(y_all)), 0
        idx = state["perm"][state["at"]: state["at"] + batch]
        state["at"] += batch
        train_step(model, opt, x_all[idx], y_all[idx],
                   lambda logits, y: torch.dot(F.cross_entropy(logits, y, reduction="none"), ones[: y.numel()])
                   / y.numel())

    return step


def endless(sampler: hm.HardExampleSampler) -> Iterator[np.ndarray]:
    while True:
        yield from sampler


def mined(model, opt, x_all, y_all, batch: int, policy: str) -> Step:
    """The loop of the README: the sampler picks the batch, update, weights, reduce (for a candidate policy, its
    own loop: a no-grad forward of the candidates, update, then forward and backward of the B chosen)."""
    memory = hm.ScoreMemory(len(y_all), labels=y_all)
    sampler = hm.HardExampleSampler(memory, batch_size=batch, policy=policy, seed=0)
    for column in memory.columns:  # a fixed column left unset (a reference model's losses): zeros
        if column.source is None and np.isnan(memory.get(column.name)).all():
            memory.set(column.name, np.zeros(len(y_all)))
    batches = endless(sampler)
    if isinstance(sampler.policy, CandidatePolicy):
        return candidate_loop(model, opt, x_all, y_all, sampler, batches)

    def step() -> None:
        idx = torch.from_numpy(next(batches))
        x, y = x_all[idx], y_all[idx]
        per_sample = F.cross_entropy(model(x), y, reduction="none")
        sampler.update(idx, per_sample.detach())
        loss = hm.reduce(per_sample, sampler.weights(idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def candidate_loop(model, opt, x_all, y_all, sampler: hm.HardExampleSampler, batches: Iterator[np.ndarray]) -> Step:
    """CandidatePolicy's documented loop: score `candidates x B` without gradient, back-propagate the B chosen."""
    def step() -> None:
        idx = torch.from_numpy(next(batches))
        with torch.no_grad():
            scores = F.cross_entropy(model(x_all[idx]), y_all[idx], reduction="none")
        sampler.update(idx, scores)
        chosen = idx[sampler.weights(idx) > 0]
        train_step(model, opt, x_all[chosen], y_all[chosen], F.cross_entropy)

    return step


def multinomial(model, opt, x_all, y_all, batch: int) -> Step:
    """torch.multinomial on a priority tensor [N], importance weights (N P)^-1 / max, B priorities written."""
    n = len(y_all)
    priorities = torch.ones(n, dtype=torch.float32)

    def step() -> None:
        idx = torch.multinomial(priorities, batch, replacement=True)
        p = priorities[idx] / priorities.sum()
        w = 1.0 / (n * p)
        w = w / w.max()
        x, y = x_all[idx], y_all[idx]
        per_sample = F.cross_entropy(model(x), y, reduction="none")
        priorities[idx] = per_sample.detach() + 1e-3
        loss = (per_sample * w).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _torchrl_sampler_class() -> type:
    """TorchRL's PrioritizedSampler with a working C++ segment tree; raises ImportError/RuntimeError saying why not."""
    import torchrl
    from torchrl.data.replay_buffers.samplers import prioritized

    if prioritized.SumSegmentTreeFp32 is None:
        from torch.utils.cpp_extension import load

        csrc = os.path.join(os.path.dirname(torchrl.__file__), "csrc")
        if not os.path.isdir(csrc):
            raise ImportError(f"torchrl {torchrl.__version__}'s extension does not load and its C++ source is absent")
        print(f"torchrl {torchrl.__version__}: its C++ extension does not load with torch {torch.__version__}; "
              "rebuilding its CPU segment tree from the source it ships (cached after the first run) ...", flush=True)
        ext = load(name="_torchrl", sources=[os.path.join(csrc, "pybind.cpp"), os.path.join(csrc, "utils.cpp")],
                   extra_cflags=["-O3"], verbose=False)
        for name in ("SumSegmentTreeFp32", "SumSegmentTreeFp64", "MinSegmentTreeFp32", "MinSegmentTreeFp64"):
            setattr(prioritized, name, getattr(ext, name))
    return prioritized.PrioritizedSampler


def torchrl_prioritized(model, opt, x_all, y_all, batch: int, sampler_class: type) -> Step:
    """TorchRL's PrioritizedSampler over a storage of N items: sample, weighted mean, update_priority."""
    from torchrl.data import LazyTensorStorage

    n = len(y_all)
    storage = LazyTensorStorage(n, device="cpu")
    storage.set(torch.arange(n), torch.zeros(n, 1))
    sampler = sampler_class(n, alpha=1.0, beta=1.0, eps=1e-3, device="cpu")
    sampler.update_priority(torch.arange(n), torch.ones(n))  # what a replay buffer's write does for new items

    def step() -> None:
        idx, info = sampler.sample(storage, batch)
        x, y = x_all[idx], y_all[idx]
        per_sample = F.cross_entropy(model(x), y, reduction="none")
        sampler.update_priority(idx, per_sample.detach())
        loss = (per_sample * info["priority_weight"].to(per_sample.dtype)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


CLOCKS = {"thread": time.thread_time, "wall": time.perf_counter}
clock = CLOCKS["thread"]


def block_ms(step: Step, steps: int) -> float:
    start = clock()
    for _ in range(steps):
        step()
    return 1e3 * (clock() - start) / steps


def run(batch: int, rounds: int, only: set[str] | None, x_all, y_all, blocks_per_epoch: int) -> None:
    epoch = -(-len(y_all) // batch)
    steps = -(-epoch // blocks_per_epoch)
    base = make_model(0)

    def fresh():
        model = copy.deepcopy(base)
        return model, torch.optim.SGD(model.parameters(), lr=0.05)

    variants: dict[str, Step] = {}
    skipped: dict[str, str] = {}
    if only is None or "floor" in only:
        variants["per-sample loss, no sampler"] = per_sample_floor(*fresh(), x_all, y_all, batch)
    for name in POLICIES:
        if only is None or name in only:
            try:
                variants[name] = mined(*fresh(), x_all, y_all, batch, name)
            except (TypeError, ValueError) as error:
                skipped[name] = f"not buildable with default parameters: {error}"
    if only is None or "torchrl" in only:
        try:
            variants["torchrl PrioritizedSampler"] = torchrl_prioritized(*fresh(), x_all, y_all, batch,
                                                                         _torchrl_sampler_class())
        except (ImportError, RuntimeError, OSError) as error:
            skipped["torchrl PrioritizedSampler"] = f"skipped: {type(error).__name__}: {str(error)[:160]}"
    if only is None or "multinomial" in only:
        variants["torch.multinomial + write"] = multinomial(*fresh(), x_all, y_all, batch)
    reference = bare(*fresh(), x_all, y_all, batch)

    for step in (reference, *variants.values()):  # warm-up: one epoch each (scores seen, trees built)
        block_ms(step, epoch)
    bare_ms: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in variants}
    around: dict[str, list[float]] = {name: [] for name in variants}  # mean of the bare blocks before and after
    names = list(variants)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]  # rotate, so no variant always runs first
        before = block_ms(reference, steps)
        bare_ms.append(before)
        for name in order:
            t = block_ms(variants[name], steps)
            after = block_ms(reference, steps)
            bare_ms.append(after)
            times[name].append(t)
            around[name].append(0.5 * (before + after))
            before = after

    print(f"\nB = {batch}: blocks of {steps} steps ({blocks_per_epoch} an epoch), {rounds} rounds; "
          f"bare step {np.mean(bare_ms):.3f} ms (mean of {len(bare_ms)} blocks)")
    print(f"{'policy':<28} {'step ms':>8} {'share of bare':>14} {'quartiles over rounds':>24}")
    print("-" * 77)
    print(f"{'bare (no mining)':<28} {np.mean(bare_ms):>8.3f} {'-':>14}")
    for name in names:
        t, b = np.asarray(times[name]), np.asarray(around[name])
        share = 100 * (t.sum() / b.sum() - 1.0)  # total time over the total of the bare blocks around it
        q1, q3 = np.percentile(100 * (t / b - 1.0), [25, 75])
        print(f"{name:<28} {t.mean():>8.3f} {share:>+13.1f}% {f'{q1:+.1f}% .. {q3:+.1f}%':>24}")
    for name, why in skipped.items():
        print(f"{name:<28} {why}")


def parts(batch: int, policies: list[str], x_all, y_all, epochs: int = 4) -> None:
    """Where a mined step's time goes, inside the loop (caches as training leaves them): us per step of
    `next(sampler)`, `update`, `weights` and `hm.reduce`, and of the chunk-level work inside them (drawing a chunk,
    writing the buffered updates, epoch starts). Not interleaved: read them next to each other, not as shares."""
    print(f"\nB = {batch}: us per step inside the training loop ({epochs} epochs after one of warm-up)")
    print(f"{'policy':<20} {'next':>7} {'update':>7} {'weights':>8} {'reduce':>7} | {'draw chunk':>10} "
          f"{'write':>7} {'epoch start':>11}")
    for name in policies:
        model = make_model(0)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        memory = hm.ScoreMemory(len(y_all), labels=y_all)
        sampler = hm.HardExampleSampler(memory, batch_size=batch, policy=name, seed=0)
        inner = {"draw chunk": 0.0, "write": 0.0, "epoch start": 0.0}

        def timed(method: Callable, key: str) -> Callable:
            def call(*args, **kwargs):
                start = clock()
                out = method(*args, **kwargs)
                inner[key] += clock() - start
                return out
            return call

        for attr, key in (("_next_chunk", "draw chunk"), ("flush", "write"), ("_begin_epoch", "epoch start")):
            setattr(sampler, attr, timed(getattr(sampler, attr), key))  # the sampler calls them through self
        outer = dict.fromkeys(("next", "update", "weights", "reduce"), 0.0)
        batches = endless(sampler)
        steps = -(-len(y_all) // batch)
        for step in range((1 + epochs) * steps):
            if step == steps:
                outer, inner_start = dict.fromkeys(outer, 0.0), dict(inner)
            t0 = clock()
            idx = torch.from_numpy(next(batches))
            t1 = clock()
            per_sample = F.cross_entropy(model(x_all[idx]), y_all[idx], reduction="none")
            t2 = clock()
            sampler.update(idx, per_sample.detach())
            t3 = clock()
            w = sampler.weights(idx)
            t4 = clock()
            loss = hm.reduce(per_sample, w)
            t5 = clock()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for key, took in zip(outer, (t1 - t0, t3 - t2, t4 - t3, t5 - t4)):
                outer[key] += took
        n = epochs * steps
        us = {k: 1e6 * v / n for k, v in outer.items()}
        us.update({k: 1e6 * (inner[k] - inner_start[k]) / n for k in inner})
        print(f"{name:<20} {us['next']:>7.1f} {us['update']:>7.1f} {us['weights']:>8.1f} {us['reduce']:>7.1f} | "
              f"{us['draw chunk']:>10.1f} {us['write']:>7.1f} {us['epoch start']:>11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="256,1024")
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--blocks-per-epoch", type=int, default=4, help="timed blocks are this fraction of an epoch")
    parser.add_argument("--only", default=None, help="comma-separated rows: policy names, floor, torchrl, multinomial")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="thread",
                        help="thread: CPU time of the training thread (robust on a shared machine); wall: elapsed")
    parser.add_argument("--fashion-mnist", action="store_true", help="the real data (needs dataset-fashion-mnist)")
    parser.add_argument("--parts", action="store_true",
                        help="instead of the table: where the mining path's time goes, per call (--only: policies)")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    print(f"hardmine {getattr(hm, '__version__', '?')}, torch {torch.__version__} on 1 thread, numpy {np.__version__}, "
          f"{platform.machine()}, Python {platform.python_version()}; MLP 784-256-10, SGD, N = {NUM_SAMPLES:,}, "
          f"{'fashion-mnist' if args.fashion_mnist else 'random data of fashion-mnist shape'}; {args.clock} clock")
    x_all, y_all = make_data(args.fashion_mnist, seed=0)
    only = None if args.only is None else set(args.only.split(","))
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        if args.parts:
            parts(batch, sorted(only or {"uniform", "importance"}), x_all, y_all)
        else:
            run(batch, args.rounds, only, x_all, y_all, args.blocks_per_epoch)


if __name__ == "__main__":
    main()
