"""Pairwise distances and similarities between embeddings, computed in row blocks under a memory budget.

Every distance object has `pairwise(x, y)` ([B, D] x [M, D] -> [B, M]) and `is_similarity` (True when larger
means closer). Miners work with dissimilarities (distances as they are, similarities negated) through two
lower-level pieces: `factors(x, y)`, two matrices whose product `xa @ ya.T` orders every row exactly as the
dissimilarities do (one matrix product, no extra passes), and `finish_(raw)`, the monotone map that turns
that product into the dissimilarities in place.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import torch
import torch.nn.functional as F

from hardmine._checks import check_int
from hardmine.registry import Registry

DISTANCES = Registry("distance")
"""Short names of the distances: `DISTANCES["cosine"]()`; a distance registers with `@DISTANCES.register(name)`."""

DEFAULT_MAX_BYTES = 16 * 2**20  # blocks below glibc's 32 MiB mmap threshold reuse heap pages


class BaseDistance:
    """A pairwise distance (`is_similarity=False`) or similarity (`is_similarity=True`) between embeddings."""

    is_similarity: ClassVar[bool] = False

    def __init__(self, normalize: bool) -> None:
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be a bool, got {normalize!r}")
        self.normalize = normalize

    def __repr__(self) -> str:
        return f"{type(self).__name__}(normalize={self.normalize})"

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The embeddings as the distance sees them: L2-normalised rows when `normalize` is set."""
        return F.normalize(x, p=2, dim=1) if self.normalize else x

    def factors(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepared rows `x` [B, D] and `y` [M, D] -> (xa [B, K], ya [M, K]) with xa @ ya.T ordered as the
        dissimilarities (similarities negated)."""
        raise NotImplementedError

    def finish_(self, values: torch.Tensor) -> torch.Tensor:
        """Turn `xa @ ya.T` into dissimilarities in place (a monotone non-decreasing map); identity by default."""
        return values

    def pairwise_blocks(self, x: torch.Tensor, y: torch.Tensor | None = None,
                        max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield `(first_row, block)`: the rows of the [B, M] matrix in blocks of at most `max_bytes` bytes."""
        check_int("max_bytes", max_bytes)
        xp = self.prepare(x)
        xa, ya = self.factors(xp, xp if y is None else self.prepare(y))
        rows = max(1, max_bytes // max(1, ya.shape[0] * xa.element_size()))
        for start in range(0, xa.shape[0], rows):
            block = self.finish_(xa[start:start + rows] @ ya.T)
            yield start, block.neg_() if self.is_similarity else block

    def pairwise(self, x: torch.Tensor, y: torch.Tensor | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> torch.Tensor:
        """The [B, M] matrix between rows of `x` [B, D] and `y` [M, D] (`y=None`: `x` itself), in blocks."""
        blocks = [block for _, block in self.pairwise_blocks(x, y, max_bytes)]
        if not blocks:
            return x.new_empty((0, x.shape[0] if y is None else y.shape[0]))
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks)


@DISTANCES.register("squared_euclidean")
class SquaredEuclideanDistance(BaseDistance):
    """Squared L2 distance |x - y|^2 (on L2-normalised embeddings by default, then in [0, 4])."""

    def __init__(self, normalize: bool = True) -> None:
        super().__init__(normalize)

    def factors(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # [x, |x|^2, 1] . [-2y, 1, |y|^2] = |x|^2 + |y|^2 - 2 x.y: the norms ride along in the matrix product
        ones_x, ones_y = x.new_ones((x.shape[0], 1)), y.new_ones((y.shape[0], 1))
        xa = torch.cat([x, x.pow(2).sum(1, keepdim=True), ones_x], 1)
        ya = torch.cat([-2.0 * y, ones_y, y.pow(2).sum(1, keepdim=True)], 1)
        return xa, ya

    def finish_(self, values: torch.Tensor) -> torch.Tensor:
        return values.clamp_(min=0.0)


@DISTANCES.register("euclidean")
class EuclideanDistance(SquaredEuclideanDistance):
    """L2 distance |x - y| (on L2-normalised embeddings by default, then in [0, 2]); PML's default distance."""

    def finish_(self, values: torch.Tensor) -> torch.Tensor:
        return values.clamp_(min=0.0).sqrt_()


@DISTANCES.register("dot")
class DotProductSimilarity(BaseDistance):
    """Dot product x . y, a similarity (unnormalised by default)."""

    is_similarity = True

    def __init__(self, normalize: bool = False) -> None:
        super().__init__(normalize)

    def factors(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, -y


@DISTANCES.register("cosine")
class CosineSimilarity(DotProductSimilarity):
    """Cosine similarity x . y / (|x| |y|), in [-1, 1]: the dot product of L2-normalised embeddings."""

    def __init__(self) -> None:
        super().__init__(normalize=True)

    def __repr__(self) -> str:
        return "CosineSimilarity()"

