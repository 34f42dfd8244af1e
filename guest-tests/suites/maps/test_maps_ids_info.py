"""Map IDs (GET_NEXT_ID, GET_FD_BY_ID) and struct bpf_map_info
(OBJ_GET_INFO_BY_FD)."""

from __future__ import annotations

import ctypes
import errno
import struct

import pytest

from bpfmap import (
    BpfMap,
    Cmd,
    Features,
    MapFlag,
    MapType,
    attrs,
    bpf_raw,
    errno_name,
    iter_map_ids,
    map_get_fd_by_id,
    map_get_next_id,
    num_possible_cpus,
)
from mapsuite import Recorder, errno_of, id_exists, k, need_type, v, wait_for

INFO_HEAD = 40  # type, id, key_size, value_size, max_entries, map_flags, name[16]
MAP_EXTRA_END = 88  # bpf_map_info through map_extra (5.16)


def raw_info(fd: int, info_len: int, prefill: bytes = b"") -> tuple[int, bytes]:
    """GET_INFO_BY_FD into a 256-byte buffer starting with ``prefill``;
    returns (info_len written back, buffer)."""
    buf = ctypes.create_string_buffer(prefill.ljust(256, b"\0"), 256)
    attr = bytearray(attrs.pack_info(fd, info_len, ctypes.addressof(buf)))
    bpf_raw(Cmd.OBJ_GET_INFO_BY_FD, attr)
    return attrs.U32.unpack_from(attr, attrs.INFO_LEN_OFFSET)[0], buf.raw


def test_ids_are_unique_and_listed() -> None:
    with BpfMap.create(MapType.HASH, 4, 8, 4) as a, BpfMap.create(MapType.ARRAY, 4, 8, 4) as b:
        ia, ib = a.info().id, b.info().id
        assert 0 < ia and 0 < ib and ia != ib
        # IDs are allocated cyclically upwards: the later map has the larger ID
        # unless the ID space wrapped, which no test run gets near.
        assert ib > ia
        ids = list(iter_map_ids())  # ascending, checked by iter_map_ids itself
        assert ia in ids and ib in ids
        assert map_get_next_id(ia) <= ib
        assert map_get_next_id(ia - 1) == ia


def test_get_next_id_past_the_last_is_enoent() -> None:
    # IDs stop below INT_MAX: a start_id of INT_MAX or more is EINVAL.
    assert errno_of(lambda: map_get_next_id(0x7FFFFFFE)) == errno.ENOENT
    assert errno_of(lambda: map_get_next_id(0x7FFFFFFF)) == errno.EINVAL
    assert errno_of(lambda: map_get_next_id(0xFFFFFFFF)) == errno.EINVAL


def test_get_fd_by_id_opens_the_same_map() -> None:
    with BpfMap.create(MapType.HASH, 4, 8, 4, name="by_id") as a:
        with BpfMap.from_id(a.info().id) as b:
            assert b.fd != a.fd
            assert b.info() == a.info()
            a.update(k(1), v(1))
            assert b.lookup(k(1)) == v(1)
            b.delete(k(1))
            assert errno_of(lambda: a.lookup(k(1))) == errno.ENOENT


@pytest.mark.parametrize("map_id", [0, 0x7FFFFFFF])
def test_get_fd_by_unknown_id_is_enoent(map_id: int) -> None:
    assert errno_of(lambda: map_get_fd_by_id(map_id)) == errno.ENOENT


def test_id_disappears_after_the_last_fd_closes() -> None:
    m = BpfMap.create(MapType.HASH, 4, 8, 4)
    map_id = m.info().id
    other = BpfMap.from_id(map_id)
    m.close()
    assert id_exists(map_id), "a second fd keeps the map"
    other.close()
    assert wait_for(lambda: not id_exists(map_id)), f"map ID {map_id} outlived its last fd"


@pytest.mark.parametrize(("map_type", "key", "value", "max_entries", "flags"), [
    (MapType.HASH, 4, 8, 10, int(MapFlag.NO_PREALLOC)),
    (MapType.ARRAY, 4, 12, 3, 0),
    (MapType.PERCPU_HASH, 16, 4, 7, 0),
    (MapType.LRU_HASH, 4, 8, 9, int(MapFlag.NO_COMMON_LRU)),
    (MapType.LPM_TRIE, 8, 8, 5, int(MapFlag.NO_PREALLOC)),
    (MapType.QUEUE, 0, 8, 6, 0),
], ids=lambda p: p.name if isinstance(p, MapType) else str(p))
def test_info_fields(map_type: MapType, key: int, value: int, max_entries: int, flags: int) -> None:
    with BpfMap.create(map_type, key, value, max_entries, flags, name="info_t") as m:
        info = m.info()
        assert info.type == map_type
        if flags & MapFlag.NO_COMMON_LRU:
            # Per-CPU LRU lists split the entries evenly: rounded up to a
            # multiple of the possible CPUs.
            ncpus = num_possible_cpus()
            max_entries = (max_entries + ncpus - 1) // ncpus * ncpus
        assert (info.key_size, info.value_size, info.max_entries) == (key, value, max_entries)
        assert info.map_flags == flags
        assert info.name == "info_t"
        assert info.id > 0 and info.info_len >= MAP_EXTRA_END


def test_info_len_is_clamped_and_written_back(record_property: Recorder) -> None:
    with BpfMap.create(MapType.HASH, 4, 8, 4, name="short") as m:
        full_len, _ = raw_info(m.fd, 256)
        record_property("bpf_map_info_size", full_len)
        assert INFO_HEAD <= full_len < 256
        # A short buffer gets exactly info_len bytes; nothing past it is written.
        got_len, buf = raw_info(m.fd, 8, b"\0" * 8 + b"\xaa" * 248)
        assert got_len == 8
        assert attrs.U32.unpack_from(buf, 0)[0] == MapType.HASH
        assert attrs.U32.unpack_from(buf, 4)[0] == m.info().id
        assert buf[8:] == b"\xaa" * 248


def test_nonzero_byte_past_the_kernels_info_is_e2big() -> None:
    with BpfMap.create(MapType.HASH, 4, 8, 4) as m:
        full_len, _ = raw_info(m.fd, 256)
        for off in (full_len, 255):
            prefill = bytearray(256)
            prefill[off] = 1
            err = errno_of(lambda: raw_info(m.fd, 256, bytes(prefill)))
            assert err == errno.E2BIG, f"byte {off}: {errno_name(err)}"
        # A non-zero byte inside the kernel's struct is input-or-overwritten,
        # and past info_len it is never read: both calls succeed.
        raw_info(m.fd, full_len, b"\0" * full_len + b"\x01")


def test_nonzero_byte_after_map_extra(record_property: Recorder) -> None:
    """Byte 88 was past the struct (E2BIG); newer kernels read a field there
    (EINVAL for a bad value). Both are accepted and recorded."""
    with BpfMap.create(MapType.HASH, 4, 8, 4) as m:
        full_len, _ = raw_info(m.fd, 256)
        prefill = bytearray(256)
        prefill[MAP_EXTRA_END] = 1
        err = errno_of(lambda: raw_info(m.fd, 256, bytes(prefill)))
        record_property("info_byte_88_errno", errno_name(err))
        if full_len <= MAP_EXTRA_END:
            assert err == errno.E2BIG
        else:
            assert err in (errno.E2BIG, errno.EINVAL)


# bpf_map_info after the head: ifindex, btf_vmlinux_value_type_id, netns_dev,
# netns_ino, btf_id, btf_key_type_id, btf_value_type_id, btf_vmlinux_id, map_extra.
INFO_TAIL = struct.Struct("<IIQQIIIIQ")
INFO_TAIL_NAMES = ("ifindex", "btf_vmlinux_value_type_id", "netns_dev", "netns_ino", "btf_id",
                   "btf_key_type_id", "btf_value_type_id", "btf_vmlinux_id", "map_extra")


def test_info_fields_past_the_head(record_property: Recorder) -> None:
    """What the kernel fills in after name[] for a plain map (no BTF, not offloaded),
    and any bytes it writes past map_extra (newer kernels' fields): recorded, as the
    kernel has latitude there. A map made without BTF has no BTF IDs."""
    with BpfMap.create(MapType.HASH, 4, 8, 4, name="tail") as m:
        full_len, buf = raw_info(m.fd, 256)
        assert full_len >= MAP_EXTRA_END
        tail = dict(zip(INFO_TAIL_NAMES, INFO_TAIL.unpack_from(buf, INFO_HEAD)))
        assert tail["btf_id"] == tail["btf_key_type_id"] == tail["btf_value_type_id"] == 0
        record_property("bpf_map_info_tail", tail)
        record_property("bpf_map_info_bytes_past_map_extra", buf[MAP_EXTRA_END:full_len].hex() or "none")


# (type, key_size, value_size, max_entries, map_flags): geometries a kernel might round.
REPORTED = [
    (MapType.HASH, 4, 1, 1, 0),
    (MapType.HASH, 4, 8, 3, int(MapFlag.NO_PREALLOC)),
    (MapType.ARRAY, 4, 1, 3, 0),
    (MapType.ARRAY, 4, 8, 3, int(MapFlag.MMAPABLE)),
    (MapType.PERCPU_ARRAY, 4, 12, 3, 0),
    (MapType.PERCPU_HASH, 4, 12, 3, 0),
    (MapType.LRU_HASH, 4, 8, 3, 0),
    (MapType.LRU_HASH, 4, 8, 3, int(MapFlag.NO_COMMON_LRU)),
    (MapType.LRU_PERCPU_HASH, 4, 8, 3, int(MapFlag.NO_COMMON_LRU)),
    (MapType.LPM_TRIE, 5, 8, 3, int(MapFlag.NO_PREALLOC)),
    (MapType.QUEUE, 0, 3, 3, 0),
    (MapType.STACK, 0, 3, 3, 0),
    (MapType.BLOOM_FILTER, 0, 3, 3, 0),
]


@pytest.mark.parametrize(("map_type", "key", "value", "max_entries", "flags"), REPORTED,
                         ids=[f"{t.name}-k{kk}-v{vv}-m{mm}-f{ff:#x}" for t, kk, vv, mm, ff in REPORTED])
def test_reported_geometry(map_type: MapType, key: int, value: int, max_entries: int, flags: int,
                           features: Features, record_property: Recorder) -> None:
    """The sizes and flags GET_INFO_BY_FD reports for odd geometries (max_entries 3,
    value sizes not a multiple of 8): recorded, since a kernel may round them (an LRU
    without a common list rounds max_entries to the possible CPUs). The sizes never
    shrink and the key size is never changed."""
    need_type(features, map_type)
    with BpfMap.create(map_type, key, value, max_entries, flags) as m:
        info = m.info()
        assert info.key_size == key and info.value_size >= value and info.max_entries >= max_entries
        record_property("reported_geometry", f"key_size {info.key_size} value_size {info.value_size} "
                        f"max_entries {info.max_entries} map_flags {info.map_flags:#x}")
