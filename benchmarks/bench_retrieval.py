"""Retrieval mining speed and approximate-search recall, against plain baselines run in the same process.

Exact: hardmine's mine_hard_negatives (exact index) against FAISS IndexFlatIP with default settings and a plain
blocked torch matmul + top-k, on a random unit-normalised corpus. The queries are split into rounds; every round
runs the three methods in a rotating order on the same queries, and the ratio printed is the median over rounds.
Approximate: IVF at several nprobe against exact search on the same queries (speed-up and recall@k), on the
isotropic corpus (the worst case for any index: neighbours are barely closer than random rows) and on a clustered
corpus (rows drawn around cluster centres, as real embeddings are).

    python benchmarks/bench_retrieval.py                      # 10k queries, 1M x 384 corpus, top-50
    python benchmarks/bench_retrieval.py --corpus 100000 --queries 2000   # a quick run
"""

from __future__ import annotations

import os

# torch and faiss-cpu each ship an OpenMP runtime; with both spin-waiting, each slows the other several-fold on a
# small or shared machine. Passive waiting must be chosen before either library loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from hardmine.retrieval import IVFSearch, mine_hard_negatives  # noqa: E402


def unit_rows(rng: np.random.Generator, n: int, d: int, centres: np.ndarray | None = None,
              spread: float = 0.0, chunk: int = 131072) -> np.ndarray:
    """n random unit rows (isotropic, or around random `centres` with per-coordinate noise `spread`)."""
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        x = rng.standard_normal((stop - start, d), dtype=np.float32)
        if centres is not None:
            x = centres[rng.integers(len(centres), size=stop - start)] + spread * x
        out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def blocked_matmul_topk(q: np.ndarray, c: np.ndarray, k: int, qb: int = 1024, cb: int = 65536) -> np.ndarray:
    """The plain baseline: torch matmul per (query block, corpus block), top-k per tile, top-k of the tiles."""
    tc, out = torch.from_numpy(c), []
    for i in range(0, len(q), qb):
        tq, vals, ids = torch.from_numpy(q[i:i + qb]), [], []
        for j in range(0, len(c), cb):
            v, ix = torch.topk(tq @ tc[j:j + cb].T, k, dim=1)
            vals.append(v)
            ids.append(ix + j)
        _, pick = torch.topk(torch.cat(vals, 1), k, dim=1)
        out.append(torch.gather(torch.cat(ids, 1), 1, pick).numpy())
    return np.concatenate(out)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def exact_speed(q: np.ndarray, c: np.ndarray, k: int, rounds: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    flat = faiss.IndexFlatIP(c.shape[1])
    flat.add(c)
    times: dict[str, list[float]] = {"hardmine": [], "faiss_flat": [], "matmul_topk": []}
    ratios = []
    for r, idx in enumerate(np.array_split(np.arange(len(q)), rounds)):
        qr = q[idx]
        pos = rng.integers(len(c), size=len(qr))
        methods = {
            "hardmine": lambda: mine_hard_negatives(qr, c, pos, num_negatives=k, range_max=k, progress=False),
            "faiss_flat": lambda: flat.search(qr, k),
            "matmul_topk": lambda: blocked_matmul_topk(qr, c, k),
        }
        names = list(methods)
        names = names[r % 3:] + names[:r % 3]
        took = {name: timed(methods[name])[0] for name in names}
        for name, t in took.items():
            times[name].append(t)
        ratios.append(took["hardmine"] / min(took["faiss_flat"], took["matmul_topk"]))
        print(f"  round {r + 1}/{rounds} ({len(qr)} queries): " + ", ".join(f"{n} {t:.2f}s" for n, t in took.items())
              + f"; hardmine / faster baseline {ratios[-1]:.3f}", flush=True)
    out = {f"{n}_s": sum(t) for n, t in times.items()}
    out["ratio_median"] = statistics.median(ratios)
    out["ratio_vs_faiss_median"] = statistics.median(h / f for h, f in zip(times["hardmine"], times["faiss_flat"]))
    out["ratio_vs_matmul_median"] = statistics.median(h / m for h, m in zip(times["hardmine"], times["matmul_topk"]))
    return out


def approximate(label: str, q: np.ndarray, c: np.ndarray, k: int, nprobes: list[int], seed: int) -> None:
    pos = np.random.default_rng(seed).integers(len(c), size=len(q))
    kw = dict(num_negatives=k, range_max=k, progress=False, recall_sample=0)
    t_exact, exact = timed(lambda: mine_hard_negatives(q, c, pos, **kw))
    backend = IVFSearch(nprobe=nprobes[0], seed=seed)
    index = backend.build(_as_embeddings(c))
    print(f"{label}: exact {t_exact:.2f}s for {len(q)} queries; IVF nlist {index.nlist} built in "
          f"{backend.build_seconds_:.1f}s", flush=True)
    for nprobe in nprobes:
        ivf = IVFSearch(nlist=index.nlist, nprobe=nprobe, seed=seed)
        t_ivf, got = timed(lambda: mine_hard_negatives(q, c, pos, index=ivf, **kw))
        search_s = t_ivf - ivf.build_seconds_
        recall = np.mean([np.intersect1d(a[a >= 0], e[e >= 0]).size / max(1, (e >= 0).sum())
                          for a, e in zip(got.indices, exact.indices)])
        print(f"  nprobe {nprobe:4d}: recall@{k} {recall:.3f}, search {search_s:.2f}s, "
              f"speed-up {t_exact / search_s:.1f}x (with build: {t_exact / t_ivf:.2f}x)", flush=True)


def _as_embeddings(c: np.ndarray):
    from hardmine.retrieval.embeddings import Embeddings
    return Embeddings("corpus_emb", c, cosine=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--corpus", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--approx-queries", type=int, default=2000)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--clusters", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"threads: torch {torch.get_num_threads()}, faiss {faiss.omp_get_max_threads()}", flush=True)
    c = unit_rows(rng, args.corpus, args.dim)
    q = unit_rows(rng, args.queries, args.dim)
    print(f"exact top-{args.k}: {args.queries} queries x {args.corpus} x {args.dim} corpus, {args.rounds} rounds",
          flush=True)
    res = exact_speed(q, c, args.k, args.rounds, args.seed)
    print(f"total: hardmine {res['hardmine_s']:.1f}s, faiss IndexFlatIP {res['faiss_flat_s']:.1f}s, "
          f"matmul+topk {res['matmul_topk_s']:.1f}s", flush=True)
    print(f"median ratio hardmine / faster baseline: {res['ratio_median']:.3f} (target <= 1.2); "
          f"vs faiss {res['ratio_vs_faiss_median']:.3f}, vs matmul {res['ratio_vs_matmul_median']:.3f}", flush=True)
    na = min(args.approx_queries, args.queries)
    approximate("isotropic corpus", q[:na], c, args.k, args.nprobe, args.seed)
    del c
    centres = unit_rows(rng, args.clusters, args.dim)
    spread = 1.0 / np.sqrt(args.dim)  # rows of one cluster have cosine about 0.5
    cc = unit_rows(rng, args.corpus, args.dim, centres, spread)
    qc = unit_rows(rng, na, args.dim, centres, spread)
    approximate(f"clustered corpus ({args.clusters} centres)", qc, cc, args.k, args.nprobe, args.seed)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
