"""In-batch selection: per-element scores of any shape -> `Selection(index, weight)` of the elements to train on.

Scores are "higher = harder" (a per-element loss is the usual score). Every selector takes an optional boolean
`mask` of valid elements (e.g. `target != ignore_index`); masked-out elements are never selected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from hardmine._checks import check_choice, check_finite, check_int, check_number
from hardmine.registry import Registered, Registry
from hardmine.state import Array, Int, Stateful

_MAX_HISTORY = 2**27

SELECTORS = Registry("selector")
"""Short names for the CLI and the experiment runner: `SELECTORS["top_k"](k=0.25)`; a selector registers by
subclassing `Selector` with a class attribute `name = "..."`."""


@dataclass(frozen=True, eq=False)
class Selection:
    """The elements a selector keeps.

    index: int64 [K], ascending positions into `scores.reshape(-1)`.
    weight: float [K], the weight of each kept element (1 for the selectors of this module).
    shape: the shape of the scores the selection was made from; `reduce` checks the loss against it.
    """

    index: torch.Tensor
    weight: torch.Tensor
    shape: torch.Size

    def __post_init__(self) -> None:
        if not isinstance(self.index, torch.Tensor) or self.index.dtype != torch.int64 or self.index.dim() != 1:
            raise TypeError("Selection.index must be a 1-D int64 tensor, got "
                            f"{getattr(self.index, 'dtype', self.index)}")
        if not isinstance(self.weight, torch.Tensor) or self.weight.shape != self.index.shape:
            raise ValueError(f"Selection.weight must be a tensor of shape {tuple(self.index.shape)}, got "
                             f"{tuple(getattr(self.weight, 'shape', ()))}")
        size = math.prod(self.shape)
        if self.index.numel() and (int(self.index.min()) < 0 or int(self.index.max()) >= size):
            raise ValueError(f"Selection.index out of range [0, {size}) for shape {tuple(self.shape)}")

    def __len__(self) -> int:
        return int(self.index.numel())

    def mask(self) -> torch.Tensor:
        """Boolean tensor of `shape`, True at the kept elements."""
        out = torch.zeros(math.prod(self.shape), dtype=torch.bool, device=self.index.device)
        out[self.index] = True
        return out.reshape(self.shape)

    def dense_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Float tensor of `shape`: the weight at the kept elements, 0 elsewhere."""
        out = torch.zeros(math.prod(self.shape), dtype=dtype, device=self.index.device)
        out[self.index] = self.weight.to(dtype)
        return out.reshape(self.shape)


def _check_scores(scores: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flatten and validate scores (finite, floating, non-empty) and the optional boolean mask of valid elements."""
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if not scores.is_floating_point():
        raise TypeError(f"scores must be floating point, got dtype {scores.dtype}")
    if scores.numel() == 0:
        raise ValueError(f"scores is empty (shape {tuple(scores.shape)}): nothing to select from")
    flat = scores.detach().reshape(-1)
    valid = None
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a boolean torch.Tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
        if mask.shape != scores.shape:
            raise ValueError(f"mask has shape {tuple(mask.shape)} but scores have shape {tuple(scores.shape)}")
        valid = mask.reshape(-1).to(flat.device)
    bad = ~torch.isfinite(flat)
    if valid is not None:
        bad &= valid
    if bool(bad.any()):
        pos = torch.nonzero(bad).reshape(-1)
        raise ValueError(f"scores has {pos.numel()} non-finite value(s) (NaN or inf), first at flat position "
                         f"{int(pos[0])}: {float(flat[pos[0]])}")
    return flat, valid


def _selection(keep: torch.Tensor, shape: torch.Size, dtype: torch.dtype) -> Selection:
    index = torch.nonzero(keep).reshape(-1)
    return Selection(index, torch.ones(index.numel(), dtype=dtype, device=index.device), shape)


def _top_k_mask(flat: torch.Tensor, k: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean mask [N] of exactly min(k, #valid) largest valid entries of the 1-D tensor `flat`.

    Ties at the k-th largest value are broken toward the lowest position, so the result is deterministic. O(N).
    """
    n_valid = flat.numel() if valid is None else int(valid.sum())
    k = min(k, n_valid)
    if k == 0:
        return torch.zeros_like(flat, dtype=torch.bool)
    work = flat if valid is None else flat.masked_fill(~valid, -math.inf)
    kth = torch.kthvalue(work, work.numel() - k + 1).values
    greater = work > kth
    equal = work == kth
    need = k - greater.sum()
    return greater | (equal & (torch.cumsum(equal, 0) <= need))


class Selector(Registered):
    """Base of the in-batch selectors: `selector(scores, mask=None) -> Selection` over scores of any shape
    (only where `mask` is True); a subclass with a `name` registers in SELECTORS."""

    registry = SELECTORS

    def __call__(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> Selection:
        """Select from `scores` of any shape (optionally only where `mask` is True)."""
        raise NotImplementedError


class TopK(Selector):
    """Keep the k highest-scoring elements.

    k: a count (int >= 0; larger than the number of scores is an error) or a fraction in (0, 1) of the valid
        elements (rounded up). With a mask, a count is capped at the number of valid elements.
    Exactly k elements are kept; ties at the k-th largest score keep the lowest flat positions.
    """

    name = "top_k"

    def __init__(self, k: int | float) -> None:
        if isinstance(k, float):
            self.k: int | float = check_number("k", k, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        else:
            self.k = check_int("k", k, minimum=0)

    def count(self, num_valid: int, num_scores: int) -> int:
        """The number of elements kept out of `num_valid` valid ones (of `num_scores` in all)."""
        if isinstance(self.k, float):
            return math.ceil(self.k * num_valid)
        if self.k > num_scores:
            raise ValueError(f"k={self.k} is larger than the number of scores ({num_scores})")
        return min(self.k, num_valid)

    def __call__(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> Selection:
        """Select from `scores` of any shape (optionally only where `mask` is True)."""
        flat, valid = _check_scores(scores, mask)
        n_valid = flat.numel() if valid is None else int(valid.sum())
        keep = _top_k_mask(flat, self.count(n_valid, flat.numel()), valid)
        return _selection(keep, scores.shape, scores.dtype)


class Threshold(Selector):
    """Keep every element strictly above `value` (or below, with `keep="below"`), but never fewer than `min_kept`.

    When fewer than `min_kept` elements pass, the `min_kept` most extreme valid ones are kept instead (ties as in
    `TopK`); `min_kept` is capped at the number of valid elements. The segmentation variant ("pixels whose
    true-class probability is below 0.7, at least 100000 of them") is
    `Threshold(0.7, 100000, keep="below")(*true_class_probability(logits, target, ignore_index=255))`.
    """

    name = "threshold"

    def __init__(self, value: float, min_kept: int = 0, keep: Literal["above", "below"] = "above") -> None:
        check_finite("value", value)
        check_choice("keep", keep, ("above", "below"))
        self.value = float(value)
        self.min_kept = check_int("min_kept", min_kept, minimum=0)
        self.keep = keep

    def __call__(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> Selection:
        """Select from `scores` of any shape (optionally only where `mask` is True)."""
        flat, valid = _check_scores(scores, mask)
        signed = flat if self.keep == "above" else -flat
        keep = signed > (self.value if self.keep == "above" else -self.value)
        if valid is not None:
            keep &= valid
        if int(keep.sum()) < self.min_kept:
            keep = _top_k_mask(signed, self.min_kept, valid)
        return _selection(keep, scores.shape, scores.dtype)


class Stochastic(Selector, Stateful):
    """Selective backprop (Jiang et al. 2019): keep each element with probability percentile**beta.

    The percentile of a score is the fraction of a running history of recent scores (the last `history_size`,
    this batch's included) that are <= it, so the hardest element seen so far is always kept.
    beta: >= 0; larger keeps fewer easy elements (beta=0 keeps everything).
    seed: an int or a torch.Generator (CPU); the only source of randomness.
    State (history and generator) round-trips through state_dict()/load_state_dict().
    """

    name = "stochastic"

    def __init__(self, beta: float = 1.0, history_size: int = 1024, seed: int | torch.Generator = 0) -> None:
        self.beta = check_finite("beta", beta, minimum=0)
        self.history_size = check_int("history_size", history_size, maximum=_MAX_HISTORY)  # a float64 ring buffer
        if isinstance(seed, torch.Generator):
            self.generator = seed
        elif isinstance(seed, int) and not isinstance(seed, bool):
            if not 0 <= seed < 2**64:
                raise ValueError(f"seed must be in [0, 2**64), got {seed}")
            self.generator = torch.Generator().manual_seed(seed)
        else:
            raise TypeError(f"seed must be an int or a torch.Generator, got {seed!r}")
        self._history = torch.zeros(self.history_size, dtype=torch.float64)
        self._count = 0
        self._position = 0

    def _record(self, values: torch.Tensor) -> torch.Tensor:
        """Append `values` to the ring buffer and return the current history, sorted."""
        values = values.to("cpu", torch.float64)[-self.history_size:]
        n, at, size = values.numel(), self._position, self.history_size
        first = min(n, size - at)  # the slots up to the buffer's end, then the rest from its start
        self._history[at: at + first] = values[:first]
        self._history[: n - first] = values[first:]
        self._position = (at + n) % size
        self._count = min(self._count + n, size)
        return torch.sort(self._history[: self._count]).values

    def keep(self, values: torch.Tensor) -> torch.Tensor:
        """Boolean [n]: which of the finite float64 scores `values` [n] to keep (no check: `__call__` checks);
        advances the state."""
        history = self._record(values).to(values.device)
        percentile = torch.searchsorted(history, values, right=True).to(torch.float64) / max(history.numel(), 1)
        draw = torch.rand(values.numel(), generator=self.generator, dtype=torch.float64).to(values.device)
        return draw < percentile.pow(self.beta)

    def __call__(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> Selection:
        """Select from `scores` of any shape (optionally only where `mask` is True); advances the state."""
        flat, valid = _check_scores(scores, mask)
        kept = self.keep((flat if valid is None else flat[valid]).to(torch.float64))
        if valid is None:
            keep = kept
        else:
            keep = torch.zeros_like(valid)
            keep[valid] = kept
        return _selection(keep, scores.shape, scores.dtype)

    # state: the history ring, its fill and position, the generator; the configuration: beta and history_size
    state_fields = {"history": Array("float64", "H"), "count": Int(0, "H"), "position": Int(0, "H-1"),
                    "generator": Array("uint8")}
    config_exclude = ("seed",)  # the generator's state is saved instead
    config_fixed = ("history_size",)
    keep_on_load = ("generator",)  # the caller's generator object gets the saved state

    def _state_sizes(self) -> dict[str, int]:
        return {"H": self.history_size, "H-1": self.history_size - 1}

    def _state_values(self) -> dict[str, Any]:
        return {"history": self._history, "count": self._count, "position": self._position,
                "generator": self.generator.get_state()}

    def _check_state(self, values: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        """A CPU generator's state."""
        try:
            torch.Generator().set_state(torch.from_numpy(values["generator"]))
        except RuntimeError as error:
            raise ValueError(f"Stochastic state['generator'] is not a CPU generator's state: {error}") from None
        return values

    def _assign_state(self, values: dict[str, Any]) -> None:
        self.generator.set_state(torch.from_numpy(values["generator"]))
        self._history = torch.from_numpy(values["history"])
        self._count, self._position = values["count"], values["position"]


def true_class_probability(logits: torch.Tensor, target: torch.Tensor,
                           ignore_index: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probability of the target class, and the mask of valid elements, without gradient.

    logits: [B, C, *] (classes on dim 1); target: int64 [B, *]. Returns (prob [B, *], valid bool [B, *]); the
    probability is 1 (the easiest value) where `target == ignore_index`.
    """
    if logits.dim() < 2 or target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"target shape {tuple(target.shape)} does not match logits shape {tuple(logits.shape)} "
                         "(expected logits [B, C, *] and target [B, *])")
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
    safe = target.masked_fill(~valid, 0)
    if bool(((safe < 0) | (safe >= logits.shape[1])).any()):
        raise ValueError(f"target holds class indices outside [0, {logits.shape[1]}) that are not ignore_index")
    with torch.no_grad():
        prob = F.softmax(logits, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    return prob.masked_fill(~valid, 1.0), valid

