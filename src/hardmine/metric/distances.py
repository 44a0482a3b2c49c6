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

from hardmine._checks import check_int
from hardmine.registry import Registered, Registry

DISTANCES = Registry("distance")
"""Short names of the distances: `DISTANCES["cosine"]()`; a distance registers by subclassing `BaseDistance` with
a class attribute `name = "..."`."""

DEFAULT_MAX_BYTES = 16 * 2**20  # blocks below glibc's 32 MiB mmap threshold reuse heap pages


class BaseDistance(Registered):
    """A pairwise distance (`is_similarity=False`) or similarity (`is_similarity=True`) between embeddings;
    a subclass with a `name` registers in DISTANCES."""

    registry = DISTANCES
    is_similarity: ClassVar[bool] = False

    def __init__(self, normalize: bool) -> None:
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be a bool, got {normalize!r}")
        self.normalize = normalize

    def __repr__(self) -> str:
        return f"{type(self).__name__}(normalize={self.normalize})"

    def to_pml(self) -> object:
        """The equal pytorch-metric-learning distance, to pass to PML's miners and losses."""
        return to_pml(self)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The embeddings as the distance sees them: L2-normalised rows when `normalize` is set (the operations
        of `F.normalize(x, dim=1)`, bit for bit, without its Python wrappers), scale-invariant: a row whose norm
        overflows or underflows the dtype is divided by its largest entry first."""
        if not self.normalize:
            return x
        norm = torch.linalg.vector_norm(x, 2.0, 1, True)
        out = x / norm.clamp_min(1e-12)
        # a norm that overflows (|x| ~ 1e20 in float32) or underflows would give rows of 0: those rows are
        # normalised again after dividing by their largest entry, so the direction does not depend on the scale
        redo = ~torch.isfinite(norm) | (norm < 1e-12)
        scale = x.abs().amax(1, keepdim=True)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        scaled = x / scale
        safe = scaled / torch.linalg.vector_norm(scaled, 2.0, 1, True).clamp_min(1e-12)
        return torch.where(redo, safe, out)

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


class SquaredEuclideanDistance(BaseDistance):
    """Squared L2 distance |x - y|^2 (on L2-normalised embeddings by default, then in [0, 4])."""

    name = "squared_euclidean"

    def __init__(self, normalize: bool = True) -> None:
        super().__init__(normalize)

    def factors(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # [x, |x|^2, 1] . [-2y, 1, |y|^2] = |x|^2 + |y|^2 - 2 x.y: the norms ride along in the matrix product
        ones_x = x.new_ones((x.shape[0], 1))
        norm_x = x.pow(2).sum(1, keepdim=True)
        if y is x:  # mined against itself: the norms and ones serve both sides
            ones_y, norm_y = ones_x, norm_x
        else:
            ones_y, norm_y = y.new_ones((y.shape[0], 1)), y.pow(2).sum(1, keepdim=True)
        return torch.cat([x, norm_x, ones_x], 1), torch.cat([y.mul(-2.0), ones_y, norm_y], 1)

    def finish_(self, values: torch.Tensor) -> torch.Tensor:
        return values.clamp_(min=0.0)


class EuclideanDistance(SquaredEuclideanDistance):
    """L2 distance |x - y| (on L2-normalised embeddings by default, then in [0, 2]); PML's default distance."""

    name = "euclidean"

    def finish_(self, values: torch.Tensor) -> torch.Tensor:
        return values.clamp_(min=0.0).sqrt_()


class DotProductSimilarity(BaseDistance):
    """Dot product x . y, a similarity (unnormalised by default)."""

    name = "dot"

    is_similarity = True

    def __init__(self, normalize: bool = False) -> None:
        super().__init__(normalize)

    def factors(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, -y


class CosineSimilarity(DotProductSimilarity):
    """Cosine similarity x . y / (|x| |y|), in [-1, 1]: the dot product of L2-normalised embeddings."""

    name = "cosine"

    def __init__(self) -> None:
        super().__init__(normalize=True)

    def __repr__(self) -> str:
        return "CosineSimilarity()"



def _pml_distances():
    try:
        from pytorch_metric_learning import distances
    except ImportError as err:
        raise ImportError("converting to pytorch-metric-learning needs: pip install pytorch-metric-learning") from err
    return distances


def is_pml_distance(obj: object) -> bool:
    """Whether `obj` is a pytorch-metric-learning distance (checked by its module, so PML need not be imported)."""
    return any(c.__module__.startswith("pytorch_metric_learning.distances") for c in type(obj).__mro__)


def from_pml(distance: object) -> BaseDistance:
    """The hardmine distance equal to a pytorch-metric-learning one: LpDistance (p=2, power 1 or 2),
    CosineSimilarity, DotProductSimilarity, with their `normalize_embeddings`. Others raise a TypeError."""
    name = type(distance).__name__
    normalize = bool(getattr(distance, "normalize_embeddings", True))
    p, power = getattr(distance, "p", 2), getattr(distance, "power", 1)
    if name == "LpDistance" and p == 2 and power in (1, 2):
        return EuclideanDistance(normalize) if power == 1 else SquaredEuclideanDistance(normalize)
    if name == "CosineSimilarity" and power == 1:
        return CosineSimilarity()
    if name == "DotProductSimilarity" and power == 1:
        return CosineSimilarity() if normalize else DotProductSimilarity(False)
    raise TypeError(f"distance {distance!r} of pytorch-metric-learning has no hardmine equivalent (supported: "
                    "LpDistance with p=2 and power 1 or 2, CosineSimilarity, DotProductSimilarity)")


def to_pml(distance: BaseDistance) -> object:
    """The pytorch-metric-learning distance equal to a hardmine one, for PML's miners and losses."""
    d = _pml_distances()
    if isinstance(distance, EuclideanDistance):
        return d.LpDistance(normalize_embeddings=distance.normalize, p=2, power=1)
    if isinstance(distance, SquaredEuclideanDistance):
        return d.LpDistance(normalize_embeddings=distance.normalize, p=2, power=2)
    if isinstance(distance, CosineSimilarity):
        return d.CosineSimilarity()
    if isinstance(distance, DotProductSimilarity):
        return d.DotProductSimilarity(normalize_embeddings=distance.normalize)
    raise TypeError(f"{distance!r} has no pytorch-metric-learning equivalent")


def as_distance(name: str, value: object) -> BaseDistance:
    """A hardmine distance from a hardmine or a pytorch-metric-learning distance object; else a TypeError."""
    if isinstance(value, BaseDistance):
        return value
    if is_pml_distance(value):
        return from_pml(value)
    raise TypeError(f"{name} must be a hardmine.metric distance object or a pytorch-metric-learning one, got {value!r}")
