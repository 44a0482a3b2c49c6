"""Embeddings cached on disk by content hash: model weights, prompt and texts; written atomically, read without
pickle, so a rerun with the same inputs does not encode again and any change encodes afresh."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hardmine.atomic import write_with


def model_fingerprint(model: Any) -> str:
    """sha256 of the model's parameters and buffers (names, dtypes, shapes, bytes) when it has `state_dict`,
    else of its type name; a fine-tuned copy of a model gets a new fingerprint."""
    h = hashlib.sha256(type(model).__qualname__.encode())
    state = model.state_dict() if callable(getattr(model, "state_dict", None)) else {}
    for name, tensor in state.items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def texts_key(fingerprint: str, texts: Sequence[str], *extra: Any) -> str:
    """sha256 over the fingerprint, `extra` (prompt, prompt name, ...) and every text, length-prefixed."""
    h = hashlib.sha256(fingerprint.encode())
    h.update(repr(extra).encode())
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def cached_embeddings(folder: str | Path | None, kind: str, key: str, count: int,
                      compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
    """Load `folder/{kind}_embeddings_{key}.npy` if present (checked to hold `count` rows), else `compute()` and
    write it there atomically. Returns (embeddings, whether they came from the cache). folder None: no cache."""
    if folder is None:
        return compute(), False
    path = Path(folder) / f"{kind}_embeddings_{key}.npy"
    if path.is_file():
        emb = np.load(path, allow_pickle=False)
        if emb.ndim == 2 and emb.shape[0] == count:
            return emb, True
    emb = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_with(path, lambda f: np.save(f, np.ascontiguousarray(emb), allow_pickle=False))
    return emb, False
