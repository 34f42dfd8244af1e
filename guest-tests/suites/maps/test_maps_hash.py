"""Hash family (hash, per-CPU hash, LRU hash, LRU per-CPU hash): element
commands with every update flag, GET_NEXT_KEY, full maps, LRU eviction,
LOOKUP_AND_DELETE."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import NamedTuple

import pytest

from bpfmap import (
    ENOTSUPP,
    BpfError,
    BpfMap,
    Features,
    MapFlag,
    MapType,
    UpdateFlag,
    num_possible_cpus,
)
from bpfmap.cpus import on_one_cpu
from mapsuite import Recorder, errno_of, k, need_type, percpu_value, ranges

NOEXIST, EXIST, ANY = UpdateFlag.NOEXIST, UpdateFlag.EXIST, UpdateFlag.ANY
# LRU maps without a common LRU split max_entries between the possible CPUs:
# leave each CPU room for every key a test writes, so nothing is evicted
# where a test does not expect it.
MAX = 32 * num_possible_cpus()


class Kind(NamedTuple):
    type: MapType
    flags: int = 0

    @property
    def lru(self) -> bool:
        return self.type in (MapType.LRU_HASH, MapType.LRU_PERCPU_HASH)

    def __str__(self) -> str:
        names = {MapFlag.NO_PREALLOC: "noprealloc", MapFlag.NO_COMMON_LRU: "nocommonlru"}
        return self.type.name + "".join(f"-{n}" for f, n in names.items() if self.flags & f)


KINDS = [
    Kind(MapType.HASH),
    Kind(MapType.HASH, int(MapFlag.NO_PREALLOC)),
    Kind(MapType.PERCPU_HASH),
    Kind(MapType.PERCPU_HASH, int(MapFlag.NO_PREALLOC)),
    Kind(MapType.LRU_HASH),
    Kind(MapType.LRU_HASH, int(MapFlag.NO_COMMON_LRU)),
    Kind(MapType.LRU_PERCPU_HASH),
]
NON_LRU = [kd for kd in KINDS if not kd.lru]
LRU = [kd for kd in KINDS if kd.lru]


def _open(kind: Kind, features: Features, max_entries: int = MAX) -> BpfMap:
    need_type(features, kind.type)
    return BpfMap.create(kind.type, 4, 8, max_entries, kind.flags, name="hash_suite")


@pytest.fixture(params=KINDS, ids=str)
def hmap(request: pytest.FixtureRequest, features: Features) -> Iterator[BpfMap]:
    with _open(request.param, features) as m:
        yield m


def val(m: BpfMap, i: int) -> list[bytes] | bytes:
    return percpu_value(m, i)


def test_update_any_inserts_and_replaces(hmap: BpfMap) -> None:
    hmap.update(k(1), val(hmap, 10))
    assert hmap.lookup(k(1)) == val(hmap, 10)
    hmap.update(k(1), val(hmap, 11), ANY)
    assert hmap.lookup(k(1)) == val(hmap, 11)


def test_update_noexist(hmap: BpfMap) -> None:
    hmap.update(k(2), val(hmap, 20), NOEXIST)  # absent: inserts
    assert hmap.lookup(k(2)) == val(hmap, 20)
    assert errno_of(lambda: hmap.update(k(2), val(hmap, 21), NOEXIST)) == errno.EEXIST
    assert hmap.lookup(k(2)) == val(hmap, 20), "a refused update must not write"


def test_update_exist(hmap: BpfMap) -> None:
    assert errno_of(lambda: hmap.update(k(3), val(hmap, 30), EXIST)) == errno.ENOENT
    assert errno_of(lambda: hmap.lookup(k(3))) == errno.ENOENT, "EXIST must not insert"
    hmap.update(k(3), val(hmap, 30))
    hmap.update(k(3), val(hmap, 31), EXIST)  # present: replaces
    assert hmap.lookup(k(3)) == val(hmap, 31)


@pytest.mark.parametrize("flags", [3, 8, 1 << 32, int(UpdateFlag.F_LOCK)],
                         ids=["NOEXIST|EXIST", "8", "1<<32", "F_LOCK-without-spin-lock"])
def test_update_bad_flags_are_einval(hmap: BpfMap, flags: int) -> None:
    hmap.update(k(4), val(hmap, 40))
    assert errno_of(lambda: hmap.update(k(4), val(hmap, 41), flags)) == errno.EINVAL
    assert errno_of(lambda: hmap.update(k(5), val(hmap, 50), flags)) == errno.EINVAL
    assert hmap.lookup(k(4)) == val(hmap, 40)
    assert errno_of(lambda: hmap.lookup(k(5))) == errno.ENOENT


@pytest.mark.parametrize("flags", [int(NOEXIST), int(EXIST), int(UpdateFlag.F_LOCK), 1 << 40],
                         ids=["NOEXIST", "EXIST", "F_LOCK-without-spin-lock", "1<<40"])
def test_lookup_flags_other_than_f_lock_are_einval(hmap: BpfMap, flags: int) -> None:
    hmap.update(k(6), val(hmap, 60))
    assert errno_of(lambda: hmap.lookup(k(6), flags)) == errno.EINVAL
    assert hmap.lookup(k(6)) == val(hmap, 60)


def test_lookup_and_delete_missing_and_values(hmap: BpfMap) -> None:
    assert errno_of(lambda: hmap.lookup(k(7))) == errno.ENOENT
    assert errno_of(lambda: hmap.delete(k(7))) == errno.ENOENT
    hmap.update(k(7), val(hmap, 70))
    hmap.update(k(8), val(hmap, 80))
    hmap.delete(k(7))
    assert errno_of(lambda: hmap.lookup(k(7))) == errno.ENOENT
    assert errno_of(lambda: hmap.delete(k(7))) == errno.ENOENT
    assert hmap.lookup(k(8)) == val(hmap, 80), "delete touched another key"
    hmap.update(k(7), val(hmap, 71), NOEXIST)  # a deleted key can come back
    assert hmap.lookup(k(7)) == val(hmap, 71)


def test_get_next_key(hmap: BpfMap) -> None:
    assert errno_of(lambda: hmap.get_next_key()) == errno.ENOENT, "empty map"
    assert errno_of(lambda: hmap.get_next_key(k(1))) == errno.ENOENT, "empty map, any key"
    keys = {k(i) for i in range(100, 120)}
    for key in keys:
        hmap.update(key, val(hmap, 1))
    first = hmap.get_next_key()
    seen = [first]
    for _ in range(len(keys)):
        try:
            seen.append(hmap.get_next_key(seen[-1]))
        except BpfError as e:
            assert e.errno == errno.ENOENT, "after the last key"
            break
    else:
        pytest.fail(f"the walk did not end after {len(keys)} keys")
    assert len(seen) == len(keys) and set(seen) == keys, "every key exactly once"
    assert errno_of(lambda: hmap.get_next_key(seen[-1])) == errno.ENOENT
    # A key that is not in the map restarts the walk at the first key.
    assert hmap.get_next_key(k(99999)) == first


@pytest.mark.parametrize("kind", NON_LRU, ids=str)
def test_full_map_is_e2big_but_overwrites_work(kind: Kind, features: Features) -> None:
    with _open(kind, features, max_entries=8) as m:
        for i in range(8):
            m.update(k(i), val(m, i), NOEXIST)
        for flags in (ANY, NOEXIST):
            assert errno_of(lambda: m.update(k(100), val(m, 100), flags)) == errno.E2BIG
        assert errno_of(lambda: m.lookup(k(100))) == errno.ENOENT
        # Replacing an existing key in a full map still works, every flag.
        m.update(k(0), val(m, 1000), ANY)
        m.update(k(1), val(m, 1001), EXIST)
        assert m.lookup(k(0)) == val(m, 1000) and m.lookup(k(1)) == val(m, 1001)
        assert len(list(m.keys())) == 8
        m.delete(k(2))  # room for exactly one
        m.update(k(100), val(m, 100), NOEXIST)
        assert errno_of(lambda: m.update(k(101), val(m, 101))) == errno.E2BIG


@pytest.mark.parametrize("kind", LRU, ids=str)
def test_lru_never_e2big_it_evicts(kind: Kind, features: Features, record_property: Recorder) -> None:
    """Which keys survive is the kernel's choice, so it is recorded. It depends on
    the CPU each update runs on (per-CPU free lists, stolen nodes), not on the hash
    seed: the writes run on one CPU, which makes two runs of a kernel agree."""
    max_entries = 64
    with _open(kind, features, max_entries=max_entries) as m:
        total = 4 * max_entries
        with on_one_cpu():
            for i in range(total):
                m.update(k(i), val(m, i), NOEXIST if i % 2 else ANY)
                assert m.lookup(k(i)) == val(m, i), "the key just written must be there"
        present = [key for key in m.keys()]
        assert 0 < len(present) <= max_entries, "eviction keeps the map within max_entries"
        assert len(present) < total
        for key in present:  # survivors kept their own values
            i = int.from_bytes(key, "little")
            assert m.lookup(key) == val(m, i)
        record_property("lru_survivors_of_256_writes", len(present))
        record_property("lru_surviving_keys", ranges([int.from_bytes(key, "little") for key in present]))


def test_lookup_and_delete(hmap: BpfMap, record_property: Recorder) -> None:
    hmap.update(k(9), val(hmap, 90))
    try:
        got = hmap.lookup_and_delete(k(9))
    except BpfError as e:
        record_property("hash_lookup_and_delete", e.errname)
        if e.errno == ENOTSUPP:  # the probe: hash maps gained it in 5.14
            pytest.skip("kernel lacks LOOKUP_AND_DELETE for hash maps (ENOTSUPP)")
        raise
    record_property("hash_lookup_and_delete", "ok")
    assert got == val(hmap, 90)
    assert errno_of(lambda: hmap.lookup(k(9))) == errno.ENOENT, "the element must be gone"
    assert errno_of(lambda: hmap.lookup_and_delete(k(9))) == errno.ENOENT
    hmap.update(k(9), val(hmap, 91))
    for flags in (int(NOEXIST), int(UpdateFlag.F_LOCK)):  # only F_LOCK, with a spin lock
        assert errno_of(lambda: hmap.lookup_and_delete(k(9), flags)) == errno.EINVAL
    assert hmap.lookup(k(9)) == val(hmap, 91)
