"""GET_NEXT_KEY with a start key the map does not hold, on every keyed map type.

The fact sheet says a hash restarts at its first key and an array at index 0;
what each type really does (with three keys in it, and when it is empty) is
recorded, so a kernel that changes it for one type shows there. The answer
must be the first key or a refusal: GET_NEXT_KEY never invents a key.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from bpfmap import BpfError, BpfMap, Features, MapFlag, MapType
from mapsuite import U32, Recorder, k, need_type, percpu_value

NP = int(MapFlag.NO_PREALLOC)
KEYED = [MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH,
         MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.LPM_TRIE, MapType.HASH_OF_MAPS,
         MapType.ARRAY_OF_MAPS]
ARRAYS = (MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.ARRAY_OF_MAPS)
MAX = 8


def lpm_key(last: int, prefixlen: int = 32) -> bytes:
    return struct.pack("<I", prefixlen) + bytes([10, 0, 0, last])


class Subject:
    """A map of one type, a way to put three keys in, and a key it never holds."""

    def __init__(self, map_type: MapType) -> None:
        self.map_type = map_type
        self.inner: BpfMap | None = None
        if map_type in (MapType.HASH_OF_MAPS, MapType.ARRAY_OF_MAPS):
            self.inner = BpfMap.create(MapType.ARRAY, 4, 8, 1)
            self.m = BpfMap.create(map_type, 4, 4, MAX, inner_map_fd=self.inner.fd)
        elif map_type == MapType.LPM_TRIE:
            self.m = BpfMap.create(map_type, 8, 8, MAX, NP)
        else:
            self.m = BpfMap.create(map_type, 4, 8, MAX)

    def key(self, i: int) -> bytes:
        return lpm_key(i) if self.map_type == MapType.LPM_TRIE else k(i)

    @property
    def missing(self) -> bytes:
        """Not in the map: past an array's end, or a key never written."""
        if self.map_type == MapType.LPM_TRIE:
            return lpm_key(99, 24)
        return k(MAX + 5) if self.map_type in ARRAYS else k(9999)

    def fill(self) -> None:
        for i in (1, 2, 3):
            if self.inner is not None:
                self.m.update(self.key(i), U32.pack(self.inner.fd))
            else:
                self.m.update(self.key(i), percpu_value(self.m, i))

    def close(self) -> None:
        self.m.close()
        if self.inner is not None:
            self.inner.close()


@pytest.fixture(params=KEYED, ids=lambda t: t.name)
def subject(request: pytest.FixtureRequest, features: Features) -> Iterator[Subject]:
    need_type(features, request.param)
    s = Subject(request.param)
    try:
        yield s
    finally:
        s.close()


def next_after(m: BpfMap, key: bytes) -> str:
    """What GET_NEXT_KEY answers after ``key``: "first key", "key <hex>" or an errno name."""
    try:
        got = m.get_next_key(key)
    except BpfError as e:
        return e.errname
    try:
        first = m.get_next_key(None)
    except BpfError as e:
        return f"key {got.hex()} (but NULL gives {e.errname})"
    return "first key" if got == first else f"key {got.hex()}"


def test_missing_start_key(subject: Subject, record_property: Recorder) -> None:
    empty = next_after(subject.m, subject.missing)
    subject.fill()
    filled = next_after(subject.m, subject.missing)
    record_property("get_next_key_after_missing_key", {"empty": empty, "three keys": filled})
    assert filled == "first key" or not filled.startswith("key "), filled
    if subject.map_type not in ARRAYS:  # an array is never empty: it has all its indexes
        assert empty == "ENOENT", f"an empty map gave {empty}"
