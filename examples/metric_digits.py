"""Train a small embedding on scikit-learn's digits with batch-hard mining and a triplet margin loss.

Prints recall@1 (is the nearest other test image of the same digit?) before and after training. The loss is
written out as pytorch-metric-learning's TripletMarginLoss computes it, so the miner's index tuples could be
handed to that loss unchanged.

    python examples/metric_digits.py [--epochs 30] [--seed 0]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from hardmine.metric import BatchHardMiner, EuclideanDistance


def triplet_margin_loss(emb: torch.Tensor, triplets: tuple[torch.Tensor, ...], margin: float) -> torch.Tensor:
    """Mean of relu(d(a,p) - d(a,n) + margin) over the triplets with a non-zero loss (PML's default reducer)."""
    a, p, n = triplets
    if a.numel() == 0:
        return emb.sum() * 0.0
    emb = F.normalize(emb, dim=1)
    losses = F.relu((emb[a] - emb[p]).norm(dim=1) - (emb[a] - emb[n]).norm(dim=1) + margin)
    positive = losses > 0
    return losses[positive].mean() if positive.any() else losses.sum() * 0.0


@torch.no_grad()
def recall_at_1(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of points whose nearest other point (Euclidean, normalised embeddings) has the same label."""
    d = EuclideanDistance().pairwise(model(x))
    d.fill_diagonal_(float("inf"))
    return (y[d.argmin(1)] == y).float().mean().item()


def class_balanced_batches(y: torch.Tensor, per_class: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of batches with `per_class` samples of every class (P x K sampling, as batch-hard wants)."""
    pools = [torch.nonzero(y == c).flatten() for c in torch.unique(y)]
    pools = [pool[torch.randperm(len(pool), generator=generator)] for pool in pools]
    steps = min(len(pool) for pool in pools) // per_class
    return [torch.cat([pool[s * per_class:(s + 1) * per_class] for pool in pools]) for s in range(steps)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(digits.data / 16.0, digits.target, test_size=0.3,
                                                        random_state=args.seed, stratify=digits.target)
    x_train, x_test = torch.tensor(x_train, dtype=torch.float32), torch.tensor(x_test, dtype=torch.float32)
    y_train, y_test = torch.tensor(y_train), torch.tensor(y_test)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 32))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    miner = BatchHardMiner()
    generator = torch.Generator().manual_seed(args.seed)
    print(f"recall@1 before training: {recall_at_1(model, x_test, y_test):.3f}")
    for _ in range(args.epochs):
        for index in class_balanced_batches(y_train, per_class=8, generator=generator):
            emb = model(x_train[index])
            loss = triplet_margin_loss(emb, miner(emb, y_train[index]), margin=0.2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    print(f"recall@1 after {args.epochs} epochs of batch-hard training: {recall_at_1(model, x_test, y_test):.3f}")


if __name__ == "__main__":
    main()
