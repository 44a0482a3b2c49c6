"""Hard negatives for detection: SSD's negative:positive ratio mining and RoI OHEM with NMS (Shrivastava 2016).

Both work on padded per-image tensors [images, anchors or RoIs] and are vectorised over the images. Boxes are
(x1, y1, x2, y2) in any unit.
"""

from __future__ import annotations

import math

import torch

from hardmine._checks import check_finite, check_int, check_number


def _check_loss(name: str, loss: torch.Tensor) -> None:
    if not isinstance(loss, torch.Tensor) or not loss.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {getattr(loss, 'dtype', type(loss).__name__)}")
    if loss.dim() != 2 or loss.numel() == 0:
        raise ValueError(f"{name} must be a non-empty [images, elements] tensor, got shape {tuple(loss.shape)}")
    bad = ~torch.isfinite(loss)
    if bool(bad.any()):
        where = torch.nonzero(bad)[0].tolist()
        raise ValueError(f"{name} has {int(bad.sum())} non-finite value(s) (NaN or inf), first at {where}")


def _check_labels(labels: torch.Tensor, shape: torch.Size) -> None:
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got {getattr(labels, 'dtype', type(labels).__name__)}")
    if labels.shape != shape:
        raise ValueError(f"labels has shape {tuple(labels.shape)} but the losses have shape {tuple(shape)}")


def _order(values: torch.Tensor) -> torch.Tensor:
    """Per row, the indices that sort the row descending (ties: lower index first)."""
    return torch.sort(values, dim=1, descending=True, stable=True).indices


def mine_negatives_ssd(cls_loss: torch.Tensor, labels: torch.Tensor, neg_pos_ratio: float = 3.0,
                       min_negatives: int = 0) -> torch.Tensor:
    """SSD hard negative mining: the boolean mask [images, anchors] of the anchors that enter the loss.

    cls_loss: float [images, anchors], the per-anchor classification loss (only ranks negatives; not changed).
    labels: int [images, anchors]; > 0 positive, 0 background (negative), < 0 ignored (never selected).
    neg_pos_ratio: >= 0; per image, floor(neg_pos_ratio * positives) negatives are kept, the highest loss first.
    min_negatives: per image, at least this many negatives, so an image without positives still contributes
        (torchvision's SSD gives it none, which min_negatives=0 reproduces). Both counts are capped at the
        number of negatives of the image. Ties in loss keep the lower anchor index.
    Returns positives | selected negatives. One top-k over the batch, no sort, no loop over images.
    """
    _check_loss("cls_loss", cls_loss)
    _check_labels(labels, cls_loss.shape)
    check_finite("neg_pos_ratio", neg_pos_ratio, minimum=0)
    min_negatives = check_int("min_negatives", min_negatives, minimum=0)
    positive = labels > 0
    negative = labels == 0
    wanted = torch.floor(positive.sum(1) * float(neg_pos_ratio)).long().clamp_min(min_negatives)
    num_neg = torch.minimum(wanted, negative.sum(1))[:, None]
    return positive | _top_per_row(cls_loss.detach().masked_fill(~negative, -math.inf), num_neg)


def _top_per_row(values: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the `count` [rows, 1] largest entries of each row of `values` (ties: lower index first).

    One top-k of the largest count over the batch, then a per-row threshold: O(rows x cols), no full sort.
    """
    k = int(count.max())
    if k == 0:
        return torch.zeros_like(values, dtype=torch.bool)
    top = torch.topk(values, k, dim=1).values
    kth = top.gather(1, (count - 1).clamp_min(0))
    greater = values > kth
    equal = values == kth
    need = count - greater.sum(1, keepdim=True)
    return (greater | (equal & (torch.cumsum(equal, 1) <= need))) & (count > 0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes a [..., 4] against boxes b [..., 4] (broadcast over the leading dims); 0 for empty unions."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp_min(torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


def _check_boxes(boxes: torch.Tensor, shape: torch.Size) -> None:
    if not isinstance(boxes, torch.Tensor) or not boxes.is_floating_point():
        raise TypeError(f"boxes must be a floating-point tensor, got {getattr(boxes, 'dtype', type(boxes).__name__)}")
    if boxes.shape != (*shape, 4):
        raise ValueError(f"boxes has shape {tuple(boxes.shape)}, expected {(*shape, 4)} (x1, y1, x2, y2)")
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError("boxes has non-finite coordinates")
    bad = (boxes[..., 2] < boxes[..., 0]) | (boxes[..., 3] < boxes[..., 1])
    if bool(bad.any()):
        raise ValueError(f"boxes must have x2 >= x1 and y2 >= y1, first bad box at {torch.nonzero(bad)[0].tolist()}")


def ohem_rois(roi_losses: torch.Tensor, boxes: torch.Tensor, batch_size_per_image: int, nms_iou: float = 0.7,
              labels: torch.Tensor | None = None, positive_fraction: float = 0.25,
              valid: torch.Tensor | None = None) -> torch.Tensor:
    """OHEM for RoI heads (Shrivastava et al. 2016): the boolean mask [images, rois] of the RoIs to train on.

    Per image, RoIs are ranked by loss (ties: lower index first), greedy NMS at `nms_iou` removes every RoI
    whose IoU with a higher-loss survivor is > nms_iou (so one hard region is not taken many times), and the
    first `batch_size_per_image` survivors are kept (fewer when fewer survive).
    roi_losses: float [images, rois]; boxes: float [images, rois, 4].
    labels: optional int [images, rois]; > 0 foreground, 0 background, < 0 ignored. With labels, quotas as in
        mmdetection's samplers: at most int(batch_size_per_image * positive_fraction) foreground survivors,
        background survivors fill the rest. NMS runs over all RoIs of an image together.
    valid: optional bool [images, rois], False for padding (losses must be finite there too).
    Vectorised over images; the loop runs once per kept RoI of the fullest image, each step O(images x rois).
    """
    _check_loss("roi_losses", roi_losses)
    _check_boxes(boxes, roi_losses.shape)
    quota = check_int("batch_size_per_image", batch_size_per_image)
    thr = check_number("nms_iou", nms_iou, 0.0, 1.0)
    candidate = torch.ones_like(roi_losses, dtype=torch.bool)
    if valid is not None:
        if not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool or valid.shape != roi_losses.shape:
            raise ValueError(f"valid must be a bool tensor of shape {tuple(roi_losses.shape)}")
        candidate = valid.clone()
    pos_quota = quota
    if labels is not None:
        _check_labels(labels, roi_losses.shape)
        pos_quota = int(quota * check_number("positive_fraction", positive_fraction, 0.0, 1.0))
        candidate &= labels >= 0
    order = _order(roi_losses.detach().masked_fill(~candidate, -math.inf))
    candidate = candidate.gather(1, order)
    ranked = boxes.detach().gather(1, order[..., None].expand(-1, -1, 4))
    positive = labels.gather(1, order) > 0 if labels is not None else torch.ones_like(candidate)
    kept = _greedy_nms(ranked, candidate, positive, thr, quota, pos_quota)
    take_pos = kept & positive & (torch.cumsum(kept & positive, 1) <= pos_quota)
    room = quota - take_pos.sum(1, keepdim=True)
    take = take_pos | (kept & ~positive & (torch.cumsum(kept & ~positive, 1) <= room))
    return torch.zeros_like(take).scatter_(1, order, take)


def _greedy_nms(ranked: torch.Tensor, candidate: torch.Tensor, positive: torch.Tensor, thr: float,
                quota: int, pos_quota: int) -> torch.Tensor:
    """Greedy NMS over boxes already in rank order [images, rois, 4], all images at once, stopped per image as
    soon as its survivors fill the quotas. Returns the survivors found, bool [images, rois], in rank order."""
    rows = torch.arange(ranked.shape[0], device=ranked.device)
    candidate = candidate.clone()
    kept = torch.zeros_like(candidate)
    while True:
        pos_kept = (kept & positive).sum(1)
        neg_kept = (kept & ~positive).sum(1)
        pos_done = (pos_kept >= pos_quota) | ~(candidate & positive).any(1)
        done = pos_done & (pos_kept.clamp_max(pos_quota) + neg_kept >= quota)
        active = candidate.any(1) & ~done
        if not bool(active.any()):
            return kept
        first = candidate.to(torch.uint8).argmax(1)
        chosen = ranked[rows, first]
        overlap = box_iou(chosen[:, None, :], ranked) > thr
        candidate &= ~(overlap & active[:, None])
        act_rows, act_first = rows[active], first[active]
        kept[act_rows, act_first] = True
        candidate[act_rows, act_first] = False
