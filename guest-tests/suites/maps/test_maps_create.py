"""BPF_MAP_CREATE validation: sizes, flags, names, map-in-map templates.

Every refused attribute set is paired with a valid one of the same type
(test_valid_create_echoes_geometry), so an EINVAL here is the bad field and
not a type the kernel lacks.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from typing import NamedTuple

import pytest

import bpfmap
from bpfmap import ENOTSUPP, BpfMap, Cmd, Features, MapFlag, MapType, attrs, bpf_raw
from mapsuite import Recorder, errno_of, need_type, outcome

NP = int(MapFlag.NO_PREALLOC)


class Geo(NamedTuple):
    """Arguments of BpfMap.create for one map."""

    type: MapType
    key: int
    value: int
    max: int
    flags: int = 0
    extra: int = 0


# One valid geometry per type (map-in-map: see the inner-map tests below).
VALID = [
    Geo(MapType.HASH, 4, 8, 16),
    Geo(MapType.HASH, 4, 8, 16, NP),
    Geo(MapType.ARRAY, 4, 8, 16),
    Geo(MapType.PERCPU_HASH, 4, 8, 16),
    Geo(MapType.PERCPU_ARRAY, 4, 8, 16),
    Geo(MapType.LRU_HASH, 4, 8, 16),
    Geo(MapType.LRU_HASH, 4, 8, 16, int(MapFlag.NO_COMMON_LRU)),
    Geo(MapType.LRU_PERCPU_HASH, 4, 8, 16),
    Geo(MapType.LPM_TRIE, 8, 8, 16, NP),
    Geo(MapType.QUEUE, 0, 8, 16),
    Geo(MapType.STACK, 0, 8, 16),
    Geo(MapType.BLOOM_FILTER, 0, 8, 16),
    Geo(MapType.BLOOM_FILTER, 0, 8, 16, 0, 3),
]


def _create(g: Geo, **kw: object) -> BpfMap:
    return BpfMap.create(g.type, g.key, g.value, g.max, g.flags, map_extra=g.extra, **kw)  # type: ignore[arg-type]


def _id(g: Geo) -> str:
    return f"{g.type.name}-k{g.key}-v{g.value}-m{g.max}-f{g.flags:#x}-x{g.extra}"


@pytest.mark.parametrize("g", VALID, ids=_id)
def test_valid_create_echoes_geometry(g: Geo, features: Features) -> None:
    need_type(features, g.type)
    with _create(g, name="geo_ok") as m:
        info = m.info()
        assert (info.type, info.key_size, info.value_size, info.max_entries) == (
            g.type, g.key, g.value, g.max)
        assert info.map_flags == g.flags
        assert info.name == "geo_ok"
        assert info.id > 0
        if g.type == MapType.BLOOM_FILTER and info.map_extra is not None:
            assert info.map_extra == g.extra


BIG = 1 << 30  # beyond KMALLOC_MAX_SIZE on every kernel
PCPU_TOO_BIG = 32768 + 8  # > PCPU_MIN_UNIT_SIZE: per-CPU values are capped there

INVALID = [
    # hash family: zero key, value or max_entries; bad flags
    (Geo(MapType.HASH, 0, 8, 16), errno.EINVAL),
    (Geo(MapType.HASH, 4, 0, 16), errno.EINVAL),
    (Geo(MapType.HASH, 4, 8, 0), errno.EINVAL),
    (Geo(MapType.HASH, 4, BIG, 16), errno.E2BIG),
    (Geo(MapType.HASH, 4, 8, 16, 1 << 30), errno.EINVAL),
    (Geo(MapType.HASH, 4, 8, 16, int(MapFlag.NO_COMMON_LRU)), errno.EINVAL),
    (Geo(MapType.HASH, 4, 8, 16, int(MapFlag.RDONLY | MapFlag.WRONLY)), errno.EINVAL),
    (Geo(MapType.HASH, 4, 8, 16, 0, 1), errno.EINVAL),  # map_extra is bloom-only
    (Geo(MapType.PERCPU_HASH, 4, 0, 16), errno.EINVAL),
    (Geo(MapType.PERCPU_HASH, 4, PCPU_TOO_BIG, 16), errno.E2BIG),
    (Geo(MapType.LRU_HASH, 0, 8, 16), errno.EINVAL),
    (Geo(MapType.LRU_HASH, 4, 0, 16), errno.EINVAL),
    (Geo(MapType.LRU_HASH, 4, 8, 0), errno.EINVAL),
    (Geo(MapType.LRU_HASH, 4, 8, 16, NP), ENOTSUPP),  # LRU needs preallocation
    (Geo(MapType.LRU_PERCPU_HASH, 4, 8, 0), errno.EINVAL),
    (Geo(MapType.LRU_PERCPU_HASH, 4, 8, 16, NP), ENOTSUPP),
    # arrays: key_size must be 4
    (Geo(MapType.ARRAY, 8, 8, 16), errno.EINVAL),
    (Geo(MapType.ARRAY, 2, 8, 16), errno.EINVAL),
    (Geo(MapType.ARRAY, 4, 0, 16), errno.EINVAL),
    (Geo(MapType.ARRAY, 4, 8, 0), errno.EINVAL),
    (Geo(MapType.ARRAY, 4, 8, 16, NP), errno.EINVAL),
    (Geo(MapType.PERCPU_ARRAY, 8, 8, 16), errno.EINVAL),
    (Geo(MapType.PERCPU_ARRAY, 4, PCPU_TOO_BIG, 16), errno.E2BIG),
    # LPM: NO_PREALLOC required, key = 4-byte prefixlen + 1..256 data bytes
    (Geo(MapType.LPM_TRIE, 8, 8, 16), errno.EINVAL),
    (Geo(MapType.LPM_TRIE, 4, 8, 16, NP), errno.EINVAL),
    (Geo(MapType.LPM_TRIE, 4 + 257, 8, 16, NP), errno.EINVAL),
    (Geo(MapType.LPM_TRIE, 8, 0, 16, NP), errno.EINVAL),
    (Geo(MapType.LPM_TRIE, 8, 8, 0, NP), errno.EINVAL),
    # queue / stack: key_size 0, preallocated
    (Geo(MapType.QUEUE, 4, 8, 16), errno.EINVAL),
    (Geo(MapType.QUEUE, 0, 0, 16), errno.EINVAL),
    (Geo(MapType.QUEUE, 0, 8, 0), errno.EINVAL),
    (Geo(MapType.QUEUE, 0, 8, 16, NP), errno.EINVAL),
    (Geo(MapType.QUEUE, 0, BIG, 16), errno.E2BIG),
    (Geo(MapType.STACK, 4, 8, 16), errno.EINVAL),
    (Geo(MapType.STACK, 0, 0, 16), errno.EINVAL),
    (Geo(MapType.STACK, 0, 8, 0), errno.EINVAL),
    # bloom filter: key_size 0, map_extra = number of hash functions (4 bits)
    (Geo(MapType.BLOOM_FILTER, 4, 8, 16), errno.EINVAL),
    (Geo(MapType.BLOOM_FILTER, 0, 0, 16), errno.EINVAL),
    (Geo(MapType.BLOOM_FILTER, 0, 8, 0), errno.EINVAL),
    (Geo(MapType.BLOOM_FILTER, 0, 8, 16, 0, 16), errno.EINVAL),
]


@pytest.mark.parametrize(("g", "err"), INVALID, ids=[_id(g) for g, _ in INVALID])
def test_invalid_create(g: Geo, err: int, features: Features) -> None:
    need_type(features, g.type)
    got = errno_of(lambda: _create(g))
    assert got == err, f"expected {bpfmap.errno_name(err)}, got {bpfmap.errno_name(got)}"


@pytest.mark.parametrize("map_type", [0, 0xFFFF, 1 << 31], ids=["UNSPEC", "0xffff", "1<<31"])
def test_unknown_map_type_is_einval(map_type: int) -> None:
    assert errno_of(lambda: BpfMap.create(map_type, 4, 4, 1)) == errno.EINVAL


def test_hash_large_key(record_property: Recorder) -> None:
    """key_size above MAX_BPF_STACK (512) was E2BIG; a kernel that accepts it
    must then really store such keys. Which one is recorded."""
    result = outcome(lambda: BpfMap.create(MapType.HASH, 513, 8, 4))
    record_property("hash_key_size_513", result)
    assert result in ("ok", "E2BIG")
    assert outcome(lambda: BpfMap.create(MapType.HASH, 512, 8, 4)) == "ok"
    if result == "ok":
        with BpfMap.create(MapType.HASH, 513, 8, 4) as m:
            key = bytes(range(256)) * 2 + b"\x01"
            m.update(key, b"8bytes!!")
            assert m.lookup(key) == b"8bytes!!"
            assert errno_of(lambda: m.lookup(key[:-1] + b"\x02")) == errno.ENOENT


# -- names -----------------------------------------------------------------------

def create_named(raw_name: bytes) -> BpfMap:
    """A hash map whose map_name is exactly ``raw_name`` (any bytes)."""
    fd = bpf_raw(Cmd.MAP_CREATE, attrs.pack_map_create(MapType.HASH, 4, 4, 1, name=raw_name))
    return BpfMap.from_fd(fd)


GOOD_NAMES = ["a", "map_1", "A" * 15, "x_Y_z_0123456789"[:15]]
BAD_NAMES = ["a-b", "a b", "a/b", "a" * 16, "é"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(name: str) -> None:
    with BpfMap.create(MapType.HASH, 4, 4, 1, name=name) as m:
        assert m.info().name == name


@pytest.mark.parametrize("name", BAD_NAMES, ids=["dash", "space", "slash", "16-no-nul", "non-ascii"])
def test_bad_names_are_einval(name: str) -> None:
    # 16 characters leave no room for the NUL inside BPF_OBJ_NAME_LEN.
    assert errno_of(lambda: create_named(name.encode())) == errno.EINVAL


def test_name_with_dot(record_property: Recorder) -> None:
    # '.' became legal (4.x) for names like ".bss"/".rodata"; recorded.
    result = outcome(lambda: BpfMap.create(MapType.HASH, 4, 4, 1, name="a.b"))
    record_property("name_with_dot", result)
    assert result in ("ok", "EINVAL")


def test_name_stops_at_nul() -> None:
    # Bytes after the first NUL are never looked at, even invalid ones.
    with create_named(b"ab\0-/ \xff") as m:
        assert m.info().name == "ab"


# -- NUMA ------------------------------------------------------------------------


def test_numa_node() -> None:
    with BpfMap.create(MapType.HASH, 4, 4, 1, numa_node=0) as m:
        assert m.info().map_flags & MapFlag.NUMA_NODE
    assert errno_of(lambda: BpfMap.create(MapType.HASH, 4, 4, 1, numa_node=4095)) == errno.EINVAL
    # Without the flag the field is not looked at.
    os.close(bpf_raw(Cmd.MAP_CREATE, attrs.pack_map_create(MapType.HASH, 4, 4, 1, 0, 0, 4095)))


# -- map-in-map templates --------------------------------------------------------

OUTER = [MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS]


@pytest.fixture
def inner() -> Iterator[BpfMap]:
    with BpfMap.create(MapType.ARRAY, 4, 8, 2) as m:
        yield m


@pytest.mark.parametrize("outer", OUTER, ids=lambda t: t.name)
def test_outer_map_create_rules(outer: MapType, inner: BpfMap, features: Features) -> None:
    need_type(features, outer)
    with BpfMap.create(outer, 4, 4, 4, inner_map_fd=inner.fd) as m:
        assert m.info().value_size == 4
    r, w = os.pipe()
    try:
        # the template must be a map fd: a pipe is EINVAL, a closed fd EBADF
        assert errno_of(lambda: BpfMap.create(outer, 4, 4, 4, inner_map_fd=r)) == errno.EINVAL
    finally:
        os.close(r)
        os.close(w)
    closed = os.dup(0)
    os.close(closed)
    assert errno_of(lambda: BpfMap.create(outer, 4, 4, 4, inner_map_fd=closed)) == errno.EBADF
    # value_size must be 4 (an fd in, an ID out)
    assert errno_of(lambda: BpfMap.create(outer, 4, 8, 4, inner_map_fd=inner.fd)) == errno.EINVAL
    bad_key = 8 if outer == MapType.ARRAY_OF_MAPS else 0
    assert errno_of(lambda: BpfMap.create(outer, bad_key, 4, 4, inner_map_fd=inner.fd)) == errno.EINVAL
    # a map-in-map cannot be the template of another one
    with BpfMap.create(outer, 4, 4, 4, inner_map_fd=inner.fd) as m:
        assert errno_of(lambda: BpfMap.create(outer, 4, 4, 4, inner_map_fd=m.fd)) == errno.EINVAL
