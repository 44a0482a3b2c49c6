"""BatchWeights: the weights of one batch as a value that `hm.reduce` reads, with what it may trust about them.

`HardExampleSampler.weights(idx)` returns one. It is a float32 tensor [B] (index it, compare it, move it, pass it
anywhere a tensor goes), and it carries, as declared fields of its own type rather than attributes set on a
tensor, whether its values are finite and non-negative by construction and its values over B (`over_size`, with
which `reduce`'s mean is one dot product). Each call returns a new one: nothing is shared with later calls.

Every operation on a BatchWeights gives a plain tensor (so `w * 2` or `w[mask]` is checked by `reduce` like any
tensor); an in-place change (`w.mul_(2)`, `w[0] = 5`, `out=w`) drops the guarantee.
"""

from __future__ import annotations

from typing import Any

import torch


class BatchWeights(torch.Tensor):
    """Weights [B] (float32) of one batch. `valid`: finite and non-negative by construction and not changed in
    place since (`reduce` then does not check them); `over_size` [B]: weights / B when known, else None."""

    valid: bool
    over_size: torch.Tensor | None

    @staticmethod
    def of(weights: torch.Tensor, valid: bool = False, over_size: torch.Tensor | None = None) -> BatchWeights:
        """New BatchWeights holding a copy of `weights` [B] (and of `over_size` [B], only with `valid`)."""
        if type(weights) is not torch.Tensor:
            weights = weights.as_subclass(torch.Tensor)
        out = weights.clone().as_subclass(BatchWeights)
        out.valid = valid
        out.over_size = over_size.clone() if valid and over_size is not None else None
        return out

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
        if _changes_in_place(func, kwargs):
            for target in (*args[:1], kwargs.get("out")):
                if isinstance(target, BatchWeights):
                    target.valid, target.over_size = False, None
        if isinstance(out, BatchWeights) and out is not (args[0] if args else None):
            with torch._C.DisableTorchFunctionSubclass():
                return out.as_subclass(torch.Tensor)
        return out

    def __reduce_ex__(self, protocol: Any) -> Any:  # pickles (and torch.save) as a plain tensor
        with torch._C.DisableTorchFunctionSubclass():
            return self.as_subclass(torch.Tensor).__reduce_ex__(protocol)


def _changes_in_place(func: Any, kwargs: dict[str, Any]) -> bool:
    name = getattr(func, "__name__", "")
    return "out" in kwargs or name in ("__setitem__", "set_", "__iadd__", "__isub__", "__imul__", "__itruediv__") \
        or (name.endswith("_") and not name.endswith("__"))


__all__ = ["BatchWeights"]
