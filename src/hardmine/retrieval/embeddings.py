"""Embedding matrices read block by block: validated once, normalised per block, never copied whole."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from hardmine._checks import check_not_meta

_FLOAT_TORCH = (torch.float16, torch.float32, torch.float64)


def as_embedding_matrix(name: str, value: Any) -> np.ndarray:
    """Return `value` ([n, d] numpy array or torch tensor, float16/32/64) as a numpy array without copying CPU data.

    Raises TypeError for other dtypes and ValueError for a shape that is not a non-empty [n, d] matrix.
    """
    if isinstance(value, torch.Tensor):
        check_not_meta(name, value)
        if value.dtype not in _FLOAT_TORCH:
            raise TypeError(f"{name} must hold float32 or float16 embeddings, got torch dtype {value.dtype}")
        value = value.detach().cpu().numpy()
    elif not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(value).__name__}")
    if value.dtype.kind != "f":
        raise TypeError(f"{name} must hold float32 or float16 embeddings, got dtype {value.dtype}")
    if value.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n, d], got shape {tuple(value.shape)}")
    if value.shape[0] == 0 or value.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(value.shape)}")
    return value


class Embeddings:
    """A read-only [n, d] embedding matrix served as float32 blocks, L2-normalised when `cosine` is set.

    Construction makes one pass over the rows (`chunk_rows` at a time) to check that every value is finite and,
    for cosine, that no row has zero norm; it keeps only the [n] float32 row norms. Blocks are copied on demand,
    so memory beyond the caller's matrix is one block.
    """

    def __init__(self, name: str, matrix: Any, cosine: bool, chunk_rows: int = 65536) -> None:
        self.name = name
        self.matrix = as_embedding_matrix(name, matrix)
        self.cosine = cosine
        self.norms = self._checked_norms(chunk_rows)
        self._unit = cosine and bool(np.all(np.abs(self.norms - 1.0) < 1e-4))

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def _checked_norms(self, chunk_rows: int) -> np.ndarray:
        norms = np.empty(len(self), dtype=np.float32)
        for start in range(0, len(self), chunk_rows):
            block = np.asarray(self.matrix[start:start + chunk_rows], dtype=np.float32)
            squared = np.einsum("ij,ij->i", block, block)  # NaN or inf in a row makes its squared norm non-finite
            bad = ~np.isfinite(squared)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                if np.isfinite(block[row]).all():
                    raise ValueError(f"{self.name} row {start + row} is too large: its squared norm overflows float32")
                raise ValueError(f"{self.name} has a non-finite value (NaN or inf) in row {start + row}")
            norms[start:start + len(block)] = np.sqrt(squared)
        if self.cosine and (norms == 0).any():
            row = int(np.flatnonzero(norms == 0)[0])
            raise ValueError(f"{self.name} row {row} has zero norm: cosine similarity is undefined for it")
        return norms

    def block(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as a C-contiguous float32 array, unit-normalised for cosine."""
        block = np.ascontiguousarray(self.matrix[start:stop], dtype=np.float32)
        if self.cosine and not self._unit:
            block = block / self.norms[start:stop, None]
        return block

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The rows `ids` (int64 [m]) as float32 [m, d], unit-normalised for cosine."""
        rows = np.asarray(self.matrix[ids], dtype=np.float32)
        if self.cosine and not self._unit:
            rows = rows / self.norms[ids, None]
        return rows

    def blocks(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (start, block) over all rows, `size` rows per block."""
        for start in range(0, len(self), size):
            yield start, self.block(start, min(start + size, len(self)))
