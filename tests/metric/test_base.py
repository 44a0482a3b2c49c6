"""What every registered miner shares: the output contract, PML losses, edge batches, argument errors."""

import pytest
import torch

from hardmine.metric import MINERS, BatchHardMiner, CosineSimilarity, DistanceWeightedMiner, TripletMarginMiner

SEEDED = {"distance_weighted", "triplet_margin", "batch_all"}


def build(name, **kwargs):
    if name in SEEDED:
        kwargs.setdefault("seed", 0)
    if name == "triplet_margin":
        kwargs.setdefault("max_triplets", 500)
    return MINERS[name](**kwargs)


def check_output(out, labels, ref_labels, arity):
    assert isinstance(out, tuple) and len(out) == arity
    assert all(t.dtype == torch.int64 and t.ndim == 1 for t in out)
    same = lambda i, j: labels[i] == ref_labels[j]  # noqa: E731
    if arity == 3:
        a, p, n = out
        assert len(a) == len(p) == len(n)
        assert all(same(i, j) and not same(i, k) for i, j, k in zip(a.tolist(), p.tolist(), n.tolist()))
    else:
        a1, p, a2, n = out
        assert len(a1) == len(p) and len(a2) == len(n)
        assert all(same(i, j) for i, j in zip(a1.tolist(), p.tolist()))
        assert not any(same(i, k) for i, k in zip(a2.tolist(), n.tolist()))


@pytest.mark.parametrize("name", sorted(MINERS))
def test_output_contract_and_pml_losses(name, random_data):
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    x, y = random_data
    x = x.clone().requires_grad_(True)
    miner = build(name)
    out = miner(x, y)
    check_output(out, y.tolist(), y.tolist(), miner.arity)
    assert len(out[0]) > 0
    assert all((u != v).all() for u, v in zip(out[0::2], out[1::2]))  # never an embedding with itself
    loss_fn = losses.TripletMarginLoss(margin=0.2) if miner.arity == 3 else losses.ContrastiveLoss()
    loss = loss_fn(x, y, out)
    loss.backward()
    assert torch.isfinite(loss) and x.grad is not None
    ref_out = miner(x[:10], y[:10], x, y)
    check_output(ref_out, y[:10].tolist(), y.tolist(), miner.arity)
    assert torch.isfinite(loss_fn(x[:10], y[:10], ref_out, x, y))


@pytest.mark.parametrize("name", sorted(MINERS))
def test_degenerate_batches_give_empty_output(name):
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    miner = build(name)
    singletons = miner(x, torch.arange(6))  # no positive anywhere: no triplet, no positive pair
    assert len(singletons) == miner.arity and all(t.dtype == torch.int64 for t in singletons)
    assert singletons[0].numel() == singletons[1].numel() == 0
    one_class = miner(x, torch.zeros(6, dtype=torch.int64))  # no negative anywhere
    assert all(t.numel() == 0 for t in (one_class if miner.arity == 3 else one_class[2:]))
    one = miner(x[:1], torch.tensor([3]))
    assert all(t.numel() == 0 for t in one)
    empty_ref = miner(x, torch.zeros(6, dtype=torch.int64), x[:0], torch.zeros(0, dtype=torch.int64))
    assert all(t.numel() == 0 for t in empty_ref)


@pytest.mark.parametrize("name", sorted(MINERS))
def test_positive_mask_tensor_equals_labels(name, tie_data):
    x, y = tie_data
    mask = y[:, None] == y[None, :]
    by_labels = build(name)(x, y)
    by_mask = build(name, positive_mask=mask)(x, None)
    by_call = build(name)(x, y, positive_mask=lambda a, b: a[:, None] == b[None, :])
    for u, v, w in zip(by_labels, by_mask, by_call):
        assert torch.equal(u, v) and torch.equal(u, w)


@pytest.mark.parametrize("name", sorted(MINERS))
def test_half_precision_and_integer_label_dtypes(name, random_data):
    x, y = random_data
    want = build(name)(x.half().float(), y)
    got = build(name)(x.half(), y.int())
    assert all(torch.equal(u, v) for u, v in zip(want, got))


def test_errors_name_the_argument_and_value():
    miner = BatchHardMiner()
    x, y = torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 2])
    cases = [
        ((x.tolist(), y), TypeError, "embeddings must be a torch.Tensor, got list"),
        ((x.long(), y), TypeError, "embeddings must be a floating-point tensor, got dtype torch.int64"),
        ((x[0], y), ValueError, r"embeddings must be 2-D \[batch, dim\], got shape \(3,\)"),
        ((x.index_fill(0, torch.tensor([3]), float("nan")), y), ValueError, r"non-finite .* rows \[3\]"),
        ((x, y[:4]), ValueError, "labels has length 4 but embeddings has 5 rows"),
        ((x, y.float()), TypeError, "labels must hold integers .* got dtype torch.float32"),
        ((x, y[:, None]), ValueError, r"labels must be 1-D, got shape \(5, 1\)"),
        ((x, None), ValueError, "labels is None"),
        ((x, y, x), ValueError, "ref_emb was given without ref_labels"),
        ((x, y, None, y), ValueError, "ref_labels was given without ref_emb"),
        ((x, y, torch.randn(4, 2), y[:4]), ValueError, "ref_emb has dim 2 but embeddings has dim 3"),
        ((x, y, x, y[:3]), ValueError, "ref_labels has length 3 but ref_emb has 5 rows"),
        ((x, y, x[:, :0].T, y), ValueError, "ref_emb has dim"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            miner(*args)
    with pytest.raises(ValueError, match=r"positive_mask must have shape \(5, 5\)"):
        miner(x, y, positive_mask=torch.ones(5, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="positive_mask must be a boolean tensor, got dtype torch.int64"):
        miner(x, y, positive_mask=torch.ones(5, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="ref_starts_with_batch=True but ref_emb has 3 rows"):
        miner(x, y, x[:3], y[:3], ref_starts_with_batch=True)
    with pytest.raises(ValueError, match="ref_labels does not start with labels"):
        miner(x, y, x, y.flip(0), ref_starts_with_batch=True)


def test_constructor_errors():
    with pytest.raises(TypeError, match="distance must be a hardmine.metric distance"):
        BatchHardMiner(distance="euclidean")
    with pytest.raises(TypeError, match="positive_mask must be None"):
        BatchHardMiner(positive_mask=[[True]])
    with pytest.raises(ValueError, match="max_block_bytes must be >= 1, got 0"):
        BatchHardMiner(max_block_bytes=0)
    with pytest.raises(ValueError, match="margin must be in"):
        MINERS["semi_hard"](margin=-0.1)
    with pytest.raises(TypeError, match="seed"):
        DistanceWeightedMiner(seed=1.5)
    with pytest.raises(ValueError, match="epsilon"):
        MINERS["multi_similarity"](epsilon=float("nan"))


def test_registry_builds_from_strings_and_defaults_follow_pml():
    assert set(MINERS) == {"batch_hard", "batch_all", "easy_positive_hard_negative", "semi_hard",
                           "triplet_margin", "distance_weighted", "multi_similarity", "pair_margin"}
    assert repr(BatchHardMiner().distance) == "EuclideanDistance(normalize=True)"
    assert isinstance(MINERS["multi_similarity"]().distance, CosineSimilarity)
    assert TripletMarginMiner().margin == 0.2 and TripletMarginMiner().type_of_triplets == "all"
