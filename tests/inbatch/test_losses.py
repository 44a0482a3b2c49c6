import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hardmine as hm
from hardmine.inbatch.losses import LOSSES, FocalLoss, MisclassifiedUpweight, OHEMLoss, misclassified
from hardmine.sampling.memory import ScoreMemory

F64 = torch.float64


def torchvision_sigmoid_focal_loss(inputs, targets, alpha, gamma):
    """The formula of torchvision.ops.sigmoid_focal_loss (reduction='none'), written out independently."""
    p = 1 / (1 + torch.exp(-inputs))
    ce = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p))
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def test_registry():
    from hardmine import ClassWeightedLoss, LogitAdjustedLoss

    assert LOSSES == {"ohem": OHEMLoss, "focal": FocalLoss, "misclassified": MisclassifiedUpweight,
                      "class_weighted": ClassWeightedLoss, "logit_adjusted": LogitAdjustedLoss}


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.5, 0.0), (-1.0, 1.5), (0.9, 3.0)])
def test_binary_focal_matches_torchvision_formula(alpha, gamma):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 9, generator=gen, dtype=F64) * 3
    targets = torch.rand(16, 9, generator=gen, dtype=F64).round()
    expected = torchvision_sigmoid_focal_loss(logits, targets, alpha, gamma)
    loss = FocalLoss(alpha=None if alpha < 0 else alpha, gamma=gamma, reduction="none")
    assert torch.allclose(loss(logits, targets), expected, atol=1e-6, rtol=0)
    mean = FocalLoss(alpha=None if alpha < 0 else alpha, gamma=gamma)(logits, targets)
    assert mean.item() == pytest.approx(expected.mean().item(), abs=1e-6)


def test_binary_focal_float32_close_to_float64():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(1000, generator=gen, dtype=F64)
    targets = torch.rand(1000, generator=gen, dtype=F64).round()
    out32 = FocalLoss(reduction="none")(logits.float(), targets.float())
    assert torch.allclose(out32.double(), torchvision_sigmoid_focal_loss(logits, targets, 0.25, 2.0), atol=1e-6)


@pytest.mark.parametrize("alpha", [None, 0.25, [0.1, 0.5, 1.0, 2.0, 0.0]])
def test_multiclass_focal_matches_formula(alpha):
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(32, 5, generator=gen, dtype=F64) * 2
    target = torch.randint(0, 5, (32,), generator=gen)
    p_t = torch.softmax(logits, 1)[torch.arange(32), target]
    alpha_t = 1.0 if alpha is None else (alpha if isinstance(alpha, float) else torch.tensor(alpha, dtype=F64)[target])
    expected = -alpha_t * (1 - p_t) ** 2.0 * torch.log(p_t)
    assert torch.allclose(FocalLoss(alpha=alpha, reduction="none")(logits, target), expected, atol=1e-6, rtol=0)
    assert FocalLoss(alpha=alpha, reduction="sum")(logits, target).item() == pytest.approx(expected.sum().item())


def test_gamma_zero_without_alpha_is_cross_entropy():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 6, 5, 7, generator=gen, dtype=F64)
    target = torch.randint(0, 6, (4, 5, 7), generator=gen)
    target[0, 0] = -100
    focal = FocalLoss(alpha=None, gamma=0.0)
    assert focal(logits, target).item() == pytest.approx(F.cross_entropy(logits, target).item(), abs=1e-12)
    none = FocalLoss(alpha=None, gamma=0.0, reduction="none")(logits, target)
    assert torch.allclose(none, F.cross_entropy(logits, target, reduction="none"))


def test_focal_down_weights_easy_examples():
    logits = torch.tensor([[4.0, 0.0], [0.2, 0.0]])
    target = torch.tensor([0, 0])
    focal = FocalLoss(alpha=None, reduction="none")(logits, target)
    ce = F.cross_entropy(logits, target, reduction="none")
    ratio = focal / ce
    assert ratio[0] < 0.001 and 0.2 < ratio[1] < 0.3


def test_focal_bad_input():
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="alpha must be in"):
        FocalLoss(alpha=1.5)
    with pytest.raises(ValueError, match="non-negative"):
        FocalLoss(alpha=[0.5, -1.0])
    with pytest.raises(ValueError, match="fits neither"):
        FocalLoss()(torch.zeros(4, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="float targets"):
        FocalLoss()(torch.zeros(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FocalLoss()(torch.zeros(4), torch.full((4,), 2.0))
    with pytest.raises(ValueError, match="3 class weights"):
        FocalLoss(alpha=[1.0, 1.0, 1.0])(torch.zeros(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        FocalLoss()(torch.zeros(4, 5), torch.full((4,), 5))
    with pytest.raises(ValueError, match="reduction"):
        FocalLoss(reduction="avg")


def test_ohem_gradient_flows_only_through_kept_elements():
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(20, 3, generator=gen, requires_grad=True)
    target = torch.randint(0, 3, (20,), generator=gen)
    per = FocalLoss(alpha=None, reduction="none")(logits, target).detach()
    ohem = OHEMLoss(FocalLoss(alpha=None, reduction="none"), keep=5)
    out = ohem(logits, target)
    top = torch.topk(per, 5).indices
    assert out.item() == pytest.approx(per[top].mean().item())
    out.backward()
    has_grad = logits.grad.abs().sum(1) > 0
    assert torch.equal(torch.nonzero(has_grad).reshape(-1), torch.sort(top).values)


def test_ohem_fraction_min_kept_and_reductions():
    per_loss = nn.CrossEntropyLoss(reduction="none")
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(10, 4, generator=gen)
    target = torch.randint(0, 4, (10,), generator=gen)
    per = per_loss(logits, target)
    top3 = torch.topk(per, 3).indices
    assert OHEMLoss(per_loss, keep=0.25)(logits, target).item() == pytest.approx(per[top3].mean().item())
    assert OHEMLoss(per_loss, keep=1, min_kept=3, reduction="sum")(logits, target).item() == \
        pytest.approx(per[top3].sum().item())
    none = OHEMLoss(per_loss, keep=3, reduction="none")(logits, target)
    expected = torch.zeros(10)
    expected[top3] = per[top3]
    assert torch.allclose(none, expected)


def test_ohem_threshold_matches_segmentation_ohem_cross_entropy():
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 5, 8, 8, generator=gen, dtype=F64) * 2
    target = torch.randint(0, 5, (2, 8, 8), generator=gen)
    target[:, :3] = 255
    thresh, min_kept = 0.7, 20
    # the OhemCrossEntropy of segmentation code bases, written out
    pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none").reshape(-1)
    mask = target.reshape(-1) != 255
    prob = torch.softmax(logits, 1).gather(1, target.clamp_max(4)[:, None]).reshape(-1)[mask]
    sorted_prob, ind = prob.sort()
    threshold = max(sorted_prob[min(min_kept, prob.numel() - 1)].item(), thresh)
    expected = pixel[mask][ind][sorted_prob < threshold].mean()
    ohem = OHEMLoss(nn.CrossEntropyLoss(reduction="none", ignore_index=255), threshold=-math.log(thresh),
                    min_kept=min_kept, ignore_index=255)
    assert ohem(logits, target).item() == pytest.approx(expected.item(), rel=1e-9)


def test_ohem_does_not_change_inputs():
    logits = torch.randn(6, 3)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    before = logits.clone()
    OHEMLoss(nn.CrossEntropyLoss(reduction="none"), keep=2)(logits, target)
    assert torch.equal(logits, before)


def test_ohem_bad_input():
    ce = nn.CrossEntropyLoss(reduction="none")
    with pytest.raises(ValueError, match="reduction='none'"):
        OHEMLoss(nn.CrossEntropyLoss(), keep=2)
    with pytest.raises(ValueError, match="exactly one of keep and threshold"):
        OHEMLoss(ce)
    with pytest.raises(ValueError, match="exactly one of keep and threshold"):
        OHEMLoss(ce, keep=2, threshold=0.5)
    with pytest.raises(ValueError, match="min_kept"):
        OHEMLoss(ce, keep=2, min_kept=-1)
    with pytest.raises(ValueError, match="keep must be in"):
        OHEMLoss(ce, keep=1.0)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        OHEMLoss(ce, threshold=math.nan)
    with pytest.raises(ValueError, match=r"keep=9 is larger than the number of loss elements \(4\)"):
        OHEMLoss(ce, keep=9)(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="non-finite"):
        OHEMLoss(ce, keep=2)(torch.tensor([[math.nan, 0.0]] * 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="scalar"):
        OHEMLoss(lambda x, y: x.sum(), keep=1)(torch.zeros(3), torch.zeros(3))


def test_misclassified_upweight_without_memory():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    target = torch.tensor([0, 0, 1])                   # rows 1 and 2 are wrong
    ce = nn.CrossEntropyLoss(reduction="none")
    per = ce(logits, target)
    w = torch.tensor([1.0, 3.0, 3.0])
    assert misclassified(logits, target).tolist() == [False, True, True]
    assert MisclassifiedUpweight(ce, 3.0)(logits, target).item() == pytest.approx((w * per).sum().item() / 7)
    assert torch.allclose(MisclassifiedUpweight(ce, 3.0, reduction="none")(logits, target), w * per)
    bce = nn.BCEWithLogitsLoss(reduction="none")
    assert misclassified(torch.tensor([1.0, -1.0]), torch.tensor([0.0, 0.0])).tolist() == [True, False]
    assert MisclassifiedUpweight(bce, 2.0, reduction="sum")(torch.tensor([1.0, -1.0]), torch.tensor([0.0, 0.0])) \
        .item() == pytest.approx(2 * F.softplus(torch.tensor(1.0)).item() + F.softplus(torch.tensor(-1.0)).item())


def test_misclassified_adaboost_weights_grow_shrink_and_cap():
    memory = ScoreMemory(4)
    loss = MisclassifiedUpweight(nn.CrossEntropyLoss(reduction="none"), 2.0, memory=memory, max_weight=5.0,
                                 reduction="none")
    wrong = torch.tensor([[0.0, 1.0]] * 2)             # predicts class 1
    right = torch.tensor([[1.0, 0.0]] * 2)             # predicts class 0
    target = torch.tensor([0, 0])
    idx = torch.tensor([1, 3])
    weights = []
    for logits in (wrong, wrong, wrong, right, right, right):
        per = nn.functional.cross_entropy(logits, target, reduction="none")
        weights.append((loss(logits, target, idx) / per)[0].item())
    assert weights == pytest.approx([2.0, 4.0, 5.0, 4.0, 2.0, 1.0])
    assert memory.get("misclassified_exponent", idx).tolist() == [0.0, 0.0]
    assert memory.get("seen").tolist() == [0, 0, 0, 0]  # the memory's own scores are not touched
    with pytest.raises(ValueError, match="indices are required"):
        loss(wrong, target)


def test_misclassified_shares_a_samplers_memory_without_touching_its_scores():
    memory = ScoreMemory(20)
    sampler = hm.HardExampleSampler(memory, batch_size=4, policy="uniform", seed=0)
    memory.update(np.arange(4), np.full(4, 5.0))
    loss = MisclassifiedUpweight(nn.CrossEntropyLoss(reduction="none"), 2.0, memory=sampler.memory)
    logits = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    loss(logits, torch.tensor([1, 1, 1, 1]), torch.arange(4))
    assert memory.get("score")[:4].tolist() == [5.0] * 4
    assert memory.get("seen")[:4].tolist() == [1] * 4
    assert memory.get("misclassified_exponent")[:4].tolist() == [1.0, 1.0, 0.0, 0.0]
    restored = ScoreMemory(20)
    MisclassifiedUpweight(nn.CrossEntropyLoss(reduction="none"), memory=restored)
    restored.load_state_dict(memory.state_dict())  # the exponents are checkpointed with the memory
    assert restored.get("misclassified_exponent")[:4].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_misclassified_duplicate_indices_count_each_occurrence_in_order():
    memory = ScoreMemory(5)
    loss = MisclassifiedUpweight(nn.CrossEntropyLoss(reduction="none"), 2.0, memory=memory)
    weights = loss.weights(torch.tensor([True, True, False, True]), torch.tensor([0, 0, 1, 0]))
    assert weights.tolist() == [2.0, 4.0, 1.0, 8.0]
    assert memory.get("misclassified_exponent").tolist() == [3.0, 0.0, 0.0, 0.0, 0.0]
    weights = loss.weights(torch.tensor([False, False, False, False]), torch.tensor([0, 0, 0, 0]))
    assert weights.tolist() == [4.0, 2.0, 1.0, 1.0]  # lowered once per occurrence, not below 0
    with pytest.raises(TypeError, match="memory must be a hardmine.ScoreMemory"):
        MisclassifiedUpweight(nn.CrossEntropyLoss(reduction="none"), memory=np.zeros(3))


def test_misclassified_bad_arguments():
    ce = nn.CrossEntropyLoss(reduction="none")
    with pytest.raises(ValueError, match="factor"):
        MisclassifiedUpweight(ce, 0.5)
    with pytest.raises(ValueError, match="max_weight"):
        MisclassifiedUpweight(ce, 2.0, max_weight=math.inf)
    with pytest.raises(ValueError, match="cannot compare"):
        MisclassifiedUpweight(ce)(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))


def test_one_per_sample_cross_entropy_helper():
    """hardmine computes per-sample cross-entropy in one place; compare, the reference model, the evaluation and
    the loss scorer, and the HF Trainer's default use it."""
    import ast
    from pathlib import Path

    import hardmine
    from hardmine import scores
    from hardmine.diagnostics.evaluation import per_sample_loss
    from hardmine.experiments import strategies
    from hardmine.inbatch.losses import per_sample_cross_entropy

    allowed = {"inbatch/losses.py"}
    root = Path(hardmine.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == \
                    "cross_entropy" and any(k.arg == "reduction" and getattr(k.value, "value", None) == "none"
                                            for k in node.keywords):
                found.append(path.relative_to(root).as_posix())
    assert set(found) <= allowed, sorted(set(found) - allowed)
    assert strategies.cross_entropy is per_sample_cross_entropy
    logits, targets = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    expected = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(per_sample_cross_entropy(logits, targets), expected)
    torch.testing.assert_close(scores.cross_entropy(logits.float(), targets), expected.float())
    np.testing.assert_allclose(per_sample_loss(logits.float(), targets.numpy()), expected.numpy(), rtol=1e-6)
