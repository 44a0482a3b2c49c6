"""Vectorised building blocks shared by the miners: each row's positives from labels, per-row minima with
exact first-index tie-breaking, sorted rows and binary search. All indices are int64."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

Finish = Callable[[torch.Tensor], torch.Tensor]

_CHUNK = 64


@functools.lru_cache(maxsize=64)
def arange(n: int, device: torch.device) -> torch.Tensor:
    """A shared, read-only int64 `torch.arange(n)` on `device` (never write into it)."""
    return torch.arange(n, device=device)


def label_positives(labels: torch.Tensor, ref_labels: torch.Tensor,
                    exclude_self: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's positive columns (ref_labels[j] == labels[i]) without building the [B, M] mask.

    Returns (cols int64 [B, W], valid bool [B, W]): the columns of the row's class in ascending order, W the
    largest class. Invalid entries point at a column that masking overwrites anyway: the class's first member,
    or the row itself (exclude_self: column i is anchor i, listed but not valid). Rows whose label is absent
    from ref_labels have no valid entry.
    """
    device = labels.device
    if ref_labels.numel() == 0:
        return labels.new_zeros((labels.shape[0], 0)), torch.zeros((labels.shape[0], 0), dtype=torch.bool)
    ref_sorted, order = torch.sort(ref_labels, stable=True)
    classes, sizes = torch.unique_consecutive(ref_sorted, return_counts=True)
    slot = torch.arange(int(sizes.max()), device=device)
    members = (torch.cumsum(sizes, 0) - sizes)[:, None] + torch.minimum(slot[None, :], sizes[:, None] - 1)
    class_cols = order.index_select(0, members.view(-1)).view(classes.shape[0], -1)
    which = torch.searchsorted(classes, labels)
    if ref_labels is labels:  # every label is present
        size = sizes.index_select(0, which)
    else:
        which.clamp_(max=classes.shape[0] - 1)
        size = torch.where(classes.index_select(0, which) == labels, sizes.index_select(0, which), 0)
    cols = class_cols.index_select(0, which)
    valid = slot < size.unsqueeze(1)
    if exclude_self:
        valid &= cols != arange(labels.shape[0], device).unsqueeze(1)
    return cols, valid


@functools.lru_cache(maxsize=64)
def row_offsets(n: int, width: int, device: torch.device) -> torch.Tensor:
    """A shared, read-only int64 [n, 1] column `arange(n) * width`: the flat index of each row's first entry."""
    return torch.arange(0, n * width, width, device=device).unsqueeze(1)


_TEMPORARY_FLAT = 1 << 16  # up to this many column entries a temporary flat index costs less than two passes


def fill_columns_(values: torch.Tensor, cols: torch.Tensor, fill: float, consume_cols: bool = False) -> torch.Tensor:
    """`values[i, cols[i, k]] = fill` for every k, in place; values: contiguous [b, M], cols: int64 [b, W].

    One flat index_fill_ (about half the time of scatter_ along dim 1 on CPU); repeated columns are fine. The
    flat indices are formed in `cols` itself when `consume_cols` (it then holds them afterwards), else in a
    temporary for small `cols`, and for large ones in place and then undone (exact integer arithmetic), so
    that no [b, W] temporary adds to the peak memory."""
    rows, width = values.shape
    offsets = row_offsets(rows, width, cols.device)
    if consume_cols or cols.numel() > _TEMPORARY_FLAT:
        values.view(-1).index_fill_(0, cols.add_(offsets).view(-1), fill)
        if not consume_cols:
            cols.sub_(offsets)
    else:
        values.view(-1).index_fill_(0, (cols + offsets).view(-1), fill)
    return values


def _chunk_minima(raw: torch.Tensor, finish: Finish, width: int) -> torch.Tensor:
    """[b, ceil(M / width)]: `finish` of the minima of each row's chunks of `width` columns (a new tensor)."""
    b, m = raw.shape
    n = m // width
    if m == n * width:
        return finish(raw.view(b, n, width).amin(2))
    tail = raw[:, n * width:].amin(1, keepdim=True)
    return finish(torch.cat([raw[:, :n * width].reshape(b, n, width).amin(2), tail], 1) if n else tail)


def row_first_argmin(raw: torch.Tensor, finish: Finish) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of `raw` [b, M]: the minimum of `finish(raw)` and the smallest column where it is attained.

    `finish` is a monotone non-decreasing in-place map. The minimum is found on chunk minima of `raw` (a fast
    vectorised reduction); `finish` is applied only to the chunk minima and to the winning chunk, so ties that
    `finish` creates (e.g. two squared distances with the same square root) still go to the smallest column.
    """
    if not raw.is_contiguous():
        raw = raw.contiguous()
    b, m = raw.shape
    width = _CHUNK if m > 512 else _CHUNK // 2  # about sqrt(M): the two arg-reductions scan the least
    value, best_chunk = _chunk_minima(raw, finish, width).min(1)
    if m % width == 0:  # every chunk is full: copy each row's winning chunk out whole
        chunk = raw.view(b, m // width, width).gather(1, best_chunk.view(b, 1, 1).expand(b, 1, width))
        within = finish(chunk.view(b, width)).min(1)[1]  # min(1): faster than argmin(1) on CPU, same first index
        return value, within.add_(best_chunk, alpha=width)
    start = best_chunk * width
    cols = start[:, None] + torch.arange(width, device=raw.device)
    inside = cols < m
    values = finish(raw.gather(1, cols.clamp_(max=m - 1))).masked_fill_(~inside, float("inf"))
    return value, start.add_(values.min(1)[1])


def col_first_argmin(raw: torch.Tensor, finish: Finish) -> tuple[torch.Tensor, torch.Tensor]:
    """Per column of `raw` [M, b]: as `row_first_argmin` along dim 0 (the smallest row attaining the minimum)."""
    m, b = raw.shape
    n = m // _CHUNK
    parts = []
    if n:
        parts.append(raw[:n * _CHUNK].view(n, _CHUNK, b).amin(1))
    if m > n * _CHUNK:
        parts.append(raw[n * _CHUNK:].amin(0, keepdim=True))
    chunk_min = finish(torch.cat(parts, 0).T.contiguous())  # [b, chunks]: argmin along a contiguous dim
    value, best_chunk = chunk_min.min(1)
    rows = best_chunk[:, None] * _CHUNK + torch.arange(_CHUNK, device=raw.device)[None, :]
    inside = rows < m
    values = finish(raw.T.gather(1, rows.clamp_(max=m - 1))).masked_fill_(~inside, float("inf"))
    within = values.argmin(1)
    return value, best_chunk * _CHUNK + within


def take(values: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """The (rows[k], cols[k]) entries of a 2-D `values`, as a new 1-D tensor."""
    return values.reshape(-1).index_select(0, rows * values.shape[1] + cols)


def sorted_rows(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stable ascending sort of each row: equal values keep column order, so ties go to the smallest column."""
    return torch.sort(values, dim=1, stable=True)


def first_position(sorted_values: torch.Tensor, targets: torch.Tensor, right: bool) -> torch.Tensor:
    """Per row: the first position whose value is > target (right=True) or >= target (right=False)."""
    return torch.searchsorted(sorted_values, targets.contiguous(), right=right)


def padded_by_row(rows: torch.Tensor, cols: torch.Tensor, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs (rows, cols) sorted by row -> (cols int64 [num_rows, W], valid bool [num_rows, W]), left-packed."""
    counts = torch.bincount(rows, minlength=num_rows)
    width = int(counts.max()) if rows.numel() else 0
    slot = torch.arange(rows.shape[0], device=rows.device) - (torch.cumsum(counts, 0) - counts).index_select(0, rows)
    out = torch.zeros((num_rows, width), dtype=torch.int64, device=rows.device)
    out.view(-1).index_copy_(0, rows * width + slot, cols)
    return out, torch.arange(width, device=rows.device)[None, :] < counts[:, None]
