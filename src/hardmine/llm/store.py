"""A precomputed reference: per-token losses in a memory-mapped file, keyed by sample id and token position."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hardmine._checks import check_indices, check_int
from hardmine.atomic import remove_stale_temporaries
from hardmine.llm.reference import ReferenceModel
from hardmine.llm.token_loss import IGNORE_INDEX, shift_labels


class TokenLossStore:
    """Reference token losses [N, L] (float32, NaN where none was stored) in a .npy file read through a memory map.

    Position t of sample i holds the reference loss of predicting token t + 1 (the causal shift of
    `token_losses`). Build one with `TokenLossStore.build` (one reference forward per stored token, counted
    once, however many epochs read it), open it with `TokenLossStore(path)`, and pass it wherever a
    `ReferenceModel` goes: `token_losses(inputs, labels, sample_ids)` reads the batch's rows.
    A batch whose label tokens have no stored loss is refused, naming the sample id and position: a sample id
    that was never stored, or a sequence longer than (or tokenised differently from) the stored one.
    """

    def __init__(self, path: str | os.PathLike, ignore_index: int = IGNORE_INDEX) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"path {str(self.path)!r}: no token-loss store there (build one with "
                                    "TokenLossStore.build)")
        try:
            data = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except ValueError as error:
            raise ValueError(f"path {str(self.path)!r} is not a .npy token-loss store: {error}") from None
        if data.dtype != np.float32 or data.ndim != 2:
            raise ValueError(f"path {str(self.path)!r} holds {data.dtype} of shape {data.shape}, expected float32 "
                             "[num_samples, length]")
        self._data, self.ignore_index = data, ignore_index

    @property
    def num_samples(self) -> int:
        """N, the number of sample ids (0 .. N - 1)."""
        return int(self._data.shape[0])

    @property
    def length(self) -> int:
        """L, the longest stored sequence."""
        return int(self._data.shape[1])

    def read(self, sample_ids: Any, mask: torch.Tensor) -> torch.Tensor:
        """Reference losses [B, T] (float32, on mask's device, 0 where mask [B, T] is False) of the samples
        `sample_ids` [B]; raises ValueError naming the first sample id and position without a stored loss."""
        if not isinstance(mask, torch.Tensor) or mask.ndim != 2:
            raise ValueError(f"mask must be a bool tensor [B, T], got "
                             f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
        ids = check_indices("sample_ids", sample_ids, self.num_samples)
        if ids.shape[0] != mask.shape[0]:
            raise ValueError(f"sample_ids has {ids.shape[0]} ids but the batch has {mask.shape[0]} sequences")
        width = mask.shape[1]
        host_mask = mask.detach().cpu().numpy().astype(bool)
        rows = np.full((ids.shape[0], width), np.nan, dtype=np.float32)
        shared = min(width, self.length)
        rows[:, :shared] = self._data[ids, :shared]
        missing = host_mask & np.isnan(rows)
        if missing.any():
            b, t = (int(v[0]) for v in np.nonzero(missing))
            if np.isnan(self._data[ids[b]]).all():
                raise ValueError(f"sample_ids: sample id {ids[b]} is missing from the store {str(self.path)!r}")
            raise ValueError(f"sample id {ids[b]} has no stored reference loss at position {t} (the store holds "
                             f"length {self.length}): the batch's sequence length or tokenisation differs from "
                             "the store's")
        rows[~host_mask] = 0.0
        return torch.from_numpy(rows).to(mask.device)

    def token_losses(self, inputs: Mapping[str, Any], labels: torch.Tensor,
                     sample_ids: torch.Tensor | None = None) -> torch.Tensor:
        """As `ReferenceModel.token_losses`, read from the store: sample_ids [B] are required, inputs unused."""
        if sample_ids is None:
            raise ValueError("sample_ids are required to read a TokenLossStore (the data set index of each row)")
        return self.read(sample_ids, shift_labels(labels, self.ignore_index) != self.ignore_index)

    @classmethod
    def build(cls, path: str | os.PathLike, reference: ReferenceModel, batches: Iterable[tuple[Any, Any, Any]],
              num_samples: int, length: int) -> TokenLossStore:
        """Run `reference` over `batches` of (sample_ids [B], inputs {"input_ids": [B, T], ...}, labels [B, T])
        and store each label token's loss; the file appears at `path` only when every batch is done (a temporary
        beside it, then an atomic rename). length: L >= every batch's T. Returns the opened store; the
        forwards are counted in `reference.forward_tokens`."""
        num_samples, length = check_int("num_samples", num_samples), check_int("length", length)
        if not isinstance(reference, ReferenceModel):
            raise TypeError(f"reference must be a hardmine.llm.ReferenceModel, got {type(reference).__name__}")
        path = Path(path)
        if not path.parent.is_dir():
            raise FileNotFoundError(f"path {str(path)!r}: its directory does not exist")
        remove_stale_temporaries(path)
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            data = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(num_samples, length))
            data[:] = np.nan
            for sample_ids, inputs, labels in batches:
                ids = check_indices("sample_ids", sample_ids, num_samples)
                if labels.shape[1] > length:
                    raise ValueError(f"length is {length} but a batch has sequences of length {labels.shape[1]}")
                loss = reference.token_losses(inputs, labels, sample_ids)
                mask = shift_labels(labels, reference.ignore_index) != reference.ignore_index
                rows = np.full((ids.shape[0], length), np.nan, dtype=np.float32)
                rows[:, :labels.shape[1]] = torch.where(mask.to(loss.device), loss, torch.nan).cpu().numpy()
                data[ids] = rows
            data.flush()
            del data
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return cls(path, reference.ignore_index)
