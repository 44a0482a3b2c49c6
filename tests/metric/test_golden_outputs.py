"""Every miner's output, bit for bit, against the outputs recorded before the per-call overhead was cut (issue 17).

Cases: B in 64, 256, 1024 (and 2048 for the batch-hard family); the batch against itself, against a separate
reference set, against a reference that starts with the batch (cross-batch memory layout), and with a tensor
positive_mask; Gaussian embeddings (distinct distances) and dyadic unit vectors (every distance exact, many
ties). Each case stores a SHA-256 of the output tensors and a fingerprint of the inputs' distance matrix. Gaussian
distances depend on the BLAS kernel, so a case keeps one recording per platform fingerprint: the original machine's
(before issue 17's speed work) and, under "platforms", the CI machine's (recorded at main cf16e9c, where 101 of the
109 Gaussian cases matched the original machine's outputs bit for bit and the 8 others, semi-hard windows, differ
only through this platform's distances). A platform with neither fingerprint skips with a message naming the case.

Regenerate (only when a change of outputs is intended): `python tests/metric/test_golden_outputs.py --write`; add
this platform's recording to every case: `... --add-platform`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

from hardmine.metric import (
    BatchAllMiner,
    BatchHardMiner,
    DistanceWeightedMiner,
    DotProductSimilarity,
    EasyPositiveHardNegativeMiner,
    MultiSimilarityMiner,
    PairMarginMiner,
    SemiHardMiner,
    SquaredEuclideanDistance,
    TripletMarginMiner,
)

GOLDEN = Path(__file__).with_name("golden_outputs.json")
DIM, CLASSES = 128, 16
SIZES = (64, 256, 1024)
LAYOUTS = ("self", "ref", "xbm", "mask")
KINDS = ("gauss", "ties")
FOLDED = ("batch_hard", "batch_hard_dot", "easy_positive_hard_negative")
SLOW_AT_1024 = {"triplet_margin_semihard", "batch_all"}  # enumerate O(B^3) candidates: recorded up to B=256

MINERS = {
    "batch_hard": BatchHardMiner,
    "batch_hard_sqeuclid": lambda: BatchHardMiner(distance=SquaredEuclideanDistance()),
    "batch_hard_dot": lambda: BatchHardMiner(distance=DotProductSimilarity()),
    "easy_positive_hard_negative": EasyPositiveHardNegativeMiner,
    "semi_hard": SemiHardMiner,
    "triplet_margin_semihard": lambda: TripletMarginMiner(0.2, "semihard", max_triplets=20000, seed=0),
    "batch_all": lambda: BatchAllMiner(max_triplets=20000, seed=0),
    "distance_weighted": lambda: DistanceWeightedMiner(seed=0),
    "multi_similarity": MultiSimilarityMiner,
    "pair_margin": PairMarginMiner,
    "pair_margin_dot": lambda: PairMarginMiner(pos_margin=0.5, neg_margin=0.3, distance=DotProductSimilarity()),
}


def embeddings(kind: str, rows: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "gauss":
        return torch.randn(rows, DIM, generator=g)
    # dyadic unit vectors: 4 entries of +-1/2 on one of 24 supports; every product and norm is exact
    supports = torch.randint(0, DIM, (24, 4), generator=g)
    pool = torch.zeros(24, DIM)
    signs = torch.where(torch.rand(24, 4, generator=g) < 0.5, -0.5, 0.5)
    for k in range(24):
        pool[k, supports[k].unique()] = signs[k, : supports[k].unique().numel()]
    pool = pool[pool.norm(dim=1) == 1.0]
    return pool[torch.randint(0, pool.shape[0], (rows,), generator=g)]


def case_inputs(kind: str, size: int, layout: str) -> tuple[tuple, dict]:
    """(args, kwargs) of one miner call."""
    seed = 1000 * size + 10 * KINDS.index(kind)
    x = embeddings(kind, size, seed)
    y = torch.randint(0, CLASSES, (size,), generator=torch.Generator().manual_seed(seed + 1))
    y[size // 3] = CLASSES + 5  # a single-sample class
    if layout == "self":
        return (x, y), {}
    if layout == "mask":
        return (x, None), {"positive_mask": (y[:, None] % 5) == (y[None, :] % 5)}
    other = embeddings(kind, size, seed + 2)
    other_y = torch.randint(0, CLASSES + 2, (size,), generator=torch.Generator().manual_seed(seed + 3))
    if layout == "ref":
        q = size // 4
        return (x[:q], y[:q], other, other_y), {}
    return (x, y, torch.cat([x, other]), torch.cat([y, other_y])), {"ref_starts_with_batch": True}


def fingerprint(miner, args) -> str:
    x, ref = args[0], args[2] if len(args) > 2 else None
    d = miner.distance.pairwise(x, ref).double()
    digest = hashlib.sha256(d.numpy().tobytes())
    digest.update(torch.log1p(d.abs()).numpy().tobytes())
    return digest.hexdigest()[:16]


def output_hash(out: tuple[torch.Tensor, ...]) -> str:
    digest = hashlib.sha256()
    for t in out:
        assert t.dtype == torch.int64
        digest.update(str(t.numel()).encode())
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def cases():
    for name in FOLDED:  # beyond one block: the label-folded triangle of blocks
        for kind in KINDS:
            yield f"{name}-2048-self-{kind}"
    for name in MINERS:
        for size in SIZES:
            for layout in LAYOUTS:
                if size == 1024 and (layout in ("mask", "xbm") or name in SLOW_AT_1024):
                    continue
                for kind in KINDS:
                    yield f"{name}-{size}-{layout}-{kind}"


def run_case(case: str) -> tuple[str, str, list[int]]:
    name, size, layout, kind = case.split("-")
    miner = MINERS[name]()
    args, kwargs = case_inputs(kind, int(size), layout)
    out = miner(*args, **kwargs)
    return fingerprint(miner, args), output_hash(out), [t.numel() for t in out]


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("case", list(cases()))
def test_outputs_bit_identical_to_recorded(golden, case):
    got_fingerprint, got_hash, got_sizes = run_case(case)
    want = recording_for(golden[case], got_fingerprint)
    if want is None:
        pytest.skip(f"{case}: this platform's distance matrix differs from every recording machine's")
    assert got_sizes == want["sizes"]
    assert got_hash == want["hash"]


def recording_for(entry: dict, fingerprint: str) -> dict | None:
    """The recording of `entry` made on a platform whose distance matrix has this fingerprint, or None."""
    if entry["fingerprint"] == fingerprint:
        return entry
    return entry.get("platforms", {}).get(fingerprint)


def test_recorded_cases_cover_every_case(golden):
    assert sorted(golden) == sorted(cases())
    assert all(any(v["sizes"]) for k, v in golden.items() if "-self-" in k)  # not all empty outputs


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    torch.set_num_threads(1)
    table = {}
    for case in cases():
        fp, h, sizes = run_case(case)
        table[case] = {"fingerprint": fp, "hash": h, "sizes": sizes}
    GOLDEN.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(table)} cases to {GOLDEN}")

if __name__ == "__main__" and sys.argv[1:] == ["--add-platform"]:
    torch.set_num_threads(1)
    table = json.loads(GOLDEN.read_text())
    added = 0
    for case in cases():
        fp, h, sizes = run_case(case)
        if recording_for(table[case], fp) is None:
            table[case].setdefault("platforms", {})[fp] = {"hash": h, "sizes": sizes}
            added += 1
    GOLDEN.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"added this platform's recording to {added} cases in {GOLDEN}")
