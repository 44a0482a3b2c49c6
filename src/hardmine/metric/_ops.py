"""Vectorised building blocks shared by the miners: positive pairs from labels, per-row extremes with exact
first-index tie-breaking, and segment extremes over a list of pairs. All indices are int64."""

from __future__ import annotations

from collections.abc import Callable

import torch

Finish = Callable[[torch.Tensor], torch.Tensor]

_CHUNK = 64


def label_pairs(labels: torch.Tensor, ref_labels: torch.Tensor,
                exclude_self: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """All (i, j) with labels[i] == ref_labels[j], sorted by i then j, without building the [B, M] mask.

    exclude_self: leave out j == i (reference column i is anchor i itself).
    """
    device = labels.device
    ref_sorted, order = torch.sort(ref_labels, stable=True)
    start = torch.searchsorted(ref_sorted, labels, right=False)
    counts = torch.searchsorted(ref_sorted, labels, right=True) - start
    own = None
    if exclude_self:
        position = torch.empty_like(order).scatter_(0, order, torch.arange(order.shape[0], device=device))
        own = position[: labels.shape[0]] - start
        counts = counts - 1
    rows = torch.repeat_interleave(torch.arange(labels.shape[0], device=device), counts)
    first = torch.cumsum(counts, 0) - counts
    offset = torch.arange(rows.shape[0], device=device) - first.index_select(0, rows)
    if own is not None:
        offset += offset >= own.index_select(0, rows)
    return rows, order.index_select(0, start.index_select(0, rows) + offset)


def row_first_argmin(raw: torch.Tensor, finish: Finish) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of `raw` [b, M]: the minimum of `finish(raw)` and the smallest column where it is attained.

    `finish` is a monotone non-decreasing in-place map. The minimum is found on chunk minima of `raw` (a fast
    vectorised reduction); `finish` is applied only to the chunk minima and to the winning chunk, so ties that
    `finish` creates (e.g. two squared distances with the same square root) still go to the smallest column.
    """
    b, m = raw.shape
    n = m // _CHUNK
    parts = []
    if n:
        parts.append(raw[:, :n * _CHUNK].reshape(b, n, _CHUNK).amin(2))
    if m > n * _CHUNK:
        parts.append(raw[:, n * _CHUNK:].amin(1, keepdim=True))
    chunk_min = finish(torch.cat(parts, 1) if len(parts) > 1 else parts[0].clone())
    best_chunk = chunk_min.argmin(1)
    cols = best_chunk[:, None] * _CHUNK + torch.arange(_CHUNK, device=raw.device)[None, :]
    inside = cols < m
    values = finish(raw.gather(1, cols.clamp_(max=m - 1))).masked_fill_(~inside, float("inf"))
    within = values.argmin(1)
    return chunk_min.gather(1, best_chunk[:, None]).squeeze(1), best_chunk * _CHUNK + within


def segment_extreme(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, num_rows: int,
                    largest: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row r: the max (largest=True) or min of values[rows == r] and the smallest column attaining it.

    Returns (value [num_rows], column [num_rows]); rows without entries get -inf/+inf and column -1.
    """
    fill = float("-inf") if largest else float("inf")
    best = values.new_full((num_rows,), fill).scatter_reduce_(0, rows, values, "amax" if largest else "amin")
    sentinel = torch.iinfo(torch.int64).max
    candidates = torch.where(values == best.index_select(0, rows), cols, sentinel)
    col = torch.full((num_rows,), sentinel, dtype=torch.int64, device=rows.device)
    col.scatter_reduce_(0, rows, candidates, "amin")
    return best, col.masked_fill_(col == sentinel, -1)


def sorted_rows(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stable ascending sort of each row: equal values keep column order, so ties go to the smallest column."""
    return torch.sort(values, dim=1, stable=True)


def first_position(sorted_values: torch.Tensor, targets: torch.Tensor, right: bool) -> torch.Tensor:
    """Per row: the first position whose value is > target (right=True) or >= target (right=False)."""
    return torch.searchsorted(sorted_values, targets.contiguous(), right=right)


def row_slots(rows: torch.Tensor, num_rows: int) -> tuple[torch.Tensor, int]:
    """For pairs sorted by row: each pair's slot within its row, and the most pairs of any row."""
    counts = torch.bincount(rows, minlength=num_rows)
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(rows.shape[0], device=rows.device) - first.index_select(0, rows)
    return slot, int(counts.max()) if rows.numel() else 0


def padded_by_row(rows: torch.Tensor, values: torch.Tensor, num_rows: int,
                  fill: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Lay `values` of pairs sorted by row into a [num_rows, K] matrix (K = most pairs of one row), padded by
    `fill`; also returns each pair's slot in its row."""
    slot, width = row_slots(rows, num_rows)
    out = values.new_full((num_rows, width), fill)
    out.view(-1).index_copy_(0, rows * width + slot, values)
    return out, slot
