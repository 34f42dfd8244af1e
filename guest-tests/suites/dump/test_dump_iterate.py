"""Dump by iteration (GET_NEXT_KEY + LOOKUP_ELEM, as bpftool does) on hash,
array, LRU and LPM maps, from empty to 100,000 entries, and what a delete
in the middle of the walk does to it."""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable, Iterator

import forked
import pytest
from dumpkit import ARRAY, HASH, LPM, LRU, WALK_KINDS, Kind, fill

from bpfmap import BpfError, BpfMap, Features, MapType
from bpfmap.cpus import on_one_cpu

Recorder = Callable[[str, object], None]
SIZES = [0, 1, 2, 1000, 100_000]


def next_key(m: BpfMap, key: bytes | None) -> bytes | None:
    """GET_NEXT_KEY after ``key`` (the first key for None); None when the
    walk ends, which it must do with ENOENT and nothing else."""
    try:
        return m.get_next_key(key)
    except BpfError as e:
        assert e.errno == errno.ENOENT, f"walk ended with {e}"
        return None


def walk_keys(m: BpfMap) -> list[bytes]:
    """Every key GET_NEXT_KEY yields from a NULL start until ENOENT."""
    keys: list[bytes] = []
    key: bytes | None = None
    for _ in range(m.max_entries + 1):
        key = next_key(m, key)
        if key is None:
            return keys
        keys.append(key)
    raise AssertionError(f"GET_NEXT_KEY walk passed max_entries={m.max_entries}: it looped")


# The walks that take seconds under TCG run in forked children (forked.py), all
# started when the first walk test runs, so the second vCPU walks while this
# module's other tests go on; each owning test waits for its child's verdict.
FORKED_SIZES = {100_000}


def check_walk(kind: Kind, n: int, features: Features, record: Recorder) -> None:
    """Fill a map with n entries, walk it, look every walked key up."""
    if kind.map_type == MapType.ARRAY and n == 0:
        # An array always holds max_entries elements, and 0 is refused.
        with pytest.raises(BpfError) as info:
            kind.create(0).close()
        assert info.value.errno == errno.EINVAL
        return
    expected = kind.entries(n)
    with kind.create(n, name="dump_walk") as m:
        # One CPU: what an LRU evicts while filling depends on the CPU (its free
        # lists), and lru_evicted below must not change between two runs.
        with on_one_cpu():
            record("fill", fill(m, expected, features.has_batch))
        keys = walk_keys(m)
        assert len(keys) == len(set(keys)), "a key came back twice"
        if kind.map_type == MapType.ARRAY:
            assert keys == list(expected), "an array walks its indexes in order"
        got = {k: m.lookup(k) for k in keys}
        if kind is LRU:
            # LRU maps may evict when filling; the walk must still show exactly
            # what the map holds. The headroom makes eviction unlikely.
            assert all(got[k] == expected[k] for k in got), "a walked value differs"
            missing = [k for k in expected if k not in got]
            for k in missing:
                with pytest.raises(BpfError) as info:
                    m.lookup(k)
                assert info.value.errno == errno.ENOENT, "a key in the map was skipped"
            record("lru_evicted", len(missing))
            assert set(got) <= set(expected)
        else:
            assert got == expected


@pytest.fixture(scope="module")
def forked_walks(features: Features) -> Iterator[dict[tuple[str, int], forked.Child]]:
    children = {
        (kind.name, n): forked.start(f"walk of {kind.name} with {n} entries",
                                     functools.partial(check_walk, kind, n, features))
        for kind in WALK_KINDS for n in sorted(FORKED_SIZES)
    }
    try:
        yield children
    finally:
        for child in children.values():
            child.kill()


@pytest.mark.parametrize("n", SIZES, ids=[f"n{n}" for n in SIZES])
@pytest.mark.parametrize("kind", WALK_KINDS, ids=[k.name for k in WALK_KINDS])
def test_walk_returns_every_entry_exactly_once(
    kind: Kind, n: int, features: Features, record_property: Recorder,
    forked_walks: dict[tuple[str, int], forked.Child],
) -> None:
    if n in FORKED_SIZES:
        forked_walks[kind.name, n].collect(record_property)
    else:
        check_walk(kind, n, features, record_property)


DELETE_KINDS = [HASH, LRU, LPM]
N_DELETE = 200


def _filled(kind: Kind, features: Features) -> tuple[BpfMap, dict[bytes, object]]:
    expected = kind.entries(N_DELETE)
    m = kind.create(N_DELETE, name="dump_delete")
    fill(m, expected, features.has_batch)
    return m, dict(expected)


@pytest.mark.parametrize("kind", DELETE_KINDS, ids=[k.name for k in DELETE_KINDS])
def test_deleting_an_unvisited_key_mid_walk(kind: Kind, features: Features) -> None:
    """The walk goes on from the current key and never shows the deleted one."""
    m, expected = _filled(kind, features)
    with m:
        half = N_DELETE // 2
        victim: bytes | None = None
        seen: list[bytes] = []
        key: bytes | None = None
        while (key := next_key(m, key)) is not None:
            seen.append(key)
            if len(seen) == half:
                victim = next(k for k in expected if k not in seen)  # not visited yet
                m.delete(victim)
            assert len(seen) <= N_DELETE, "the walk looped"
        assert victim is not None and victim not in seen
        assert len(seen) == len(set(seen)) == N_DELETE - 1
        assert set(seen) == set(expected) - {victim}


@pytest.mark.parametrize("kind", DELETE_KINDS, ids=[k.name for k in DELETE_KINDS])
def test_deleting_the_current_key_restarts_the_walk(
    kind: Kind, features: Features, record_property: Recorder
) -> None:
    """GET_NEXT_KEY of a key no longer in the map returns the first key.

    So a walk whose current key is deleted under it starts over: it does not
    fail, it still ends with ENOENT, and it sees every remaining key, some of
    them twice (which is why bpftool-style dumps can duplicate).
    """
    m, expected = _filled(kind, features)
    with m:
        half = N_DELETE // 2
        seen: list[bytes] = []
        key: bytes | None = None
        restarted_at: int | None = None
        while (key := next_key(m, key)) is not None:
            seen.append(key)
            if len(seen) == half and restarted_at is None:
                m.delete(key)
                first_now = m.get_next_key(None)
                after_deleted = m.get_next_key(key)
                assert after_deleted == first_now, "next of a deleted key is not the first key"
                restarted_at = len(seen)
                seen.append(after_deleted)
                key = after_deleted
            assert len(seen) <= 2 * N_DELETE, "the walk looped"
        deleted = seen[half - 1]
        remaining = set(expected) - {deleted}
        assert set(seen) - {deleted} == remaining, "a remaining key was never seen"
        replay = seen[half:]  # from the first key again to ENOENT: a full walk
        assert len(replay) == len(set(replay)) == N_DELETE - 1
        assert set(replay) == remaining
        record_property("restart_after_delete", "first key")
        record_property("keys_seen_with_restart", len(seen))


def test_walk_that_deletes_every_key_it_visits_empties_the_map(features: Features) -> None:
    """The common 'delete all' idiom: next(deleted) restarts at the new first key."""
    m, expected = _filled(HASH, features)
    with m:
        visited: list[bytes] = []
        key: bytes | None = None
        for _ in range(N_DELETE + 1):
            key = next_key(m, key)
            if key is None:
                break
            visited.append(key)
            m.delete(key)
        assert len(visited) == len(set(visited)) == N_DELETE
        assert set(visited) == set(expected)
        with pytest.raises(BpfError) as info:
            m.get_next_key(None)
        assert info.value.errno == errno.ENOENT


def test_array_elements_cannot_be_deleted_mid_walk() -> None:
    """Arrays have no delete (EINVAL), so a walk over one cannot be disturbed by it."""
    with ARRAY.create(8) as m:
        first = m.get_next_key(None)
        with pytest.raises(BpfError) as info:
            m.delete(first)
        assert info.value.errno == errno.EINVAL
        assert walk_keys(m) == [ARRAY.key(i) for i in range(8)]
