"""Bloom filter maps (5.16+): push values, test membership with LOOKUP,
no delete / iteration, map_extra = number of hash functions."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

from bpfmap import ENOTSUPP, BpfMap, Features, MapType, UpdateFlag
from mapsuite import Recorder, errno_of, need_type, v


@pytest.fixture
def bloom(features: Features) -> Iterator[BpfMap]:
    need_type(features, MapType.BLOOM_FILTER)
    with BpfMap.create(MapType.BLOOM_FILTER, 0, 8, 1000, name="bloom_suite") as m:
        yield m


def test_membership(bloom: BpfMap) -> None:
    members = [v(i * 7919) for i in range(1, 6)]
    # With 1000 slots sized for, 5 members and 5 hash functions the
    # false-positive rate is ~1e-13: "absent" here really means absent.
    absent = [v(i) for i in range(100_000, 100_020)]
    for x in absent:
        assert not bloom.contains(x)
    for x in members:
        bloom.update(None, x)
    for x in members:
        assert bloom.contains(x), "no false negatives"
    for x in absent:
        assert not bloom.contains(x)


def test_lookup_absent_is_enoent(bloom: BpfMap) -> None:
    # contains() maps ENOENT to False; the raw lookup shows the errno.
    assert errno_of(lambda: bloom.lookup(None)) == errno.ENOENT


@pytest.mark.parametrize("flags", [int(UpdateFlag.NOEXIST), int(UpdateFlag.EXIST), 3, int(UpdateFlag.F_LOCK)],
                         ids=["NOEXIST", "EXIST", "NOEXIST|EXIST", "F_LOCK"])
def test_only_bpf_any_pushes(bloom: BpfMap, flags: int) -> None:
    assert errno_of(lambda: bloom.update(None, v(1), flags)) == errno.EINVAL
    assert not bloom.contains(v(1))
    bloom.update(None, v(1), UpdateFlag.ANY)
    assert bloom.contains(v(1))


def test_delete_and_get_next_key_are_eopnotsupp(bloom: BpfMap) -> None:
    bloom.update(None, v(1))
    assert errno_of(lambda: bloom.delete(None)) == errno.EOPNOTSUPP
    assert errno_of(lambda: bloom.get_next_key()) == errno.EOPNOTSUPP
    assert errno_of(lambda: bloom.lookup_and_delete(None)) == ENOTSUPP
    assert bloom.contains(v(1))


def test_map_extra_in_info(features: Features, record_property: Recorder) -> None:
    need_type(features, MapType.BLOOM_FILTER)
    with BpfMap.create(MapType.BLOOM_FILTER, 0, 4, 10, map_extra=3) as m:
        info = m.info()
        assert info.map_extra == 3, "map_extra (nr_hash_funcs) reads back as given"
        m.update(None, b"abcd")
        assert m.contains(b"abcd")
    with BpfMap.create(MapType.BLOOM_FILTER, 0, 4, 10) as m:
        # 0 means "the default" (5 hash functions); what info shows is recorded.
        record_property("bloom_map_extra_default_in_info", m.info().map_extra)
        assert m.info().map_extra in (0, 5)
