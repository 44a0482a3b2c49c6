"""RoI selection and weighting for two-stage detectors, on per-image lists (any detector, no torchvision needed).

`select_rois` is OHEM (Shrivastava et al. 2016) with a floor of random background RoIs; `prime_sample_weights` is
PISA's importance-based sample re-weighting (Cao et al. 2020): loss weights, not a selection. Both take what a RoI
head produces per image: losses [n_i], boxes [n_i, 4] (x1, y1, x2, y2), labels [n_i] (> 0 object class, 0
background, < 0 ignored).
"""

from __future__ import annotations

import torch

from hardmine._checks import check_finite, check_int, check_number
from hardmine.inbatch.detection import ohem_rois


def _check_lists(losses: list[torch.Tensor], boxes: list[torch.Tensor], labels: list[torch.Tensor]) -> None:
    if not all(isinstance(x, (list, tuple)) for x in (losses, boxes, labels)):
        raise TypeError("roi_losses, boxes and labels must be lists with one tensor per image")
    if not (len(losses) == len(boxes) == len(labels)) or not losses:
        raise ValueError(f"roi_losses, boxes and labels must hold one tensor per image each (at least one image), "
                         f"got {len(losses)}, {len(boxes)} and {len(labels)}")
    for i, (loss, box, label) in enumerate(zip(losses, boxes, labels)):
        if not isinstance(loss, torch.Tensor) or loss.dim() != 1:
            raise ValueError(f"roi_losses[{i}] must be a 1-d tensor [rois], got {getattr(loss, 'shape', loss)}")
        if not isinstance(box, torch.Tensor) or box.shape != (len(loss), 4):
            raise ValueError(f"boxes[{i}] must have shape {(len(loss), 4)}, got {getattr(box, 'shape', box)}")
        if not isinstance(label, torch.Tensor) or label.shape != loss.shape:
            raise ValueError(f"labels[{i}] must have shape {tuple(loss.shape)}, got {getattr(label, 'shape', label)}")


def _padded(values: list[torch.Tensor], fill: float) -> torch.Tensor:
    """Tensors [n_i, ...] stacked into [images, max n_i, ...], the tail filled with `fill`."""
    return torch.nn.utils.rnn.pad_sequence(list(values), batch_first=True, padding_value=fill)


def select_rois(roi_losses: list[torch.Tensor], boxes: list[torch.Tensor], labels: list[torch.Tensor],
                batch_size_per_image: int, nms_iou: float = 0.7, positive_fraction: float = 0.25,
                random_negatives: int = 0, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """OHEM over each image's RoIs: the int64 indices (ascending) of the RoIs to train on, one tensor per image.

    Per image, `batch_size_per_image - random_negatives` RoIs are chosen as `hardmine.ohem_rois` does: ranked by
    loss, greedy NMS at `nms_iou` over all RoIs of the image, at most int(positive_fraction x that number)
    foreground, background filling the rest. Then `random_negatives` background RoIs not yet chosen are drawn
    uniformly (from `generator`), so easy background is never forgotten. An image with fewer RoIs than asked keeps
    what it has: with `batch_size_per_image` larger than the proposals, every RoI that survives NMS is kept.
    Ignored RoIs (label < 0) are never chosen. Losses only rank; they are not changed.
    """
    _check_lists(roi_losses, boxes, labels)
    quota = check_int("batch_size_per_image", batch_size_per_image)
    random_negatives = check_int("random_negatives", random_negatives, minimum=0)
    if random_negatives > quota:
        raise ValueError(f"random_negatives must be <= batch_size_per_image ({quota}), got {random_negatives}")
    nms_iou = check_number("nms_iou", nms_iou, 0.0, 1.0)
    positive_fraction = check_number("positive_fraction", positive_fraction, 0.0, 1.0)
    if any(int(n) == 0 for n in map(len, roi_losses)):
        raise ValueError("every image needs at least one RoI (torchvision adds the ground-truth boxes to the "
                         "proposals, and an image without boxes still has its proposals)")
    valid = _padded([torch.ones(len(x), dtype=torch.bool, device=x.device) for x in roi_losses], False)
    label = _padded([x.long() for x in labels], -1)
    chosen = torch.zeros_like(valid)
    hard = quota - random_negatives
    if hard > 0:
        chosen = ohem_rois(_padded([x.detach().float() for x in roi_losses], 0.0),
                           _padded([b.detach().float() for b in boxes], 0.0), hard, nms_iou=nms_iou,
                           labels=label, positive_fraction=positive_fraction, valid=valid)
    picked = []
    for i, n in enumerate(map(len, roi_losses)):
        mask = chosen[i, :n]
        if random_negatives:
            spare = torch.nonzero((label[i, :n] == 0) & ~mask).flatten()
            order = torch.randperm(len(spare), generator=generator, device="cpu").to(spare.device)
            mask = mask.clone()
            mask[spare[order[:random_negatives]]] = True
        picked.append(torch.nonzero(mask).flatten())
    return picked


def _hierarchical_rank(group: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """PISA's hierarchical local rank: within each group, rank by `value` (descending); then every element's global
    rank sorts by (local rank, value descending). Returns int64 ranks 0..n-1 (0 = the most important)."""
    n = len(value)
    by_value = torch.sort(value, descending=True, stable=True).indices
    by_group = by_value[torch.sort(group[by_value], stable=True).indices]  # grouped, each group by value desc
    sorted_group = group[by_group]
    start = torch.ones(n, dtype=torch.bool, device=value.device)
    start[1:] = sorted_group[1:] != sorted_group[:-1]
    position = torch.arange(n, device=value.device)
    first = torch.cummax(torch.where(start, position, torch.zeros_like(position)), 0).values
    local = torch.empty_like(position)
    local[by_group] = position - first
    order = by_value[torch.sort(local[by_value], stable=True).indices]  # local rank, ties by value desc
    rank = torch.empty_like(position)
    rank[order] = position
    return rank


def prime_sample_weights(labels: torch.Tensor, ious: torch.Tensor, gt_index: torch.Tensor, scores: torch.Tensor,
                         losses: torch.Tensor, k: float = 2.0, bias: float = 0.0) -> torch.Tensor:
    """PISA's importance-based sample re-weighting: float weights [n] for n sampled RoIs (all images together).

    Positives (labels > 0) are ranked by IoU with their ground truth, hierarchically (each object's best RoI
    first, then each object's second best, ...; `gt_index` [n] int must be unique across images); negatives
    (labels == 0) by `scores` [n] (the highest foreground probability: confident false positives first).
    A RoI of rank r among m gets ((1 - bias) x (m - r) / m + bias) ** k; then positives and negatives are each
    rescaled so that their weighted `losses` [n] (detached per-RoI losses) sum to the unweighted sum, as in PISA.
    Ignored RoIs (labels < 0) get 0. k >= 0; bias in [0, 1].
    """
    n = len(labels)
    for name, t in (("ious", ious), ("gt_index", gt_index), ("scores", scores), ("losses", losses)):
        if not isinstance(t, torch.Tensor) or t.shape != (n,):
            raise ValueError(f"{name} must be a tensor of shape {(n,)} like labels, got {getattr(t, 'shape', t)}")
    k = check_finite("k", k, minimum=0)
    bias = check_number("bias", bias, 0.0, 1.0)
    weights = torch.zeros(n, dtype=torch.float32, device=labels.device)
    losses = losses.detach().float()
    for part, group, value in ((labels > 0, gt_index, ious), (labels == 0, torch.zeros_like(gt_index), scores)):
        m = int(part.sum())
        if m == 0:
            continue
        rank = _hierarchical_rank(group[part], value[part].detach().float())
        w = ((1 - bias) * (m - rank).float() / m + bias) ** k
        weighted = (w * losses[part]).sum()
        if float(weighted) > 0:
            w = w * losses[part].sum() / weighted
        weights[part] = w
    return weights
