"""select_rois against a brute-force loop per image; prime_sample_weights' hierarchical ranks on a hand example."""

import pytest
import torch

from hardmine.inbatch.detection import box_iou
from hardmine.inbatch.roi_selection import prime_sample_weights, select_rois


def rois(seed, sizes):
    g = torch.Generator().manual_seed(seed)
    losses, boxes, labels = [], [], []
    for n in sizes:
        xy = torch.rand(n, 2, generator=g) * 60
        boxes.append(torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=g) * 30], 1))
        losses.append(torch.rand(n, generator=g))
        labels.append(torch.randint(-1, 4, (n,), generator=g))
    return losses, boxes, labels


def brute_force(loss, box, label, quota, fraction, nms_iou):
    ranked = sorted((r for r in range(len(loss)) if label[r] >= 0), key=lambda r: -float(loss[r]))
    survivors = []
    for r in ranked:
        if all(float(box_iou(box[r], box[s])) <= nms_iou for s in survivors):
            survivors.append(r)
    positives = [r for r in survivors if label[r] > 0][:int(quota * fraction)]
    negatives = [r for r in survivors if label[r] == 0][:quota - len(positives)]
    return sorted(positives + negatives)


@pytest.mark.parametrize("quota, fraction, nms_iou", [(8, 0.25, 0.5), (30, 0.5, 0.3), (500, 0.25, 0.7)])
def test_select_rois_is_the_brute_force_choice_per_image(quota, fraction, nms_iou):
    losses, boxes, labels = rois(0, [40, 3, 75])
    got = select_rois(losses, boxes, labels, quota, nms_iou, fraction)
    for i in range(3):
        assert got[i].tolist() == brute_force(losses[i], boxes[i], labels[i], quota, fraction, nms_iou)
        assert got[i].dtype == torch.int64


def test_random_negatives_are_unchosen_background_drawn_from_the_generator():
    losses, boxes, labels = rois(1, [200, 150])
    hard = select_rois(losses, boxes, labels, 12, 0.5, 0.25, random_negatives=4)
    only_hard = select_rois(losses, boxes, labels, 8, 0.5, 0.25)
    again = select_rois(losses, boxes, labels, 12, 0.5, 0.25, 4, torch.Generator().manual_seed(5))
    same = select_rois(losses, boxes, labels, 12, 0.5, 0.25, 4, torch.Generator().manual_seed(5))
    for i in range(2):
        extra = sorted(set(hard[i].tolist()) - set(only_hard[i].tolist()))
        assert set(only_hard[i].tolist()) <= set(hard[i].tolist()) and len(extra) == 4
        assert all(labels[i][r] == 0 for r in extra)
        assert torch.equal(again[i], same[i])


def test_all_random_negatives_and_bad_arguments():
    losses, boxes, labels = rois(2, [30])
    picked = select_rois(losses, boxes, labels, 5, random_negatives=5, generator=torch.Generator().manual_seed(0))
    assert len(picked[0]) == 5 and bool((labels[0][picked[0]] == 0).all())
    with pytest.raises(ValueError, match="random_negatives must be <= batch_size_per_image"):
        select_rois(losses, boxes, labels, 5, random_negatives=6)
    with pytest.raises(ValueError, match="nms_iou"):
        select_rois(losses, boxes, labels, 5, nms_iou=2.0)
    with pytest.raises(ValueError, match=r"boxes\[0\] must have shape"):
        select_rois(losses, [boxes[0][:3]], labels, 5)
    with pytest.raises(ValueError, match="one tensor per image"):
        select_rois(losses, boxes + boxes, labels, 5)
    with pytest.raises(ValueError, match="at least one RoI"):
        select_rois([torch.zeros(0)], [torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.long)], 5)


def test_prime_sample_weights_rank_positives_hierarchically_and_negatives_by_score():
    # Object 0 has RoIs of IoU 0.9 and 0.6, object 1 has 0.7 and 0.8. Each object's best first (0.9, 0.8), then
    # each one's second best (0.7, 0.6): ranks 0, 3, 2, 1.
    labels = torch.tensor([1, 1, 2, 2, 0, 0, -1])
    ious = torch.tensor([0.9, 0.6, 0.7, 0.8, 0.1, 0.2, 0.4])
    gt = torch.tensor([0, 0, 1, 1, 0, 0, 0])
    scores = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.2, 0.9, 0.0])
    ones = torch.ones(7)
    w = prime_sample_weights(labels, ious, gt, scores, ones, k=1.0, bias=0.0)
    raw_pos = torch.tensor([4, 1, 2, 3]) / 4.0  # (m - rank) / m
    assert torch.allclose(w[:4], raw_pos * 4 / raw_pos.sum())  # rescaled: the weighted loss sums to the loss
    raw_neg = torch.tensor([1, 2]) / 2.0  # the confident negative (score 0.9) ranks first
    assert torch.allclose(w[4:6], raw_neg * 2 / raw_neg.sum())
    assert w[6] == 0
    flat = prime_sample_weights(labels, ious, gt, scores, torch.rand(7), k=0.0)
    assert torch.allclose(flat[:6], torch.ones(6))
    with pytest.raises(ValueError, match="bias"):
        prime_sample_weights(labels, ious, gt, scores, ones, bias=1.5)
    with pytest.raises(ValueError, match="scores must be a tensor of shape"):
        prime_sample_weights(labels, ious, gt, scores[:3], ones)
