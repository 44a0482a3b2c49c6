"""Train an MLP on scikit-learn's digits twice, with uniform shuffling and with hardmine's importance sampler.

The importance run uses unbiased weights (normalize="none"): dividing them by the batch's largest weight, as
prioritised replay does, also divides the learning rate by about the mean weight, which costs accuracy here.

Prints the test accuracy of both runs after every epoch, then the time hardmine's own work took (drawing
batches, recording losses, importance weights) against the whole training time. Runs in seconds on a CPU.

    python examples/train_digits.py --epochs 15 --seed 0
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

import hardmine as hm


def load(seed: int) -> tuple[TensorDataset, TensorDataset]:
    """Digits (1,797 8x8 images, 10 classes), pixels scaled to [0, 1], split 75/25 stratified by class."""
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=0.25, stratify=y, random_state=seed)
    def as_set(a, b):
        return TensorDataset(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.int64))

    return as_set(x_train, y_train), as_set(x_test, y_test)


def accuracy(model: torch.nn.Module, data: TensorDataset) -> float:
    """Fraction of `data` classified correctly."""
    x, y = data.tensors
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train(policy: str | hm.Policy, train_set: TensorDataset, test_set: TensorDataset, epochs: int,
          seed: int) -> tuple[list[float], float, float]:
    """One run; returns per-epoch test accuracy, the total seconds and the seconds spent inside hardmine."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    memory = hm.ScoreMemory(len(train_set), labels=train_set.tensors[1])
    sampler = hm.HardExampleSampler(memory, batch_size=64, policy=policy, seed=seed)
    loader = DataLoader(hm.WithIndex(train_set), batch_sampler=sampler)
    history = []
    start = time.perf_counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for idx, x, y in loader:
            per_sample = F.cross_entropy(model(x), y, reduction="none")
            sampler.update(idx, per_sample.detach())
            loss = hm.reduce(per_sample, sampler.weights(idx))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history.append(accuracy(model, test_set))
    return history, time.perf_counter() - start, sampler.stats()["mining_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train_set, test_set = load(args.seed)
    policies = {"uniform": "uniform", "importance": hm.ImportancePolicy(normalize="none")}
    runs = {name: train(policy, train_set, test_set, args.epochs, args.seed) for name, policy in policies.items()}
    print(f"digits: {len(train_set)} train / {len(test_set)} test, MLP 64-128-10, SGD, batch 64, seed {args.seed}")
    print(f"{'epoch':>5} | {'uniform':>8} | {'importance':>10}")
    for epoch in range(args.epochs):
        print(f"{epoch + 1:>5} | {runs['uniform'][0][epoch]:8.4f} | {runs['importance'][0][epoch]:10.4f}")
    for policy, (_, total, mining) in runs.items():
        print(f"{policy:>10}: training {total:.2f} s, of which hardmine {mining * 1e3:.1f} ms ({mining / total:.1%})")


if __name__ == "__main__":
    main()
