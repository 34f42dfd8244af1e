"""The four *_BATCH commands at the ABI level (flat key/value arrays).

:class:`bpfmap.maps.BpfMap` wraps these and splits the flat arrays into
per-element keys and values.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import struct
from dataclasses import dataclass

from . import attrs
from . import syscall as _sc
from .constants import Cmd
from .errors import BpfError
from .layout import Value


def cursor_size(key_size: int) -> int:
    """Bytes for an in/out_batch cursor.

    Hash maps use a u32 bucket index, the generic (array, trie) code copies a
    whole key, so the cursor must hold whichever is larger.
    """
    return max(key_size, 8)


@dataclass(frozen=True, slots=True)
class RawBatch:
    """What one lookup batch call returned, before splitting."""

    keys: bytes
    values: bytes
    count: int
    out_batch: bytes | None
    errno: int | None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One lookup batch call's elements, its cursor and how it ended.

    ``errno`` is ``ENOENT`` when the kernel said the map is exhausted; the
    elements copied by that same call are still in ``keys``/``values``.
    Pass ``cursor`` as the next call's ``in_batch`` to continue.
    """

    keys: list[bytes]
    values: list[Value]
    count: int
    cursor: bytes | None
    errno: int | None = None

    @property
    def items(self) -> list[tuple[bytes, Value]]:
        """(key, value) pairs; built on demand, as most callers want only one view."""
        return list(zip(self.keys, self.values))

    @property
    def done(self) -> bool:
        """True when the kernel reported the end of the map (ENOENT)."""
        return self.errno == _errno.ENOENT


_SPLIT_CHUNK = 4096


@functools.lru_cache(maxsize=32)
def _splitter(size: int, count: int) -> struct.Struct:
    return struct.Struct(f"{size}s" * count)


def split(data: bytes, size: int, count: int) -> list[bytes]:
    """The first ``count`` consecutive ``size``-byte pieces of ``data``.

    One struct unpack per chunk: ~5x faster than slicing in a Python loop,
    which dominated batch lookups. Chunks are powers of two (at most 4096
    pieces), so the few compiled formats stay cached whatever counts a hash
    map's batches return.
    """
    out: list[bytes] = []
    start = 0
    while start < count:
        n = min(_SPLIT_CHUNK, 1 << ((count - start).bit_length() - 1))
        out.extend(_splitter(size, n).unpack_from(data, start * size))
        start += n
    return out


def lookup(
    cmd: int,
    map_fd: int,
    key_size: int,
    value_buf_size: int,
    in_batch: bytes | None,
    count: int,
    elem_flags: int = 0,
    flags: int = 0,
) -> RawBatch:
    """LOOKUP_BATCH or LOOKUP_AND_DELETE_BATCH of up to ``count`` elements."""
    if cmd not in (Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH):
        raise ValueError(f"not a lookup batch command: {cmd}")
    csize = cursor_size(key_size)
    in_buf = None
    if in_batch is not None:
        if len(in_batch) > csize:
            raise ValueError(f"cursor is {len(in_batch)} bytes, at most {csize} expected")
        in_buf = ctypes.create_string_buffer(bytes(in_batch), csize)
    out_buf = ctypes.create_string_buffer(csize)
    keys = ctypes.create_string_buffer(max(key_size * count, 1))
    values = ctypes.create_string_buffer(max(value_buf_size * count, 1))
    attr = _sc.attr_buffer(
        attrs.pack_batch(
            map_fd,
            ctypes.addressof(in_buf) if in_buf is not None else 0,
            ctypes.addressof(out_buf),
            ctypes.addressof(keys),
            ctypes.addressof(values),
            count,
            elem_flags,
            flags,
        )
    )
    err: int | None = None
    try:
        _sc.bpf(cmd, attr)
    except BpfError as e:
        if e.errno != _errno.ENOENT:
            raise e.with_count(_count(attr)) from None
        err = e.errno
    got = _count(attr)
    return RawBatch(
        keys=keys.raw[: key_size * got],
        values=values.raw[: value_buf_size * got],
        count=got,
        out_batch=out_buf.raw if got else (bytes(in_batch) if in_batch is not None else None),
        errno=err,
    )


def update(
    map_fd: int, keys: bytes, values: bytes, count: int, elem_flags: int = 0, flags: int = 0
) -> int:
    """UPDATE_BATCH of ``count`` elements; returns how many the kernel processed."""
    kbuf = ctypes.create_string_buffer(keys, max(len(keys), 1))
    vbuf = ctypes.create_string_buffer(values, max(len(values), 1))
    return _modify(
        Cmd.MAP_UPDATE_BATCH, map_fd, ctypes.addressof(kbuf), ctypes.addressof(vbuf),
        count, elem_flags, flags,
    )


def delete(map_fd: int, keys: bytes, count: int, elem_flags: int = 0, flags: int = 0) -> int:
    """DELETE_BATCH of ``count`` keys; returns how many the kernel processed."""
    kbuf = ctypes.create_string_buffer(keys, max(len(keys), 1))
    return _modify(
        Cmd.MAP_DELETE_BATCH, map_fd, ctypes.addressof(kbuf), 0, count, elem_flags, flags
    )


def _modify(
    cmd: int, map_fd: int, keys: int, values: int, count: int, elem_flags: int, flags: int
) -> int:
    attr = _sc.attr_buffer(attrs.pack_batch(map_fd, 0, 0, keys, values, count, elem_flags, flags))
    try:
        _sc.bpf(cmd, attr)
    except BpfError as e:
        # The kernel stops at the first bad element and reports how far it got.
        raise e.with_count(_count(attr)) from None
    return _count(attr)


def _count(attr: ctypes.Array[ctypes.c_char]) -> int:
    """The in/out ``count`` field. On failures the kernel writes it only once
    it started on the elements; otherwise it still holds the request."""
    n: int = attrs.U32.unpack_from(attr, attrs.BATCH_COUNT_OFFSET)[0]
    return n
