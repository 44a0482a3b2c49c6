"""OHEM in a torchvision Faster R-CNN trains on exactly the per-image top losses after NMS, found by brute force.

Runs in the vision venv (`make test` builds it); the main suite does not collect it (tests/conftest.py).
"""

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from hardmine.integrations.torchvision import OHEM, hard_mining, mining_stats
from tests.integrations.torchvision_models import batch, small_faster_rcnn


def record(model):
    """Hooks that record the RoI heads' inputs and every box_roi_pool call with whether it builds a graph."""
    seen = {"heads": None, "pools": []}

    def heads_hook(module, args):
        features, proposals, image_shapes, targets = args
        seen["heads"] = ({k: v.detach().clone() for k, v in features.items()}, [p.detach().clone() for p in proposals],
                         list(image_shapes), [{k: v.clone() for k, v in t.items()} for t in targets])

    def pool_hook(module, args, output):
        seen["pools"].append(([b.detach().clone() for b in args[1]], torch.is_grad_enabled()))

    return seen, [model.roi_heads.register_forward_pre_hook(heads_hook),
                  model.roi_heads.box_roi_pool.register_forward_hook(pool_hook)]


def brute_force(model, features, proposals, image_shapes, targets, quota, fraction, nms_iou):
    """Per image: every candidate's loss, ranked, greedy NMS by a Python loop, then the first positives up to the
    cap and negatives filling the rest; returns the candidate boxes chosen, in candidate order."""
    heads = model.roi_heads
    chosen = []
    for i, (props, target) in enumerate(zip(proposals, targets)):
        gt = target["boxes"]
        candidates = torch.cat([props, gt])
        iou = box_iou(gt, candidates)
        best, which = iou.max(0)
        labels = torch.where(best >= 0.5, target["labels"][which], torch.zeros_like(which))
        with torch.no_grad():
            pooled = heads.box_roi_pool({k: v[i:i + 1] for k, v in features.items()}, [candidates], [image_shapes[i]])
            logits, deltas = heads.box_predictor(heads.box_head(pooled))
        wanted = heads.box_coder.encode_single(gt[which], candidates)
        losses = []
        for r in range(len(candidates)):
            loss = F.cross_entropy(logits[r], labels[r]).item()
            if labels[r] > 0:
                loss += F.smooth_l1_loss(deltas[r].view(-1, 4)[labels[r]], wanted[r], beta=1 / 9,
                                         reduction="sum").item()
            losses.append(loss)
        ranked = sorted(range(len(candidates)), key=lambda r: -losses[r])
        survivors = []
        for r in ranked:
            if all(box_iou(candidates[r:r + 1], candidates[s:s + 1]).item() <= nms_iou for s in survivors):
                survivors.append(r)
        positives = [r for r in survivors if labels[r] > 0][:int(quota * fraction)]
        negatives = [r for r in survivors if labels[r] == 0][:quota - len(positives)]
        chosen.append(candidates[sorted(positives + negatives)])
    return chosen


@pytest.mark.parametrize("nms_iou", [0.5, 0.7])
def test_ohem_trains_on_the_brute_force_top_losses_after_nms(nms_iou):
    model = hard_mining(small_faster_rcnn(), OHEM(batch_size_per_image=16, positive_fraction=0.25, nms_iou=nms_iou))
    model.train()
    seen, hooks = record(model)
    images, targets = batch()
    losses = model(images, targets)
    for h in hooks:
        h.remove()
    trained = [boxes for boxes, grad in seen["pools"] if grad]
    scored = [boxes for boxes, grad in seen["pools"] if not grad]
    assert len(trained) == 1 and len(scored) == 1  # one no-grad pass over all candidates, one pass trained on
    expected = brute_force(model, *seen["heads"], quota=16, fraction=0.25, nms_iou=nms_iou)
    assert [len(b) for b in trained[0]] == [len(b) for b in expected]
    for got, want in zip(trained[0], expected):
        assert torch.equal(got, want)
    assert all(0 < len(b) <= 16 for b in expected) and sum(len(b) for b in expected) > 16  # not a trivial choice
    assert [len(b) for b in scored[0]] == [len(p) + len(t["boxes"]) for p, t in zip(seen["heads"][1], targets)]
    sum(losses.values()).backward()
    stats = mining_stats(model)
    assert stats["trained_rois"] == sum(len(b) for b in expected)
    assert stats["scored_rois"] == sum(len(b) for b in scored[0])


def test_without_ohem_the_same_model_samples_at_random():
    """The check above could not pass by accident: torchvision's own sampler picks other RoIs."""
    model = small_faster_rcnn()
    model.train()
    seen, hooks = record(model)
    model(*batch())
    for h in hooks:
        h.remove()
    expected = brute_force(model, *seen["heads"], quota=16, fraction=0.25, nms_iou=0.7)
    trained = [boxes for boxes, grad in seen["pools"] if grad][0]
    assert any(len(a) != len(b) or not torch.equal(a, b) for a, b in zip(trained, expected))
