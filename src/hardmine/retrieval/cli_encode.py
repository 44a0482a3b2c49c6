"""Encoding for the command line: cached by content hash, an estimate of the time up front, progress on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hardmine.retrieval.cache import cached_embeddings, texts_key
from hardmine.retrieval.encode import encode_side

PROBE = 256


def say(message: str) -> None:
    """One line of progress on stderr (stdout carries the summary)."""
    print(message, file=sys.stderr, flush=True)


def encode_for_cli(model: Any, fingerprint: str, texts: Sequence[str], what: str, side: str, cache: Path | None,
                   progress: bool, batch_size: int = 128) -> np.ndarray:
    """Embeddings float32 [len(texts), d] of `texts` (unit rows): from `cache` when the same model weights and
    texts were encoded before, else encoded, timing the first PROBE texts to state the time the rest will take."""
    key = texts_key(fingerprint, texts, side)

    def compute() -> np.ndarray:
        started = time.perf_counter()
        head = encode_side(model, texts[:PROBE], side, batch_size, progress=False)
        rate = len(head) / max(time.perf_counter() - started, 1e-9)
        rest = len(texts) - len(head)
        if progress:
            say(f"encoding {len(texts):,} {what}: about {rest / rate / 60:.1f} min more at {rate:.0f} texts/s")
        if not rest:
            return head
        tail = encode_side(model, texts[PROBE:], side, batch_size, progress=progress)
        return np.concatenate([head, tail])

    emb, hit = cached_embeddings(cache, side, key, len(texts), compute)
    if hit and progress:
        say(f"{what}: {len(texts):,} embeddings read from the cache {cache}")
    return emb
