"""Evidence for retrieval mining: a linear adapter on frozen MiniLM embeddings, WordNet gloss -> lemma retrieval.

Three runs from the same start: in-batch negatives only; plus 4 mined hard negatives per query (NegativePool,
re-mined as the adapter learns); and the same with the false-negative filter (relative margin). Recall@1/10 on
held-out synsets: a query is a hit when any lemma of its synset is among the top k of all WordNet noun lemmas.

    python examples/wordnet_hard_negatives.py --wordnet /usr/share/wordnet
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch and faiss each bring an OpenMP runtime

import argparse  # noqa: E402
import functools  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from hardmine.datasets.wordnet import load_wordnet_nouns  # noqa: E402
from hardmine.retrieval import (  # noqa: E402
    IVFSearch,
    NegativePool,  # noqa: E402
    mine_hard_negatives,
)
from hardmine.retrieval.encode import encode_texts, load_encoder  # noqa: E402


def cached(path: Path, make) -> np.ndarray:
    if path.exists():
        return np.load(path)
    arr = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)
    return arr


class Adapter(torch.nn.Module):
    """Separate linear maps for glosses and lemmas, starting at the identity (the frozen model's own space)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.q, self.c = torch.nn.Linear(d, d), torch.nn.Linear(d, d)
        for lin in (self.q, self.c):
            torch.nn.init.eye_(lin.weight)
            torch.nn.init.zeros_(lin.bias)

    def encode(self, x: np.ndarray, side: str) -> np.ndarray:
        with torch.no_grad():
            return F.normalize(getattr(self, side)(torch.from_numpy(x)), dim=1).numpy()


def recall_at(adapter: Adapter, q: np.ndarray, c: np.ndarray, positives: list[list[int]], ks=(1, 10)) -> dict:
    qa, ca = torch.from_numpy(adapter.encode(q, "q")), torch.from_numpy(adapter.encode(c, "c"))
    hits = {k: 0 for k in ks}
    for start in range(0, len(qa), 500):
        top = torch.topk(qa[start:start + 500] @ ca.T, max(ks), dim=1).indices.numpy()
        for row, pos in zip(top, positives[start:start + 500]):
            for k in ks:
                hits[k] += bool(set(row[:k].tolist()) & set(pos))
    return {f"recall@{k}": hits[k] / len(qa) for k in ks}


def train(q, c, positives, test, args, relative_margin=None, hard=True, seed=0) -> tuple[Adapter, list]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    adapter = Adapter(q.shape[1])
    opt = torch.optim.Adam(adapter.parameters(), lr=args.lr)
    pool = None
    if hard:
        mine = functools.partial(mine_hard_negatives, positives=positives, num_negatives=args.negatives,
                                 range_max=args.range_max, relative_margin=relative_margin, progress=False)
        pool = NegativePool(lambda ids: adapter.encode(q[ids], "q"), lambda ids: adapter.encode(c[ids], "c"), mine,
                            num_queries=len(q), corpus_size=len(c), refresh_every=args.refresh_every, seed=seed)
    qt, ct = torch.from_numpy(q), torch.from_numpy(c)
    reports = []
    for step in range(args.steps):
        if pool is not None and (report := pool.step(step)) is not None:
            reports.append(report)
        batch = rng.choice(len(q), args.batch_size, replace=False)
        pos = np.array([positives[i][rng.integers(len(positives[i]))] for i in batch])
        qe = F.normalize(adapter.q(qt[batch]), dim=1)
        docs = pos
        if pool is not None:
            negs = pool.negatives(batch)
            docs = np.concatenate([pos, negs[negs >= 0]])
        de = F.normalize(adapter.c(ct[docs]), dim=1)
        logits = qe @ de.T / args.temperature
        # a document that is a positive of the query (another in-batch row sharing a lemma) is not a negative
        own = torch.tensor([[d in set(positives[i]) for d in docs] for i in batch])
        target = torch.arange(len(batch))
        logits = logits.masked_fill(own & ~F.one_hot(target, len(docs)).bool(), float("-inf"))
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return adapter, reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", default="/usr/share/wordnet")
    parser.add_argument("--cache", default="/tmp/hardmine-wordnet")
    parser.add_argument("--synsets", type=int, default=20000, help="synsets used as queries (all lemmas stay)")
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--range-max", type=int, default=30)
    parser.add_argument("--refresh-every", type=int, default=200)
    parser.add_argument("--relative-margin", type=float, default=0.05)
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()

    wn = load_wordnet_nouns(args.wordnet)
    rows = np.sort(np.random.default_rng(0).choice(len(wn), min(args.synsets, len(wn)), replace=False))
    task = wn.retrieval_task(rows)
    cache = Path(args.cache)
    encoder = None

    def encode(texts):
        nonlocal encoder
        encoder = encoder or load_encoder()
        return encode_texts(texts, encoder, batch_size=256)

    q = cached(cache / f"glosses_{len(rows)}.npy", lambda: encode(task.queries))
    c = cached(cache / "lemmas.npy", lambda: encode(task.corpus))
    order = np.random.default_rng(1).permutation(len(q))
    test_idx, train_idx = order[:args.test], order[args.test:]
    tr_q, te_q = q[train_idx], q[test_idx]
    tr_pos = [task.positives[i] for i in train_idx]
    te_pos = [task.positives[i] for i in test_idx]
    print(f"WordNet nouns: {len(tr_q)} train / {len(te_q)} held-out glosses, {len(c)} lemmas", flush=True)

    t0 = time.perf_counter()
    exact = mine_hard_negatives(tr_q, c, tr_pos, num_negatives=args.negatives, range_max=args.range_max,
                                progress=False)
    t_exact = time.perf_counter() - t0
    ivf = IVFSearch(nprobe=32)
    t0 = time.perf_counter()
    approx = mine_hard_negatives(tr_q, c, tr_pos, num_negatives=args.negatives, range_max=args.range_max,
                                 index=ivf, progress=False, recall_sample=0)
    t_ivf = time.perf_counter() - t0
    same = np.mean([len(set(a) & set(e)) / max(1, (e >= 0).sum()) for a, e in zip(approx.indices, exact.indices)])
    print(f"mining on MiniLM embeddings: exact {t_exact:.1f}s; IVF(nprobe 32) {t_ivf:.1f}s "
          f"({t_ivf - ivf.build_seconds_:.1f}s search), same negatives {same:.3f}", flush=True)
    fn = mine_hard_negatives(tr_q, c, tr_pos, num_negatives=args.negatives, range_max=args.range_max,
                             relative_margin=args.relative_margin, progress=False)
    s = fn.summary()
    print(f"relative margin {args.relative_margin}: dropped {s['dropped_relative_margin_share']:.1%} of the "
          f"top-{args.range_max} candidates", flush=True)

    print(f"frozen MiniLM: {recall_at(Adapter(q.shape[1]), te_q, c, te_pos)}", flush=True)
    runs = {"in-batch only": dict(hard=False), "hard negatives": dict(hard=True),
            f"hard negatives, relative_margin {args.relative_margin}": dict(hard=True,
                                                                           relative_margin=args.relative_margin)}
    for name, kw in runs.items():
        scores = []
        for seed in args.seeds:
            t0 = time.perf_counter()
            adapter, reports = train(tr_q, c, tr_pos, te_q, args, seed=seed, **kw)
            scores.append(recall_at(adapter, te_q, c, te_pos))
            changed = ", ".join(f"{r.fraction_changed:.0%}" for r in reports[1:])
            print(f"  {name} (seed {seed}, {time.perf_counter() - t0:.0f}s): {scores[-1]}"
                  + (f"; negatives changed at refreshes: {changed}" if reports else ""), flush=True)
        mean = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
        print(f"{name}: mean over {len(scores)} seed(s) {mean}", flush=True)


if __name__ == "__main__":
    main()
