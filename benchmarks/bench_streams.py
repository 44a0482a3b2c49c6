"""Streaming hard example mining (hm.HardStream) on Fashion-MNIST read as a stream, and its overhead.

A standalone measurement (not a unit test), one thread (torch.set_num_threads(1)), in one process:
1. Accuracy against compute. The training split is an IterableDataset read once per epoch in shuffled shards
   (shard order and order within shards reshuffled each epoch from the seed). uniform, online_top_loss,
   rho_loss (a reference MLP trained on a held-out split, scored on each candidate batch as it comes),
   selective_backprop and online_top_loss + hard replay run, interleaved per seed, until each has spent the same
   counted compute (samples forwarded, no-grad scoring, re-forwards and reference scoring included, + 2 x samples
   back-propagated); test accuracy is taken at each quarter of that budget. The reference's own training is
   reported apart (it is spent once, before the run).
2. With 30% symmetric label noise (on the stream and on the reference's held-out split): the flipped share of the
   samples each policy back-propagates, against the base rate (the candidates' share). The NoiseGuard does not
   apply to a stream (it needs a per-sample memory over epochs), so rho_loss runs without it.
3. Throughput: a HardStream (uniform policy, update + weights + hm.reduce) over a 1M-sample synthetic stream
   against a bare IterableDataset loop doing the same training step, interleaved in blocks; the ratio of wall time
   per step.
4. Replay memory: bytes per buffered Fashion-MNIST sample.

    PYTHONPATH=src python benchmarks/bench_streams.py --seeds 0 1 2 --out build/streams
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

import hardmine as hm
from hardmine.datasets.fashion_mnist import load_fashion_mnist
from hardmine.experiments.metrics import paired_interval

STRATEGIES = ("uniform", "online_top_loss", "rho_loss", "selective_backprop", "top_loss+replay")


class ShardedStream(IterableDataset):
    """Samples (image [1, 28, 28], label, flipped) read once per epoch: `shards` contiguous shards, their order and
    the order inside each reshuffled every epoch from (seed, epoch)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, flipped: torch.Tensor, shards: int, seed: int) -> None:
        self.x, self.y, self.flipped, self.shards, self.seed, self.epoch = x, y, flipped, shards, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        bounds = np.linspace(0, len(self.y), self.shards + 1).astype(int)
        for s in rng.permutation(self.shards):
            for i in bounds[s] + rng.permutation(bounds[s + 1] - bounds[s]):
                yield self.x[i], self.y[i], self.flipped[i]


def mlp(hidden: int = 128, inputs: int = 784) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i: i + 2000]).argmax(1) for i in range(0, len(x), 2000)])
    model.train()
    return float((pred == y).float().mean())


def train_reference(x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int, batch: int) -> tuple[nn.Module, int]:
    """A reference MLP trained on the held-out split; (model, its counted compute)."""
    torch.manual_seed(seed + 1000)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(batch):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model, 3 * epochs * len(y)


def make_stream(name: str, source: ShardedStream, batch: int, candidates: int, reference: nn.Module,
                seed: int) -> hm.HardStream:
    if name == "uniform":
        return hm.HardStream(source, batch, 1, "uniform", seed=seed)
    if name == "selective_backprop":
        return hm.HardStream(source, batch, 2, "selective_backprop", seed=seed)
    if name == "rho_loss":
        return hm.HardStream(source, batch, candidates, "rho_loss", reference=reference, seed=seed)
    replay = hm.streams.HardReplay(capacity=2048, fraction=0.25, half_life=200.0, seed=seed) \
        if name == "top_loss+replay" else None
    return hm.HardStream(source, batch, candidates, "online_top_loss", replay=replay, seed=seed)


def run(name: str, data: dict, seed: int, budget: int, batch: int, candidates: int, reference: nn.Module) -> dict:
    """Train one strategy until `budget` compute; test accuracy at each quarter, flipped shares of what it kept."""
    torch.manual_seed(seed)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    source = ShardedStream(data["x"], data["y"], data["flipped"], shards=10, seed=seed)
    stream = make_stream(name, source, batch, candidates, reference, seed)
    forwards = backwards = 0
    marks, curve = [budget * q / 4 for q in (1, 2, 3, 4)], []
    kept_flipped = kept_total = cand_flipped = cand_total = 0
    epoch, start = 0, time.perf_counter()
    while len(curve) < 4:
        stream.set_epoch(epoch)
        for ids, (x, y, flipped) in DataLoader(stream, batch_size=None):
            if name == "uniform":  # one pass with gradient: its losses are the scores
                per_sample = F.cross_entropy(model(x), y, reduction="none")
                stream.update(ids, per_sample.detach())
                loss = hm.reduce(per_sample, stream.weights(ids))
                forwards, backwards = forwards + len(y), backwards + len(y)
                kept = flipped
            else:
                with torch.no_grad():
                    stream.update(ids, F.cross_entropy(model(x), y, reduction="none"))
                forwards += len(y) * (2 if name == "rho_loss" else 1)  # the reference's scoring counts too
                sel, (xs, ys, kept) = stream.select(ids, (x, y, flipped))
                loss = hm.reduce(F.cross_entropy(model(xs), ys, reduction="none"), stream.weights(sel))
                forwards, backwards = forwards + len(ys), backwards + len(ys)
                kept = kept[: int((stream.weights(ids) > 0).sum())]  # the fresh ones (replayed come after)
            opt.zero_grad()
            loss.backward()
            opt.step()
            kept_flipped, kept_total = kept_flipped + int(kept.sum()), kept_total + len(kept)
            cand_flipped, cand_total = cand_flipped + int(flipped.sum()), cand_total + len(flipped)
            while len(curve) < 4 and forwards + 2 * backwards >= marks[len(curve)]:
                curve.append(accuracy(model, data["x_test"], data["y_test"]))
            if len(curve) == 4:
                break
        epoch += 1
    out = {"curve": curve, "kept_flipped": kept_flipped / max(kept_total, 1),
           "base_flipped": cand_flipped / max(cand_total, 1), "seconds": time.perf_counter() - start,
           "epochs_read": epoch + 1}
    if stream.replay is not None:
        out["replay_bytes_per_sample"] = stream.replay.bytes_per_sample()
    return out


def split(seed: int, train: int, holdout: int, noise: float) -> dict:
    data = load_fashion_mnist()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.y_train))
    x = torch.from_numpy(data.x_train[order[: train + holdout]])
    y = torch.from_numpy(data.y_train[order[: train + holdout]]).clone()
    flipped = torch.from_numpy(rng.random(len(y)) < noise)
    shift = torch.from_numpy(rng.integers(1, 10, len(y)))
    y[flipped] = (y[flipped] + shift[flipped]) % 10  # symmetric noise: always another class
    return {"x": x[:train], "y": y[:train], "flipped": flipped[:train], "x_hold": x[train:], "y_hold": y[train:],
            "x_test": torch.from_numpy(data.x_test), "y_test": torch.from_numpy(data.y_test)}


def mean_spread(values: list[float]) -> str:
    a = np.asarray(values)
    if a.size < 2:
        return f"{a.mean():.4f}"
    mean, _, high = paired_interval(values, [0.0] * a.size)  # compare's t interval, one sample
    return f"{mean:.4f} ± {high - mean:.4f}"


class Synthetic(IterableDataset):
    """`total` samples (features [64], label) cycled from a fixed pool: reading costs as little as it can."""

    def __init__(self, total: int, start: int = 0) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(4096, 64, generator=g), torch.randint(0, 10, (4096,), generator=g)
        self.total, self.start = total, start

    def __iter__(self):
        x, y = self.x, self.y
        for i in range(self.start, self.start + self.total):
            j = i & 4095
            yield x[j], y[j]


def throughput(total: int, blocks: int, batch: int) -> dict:
    """Seconds per step of a bare IterableDataset loop and of the same loop through a HardStream, interleaved."""
    torch.manual_seed(0)
    model = mlp(256, 64)
    opt = torch.optim.SGD(model.parameters(), 0.01)
    per = total // blocks
    times = {"bare": 0.0, "stream": 0.0}
    steps = {"bare": 0, "stream": 0}
    for b in range(blocks):
        for kind in (("bare", "stream") if b % 2 == 0 else ("stream", "bare")):
            source = Synthetic(per, b * per)
            t0 = time.perf_counter()
            if kind == "bare":
                for x, y in DataLoader(source, batch_size=batch):
                    loss = F.cross_entropy(model(x), y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    steps[kind] += 1
            else:
                stream = hm.HardStream(source, batch, policy="uniform")
                for ids, (x, y) in DataLoader(stream, batch_size=None):
                    per_sample = F.cross_entropy(model(x), y, reduction="none")
                    stream.update(ids, per_sample.detach())
                    loss = hm.reduce(per_sample, stream.weights(ids))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    steps[kind] += 1
            times[kind] += time.perf_counter() - t0
        print(f"  throughput block {b + 1}/{blocks}: bare {times['bare']:.1f}s, stream {times['stream']:.1f}s",
              flush=True)
    per_step = {k: times[k] / steps[k] for k in times}
    return {"samples": total, "batch": batch, "steps": steps, "seconds": times,
            "ms_per_step": {k: 1000 * v for k, v in per_step.items()}, "ratio": per_step["stream"] / per_step["bare"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--holdout", type=int, default=10000)
    parser.add_argument("--epochs", type=float, default=3.0, help="the budget, in uniform epochs of compute")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--throughput-samples", type=int, default=1_000_000)
    parser.add_argument("--out", default="build/streams")
    args = parser.parse_args()
    torch.set_num_threads(1)
    budget = int(args.epochs * 3 * args.train)
    results: dict = {"args": vars(args), "clean": {}, "noisy": {}}
    t0 = time.perf_counter()
    for setting, noise, names in (("clean", 0.0, STRATEGIES), ("noisy", args.noise,
                                                               ("uniform", "online_top_loss", "rho_loss"))):
        for seed in args.seeds:
            data = split(seed, args.train, args.holdout, noise)
            reference, ref_compute = train_reference(data["x_hold"], data["y_hold"], seed, 2, args.batch)
            results[setting].setdefault("reference_compute", ref_compute)
            for name in names:
                r = run(name, data, seed, budget, args.batch, args.candidates, reference)
                results[setting].setdefault(name, []).append(r)
                print(f"[{time.perf_counter() - t0:6.0f}s] {setting} seed {seed} {name}: acc "
                      f"{' '.join(f'{a:.4f}' for a in r['curve'])} kept flipped {r['kept_flipped']:.3f} "
                      f"(base {r['base_flipped']:.3f}) {r['seconds']:.0f}s", flush=True)
    print("throughput:", flush=True)
    results["throughput"] = throughput(args.throughput_samples, 8, 256)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hm.atomic.write_json(out / "results.json", results)
    report(results, budget)


def report(results: dict, budget: int) -> None:
    seeds = len(results["args"]["seeds"])
    print(f"\nAccuracy (Fashion-MNIST test) against counted compute, budget {budget:,} = "
          f"{results['args']['epochs']:g} uniform epochs; mean ± 95% CI over {seeds} seeds")
    print("| strategy | 25% | 50% | 75% | 100% |\n|---|---|---|---|---|")
    for name in STRATEGIES:
        runs = results["clean"][name]
        print(f"| {name} | " + " | ".join(mean_spread([r["curve"][q] for r in runs]) for q in range(4)) + " |")
    print(f"(rho_loss's reference: {results['clean']['reference_compute']:,} compute of training, spent once, "
          "not in the budget)")
    print(f"\nWith {results['args']['noise']:.0%} label noise: flipped share of the back-propagated samples "
          "(base rate: the candidates'), and final accuracy")
    print("| strategy | flipped share kept | base rate | final accuracy |\n|---|---|---|---|")
    for name in ("uniform", "online_top_loss", "rho_loss"):
        runs = results["noisy"][name]
        print(f"| {name} | {mean_spread([r['kept_flipped'] for r in runs])} | "
              f"{mean_spread([r['base_flipped'] for r in runs])} | {mean_spread([r['curve'][3] for r in runs])} |")
    t = results["throughput"]
    print(f"\nThroughput ({t['samples']:,} samples, batch {t['batch']}, 8 interleaved blocks): bare "
          f"{t['ms_per_step']['bare']:.3f} ms/step, HardStream {t['ms_per_step']['stream']:.3f} ms/step, "
          f"ratio {t['ratio']:.3f} (goal <= 1.05)")
    print(f"Replay: {results['clean']['top_loss+replay'][0]['replay_bytes_per_sample']} bytes per buffered sample "
          "(image float32 [1, 28, 28], label int64, flipped flag bool, + 25 bytes of id, priority, step, flag)")


if __name__ == "__main__":
    main()
