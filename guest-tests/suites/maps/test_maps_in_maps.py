"""Array-of-maps and hash-of-maps: an inner map fd goes in, its map ID comes
out; the template's type and geometry bind every inner map."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import pytest

from bpfmap import ENOTSUPP, BpfMap, Features, MapFlag, MapType, UpdateFlag
from mapsuite import U32, Recorder, errno_of, id_exists, k, need_type, outcome, v, wait_for

OUTER = [MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS]


def fdv(fd: int) -> bytes:
    return U32.pack(fd)


def inner_id(outer: BpfMap, key: bytes) -> int:
    """The inner map ID an outer map's lookup returns."""
    raw = outer.lookup(key)
    assert isinstance(raw, bytes) and len(raw) == 4
    map_id: int = U32.unpack(raw)[0]
    return map_id


def inner_map(max_entries: int = 2, flags: int = 0) -> BpfMap:
    return BpfMap.create(MapType.ARRAY, 4, 8, max_entries, flags, name="inner")


@pytest.fixture(params=OUTER, ids=lambda t: t.name)
def outer(request: pytest.FixtureRequest, features: Features) -> Iterator[BpfMap]:
    need_type(features, request.param)
    with inner_map() as template:
        with BpfMap.create(request.param, 4, 4, 4, inner_map_fd=template.fd, name="outer") as m:
            yield m


def test_lookup_returns_the_inner_map_id(outer: BpfMap) -> None:
    with inner_map() as a, inner_map() as b:
        outer.update(k(0), fdv(a.fd))
        outer.update(k(1), fdv(b.fd))
        ids = (inner_id(outer, k(0)), inner_id(outer, k(1)))
        assert ids == (a.info().id, b.info().id)
        # The ID leads back to the same map: a write through a is visible there.
        a.update(k(1), v(42))
        with BpfMap.from_id(ids[0]) as again:
            assert again.lookup(k(1)) == v(42)


def test_missing_slot_is_enoent(outer: BpfMap) -> None:
    assert errno_of(lambda: outer.lookup(k(0))) == errno.ENOENT
    if outer.map_type == MapType.ARRAY_OF_MAPS:
        assert errno_of(lambda: outer.update(k(4), fdv(0))) == errno.E2BIG  # past max_entries


def test_outer_holds_the_inner_map_alive(outer: BpfMap) -> None:
    inner = inner_map()
    inner_id = inner.info().id
    outer.update(k(0), fdv(inner.fd))
    inner.close()
    assert id_exists(inner_id), "referenced by the outer map, the inner map lives on"
    outer.delete(k(0))
    assert errno_of(lambda: outer.lookup(k(0))) == errno.ENOENT
    # Freed asynchronously (RCU, workqueue): bounded wait for the ID to go.
    assert wait_for(lambda: not id_exists(inner_id)), f"map ID {inner_id} still there"


def test_delete(outer: BpfMap) -> None:
    with inner_map() as a:
        outer.update(k(2), fdv(a.fd))
        outer.delete(k(2))
        assert errno_of(lambda: outer.lookup(k(2))) == errno.ENOENT
        assert errno_of(lambda: outer.delete(k(2))) == errno.ENOENT


def test_inner_map_must_match_the_template(outer: BpfMap, features: Features) -> None:
    with BpfMap.create(MapType.HASH, 4, 8, 2) as other_type, \
            BpfMap.create(MapType.ARRAY, 4, 16, 2) as other_value, \
            inner_map(max_entries=3) as other_max:
        for m in (other_type, other_value, other_max):
            assert errno_of(lambda: outer.update(k(0), fdv(m.fd))) == errno.EINVAL, m
    assert errno_of(lambda: outer.lookup(k(0))) == errno.ENOENT
    r, w = os.pipe()
    try:
        assert errno_of(lambda: outer.update(k(0), fdv(r))) == errno.EINVAL
    finally:
        os.close(r)
        os.close(w)
    closed = os.dup(0)
    os.close(closed)
    assert errno_of(lambda: outer.update(k(0), fdv(closed))) == errno.EBADF
    with inner_map() as same:
        outer.update(k(0), fdv(same.fd))


def test_inner_map_flag_allows_other_sizes(record_property: Recorder, features: Features) -> None:
    """BPF_F_INNER_MAP (5.10) on the template lifts the max_entries match."""
    need_type(features, MapType.ARRAY_OF_MAPS)
    made = outcome(lambda: inner_map(flags=int(MapFlag.INNER_MAP)))
    record_property("inner_map_flag", made)
    if made != "ok":
        pytest.skip(f"kernel lacks BPF_F_INNER_MAP (array create: {made})")
    with inner_map(flags=int(MapFlag.INNER_MAP)) as template, \
            BpfMap.create(MapType.ARRAY_OF_MAPS, 4, 4, 2, inner_map_fd=template.fd) as outer, \
            inner_map(max_entries=7, flags=int(MapFlag.INNER_MAP)) as bigger:
        outer.update(k(0), fdv(bigger.fd))
        assert inner_id(outer, k(0)) == bigger.info().id


def test_update_flags(outer: BpfMap) -> None:
    with inner_map() as a, inner_map() as b:
        if outer.map_type == MapType.HASH_OF_MAPS:
            assert errno_of(lambda: outer.update(k(0), fdv(a.fd), UpdateFlag.EXIST)) == errno.ENOENT
            outer.update(k(0), fdv(a.fd), UpdateFlag.NOEXIST)
            assert errno_of(lambda: outer.update(k(0), fdv(b.fd), UpdateFlag.NOEXIST)) == errno.EEXIST
            outer.update(k(0), fdv(b.fd), UpdateFlag.EXIST)
        else:
            # fd arrays take BPF_ANY only.
            for flags in (UpdateFlag.NOEXIST, UpdateFlag.EXIST):
                assert errno_of(lambda: outer.update(k(0), fdv(a.fd), flags)) == errno.EINVAL
            outer.update(k(0), fdv(a.fd))
            outer.update(k(0), fdv(b.fd), UpdateFlag.ANY)
        assert inner_id(outer, k(0)) == b.info().id


def test_get_next_key_and_lookup_and_delete(outer: BpfMap) -> None:
    with inner_map() as a:
        outer.update(k(3), fdv(a.fd))
        if outer.map_type == MapType.HASH_OF_MAPS:
            assert list(outer.keys()) == [k(3)]
        else:
            assert list(outer.keys()) == [k(i) for i in range(4)]
        assert errno_of(lambda: outer.lookup_and_delete(k(3))) == ENOTSUPP
        assert inner_id(outer, k(3)) == a.info().id
