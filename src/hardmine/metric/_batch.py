"""A validated batch (prepared embeddings, each anchor's positive columns) and its row blocks of the
anchor-by-reference dissimilarity matrix: distances as they are, similarities negated (larger = farther)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from hardmine.metric import _ops
from hardmine.metric.distances import BaseDistance

Indices = tuple[torch.Tensor, ...]


@dataclass
class Block:
    """Rows start..start+b of the [B, M] dissimilarity matrix and the positives of those rows.

    raw: [b, M] values ordered like the dissimilarities; `finish(raw)` (monotone, in place) gives them exactly.
    pos_cols: int64 [b, W], each row's positive columns in ascending order; pos_valid: bool [b, W] marks the
        real ones. The other entries point at a column that masking overwrites anyway (a positive of the row or
        the row itself), or, in rows without positives, at column 0.
    """

    start: int
    raw: torch.Tensor
    pos_cols: torch.Tensor
    pos_valid: torch.Tensor
    exclude_self: bool
    finish: _ops.Finish
    self_listed: bool = False  # (with exclude_self) pos_cols lists each row's own column, so scattering covers it

    @property
    def rows(self) -> int:
        return self.raw.shape[0]

    def positives(self, values: torch.Tensor, fill: float, finish: bool = False) -> torch.Tensor:
        """[b, W] values at the positive columns (a new tensor; passed through `finish` when asked), `fill`
        where there is no positive."""
        gathered = values.gather(1, self.pos_cols)
        if finish:
            gathered = self.finish(gathered)
        return gathered.masked_fill_(~self.pos_valid, fill)

    def mask_non_negatives_(self, values: torch.Tensor, fill: float) -> torch.Tensor:
        """Set the positive and self entries of `values` ([b, M], laid out as `raw`) to `fill`, in place."""
        if self.exclude_self:
            _ops.fill_columns_(values, self.pos_cols, fill)
            if self.self_listed:
                return values
            own = torch.arange(self.rows, device=values.device)
            values.view(-1).index_fill_(0, own * values.shape[1] + own + self.start, fill)
            return values
        has = self.pos_valid.any(1) if self.pos_valid.shape[1] else self.pos_valid.new_zeros(self.rows)
        if values.device.type == "cpu" and bool(has.all()):  # (a shortcut only where reading it costs no sync)
            return _ops.fill_columns_(values, self.pos_cols, fill)
        current = values.gather(1, self.pos_cols)  # rows without positives point at column 0: write it back
        return values.scatter_(1, self.pos_cols, torch.where(has[:, None], fill, current))

    def negative_counts(self) -> torch.Tensor:
        """int64 [b]: how many negatives each row has."""
        counts = self.raw.shape[1] - self.pos_valid.sum(1)
        return counts - 1 if self.exclude_self else counts

    def sorted_negatives(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The positives' dissimilarities d_ap [b, W] (inf at padding), and each row's dissimilarities sorted
        ascending with non-negatives moved to the end as inf [b, M], with the sorting order [b, M]."""
        values = self.finish(self.raw)
        d_ap = self.positives(values, float("inf"))
        self.mask_non_negatives_(values, float("inf"))
        sorted_values, order = _ops.sorted_rows(values)
        return d_ap, sorted_values, order


def safe_padding(cols: torch.Tensor, valid: torch.Tensor, exclude_self: bool) -> torch.Tensor:
    """Point the padding entries of left-packed `cols` at a column that masking may overwrite: the row's first
    positive (written with the same value), else the row's own column (when excluded), else column 0."""
    rows = cols.shape[0]
    if exclude_self:
        fallback = torch.arange(rows, device=cols.device)
    else:
        fallback = torch.zeros(rows, dtype=torch.int64, device=cols.device)
    if cols.shape[1]:
        fallback = torch.where(valid[:, 0], cols[:, 0], fallback)
    return torch.where(valid, cols, fallback[:, None])


@dataclass
class MiningBatch:
    """A validated batch: prepared query [B, D] and reference [M, D] embeddings, and each row's positives.

    make_positives: builds (pos_cols [B, W], pos_valid [B, W]) when first needed (see `Block`).
    self_labels: the int64 labels [B] when the batch is mined against itself with label-equality positives,
        else None (lets a miner take a label-specific fast path).
    """

    query: torch.Tensor
    ref: torch.Tensor
    exclude_self: bool
    distance: BaseDistance
    max_bytes: int
    make_positives: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    self_labels: torch.Tensor | None = None
    self_listed: bool = False  # see Block.self_listed

    _positives: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, init=False, repr=False)
    _factors: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, init=False, repr=False)

    @property
    def positives(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(pos_cols, pos_valid), built once."""
        if self._positives is None:
            self._positives = self.make_positives()
        return self._positives

    @property
    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`distance.factors(query, ref)`, built once (a plain cached attribute: functools.cached_property
        takes a lock on every first read before Python 3.12)."""
        if self._factors is None:
            self._factors = self.distance.factors(self.query, self.ref)
        return self._factors

    @property
    def num_query(self) -> int:
        return self.query.shape[0]

    @property
    def num_ref(self) -> int:
        return self.ref.shape[0]

    def empty(self, parts: int) -> Indices:
        return tuple(torch.empty(0, dtype=torch.int64, device=self.query.device) for _ in range(parts))

    def blocks(self, bytes_per_pair: int) -> Iterator[Block]:
        """Row blocks whose working memory (`bytes_per_pair` per matrix entry) stays within `max_bytes`."""
        rows = max(1, self.max_bytes // max(1, self.num_ref * bytes_per_pair))
        xa, ya = self.factors
        pos_cols, pos_valid = self.positives
        for start in range(0, self.num_query, rows):
            stop = min(start + rows, self.num_query)
            yield Block(start, xa[start:stop] @ ya.T, pos_cols[start:stop], pos_valid[start:stop],
                        self.exclude_self, self.distance.finish_, self.self_listed)


def concat_blocks(out: list[Indices]) -> Indices:
    """The per-block index tuples joined part by part (no copy when there is one block)."""
    return out[0] if len(out) == 1 else tuple(torch.cat(part) for part in zip(*out))
