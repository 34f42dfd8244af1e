"""Packing of ``union bpf_attr`` per command (x86-64/LP64, little endian).

Each layout is a precompiled :class:`struct.Struct` whose size is the end of
the last field this client sends; the kernel zero-fills a shorter ``size``.
"""

from __future__ import annotations

import struct

from .constants import BPF_OBJ_NAME_LEN

# MAP_CREATE: map_type, key_size, value_size, max_entries, map_flags,
# inner_map_fd, numa_node, map_name[16], map_ifindex, btf_fd,
# btf_key_type_id, btf_value_type_id, btf_vmlinux_value_type_id, map_extra.
MAP_CREATE = struct.Struct("<7I16s5IQ")
assert MAP_CREATE.size == 72

# *_ELEM and MAP_FREEZE: map_fd, pad, key, value|next_key, flags.
ELEM = struct.Struct("<I4xQQQ")
ELEM_FLAGS_OFFSET = 24
U64 = struct.Struct("<Q")

# *_BATCH: in_batch, out_batch, keys, values, count, map_fd, elem_flags, flags.
BATCH = struct.Struct("<QQQQIIQQ")
BATCH_COUNT_OFFSET = 32
U32 = struct.Struct("<I")

# OBJ_PIN / OBJ_GET: pathname, bpf_fd, file_flags, path_fd.
OBJ = struct.Struct("<QIII")

# MAP_GET_NEXT_ID / MAP_GET_FD_BY_ID: start_id|map_id, next_id, open_flags.
GET_ID = struct.Struct("<III")
NEXT_ID_OFFSET = 4

# OBJ_GET_INFO_BY_FD: bpf_fd, info_len, info.
INFO = struct.Struct("<IIQ")
INFO_LEN_OFFSET = 4


def pack_map_create(
    map_type: int,
    key_size: int,
    value_size: int,
    max_entries: int,
    map_flags: int = 0,
    inner_map_fd: int = 0,
    numa_node: int = 0,
    name: str | bytes = b"",
    map_extra: int = 0,
) -> bytes:
    """Attribute bytes for BPF_MAP_CREATE (BTF and ifindex left zero)."""
    raw_name = name.encode() if isinstance(name, str) else bytes(name)
    if len(raw_name) > BPF_OBJ_NAME_LEN:
        raise ValueError(f"map name longer than {BPF_OBJ_NAME_LEN} bytes: {raw_name!r}")
    return MAP_CREATE.pack(
        map_type, key_size, value_size, max_entries, map_flags,
        inner_map_fd, numa_node, raw_name, 0, 0, 0, 0, 0, map_extra,
    )


def pack_elem(map_fd: int, key: int = 0, value: int = 0, flags: int = 0) -> bytes:
    """Attribute bytes for an *_ELEM command (pointers as integers)."""
    return ELEM.pack(map_fd, key, value, flags)


def pack_batch(
    map_fd: int,
    in_batch: int,
    out_batch: int,
    keys: int,
    values: int,
    count: int,
    elem_flags: int = 0,
    flags: int = 0,
) -> bytes:
    """Attribute bytes for a *_BATCH command (pointers as integers)."""
    return BATCH.pack(in_batch, out_batch, keys, values, count, map_fd, elem_flags, flags)


def pack_obj(pathname: int, bpf_fd: int = 0, file_flags: int = 0, path_fd: int = 0) -> bytes:
    """Attribute bytes for OBJ_PIN / OBJ_GET (pathname as a pointer)."""
    return OBJ.pack(pathname, bpf_fd, file_flags, path_fd)


def pack_get_id(id_: int, open_flags: int = 0) -> bytes:
    """Attribute bytes for MAP_GET_NEXT_ID (start_id) / MAP_GET_FD_BY_ID (map_id)."""
    return GET_ID.pack(id_, 0, open_flags)


def pack_info(bpf_fd: int, info_len: int, info: int) -> bytes:
    """Attribute bytes for OBJ_GET_INFO_BY_FD."""
    return INFO.pack(bpf_fd, info_len, info)
