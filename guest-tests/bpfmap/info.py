"""OBJ_GET_INFO_BY_FD and the decoding of ``struct bpf_map_info``."""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass

from . import attrs
from . import syscall as _sc
from .constants import Cmd

# type, id, key_size, value_size, max_entries, map_flags, name[16]
_HEAD = struct.Struct("<6I16s")
# ifindex, btf_vmlinux_value_type_id, netns_dev, netns_ino, btf_id,
# btf_key_type_id, btf_value_type_id, btf_vmlinux_id, map_extra
_TAIL = struct.Struct("<IIQQIIIIQ")
_MAP_EXTRA_END = _HEAD.size + _TAIL.size  # 88: map_extra arrived in 5.16

# Larger than any struct bpf_map_info so far; the kernel clamps info_len to
# its own struct and checks our (zeroed) excess is zero, so oversizing is safe.
INFO_BUF_SIZE = 256


@dataclass(frozen=True, slots=True)
class MapInfo:
    """The fields of ``struct bpf_map_info`` this lab uses.

    ``info_len`` is what the kernel wrote back (the size of its struct);
    ``map_extra`` is None when the kernel's struct is too short to carry it.
    """

    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    info_len: int
    map_extra: int | None = None


def decode_map_info(raw: bytes, info_len: int) -> MapInfo:
    """Decode the first ``info_len`` bytes of a struct bpf_map_info."""
    if info_len < _HEAD.size or len(raw) < _HEAD.size:
        raise ValueError(f"bpf_map_info too short: {info_len} bytes")
    type_, id_, key_size, value_size, max_entries, map_flags, name = _HEAD.unpack_from(raw)
    map_extra: int | None = None
    if info_len >= _MAP_EXTRA_END and len(raw) >= _MAP_EXTRA_END:
        map_extra = _TAIL.unpack_from(raw, _HEAD.size)[-1]
    return MapInfo(
        type=type_,
        id=id_,
        key_size=key_size,
        value_size=value_size,
        max_entries=max_entries,
        map_flags=map_flags,
        name=name.split(b"\0", 1)[0].decode(errors="replace"),
        info_len=info_len,
        map_extra=map_extra,
    )


def map_info(fd: int) -> MapInfo:
    """OBJ_GET_INFO_BY_FD on a map fd."""
    buf = ctypes.create_string_buffer(INFO_BUF_SIZE)  # zeroed, as the kernel requires
    attr = _sc.attr_buffer(attrs.pack_info(fd, INFO_BUF_SIZE, ctypes.addressof(buf)))
    _sc.bpf(Cmd.OBJ_GET_INFO_BY_FD, attr)
    (info_len,) = attrs.U32.unpack_from(attr, attrs.INFO_LEN_OFFSET)
    return decode_map_info(buf.raw, info_len)
