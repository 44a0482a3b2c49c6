"""Per-sample values on their way to the host: a non-blocking copy from an accelerator, checked once it has arrived.

On CUDA the copy goes into pinned host memory with `non_blocking=True` and an event marks its end, so handing values
to hardmine never makes the training step wait for the GPU; they are read (and checked) when the sampler writes its
buffered updates, normally a chunk later, when the copy is long done. On the CPU the same code runs and the values
are there at once, so they are checked in the call that passed them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hardmine._checks import check_not_meta, check_values, to_numpy


class HostValues:
    """Values [B] of argument `name` for the samples `indices` [B], on the host or being copied there.

    values: a 1-D real tensor on any device, or anything numpy takes; bools become int8.
    Raises at once for a wrong dtype or length, and for a NaN or inf when the values are already on the host.
    """

    __slots__ = ("_array", "_event", "_host", "device", "extremes", "indices", "name")

    def __init__(self, name: str, values: Any, indices: np.ndarray) -> None:
        self.name, self.indices, self._event, self._array, self.extremes = name, indices, None, None, None
        if type(values) is torch.Tensor and values.device.type == "cpu" and values.dtype in _FLOATING and \
                values.ndim == 1 and values.shape[0] == indices.size and values.layout is torch.strided:
            self.device = _CPU  # the common case, in as few calls as it can (see `_ranged`)
            self._host = values
            self._array, self.extremes = _ranged(name, values.detach(), indices)
            return
        if isinstance(values, torch.Tensor):
            check_not_meta(name, values)
            self.device = values.device
            values = values.detach()
            if values.dtype == torch.bool:
                values = values.to(torch.int8)
            if values.is_complex() or not (values.is_floating_point() or values.dtype in _INT_DTYPES):
                raise TypeError(f"{name} must be a real-valued array, got dtype {values.dtype}")
            if values.ndim != 1:
                raise ValueError(f"{name} must be 1-D [B], got shape {tuple(values.shape)}")
            if values.shape[0] != indices.size:
                raise ValueError(f"{name} has shape {tuple(values.shape)} but the indices have length "
                                 f"{indices.size}")
            if values.device.type == "cpu":
                self._host = (values.float() if values.dtype == torch.bfloat16 else values).numpy()
                self._array = _checked(name, self._host, indices)
            else:
                self._host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
                self._host.copy_(values, non_blocking=True)
                self._event = torch.cuda.Event() if values.device.type == "cuda" else None
                if self._event is not None:
                    self._event.record()
        else:
            self.device = torch.device("cpu")
            arr = to_numpy(values)
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
            if arr.ndim != 1:
                raise ValueError(f"{name} must be 1-D [B], got shape {tuple(arr.shape)}")
            if arr.shape[0] != indices.size:
                raise ValueError(f"{name} has shape {tuple(arr.shape)} but the indices have length {indices.size}")
            self._host = arr
            self._array = _checked(name, arr, indices)

    @property
    def ready(self) -> bool:
        """Whether the values are on the host (always on the CPU; on CUDA once the copy has finished)."""
        return self._array is not None or self._event is None or self._event.query()

    def array(self) -> np.ndarray:
        """The values as float64 [B], checked finite (waits for the copy when it has not finished)."""
        if self._array is None:
            if self._event is not None:
                self._event.synchronize()
            self._array = _checked(self.name, to_numpy(self._host), self.indices)
        return self._array


_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
_FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_CPU = torch.device("cpu")


def _ranged(name: str, values: torch.Tensor, indices: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """A float64 copy of the CPU floating tensor `values` [B] and its (smallest, largest), finite.

    Right after a training step numpy's code is cold (torch's kernels have evicted it from the CPU caches) and a
    first numpy reduction costs some 15 us, so the copy and its range are torch's (`copy_`, `aminmax`), whose
    code the step just ran."""
    copy = torch.empty(values.shape[0], dtype=torch.float64)
    if not values.shape[0]:
        return copy.numpy(), (0.0, 0.0)
    copy.copy_(values)
    smallest, largest = (v.item() for v in torch.aminmax(copy))
    out = copy.numpy()
    if not (-_INF < smallest and largest < _INF):  # a NaN fails both
        check_values(name, out, indices.size, indices=indices)
    return out, (smallest, largest)


_INF = float("inf")


def _checked(name: str, arr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """A float64 copy of `arr` [B], finite: one summation decides the common case, `check_values` names the bad
    entries."""
    out = arr.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(out)
    if not np.isfinite(total):  # a NaN or inf, or (harmlessly) an overflowing sum: find out which
        check_values(name, out, indices.size, indices=indices)
    return out
