"""RHO-LOSS and online batch selection against uniform on fashion-mnist, clean and with symmetric label noise.

A standalone measurement (not a unit test): for each seed, the strategies run interleaved in one process on the
same data split and noise draw; compute is counted as hardmine's compare counts it (samples forwarded, scoring
passes and re-forwards included, + 2 x samples back-propagated; reference models' training and scoring included).
The target is uniform's mean validation accuracy over its last epoch, averaged over seeds; a run reaches it at the
first evaluation where the mean of two consecutive validation accuracies is at or above it.

    PYTHONPATH=src python benchmarks/bench_rho_loss.py --out build/rho --train 20000 --epochs 6 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import hardmine as hm
from hardmine.datasets.fashion_mnist import load_fashion_mnist

T95 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776}


def mlp(hidden: int = 256) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


MODELS = {"mlp": mlp, "cnn": cnn}


def accuracy(model: nn.Module, x: torch.Tensor, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i: i + 1000]).argmax(1) for i in range(0, len(x), 1000)]).numpy()
    model.train()
    return float((pred == y).mean())


def split(seed: int, n_train: int, n_holdout: int, n_val: int, noise: float):
    data = load_fashion_mnist()
    rng = np.random.default_rng(1000 + seed)
    order = rng.permutation(len(data.y_train))
    tr, ho, va = order[:n_train], order[n_train:n_train + n_holdout], order[n_train + n_holdout:
                                                                            n_train + n_holdout + n_val]
    x, y = data.x_train, data.y_train.copy()
    flipped = np.zeros(len(y), dtype=bool)
    if noise > 0:  # symmetric noise on the training data and the holdout (a noisy holdout: the paper's setting)
        for part in (tr, ho):
            chosen = rng.choice(part, round(noise * part.size), replace=False)
            y[chosen] = (y[chosen] + rng.integers(1, 10, chosen.size)) % 10
            flipped[chosen] = True
    clean_y = data.y_train
    return {"x_train": torch.from_numpy(x[tr]), "y_train": torch.from_numpy(y[tr]), "flipped": flipped[tr],
            "x_hold": torch.from_numpy(x[ho]), "y_hold": torch.from_numpy(y[ho]),
            "x_val": torch.from_numpy(x[va]), "y_val": clean_y[va],
            "x_test": torch.from_numpy(data.x_test), "y_test": data.y_test}


def reference(kind: str, d: dict, seed: int, make_model, ref_epochs: int) -> tuple[np.ndarray, int]:
    """(irreducible losses [N], compute spent on them)."""
    train = TensorDataset(d["x_train"], d["y_train"])
    n = len(train)
    def opt(params):
        return torch.optim.AdamW(params, lr=1e-3)
    if kind == "holdout":
        model = hm.train_reference(make_model, TensorDataset(d["x_hold"], d["y_hold"]), epochs=ref_epochs,
                                   optimizer=opt, seed=seed, progress=False)
        il = hm.reference_losses(model, train, progress=False)
        return il, 3 * ref_epochs * len(d["y_hold"]) + n
    il = hm.cross_fit_losses(make_model, train, folds=2, seed=seed, epochs=ref_epochs, optimizer=opt,
                             progress=False)
    return il, 3 * ref_epochs * n + n  # two references, each trained on half


def run(name: str, d: dict, seed: int, args, make_model, il: np.ndarray | None, ref_cost: int) -> dict:
    torch.manual_seed(seed)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    x, y, flipped = d["x_train"], d["y_train"], d["flipped"]
    n = len(y)
    memory = hm.ScoreMemory(n, labels=y.numpy())
    guards = [hm.NoiseGuard()] if name.endswith("+guard") else []
    base = name.split("+")[0]
    if base == "uniform":
        policy = hm.build_policy("uniform")
    elif base == "online_top_loss":
        policy = hm.build_policy("online_top_loss", candidates=args.candidates, epoch_fraction=args.fraction,
                                 guards=guards)
    else:
        policy = hm.build_policy("rho_loss", irreducible_loss=il, candidates=args.candidates,
                                 epoch_fraction=args.fraction, guards=guards)
    sampler = hm.HardExampleSampler(memory, args.batch, policy=policy, seed=seed)
    forwards, backwards, selected, selected_flipped = 0, 0, 0, 0
    curve = {"epoch": [], "compute": [], "val": []}
    started = time.perf_counter()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        batches = iter(sampler)
        steps = None
        for k, idx in enumerate(batches):
            steps = steps or len(sampler)
            frac = (epoch + k / steps) / args.epochs
            for g in opt.param_groups:
                g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * frac))
            xb, yb = x[idx], y[idx]
            if base == "uniform":
                per = F.cross_entropy(model(xb), yb, reduction="none")
                sampler.update(idx, per.detach())
                loss = per.mean()
                forwards += idx.size
                backwards += idx.size
                keep = np.ones(idx.size, dtype=bool)
            else:
                with torch.no_grad():
                    per = F.cross_entropy(model(xb), yb, reduction="none")
                sampler.update(idx, per)
                keep = (sampler.weights(idx) > 0).numpy()
                loss = F.cross_entropy(model(xb[keep]), yb[keep])
                forwards += idx.size + int(keep.sum())
                backwards += int(keep.sum())
            selected += int(keep.sum())
            selected_flipped += int(flipped[idx[keep]].sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (k + 1) % max(1, steps // args.evals) == 0 or k == steps - 1:
                curve["epoch"].append(epoch + (k + 1) / steps)
                curve["compute"].append(forwards + 2 * backwards + ref_cost)
                curve["val"].append(accuracy(model, d["x_val"], d["y_val"]))
    return {"strategy": name, "seed": seed, "test_acc": accuracy(model, d["x_test"], d["y_test"]),
            "compute": forwards + 2 * backwards + ref_cost, "reference_compute": ref_cost,
            "forwards": forwards, "backwards": backwards, "seconds": time.perf_counter() - started,
            "selected_flipped_share": selected_flipped / max(selected, 1),
            "suspects": int(policy.suspects().size) if policy.suspects() is not None else None, "curve": curve}


def summarize(runs: list[dict], strategies: list[str], evals: int) -> list[dict]:
    base = [r for r in runs if r["strategy"] == "uniform"]
    def last(r: dict) -> float:
        return float(np.mean(r["curve"]["val"][-evals:]))
    target = float(np.mean([last(r) for r in base]))
    base_compute = float(np.mean([r["compute"] for r in base]))
    base_acc = {r["seed"]: r["test_acc"] for r in base}
    rows = []
    for s in strategies:
        mine = [r for r in runs if r["strategy"] == s]
        acc = [r["test_acc"] for r in mine]
        diffs = [r["test_acc"] - base_acc[r["seed"]] for r in mine]
        half = T95.get(len(diffs), 2.0) * np.std(diffs, ddof=1) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
        reach = []
        for r in mine:
            v, c = r["curve"]["val"], r["curve"]["compute"]
            hit = next((c[i] for i in range(1, len(v)) if (v[i - 1] + v[i]) / 2 >= target - 1e-9), None)
            reach.append(None if hit is None else hit / base_compute)
        reached = [x for x in reach if x is not None]
        median = float(np.median([x if x is not None else math.inf for x in reach]))
        rows.append({"strategy": s, "test_acc_mean": float(np.mean(acc)), "test_acc_std": float(np.std(acc, ddof=1)),
                     "diff": float(np.mean(diffs)), "diff_low": float(np.mean(diffs) - half),
                     "diff_high": float(np.mean(diffs) + half), "compute_ratio": float(np.mean(
                         [r["compute"] for r in mine]) / base_compute),
                     "compute_to_target": median if math.isfinite(median) else None,
                     "reached": f"{len(reached)}/{len(reach)}",
                     "flipped_share": float(np.mean([r["selected_flipped_share"] for r in mine])),
                     "target": target})
    return rows


def table(rows: list[dict], title: str) -> str:
    out = [f"**{title}** (target: uniform's last-epoch validation accuracy {rows[0]['target']:.4f})", "",
           ("| strategy | test acc (mean ± std) | vs uniform, paired 95% | total compute | compute to target | "
            "reached | flipped share of selected |"), "|---|---|---|---|---|---|---|"]
    for r in rows:
        ctt = "—" if r["compute_to_target"] is None else f"{r['compute_to_target']:.2f}x"
        out.append(f"| {r['strategy']} | {r['test_acc_mean']:.4f} ± {r['test_acc_std']:.4f} | "
                   f"{r['diff']:+.4f} [{r['diff_low']:+.4f}, {r['diff_high']:+.4f}] | {r['compute_ratio']:.2f}x | "
                   f"{ctt} | {r['reached']} | {r['flipped_share']:.3f} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="build/rho")
    p.add_argument("--model", default="mlp", choices=sorted(MODELS))
    p.add_argument("--train", type=int, default=20000)
    p.add_argument("--holdout", type=int, default=5000)
    p.add_argument("--val", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--ref-epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--candidates", type=int, default=5)
    p.add_argument("--fraction", type=float, default=0.5, help="epoch_fraction of the candidate strategies")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--evals", type=int, default=4)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.3])
    p.add_argument("--strategies", nargs="+", default=["uniform", "online_top_loss", "rho_holdout", "rho_crossfit",
                                                       "rho_holdout+guard", "rho_crossfit+guard"])
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    make_model = MODELS[args.model]
    report = [(f"model {args.model}, train {args.train}, holdout {args.holdout}, val {args.val}, "
               f"epochs {args.epochs}, batch {args.batch}, candidates {args.candidates}, "
               f"epoch_fraction {args.fraction}, reference epochs {args.ref_epochs}, seeds {args.seeds}")]
    for noise in args.noise:
        runs = []
        for seed in args.seeds:
            d = split(seed, args.train, args.holdout, args.val, noise)
            refs = {}
            for name in args.strategies:
                kind = "holdout" if "holdout" in name else "crossfit" if "crossfit" in name else None
                if kind and kind not in refs:
                    refs[kind] = reference(kind, d, seed, make_model, args.ref_epochs)
                il, cost = refs[kind] if kind else (None, 0)
                r = run(name, d, seed, args, make_model, il, cost)
                runs.append(r)
                print(f"noise {noise} seed {seed} {name}: test {r['test_acc']:.4f} compute {r['compute']:.3g} "
                      f"flipped-selected {r['selected_flipped_share']:.3f} {r['seconds']:.0f}s", flush=True)
            (out / f"runs_noise{noise}.json").write_text(json.dumps(runs))
        rows = summarize(runs, args.strategies, args.evals)
        report.append(table(rows, f"fashion-mnist, {args.model}, label noise {noise:.0%}"))
        (out / "report.md").write_text("\n\n".join(report) + "\n")
        print(report[-1], flush=True)


if __name__ == "__main__":
    main()
