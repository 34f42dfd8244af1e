"""Array and per-CPU array maps: zeroed values, index range, update flags,
delete, GET_NEXT_KEY order, no LOOKUP_AND_DELETE."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

from bpfmap import ENOTSUPP, BpfMap, Features, MapType, UpdateFlag
from mapsuite import errno_of, k, need_type, percpu_value

MAX = 8
VALUE_SIZE = 12  # not a multiple of 8: per-CPU slots are padded to 16


@pytest.fixture(params=[MapType.ARRAY, MapType.PERCPU_ARRAY], ids=lambda t: t.name)
def amap(request: pytest.FixtureRequest, features: Features) -> Iterator[BpfMap]:
    need_type(features, request.param)
    with BpfMap.create(request.param, 4, VALUE_SIZE, MAX, name="array_suite") as m:
        yield m


def zero(m: BpfMap) -> list[bytes] | bytes:
    return [bytes(VALUE_SIZE)] * m.layout.slots if m.is_percpu else bytes(VALUE_SIZE)


def test_values_start_zeroed(amap: BpfMap) -> None:
    for i in range(MAX):
        assert amap.lookup(k(i)) == zero(amap), f"index {i}"


def test_every_index_exists(amap: BpfMap) -> None:
    # An array has all max_entries elements from the start: NOEXIST is
    # always EEXIST, EXIST and ANY always replace.
    for i in range(MAX):
        assert errno_of(lambda: amap.update(k(i), percpu_value(amap, i), UpdateFlag.NOEXIST)) == errno.EEXIST
        assert amap.lookup(k(i)) == zero(amap), "a refused NOEXIST must not write"
    amap.update(k(1), percpu_value(amap, 1), UpdateFlag.EXIST)
    amap.update(k(2), percpu_value(amap, 2), UpdateFlag.ANY)
    assert amap.lookup(k(1)) == percpu_value(amap, 1)
    assert amap.lookup(k(2)) == percpu_value(amap, 2)
    assert amap.lookup(k(3)) == zero(amap), "an update touched a neighbour"


@pytest.mark.parametrize("index", [MAX, MAX + 1, 0xFFFFFFFF])
def test_out_of_range(amap: BpfMap, index: int) -> None:
    assert errno_of(lambda: amap.lookup(k(index))) == errno.ENOENT
    for flags in (UpdateFlag.ANY, UpdateFlag.EXIST, UpdateFlag.NOEXIST):
        assert errno_of(lambda: amap.update(k(index), percpu_value(amap, 9), flags)) == errno.E2BIG


@pytest.mark.parametrize("flags", [3, 8, int(UpdateFlag.F_LOCK)], ids=["NOEXIST|EXIST", "8", "F_LOCK-without-spin-lock"])
def test_bad_update_flags_are_einval(amap: BpfMap, flags: int) -> None:
    assert errno_of(lambda: amap.update(k(0), percpu_value(amap, 5), flags)) == errno.EINVAL
    assert amap.lookup(k(0)) == zero(amap)


@pytest.mark.parametrize("index", [0, MAX - 1, MAX])
def test_delete_is_einval(amap: BpfMap, index: int) -> None:
    amap.update(k(0), percpu_value(amap, 7))
    assert errno_of(lambda: amap.delete(k(index))) == errno.EINVAL
    assert amap.lookup(k(0)) == percpu_value(amap, 7), "a refused delete must keep the value"


def test_get_next_key_walks_indexes_in_order(amap: BpfMap) -> None:
    assert amap.get_next_key() == k(0)
    for i in range(MAX - 1):
        assert amap.get_next_key(k(i)) == k(i + 1)
    assert errno_of(lambda: amap.get_next_key(k(MAX - 1))) == errno.ENOENT
    # An index past the end restarts at 0 (like a key missing from a hash).
    assert amap.get_next_key(k(MAX)) == k(0)
    assert amap.get_next_key(k(0xFFFFFFFF)) == k(0)


def test_lookup_and_delete_is_enotsupp(amap: BpfMap) -> None:
    assert errno_of(lambda: amap.lookup_and_delete(k(0))) == ENOTSUPP
    assert amap.lookup(k(0)) == zero(amap)
