"""Object-level commands: pinning on bpffs and walking map IDs."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from collections.abc import Iterator

from . import attrs
from . import syscall as _sc
from .constants import Cmd
from .errors import BpfError


def _path_buf(path: str | os.PathLike[str]) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(os.fsencode(path))


def obj_pin(fd: int, path: str | os.PathLike[str], file_flags: int = 0) -> None:
    """OBJ_PIN: pin the object behind ``fd`` at ``path`` on a bpffs."""
    name = _path_buf(path)
    attr = _sc.attr_buffer(attrs.pack_obj(ctypes.addressof(name), fd, file_flags))
    _sc.bpf(Cmd.OBJ_PIN, attr)


def obj_get(path: str | os.PathLike[str], file_flags: int = 0) -> int:
    """OBJ_GET: a new fd (owned by the caller) for the object pinned at ``path``."""
    name = _path_buf(path)
    attr = _sc.attr_buffer(attrs.pack_obj(ctypes.addressof(name), 0, file_flags))
    return _sc.bpf(Cmd.OBJ_GET, attr)


def map_get_next_id(start_id: int = 0) -> int:
    """MAP_GET_NEXT_ID: the smallest map ID above ``start_id`` (ENOENT past the last)."""
    attr = _sc.attr_buffer(attrs.pack_get_id(start_id))
    _sc.bpf(Cmd.MAP_GET_NEXT_ID, attr)
    next_id: int = attrs.U32.unpack_from(attr, attrs.NEXT_ID_OFFSET)[0]
    return next_id


def iter_map_ids(start_id: int = 0) -> Iterator[int]:
    """Every map ID above ``start_id``, ascending, as the kernel reports them."""
    current = start_id
    while True:
        try:
            nxt = map_get_next_id(current)
        except BpfError as e:
            if e.errno == _errno.ENOENT:
                return
            raise
        if nxt <= current:  # IDs only grow; anything else would loop forever
            raise RuntimeError(f"MAP_GET_NEXT_ID({current}) returned {nxt}")
        current = nxt
        yield current


def map_get_fd_by_id(map_id: int, open_flags: int = 0) -> int:
    """MAP_GET_FD_BY_ID: a new fd (owned by the caller) for map ``map_id``."""
    attr = _sc.attr_buffer(attrs.pack_get_id(map_id, open_flags))
    return _sc.bpf(Cmd.MAP_GET_FD_BY_ID, attr)
