"""Saving and loading state dicts: atomic writes, a checksum verified at load, and loads that never unpickle
arbitrary objects.

File format: the line `HARDMINE-CHECKPOINT`, a JSON header line {"format": 1, "bytes": n, "sha256": hex},
then the n bytes of `torch.save(state)`. `load_state` reads the header, checks the length (a shorter file is
truncated) and the checksum (a mismatch is corruption), then loads the payload with `weights_only=True`.
Files written by `torch.save` alone (before this format) are still read, without a checksum.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import stat
import zipfile
from pathlib import Path
from typing import Any

import torch

from hardmine.atomic import write_with
from hardmine.state import to_saved

MAGIC = b"HARDMINE-CHECKPOINT\n"
FORMAT = 1
_TORCH_ZIP = b"PK\x03\x04"
_PLAIN = (int, float, bool, str, type(None))


class CheckpointError(ValueError):
    """A checkpoint that cannot be saved or read; the message names the file and the reason."""


def save_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write `state` (tensors, numbers, strings, None, and dicts/lists/tuples of them) to `path` atomically.

    numpy arrays become tensors and numpy scalars Python numbers; anything else `load_state` could not read
    (an object, a function, a dataclass) is refused, naming where it is in the state, before the file is touched.
    The file is written beside its destination and renamed over it, so a crash leaves the old file intact.
    """
    path = _check_path(path)
    _check_acyclic(state, "state", path)
    saved = to_saved(state)
    if not isinstance(saved, dict):
        raise CheckpointError(f"cannot save to {path}: the state must be a dict, got {type(state).__name__}")
    _check_loadable(saved, "state", path)
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    payload = buffer.getvalue()
    header = json.dumps({"format": FORMAT, "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()})

    def write(f: Any) -> None:
        f.write(MAGIC)
        f.write(header.encode("ascii") + b"\n")
        f.write(payload)

    write_with(path, write)


_MAX_DEPTH = 64


def _check_path(path: Any) -> Path:
    """`path` as a Path, or TypeError naming the argument (None, a number, an open file...)."""
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or an os.PathLike, got {path!r} of type {type(path).__name__}")
    text = os.fspath(path)
    if not text:
        raise ValueError("path must not be empty")
    if (b"\0" if isinstance(text, bytes) else "\0") in text:
        raise ValueError(f"path must not contain a NUL character, got {text!r}")
    return Path(path)


def _check_acyclic(value: Any, where: str, path: Path, inside: frozenset[int] = frozenset(), depth: int = 0) -> None:
    """Raise CheckpointError when a dict, list or tuple of the state contains itself or nests deeper than
    `_MAX_DEPTH` levels (either would end in a RecursionError)."""
    if not isinstance(value, (dict, list, tuple)):
        return
    if id(value) in inside:
        raise CheckpointError(f"cannot save {where} to {path}: it contains itself (a reference cycle)")
    if depth >= _MAX_DEPTH:
        raise CheckpointError(f"cannot save {where} to {path}: it nests deeper than {_MAX_DEPTH} levels")
    inside = inside | {id(value)}
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        _check_acyclic(item, f"{where}[{key!r}]", path, inside, depth + 1)


def _check_loadable(value: Any, where: str, path: Path) -> None:
    """Raise unless `value` is made only of what `torch.load(weights_only=True)` reads."""
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta" or value.is_sparse or value.dtype in (torch.complex32,):
            raise CheckpointError(f"cannot save {where} to {path}: a {value.device.type} tensor of layout "
                                  f"{value.layout} and dtype {value.dtype} cannot be saved and read back")
        return
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise CheckpointError(f"cannot save {where} to {path}: key {key!r} is a {type(key).__name__}; "
                                      "keys must be strings or integers")
            _check_loadable(item, f"{where}[{key!r}]", path)
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_loadable(item, f"{where}[{i}]", path)
        return
    raise CheckpointError(f"cannot save {where} to {path}: it is a {type(value).__module__}."
                          f"{type(value).__qualname__}, which load_state cannot read (weights_only); convert it "
                          "to tensors, numbers, strings, lists or dicts")


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a state written by `save_state`, verifying its checksum, with `torch.load(weights_only=True)`: no
    arbitrary code runs. Raises CheckpointError naming the file and saying whether it is truncated, corrupted
    or not a hardmine checkpoint (FileNotFoundError when it does not exist). Only a regular file is read (a
    FIFO or a device is refused), and no more bytes than its size when it was opened."""
    path = _check_path(path)
    data = _read_regular(path)
    if data.startswith(MAGIC):
        payload = _verified_payload(data, path)
    elif data.startswith(_TORCH_ZIP):
        payload = data  # a file of torch.save alone, from before the checksum
    elif not data or MAGIC.startswith(data):
        raise CheckpointError(f"{path} is truncated: {len(data)} bytes, it ends inside the checkpoint header")
    else:
        raise CheckpointError(f"{path} is not a hardmine checkpoint (it starts with {data[:16]!r}, not "
                              f"{MAGIC.strip()!r})")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"WeightsUnpickler error: ([^\n]*)", str(error))
        reason = found.group(1).strip() if found else "a pickled object"
        raise CheckpointError(f"{path} holds objects a checkpoint may not (only tensors and plain values are "
                              f"read, never pickled code): {reason}") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        kind = "truncated or corrupted" if payload is data else "corrupted"
        raise CheckpointError(f"{path} is {kind}: torch cannot read its payload ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else 'no message'})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a hardmine checkpoint: it holds a {type(state).__name__}, not a dict")
    return state


def _read_regular(path: Path) -> bytes:
    """The bytes of the regular file `path` (symbolic links followed), read up to its size at opening: a FIFO,
    a device (/dev/zero), a socket or a directory is refused before anything is read, so nothing blocks or
    reads without end."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO opens without waiting for a writer
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a directory, not a regular checkpoint file") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
            raise CheckpointError(f"{path} is {kind}, not a regular checkpoint file")
        size = os.fstat(fd).st_size
        chunks, left = [], size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 26))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _verified_payload(data: bytes, path: Path) -> bytes:
    """The payload after the header, checked against the header's length and checksum."""
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        raise CheckpointError(f"{path} is truncated: {len(data)} bytes, it ends inside the checkpoint header")
    try:
        header = json.loads(data[len(MAGIC):end])
        size, digest, version = int(header["bytes"]), str(header["sha256"]), header["format"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{path} is corrupted: its checkpoint header is unreadable") from None
    if version != FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {version!r}; this hardmine reads format {FORMAT}")
    payload = data[end + 1:]
    if len(payload) < size:
        raise CheckpointError(f"{path} is truncated: it holds {len(payload)} of the {size} payload bytes its header "
                              "announces")
    if len(payload) > size or hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{path} is corrupted: its payload does not match the checksum in its header")
    return payload
