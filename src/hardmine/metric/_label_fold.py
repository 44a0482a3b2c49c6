"""Batch-hard style extremes for a batch mined against itself with label-equality positives, when the batch
has few classes. Each class's members are listed once, padded to the largest class by repeating the last.

Up to ONE_BLOCK_ROWS (within the byte budget) one plain [B, B] product serves both sides: positives are gathered
from each row's class members, which are then filled with +inf. Beyond it the label is folded into the matrix
product (a one-hot column per class, scaled so that same-class entries rise above every real dissimilarity), so
negatives need no mask at all, and the symmetric matrix is computed one triangle of blocks at a time (each block
serves its rows and its columns); positives come from one batched product over the padded classes."""

from __future__ import annotations

import operator

import torch

from hardmine.metric import _ops
from hardmine.metric._batch import Indices, MiningBatch

MAX_FOLDED_CLASSES = 32  # each class adds a column to the product; beyond this the generic path is cheaper
_MIN_BLOCK = 512
ONE_BLOCK_ROWS = 1024  # up to this batch (and within the byte budget) one plain [B, B] product is cheapest


def _keep_first_smaller(best_value: torch.Tensor, best_col: torch.Tensor, start: int, value: torch.Tensor,
                        col: torch.Tensor) -> None:
    """Merge candidates for rows start..start+len(value); blocks come in column order, so ties keep the old."""
    rows = slice(start, start + value.shape[0])
    better = value < best_value[rows]
    best_value[rows] = torch.where(better, value, best_value[rows])
    best_col[rows] = torch.where(better, col, best_col[rows])


def _fold_step(batch: MiningBatch) -> int:
    """Rows (and columns) of one block of the folded matrix."""
    size = batch.num_query
    return min(max(_MIN_BLOCK, -(-size // 4)), max(1, int((batch.max_bytes // batch.query.element_size()) ** 0.5)))


def _closest_negatives(batch: MiningBatch, onehot: torch.Tensor) -> torch.Tensor | None:
    """int64 [B]: each row's closest other-class column (smallest index among ties); onehot: [B, C] bool. None
    when the folded class columns would overflow the dtype (large unnormalised embeddings), so the generic path
    must run."""
    xa, ya = batch.factors
    # same-class entries gain penalty > 2 max|xa_i . ya_j|, which lifts them above every other-class entry
    penalty = xa.norm(dim=1).max().mul_(ya.norm(dim=1).max()).mul_(4.0).add_(1.0)
    if not bool(penalty <= torch.finfo(xa.dtype).max / 16):
        return None
    hot = onehot.to(xa.dtype)
    xf, yf = torch.cat([xa, hot * penalty], 1), torch.cat([ya, hot], 1)
    size, step = xa.shape[0], _fold_step(batch)
    finish = batch.distance.finish_
    best_value = xa.new_full((size,), float("inf"))
    best_col = torch.full((size,), -1, dtype=torch.int64, device=xa.device)
    for i in range(0, size, step):
        for j in range(i, size, step):
            block = xf[i:i + step] @ yf[j:j + step].T
            value, col = _ops.row_first_argmin(block, finish)
            _keep_first_smaller(best_value, best_col, i, value, col + j)
            if j > i:
                value, col = _ops.col_first_argmin(block, finish)
                _keep_first_smaller(best_value, best_col, j, value, col + i)
    return best_col


def _extreme_positives(batch: MiningBatch, members: torch.Tensor, sizes: torch.Tensor,
                       largest: bool) -> torch.Tensor:
    """int64 [B]: each row's farthest (largest) or closest same-class column, -1 for single-sample classes.

    members [C, W]: each class's rows ascending, padded by repeating the last. A padded column repeats a real
    column of the same row at a later slot, so first-index ties never pick it, and masking every column that
    holds the row's own member excludes the row itself and its copies; padded rows equal their member's row.
    """
    xa, ya = batch.factors
    classes, width = members.shape
    flat = members.view(-1)
    block = torch.bmm(xa.index_select(0, flat).view(classes, width, -1),
                      ya.index_select(0, flat).view(classes, width, -1).transpose(1, 2))
    block = batch.distance.finish_(block)
    block.masked_fill_(members[:, :, None] == members[:, None, :], float("-inf") if largest else float("inf"))
    pick = block.argmax(2) if largest else block.argmin(2)
    chosen = torch.where(sizes[:, None] > 1, members.gather(1, pick), -1)
    return torch.empty(xa.shape[0], dtype=torch.int64, device=xa.device).scatter_(0, flat, chosen.view(-1))


def _one_block_extremes(batch: MiningBatch, members: torch.Tensor, classes: torch.Tensor,
                        hardest_positive: bool, every_row_has_positive: bool) -> Indices:
    """The extremes when one block covers the batch: one plain product; each row's class members (padded
    by repetition, so a padded column repeats a real one at a later slot and first-index ties never pick it)
    give the positives by gather, then become +inf by one flat fill, which leaves exactly the negatives.

    The row itself (listed among its class members, with its padded copies) is kept out of the positives by
    its diagonal entry: +inf for the closest positive (finish keeps it), NaN for the farthest (finish keeps
    NaN, which then becomes -inf), so no [B, W] mask of the row's own slots is built."""
    labels = batch.self_labels
    xa, ya = batch.factors
    cols = members.index_select(0, torch.searchsorted(classes, labels))  # [B, W]
    values = xa @ ya.T
    finish = batch.distance.finish_
    values.diagonal().fill_(float("nan") if hardest_positive else float("inf"))
    positives = finish(values.gather(1, cols))
    if hardest_positive:
        best, slot = positives.nan_to_num_(nan=float("-inf"), posinf=float("inf"), neginf=float("-inf")).max(1)
    else:
        best, slot = positives.min(1)
    positive = cols.gather(1, slot.unsqueeze(1)).squeeze(1)
    # (cols is no longer needed: it takes the flat indices, so the fill needs no [B, W] temporary)
    negative = _ops.row_first_argmin(_ops.fill_columns_(values, cols, float("inf"), consume_cols=True), finish)[1]
    if every_row_has_positive:  # (and a negative: there are two classes or more)
        return torch.arange(cols.shape[0], device=cols.device), positive, negative
    anchor = torch.nonzero(torch.isfinite(best)).flatten()
    return anchor, positive[anchor], negative[anchor]


def label_fold_extremes(batch: MiningBatch, hardest_positive: bool) -> Indices | None:
    """(anchor, positive, negative) as BatchHardMiner / EasyPositiveHardNegativeMiner define them, or None when
    this path does not apply (custom positives, a reference set, very unequal class sizes, or, beyond one
    block, more than MAX_FOLDED_CLASSES classes)."""
    labels = batch.self_labels
    if labels is None:
        return None
    ordered, order = torch.sort(labels, stable=True)
    classes, sizes = torch.unique_consecutive(ordered, return_counts=True)
    counts = sizes.tolist()
    size = labels.shape[0]
    one_block = size <= ONE_BLOCK_ROWS and size * size * batch.query.element_size() <= batch.max_bytes
    if len(counts) > MAX_FOLDED_CLASSES and not one_block:  # (the one-block path has no class columns)
        return None
    if len(counts) < 2:
        return batch.empty(3)
    width = max(counts)
    if len(counts) * width * width > 4 * sum(map(operator.mul, counts, counts)) + 4096:  # too much padding
        return None
    slot = _ops.arange(width, labels.device)
    first = torch.cumsum(sizes, 0).sub_(sizes).unsqueeze(1)
    members = order.index_select(0, first.add(torch.minimum(slot, sizes.sub(1).unsqueeze(1))).view(-1))
    members = members.view(len(counts), width)
    if one_block:
        return _one_block_extremes(batch, members, classes, hardest_positive, min(counts) > 1)
    positive = _extreme_positives(batch, members, sizes, hardest_positive)
    negative = _closest_negatives(batch, labels[:, None] == classes)
    if negative is None:
        return None
    anchor = torch.nonzero(positive >= 0).flatten()
    return anchor, positive[anchor], negative[anchor]
