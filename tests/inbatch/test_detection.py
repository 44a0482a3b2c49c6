import math

import pytest
import torch

from hardmine.inbatch.detection import box_iou, mine_negatives_ssd, ohem_rois


def test_ssd_hand_made_case():
    cls_loss = torch.tensor([
        [0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.7, 0.6],   # 2 positives -> 4 negatives: anchors 1, 4, 6, 7
        [0.4, 0.3, 0.2, 0.1, 0.6, 0.7, 0.5, 0.9],   # no positive -> min_negatives=3: anchors 7, 5, 4
        [2.0, 0.3, 0.2, 0.1, 0.6, 0.7, 0.5, 0.9],   # 2 positives -> 4, but anchor 7 is ignored: 0, 5, 4, 6
    ])
    labels = torch.tensor([
        [3, 0, 0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 2, 1, 0, 0, 0, -1],
    ])
    mask = mine_negatives_ssd(cls_loss, labels, neg_pos_ratio=2, min_negatives=3)
    expected = torch.tensor([
        [1, 1, 0, 1, 1, 0, 1, 1],
        [0, 0, 0, 0, 1, 1, 0, 1],
        [1, 0, 1, 1, 1, 1, 1, 0],
    ], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_ssd_without_min_negatives_matches_torchvision_behaviour():
    cls_loss = torch.tensor([[0.5, 0.4, 0.3], [0.9, 0.8, 0.1]])
    labels = torch.tensor([[0, 0, 0], [1, 0, 0]])
    assert mine_negatives_ssd(cls_loss, labels).tolist() == [[False, False, False], [True, True, True]]


def test_ssd_ties_and_cap_at_available_negatives():
    cls_loss = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    labels = torch.tensor([[0, 0, 0, 0, 1]])
    assert mine_negatives_ssd(cls_loss, labels, neg_pos_ratio=2).tolist() == [[True, True, False, False, True]]
    assert mine_negatives_ssd(cls_loss, labels, neg_pos_ratio=10).tolist() == [[True] * 5]
    assert mine_negatives_ssd(cls_loss, labels, neg_pos_ratio=1.5).sum().item() == 2


def reference_ssd(cls_loss, labels, ratio, min_negatives):
    """Per image, the way repositories usually write it."""
    out = torch.zeros_like(labels, dtype=torch.bool)
    for i in range(labels.shape[0]):
        pos = labels[i] > 0
        neg = torch.nonzero(labels[i] == 0).reshape(-1)
        n = min(max(int(ratio * int(pos.sum())), min_negatives), neg.numel())
        order = sorted(neg.tolist(), key=lambda a: -cls_loss[i, a].item())
        out[i] = pos
        out[i, order[:n]] = True
    return out


@pytest.mark.parametrize("seed", range(4))
def test_ssd_matches_per_image_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    cls_loss = torch.rand(6, 300, generator=gen)
    labels = torch.randint(0, 4, (6, 300), generator=gen) * (torch.rand(6, 300, generator=gen) < 0.05)
    labels[0] = 0
    labels[1, :5] = -1
    got = mine_negatives_ssd(cls_loss, labels, neg_pos_ratio=3, min_negatives=7)
    assert torch.equal(got, reference_ssd(cls_loss, labels, 3, 7))
    assert got[0].sum() == 7


def test_ssd_does_not_change_inputs():
    cls_loss = torch.rand(2, 10)
    labels = torch.randint(0, 2, (2, 10))
    before = (cls_loss.clone(), labels.clone())
    mine_negatives_ssd(cls_loss, labels)
    assert torch.equal(cls_loss, before[0]) and torch.equal(labels, before[1])


def test_ssd_bad_input():
    loss, labels = torch.rand(2, 4), torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="neg_pos_ratio must be a finite number >= 0, got -1"):
        mine_negatives_ssd(loss, labels, neg_pos_ratio=-1)
    with pytest.raises(ValueError, match="min_negatives"):
        mine_negatives_ssd(loss, labels, min_negatives=-2)
    with pytest.raises(ValueError, match=r"labels has shape \(2, 3\)"):
        mine_negatives_ssd(loss, labels[:, :3])
    with pytest.raises(TypeError, match="labels must be an integer"):
        mine_negatives_ssd(loss, labels.float())
    with pytest.raises(ValueError, match="non-finite.*first at \\[1, 2\\]"):
        mine_negatives_ssd(torch.tensor([[0.0] * 4, [0.0, 0.0, math.nan, 0.0]]), labels)
    with pytest.raises(ValueError, match="images, elements"):
        mine_negatives_ssd(torch.rand(4), labels[0])


def test_box_iou_values():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0], [1.0, 1.0, 1.0, 1.0]])
    assert box_iou(a, b).tolist() == pytest.approx([1 / 7, 1.0, 0.0, 0.0])


def random_boxes(gen, images, rois):
    xy = torch.rand(images, rois, 2, generator=gen) * 60
    wh = torch.rand(images, rois, 2, generator=gen) * 30 + 0.5
    return torch.cat([xy, xy + wh], -1)


def reference_ohem_rois(losses, boxes, quota, thr, labels=None, positive_fraction=0.25, valid=None):
    """Straightforward: per image, sort by loss, full greedy NMS, then take quotas in rank order."""
    out = torch.zeros_like(losses, dtype=torch.bool)
    for i in range(losses.shape[0]):
        ok = [r for r in range(losses.shape[1])
              if (valid is None or valid[i, r]) and (labels is None or labels[i, r] >= 0)]
        order = sorted(ok, key=lambda r: -losses[i, r].item())
        iou = box_iou(boxes[i][:, None], boxes[i][None]).tolist()
        survivors = []
        for r in order:
            if all(iou[r][s] <= thr for s in survivors):
                survivors.append(r)
        if labels is None:
            chosen = survivors[:quota]
        else:
            pos = [r for r in survivors if labels[i, r] > 0][: int(quota * positive_fraction)]
            neg = [r for r in survivors if labels[i, r] == 0][: quota - len(pos)]
            chosen = pos + neg
        out[i, chosen] = True
    return out


@pytest.mark.parametrize("seed", range(6))
def test_ohem_rois_matches_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    boxes = random_boxes(gen, 3, 40)
    losses = torch.rand(3, 40, generator=gen)
    losses[0, :10] = 0.5                                                # ties
    labels = torch.randint(-1, 3, (3, 40), generator=gen)
    valid = torch.rand(3, 40, generator=gen) > 0.1
    for thr in (0.0, 0.3, 0.7):
        assert torch.equal(ohem_rois(losses, boxes, 8, thr), reference_ohem_rois(losses, boxes, 8, thr))
        got = ohem_rois(losses, boxes, 6, thr, labels=labels, positive_fraction=0.5, valid=valid)
        assert torch.equal(got, reference_ohem_rois(losses, boxes, 6, thr, labels, 0.5, valid))


@pytest.mark.parametrize("seed", range(5))
def test_ohem_rois_never_keeps_two_overlapping_boxes(seed):
    gen = torch.Generator().manual_seed(100 + seed)
    boxes = random_boxes(gen, 4, 200)
    losses = torch.rand(4, 200, generator=gen)
    for thr in (0.1, 0.5, 0.7):
        kept = ohem_rois(losses, boxes, 32, thr)
        for i in range(4):
            b = boxes[i][kept[i]]
            iou = box_iou(b[:, None], b[None])
            iou.fill_diagonal_(0)
            assert iou.max() <= thr
            assert 0 < kept[i].sum() <= 32


def test_ohem_rois_keeps_the_hardest_of_overlapping_boxes():
    boxes = torch.tensor([[[0.0, 0, 10, 10], [0.5, 0, 10.5, 10], [20, 20, 30, 30], [40, 40, 50, 50]]])
    losses = torch.tensor([[0.5, 0.9, 0.1, 0.2]])
    assert ohem_rois(losses, boxes, 2).tolist() == [[False, True, False, True]]
    assert ohem_rois(losses, boxes, 2, nms_iou=1.0).tolist() == [[True, True, False, False]]
    labels = torch.tensor([[1, 1, 0, 0]])
    assert ohem_rois(losses, boxes, 2, labels=labels, positive_fraction=0.5).tolist() == [[False, True, False, True]]


def test_ohem_rois_bad_input():
    losses, boxes = torch.rand(2, 5), random_boxes(torch.Generator().manual_seed(0), 2, 5)
    with pytest.raises(ValueError, match="boxes has shape"):
        ohem_rois(losses, boxes[:, :4], 2)
    with pytest.raises(ValueError, match="x2 >= x1"):
        ohem_rois(losses, boxes[..., [2, 1, 0, 3]], 2)
    with pytest.raises(ValueError, match="batch_size_per_image must be >= 1"):
        ohem_rois(losses, boxes, 0)
    with pytest.raises(ValueError, match="nms_iou must be in"):
        ohem_rois(losses, boxes, 2, nms_iou=1.5)
    with pytest.raises(ValueError, match="positive_fraction"):
        ohem_rois(losses, boxes, 2, labels=torch.zeros(2, 5, dtype=torch.long), positive_fraction=-0.1)
    with pytest.raises(ValueError, match="non-finite"):
        ohem_rois(losses.masked_fill(losses > 0.5, math.nan), boxes, 2)
    with pytest.raises(ValueError, match="valid must be"):
        ohem_rois(losses, boxes, 2, valid=torch.ones(2, 4, dtype=torch.bool))
