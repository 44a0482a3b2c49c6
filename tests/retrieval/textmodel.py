"""A tiny deterministic text model with sentence-transformers' encode API (character trigrams hashed into 48
dimensions, then a fixed random projection), enough for ST's own mine_hard_negatives to run on it."""

from __future__ import annotations

import hashlib

import numpy as np
import torch


class TrigramModel:
    def __init__(self, dim: int = 48, seed: int = 0) -> None:
        self.dim = dim
        self.device = torch.device("cpu")
        self.proj = np.random.default_rng(seed).standard_normal((256, dim)).astype(np.float32)
        self.calls = 0

    def _row(self, text: str) -> np.ndarray:
        counts = np.zeros(256, dtype=np.float32)
        padded = f"  {text.lower()} "
        for i in range(len(padded) - 2):
            counts[hashlib.md5(padded[i:i + 3].encode()).digest()[0]] += 1.0
        return counts @ self.proj

    def encode(self, texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False,
               show_progress_bar=False, **kwargs):
        self.calls += 1
        emb = np.stack([self._row(t) for t in texts]).astype(np.float32)
        if normalize_embeddings:
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        return emb if convert_to_numpy else torch.from_numpy(emb)

    encode_query = encode
    encode_document = encode

    def get_embedding_dimension(self) -> int:
        return self.dim

    def similarity(self, a, b):
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        return torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T

    def similarity_pairwise(self, a, b):
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        return (torch.nn.functional.normalize(a, dim=-1) * torch.nn.functional.normalize(b, dim=-1)).sum(-1)


WORDS = ("cat dog bird fish horse cow sheep goat lion tiger bear wolf fox deer mouse rat owl hawk eagle duck goose "
         "swan frog toad snake lizard shark whale seal otter").split()


def pair_rows(n: int = 60, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(anchors, positives, corpus): some anchors repeat with a second positive; the corpus repeats texts and
    holds copies of positives."""
    rng = np.random.default_rng(seed)
    anchors, positives = [], []
    for i in range(n):
        w = [WORDS[j] for j in rng.choice(len(WORDS), 3, replace=False)]
        anchors.append(f"a {w[0]} that chases the {w[1]} near the {w[2]}")
        positives.append(f"{w[0]} {w[1]}")
        if i % 7 == 0:
            anchors.append(anchors[-1])
            positives.append(f"{w[0]} and {w[2]}")
    corpus = [f"{WORDS[a]} {WORDS[b]}" for a, b in rng.integers(len(WORDS), size=(150, 2))] + positives[:10]
    return anchors, positives, corpus
