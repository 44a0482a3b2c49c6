"""Batch-hard style extremes for a batch mined against itself with label-equality positives, when the batch
has few classes: the label is folded into the matrix product (a one-hot column per class, scaled so that
same-class entries rise above every real dissimilarity), so negatives need no mask at all, and the symmetric
matrix is computed one triangle of blocks at a time (each block serves its rows and its columns)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hardmine.metric import _ops
from hardmine.metric._batch import Indices, MiningBatch

MAX_FOLDED_CLASSES = 32  # each class adds a column to the product; beyond this the generic path is cheaper
_MIN_BLOCK = 512


def _keep_first_smaller(best_value: torch.Tensor, best_col: torch.Tensor, start: int, value: torch.Tensor,
                        col: torch.Tensor) -> None:
    """Merge candidates for rows start..start+len(value); blocks come in column order, so ties keep the old."""
    rows = slice(start, start + value.shape[0])
    better = value < best_value[rows]
    best_value[rows] = torch.where(better, value, best_value[rows])
    best_col[rows] = torch.where(better, col, best_col[rows])


def _closest_negatives(batch: MiningBatch, inverse: torch.Tensor, classes: int) -> torch.Tensor | None:
    """int64 [B]: each row's closest other-class column (smallest index among ties); None when the folded
    class columns would overflow the dtype (large unnormalised embeddings), so the generic path must run."""
    xa, ya = batch.distance.factors(batch.query, batch.query)
    bound = xa.norm(dim=1).max() * ya.norm(dim=1).max()  # |xa_i . ya_j| never exceeds it
    if not bool(4.0 * bound + 1.0 <= torch.finfo(xa.dtype).max / 16):
        return None
    scale = (4.0 * bound + 1.0).sqrt()
    onehot = F.one_hot(inverse, classes).to(xa.dtype) * scale
    xf, yf = torch.cat([xa, onehot], 1), torch.cat([ya, onehot], 1)
    size = xa.shape[0]
    step = min(max(_MIN_BLOCK, -(-size // 4)), max(1, int((batch.max_bytes // xa.element_size()) ** 0.5)))
    best_value = xa.new_full((size,), float("inf"))
    best_col = torch.full((size,), -1, dtype=torch.int64, device=xa.device)
    finish = batch.distance.finish_
    for i in range(0, size, step):
        for j in range(i, size, step):
            block = xf[i:i + step] @ yf[j:j + step].T
            value, col = _ops.row_first_argmin(block, finish)
            _keep_first_smaller(best_value, best_col, i, value, col + j)
            if j > i:
                value, col = _ops.col_first_argmin(block, finish)
                _keep_first_smaller(best_value, best_col, j, value, col + i)
    return best_col


def _extreme_positives(batch: MiningBatch, inverse: torch.Tensor, sizes: torch.Tensor,
                       largest: bool) -> torch.Tensor | None:
    """int64 [B]: each row's farthest (largest) or closest same-class column, -1 for single-sample classes;
    one batched product over classes padded to the largest (None when padding would waste too much)."""
    classes, width = sizes.numel(), int(sizes.max())
    if classes * width * width > 4 * int((sizes * sizes).sum()) + 4096:
        return None
    xa, ya = batch.distance.factors(batch.query, batch.query)
    order = torch.argsort(inverse, stable=True)
    slot = torch.arange(width, device=xa.device)
    members = order[((torch.cumsum(sizes, 0) - sizes)[:, None] + torch.minimum(slot, sizes[:, None] - 1)).view(-1)]
    members = members.view(classes, width)
    block = torch.bmm(xa[members.view(-1)].view(classes, width, -1), ya[members.view(-1)].view(classes, width, -1)
                      .transpose(1, 2))
    block = batch.distance.finish_(block)
    fill = float("-inf") if largest else float("inf")
    block.masked_fill_((slot[None, None, :] >= sizes[:, None, None]) | torch.eye(width, dtype=torch.bool,
                                                                                   device=xa.device), fill)
    pick = block.argmax(2) if largest else block.argmin(2)
    valid = (slot[None, :] < sizes[:, None]) & (sizes[:, None] > 1)
    out = torch.full((xa.shape[0],), -1, dtype=torch.int64, device=xa.device)
    out[members[valid]] = members.gather(1, pick)[valid]
    return out


def label_fold_extremes(batch: MiningBatch, hardest_positive: bool) -> Indices | None:
    """(anchor, positive, negative) as BatchHardMiner / EasyPositiveHardNegativeMiner define them, or None when
    this path does not apply (custom positives, a reference set, more than MAX_FOLDED_CLASSES classes, or
    very unequal class sizes)."""
    if batch.self_labels is None:
        return None
    _, inverse, sizes = torch.unique(batch.self_labels, return_inverse=True, return_counts=True)
    if sizes.numel() > MAX_FOLDED_CLASSES:
        return None
    if sizes.numel() < 2:
        return batch.empty(3)
    positive = _extreme_positives(batch, inverse, sizes, hardest_positive)
    if positive is None:
        return None
    negative = _closest_negatives(batch, inverse, sizes.numel())
    if negative is None:
        return None
    anchor = torch.nonzero(positive >= 0).flatten()
    return anchor, positive[anchor], negative[anchor]
