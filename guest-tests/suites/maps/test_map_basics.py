"""Smoke suite: the basic map commands on hash and array maps."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import pytest

from bpfmap import BpfError, BpfMap, Cmd, MapType, UpdateFlag, attrs, bpf_raw
from mapsuite import Recorder, errno_of, k, observed_errno, v


@pytest.fixture
def hmap() -> Iterator[BpfMap]:
    with BpfMap.create(MapType.HASH, 4, 8, 64, name="smoke_hash") as m:
        yield m


def test_hash_update_lookup_delete(hmap: BpfMap) -> None:
    hmap.update(k(1), v(100))
    hmap.update(k(2), v(200))
    assert hmap.lookup(k(1)) == v(100)
    assert hmap.lookup(k(2)) == v(200)
    hmap.update(k(1), v(101))  # ANY overwrites
    assert hmap.lookup(k(1)) == v(101)
    hmap.delete(k(1))
    assert errno_of(lambda: hmap.lookup(k(1))) == errno.ENOENT
    assert errno_of(lambda: hmap.delete(k(1))) == errno.ENOENT
    assert hmap.lookup(k(2)) == v(200)


def test_hash_update_noexist_on_existing_is_eexist(hmap: BpfMap, record_property: Recorder) -> None:
    hmap.update(k(7), v(1), UpdateFlag.NOEXIST)  # absent: NOEXIST inserts
    err = observed_errno(
        record_property, "update_noexist_existing_errno",
        lambda: hmap.update(k(7), v(2), UpdateFlag.NOEXIST),
    )
    assert err == errno.EEXIST
    assert hmap.lookup(k(7)) == v(1), "a refused NOEXIST update must not change the value"


def test_hash_update_exist_on_missing_is_enoent(hmap: BpfMap, record_property: Recorder) -> None:
    err = observed_errno(
        record_property, "update_exist_missing_errno",
        lambda: hmap.update(k(8), v(1), UpdateFlag.EXIST),
    )
    assert err == errno.ENOENT
    assert errno_of(lambda: hmap.lookup(k(8))) == errno.ENOENT, "EXIST must not insert"
    hmap.update(k(8), v(1))
    hmap.update(k(8), v(2), UpdateFlag.EXIST)  # present: EXIST replaces
    assert hmap.lookup(k(8)) == v(2)


def test_hash_lookup_missing_is_enoent(hmap: BpfMap) -> None:
    assert errno_of(lambda: hmap.lookup(k(12345))) == errno.ENOENT


def test_hash_get_next_key(hmap: BpfMap, record_property: Recorder) -> None:
    assert errno_of(lambda: hmap.get_next_key()) == errno.ENOENT, "empty map has no first key"
    keys = {k(i) for i in range(10)}
    for key in keys:
        hmap.update(key, v(0))
    seen = [hmap.get_next_key()]
    for _ in range(len(keys)):  # bounded: one more call than keys must end it
        try:
            seen.append(hmap.get_next_key(seen[-1]))
        except BpfError as e:
            assert e.errno == errno.ENOENT  # after the last key
            break
    else:
        pytest.fail(f"GET_NEXT_KEY did not end after {len(keys)} keys: {seen}")
    assert sorted(seen) == sorted(keys) and len(seen) == len(keys)
    # A start key that is not in a hash map restarts at the first key.
    restart = hmap.get_next_key(k(999))
    record_property("get_next_key_missing_start_gives_first", restart == seen[0])
    assert restart == seen[0]


def test_array_values_start_zeroed() -> None:
    with BpfMap.create(MapType.ARRAY, 4, 12, 8) as m:
        for i in range(8):
            assert m.lookup(k(i)) == bytes(12)
        assert errno_of(lambda: m.lookup(k(8))) == errno.ENOENT  # out of range
        m.update(k(3), b"x" * 12)
        assert m.lookup(k(3)) == b"x" * 12


def test_array_delete_is_einval(record_property: Recorder) -> None:
    with BpfMap.create(MapType.ARRAY, 4, 4, 4) as m:
        m.update(k(0), b"abcd")
        err = observed_errno(record_property, "array_delete_errno", lambda: m.delete(k(0)))
        assert err == errno.EINVAL
        assert m.lookup(k(0)) == b"abcd", "a refused delete must keep the element"


def test_attr_size_above_page_size_is_e2big(record_property: Recorder) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    attr = attrs.pack_map_create(MapType.HASH, 4, 4, 1)
    # The same valid attributes with size == PAGE_SIZE (zero tail) create a
    # map, so the E2BIG below is the size rule and nothing else.
    os.close(bpf_raw(Cmd.MAP_CREATE, attr, page))
    err = observed_errno(
        record_property, "attr_size_page_plus_one_errno",
        lambda: bpf_raw(Cmd.MAP_CREATE, attr, page + 1),
    )
    assert err == errno.E2BIG
