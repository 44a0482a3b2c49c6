"""torch.distributed helpers: rank and world size, the one all-gather of tensors of different lengths (on the
device the group's backend needs), and the
agreement of all ranks on the validity of their inputs before any data collective (`agree_on_errors`) and on
their configuration (`agree_on_config`)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, or (0, 1) when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def collective_device(group: Any = None) -> torch.device:
    """The device a collective of `group` (default: the default group) takes its tensors on, chosen from the
    group's backend: this process's current CUDA device for NCCL, the CPU for gloo (and any other backend)."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _lengths(length: int, group: Any, device: torch.device) -> list[int]:
    """Every rank's `length`, in rank order (one all-gather of an int64 per rank)."""
    local = torch.tensor([length], dtype=torch.int64, device=device)
    every = [torch.zeros_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(every, local, group=group)
    return [int(n) for n in torch.cat(every).cpu()]


def all_gather_parts(tensor: torch.Tensor, group: Any = None) -> list[torch.Tensor]:
    """The one variable-length all-gather: every rank's `tensor`, in rank order, on the device `tensor` is on.

    The first dimension may differ between ranks; the other dimensions and the dtype must be alike (the dtype
    is kept: gather int64 indices and float values in separate calls, since a float32 index is wrong above 2^24).
    The collective runs on `collective_device(group)`. Without a process group, or with one rank, returns
    `[tensor]`. Two all-gathers: the lengths, then the rows padded to the longest.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
        return [tensor]
    device = collective_device(group)
    local = tensor.to(device)
    lengths = _lengths(local.shape[0], group, device)
    padded = local.new_zeros((max(lengths), *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in lengths]
    dist.all_gather(parts, padded, group=group)
    return [part[:n].to(tensor.device) for part, n in zip(parts, lengths)]


def all_gather_rows(tensor: torch.Tensor, group: Any = None) -> torch.Tensor:
    """Every rank's `tensor` concatenated along the first dimension in rank order (`all_gather_parts`, joined):
    [sum of the ranks' lengths, *tensor.shape[1:]], same dtype and device as `tensor`."""
    parts = all_gather_parts(tensor, group)
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def all_gather_1d(values: torch.Tensor) -> torch.Tensor:
    """`all_gather_rows` of a 1-D tensor over the default group (the name the sampler uses)."""
    return all_gather_rows(values)


def rank_offset(local_length: int, group: Any = None) -> int:
    """Where this rank's rows start in `all_gather_rows`' result: the total length of the lower ranks'."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
        return 0
    return sum(_lengths(local_length, group, collective_device(group))[: dist.get_rank(group)])


class AgreedError(ValueError):
    """Raised on every rank when the inputs of one or more ranks failed a distributed call's checks."""


@contextlib.contextmanager
def agree_on_errors(what: str, group: Any = None, enabled: bool = True) -> Iterator[dict[str, Any]]:
    """Run the local checks of a distributed call inside this block; every rank then raises or none does.

    One all-reduce of a status flag per rank ([world, 2] int64: the flag and a digest) follows the block, before
    the call's data collectives: when any rank's block raised (a TypeError or ValueError from a check, or any other
    error), every rank raises the same `AgreedError` (a ValueError) naming the first bad rank and its message,
    instead of the others waiting forever in a collective or falling out of step. The block may fill the dict it
    is given (name -> value) with what every rank must have alike (e.g. the names of the statistics it will
    gather): its digest travels in the same all-reduce, and a difference raises `agree_on_config`'s
    `DisagreementError` on every rank. Without a process group (or with one rank, or `enabled=False`) the block's
    error propagates unchanged. `what` names the call in the message.
    """
    world = dist.get_world_size(group) if dist.is_available() and dist.is_initialized() else 1
    alike: dict[str, Any] = {}
    if not enabled or world == 1:
        yield alike
        return
    error: Exception | None = None
    try:
        yield alike
    except Exception as err:  # any local failure: the other ranks must not wait for this one in a collective
        error = err
    device = collective_device(group)
    rank = dist.get_rank(group)
    flags = torch.zeros(world, 2, dtype=torch.int64, device=device)
    flags[rank, 0] = int(error is not None)
    flags[rank, 1] = digest(sorted(alike.items())) if error is None else 0
    dist.all_reduce(flags, group=group)
    flags = flags.cpu()
    bad = torch.nonzero(flags[:, 0]).flatten().tolist()
    if not bad:
        if bool((flags[:, 1] != flags[0, 1]).any()):  # only then a second collective, to name what differs
            agree_on_config(what, alike, group)
        return
    message = [f"{type(error).__name__}: {error}" if error is not None else None]
    source = bad[0] if group is None else dist.get_global_rank(group, bad[0])
    dist.broadcast_object_list(message, src=source, group=group, device=device)  # only on failure
    others = f" (ranks {bad} failed)" if len(bad) > 1 else ""
    raise AgreedError(f"{what}: rank {bad[0]} had bad input{others}: {message[0]}") from error


class DisagreementError(ValueError):
    """Raised on every rank when the ranks' configurations differ (`agree_on_config`)."""


def digest(value: Any) -> int:
    """A signed 64-bit digest of a configuration value: numbers, strings, None, arrays and tensors (dtype, shape
    and bytes), and dicts (by sorted key), lists and tuples of them; anything else by its type and repr."""
    h = hashlib.blake2b(digest_size=8)
    _feed(h, value)
    return int.from_bytes(h.digest(), "little", signed=True)


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        h.update(f"array {value.dtype.str} {value.shape} ".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        h.update(f"dict {len(value)} ".encode())
        for key in sorted(value, key=repr):
            _feed(h, key)
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__} {len(value)} ".encode())
        for item in value:
            _feed(h, item)
    else:
        h.update(f"{type(value).__name__} {value!r};".encode())


def _shown(value: Any) -> str:
    """A short text of a configuration value for an error message."""
    if isinstance(value, (np.ndarray, torch.Tensor)) or len(repr(value)) > 120:
        return f"<{type(value).__name__} digest {digest(value):#x}>"
    return repr(value)


def agree_on_config(what: str, fields: dict[str, Any], group: Any = None) -> None:
    """Every rank checks that all ranks have the same `fields` (name -> value, the same names on every rank):
    one all-gather of a 64-bit digest per field ([world, F] int64); when any differs, every rank raises the same
    `DisagreementError` naming each differing field and each rank's value (gathered only then). Nothing happens
    without a process group or with one rank. Call it before the data collectives that the fields govern.
    `group`: the process group whose ranks must agree (default: the default group)."""
    world = dist.get_world_size(group) if dist.is_available() and dist.is_initialized() else 1
    if world == 1:
        return
    names = sorted(fields)
    device = collective_device(group)
    local = torch.tensor([digest(fields[name]) for name in names] + [digest(names)], dtype=torch.int64,
                         device=device)
    gathered = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(gathered, local, group=group)
    table = torch.stack(gathered).cpu()
    differ = [i for i in range(len(names) + 1) if bool((table[:, i] != table[0, i]).any())]
    if not differ:
        return
    shown = {names[i] if i < len(names) else "field names": _shown(fields[names[i]] if i < len(names) else names)
             for i in differ}
    every: list[Any] = [None] * world
    dist.all_gather_object(every, shown, group=group)
    parts = [f"{name}: " + ", ".join(f"rank {r} has {every[r].get(name)}" for r in range(world)) for name in shown]
    raise DisagreementError(f"{what}: the ranks' configurations differ (every rank must build it alike): "
                            + "; ".join(parts))
