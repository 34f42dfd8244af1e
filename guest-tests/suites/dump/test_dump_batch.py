"""The batch API (5.6+), what upstream made of the BPF_MAP_DUMP RFC.

Hash-family maps batch by bucket (their cursor is a bucket index and one
call returns whole buckets, so how many elements a call returns is left to
the kernel); array and LPM maps use the generic code, which walks
GET_NEXT_KEY and fills ``count`` exactly until the map ends.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import pytest
from dumpkit import (
    ARRAY,
    HASH,
    LPM,
    LRU,
    LRU_PERCPU_HASH,
    PERCPU_ARRAY,
    PERCPU_HASH,
    U32,
    U64,
    Kind,
    fill,
)

from bpfmap import BpfError, BpfMap, Cmd, Features, MapFlag, MapType, UpdateFlag, attrs, bpf_raw
from bpfmap.batch import cursor_size
from bpfmap.errors import ENOTSUPP, errno_name
from bpfmap.layout import Value

Recorder = Callable[[str, object], None]

HASH_KINDS = [HASH, PERCPU_HASH, LRU, LRU_PERCPU_HASH]
GENERIC_KINDS = [ARRAY, PERCPU_ARRAY, LPM]  # generic_map_lookup_batch
ALL_KINDS = HASH_KINDS + GENERIC_KINDS
N = 40


@pytest.fixture(autouse=True)
def _needs_batch(features: Features) -> None:
    if not features.has_batch:
        seen = {c.name: features.observed.get(f"cmd.{c.name}") for c in Cmd if "BATCH" in c.name}
        pytest.skip(f"kernel lacks the *_BATCH commands (probe: {seen})")


def filled(kind: Kind, n: int = N) -> tuple[BpfMap, dict[bytes, Value]]:
    expected = kind.entries(n)
    m = kind.create(n, name="dump_batch")
    try:
        assert fill(m, expected, use_batch=True) == "batch"
    except BaseException:
        m.close()
        raise
    return m, expected


@dataclass
class Walk:
    """What a LOOKUP_BATCH walk saw, call by call."""

    items: list[tuple[bytes, Value]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # per successful/ENOENT call
    last_errno: int | None = None
    enospc: list[tuple[int, int]] = field(default_factory=list)  # (count tried, count that fit)


def batch_walk(m: BpfMap, step: int, *, delete: bool = False) -> Walk:
    """Walk with ``step`` per call; on ENOSPC retry the same cursor with a
    larger count, and check what each call reports against what it asked."""
    call = m.lookup_and_delete_batch if delete else m.lookup_batch
    w = Walk()
    cursor: bytes | None = None
    for _ in range(m.max_entries + 2):
        count = step
        while True:
            try:
                res = call(cursor, count)
                break
            except BpfError as e:
                assert e.errno == errno.ENOSPC, f"batch call failed: {e}"
                assert e.count == 0, "ENOSPC must report count 0"
                assert count < m.max_entries, "ENOSPC with room for the whole map"
                count += 1
        if count != step:
            assert res.count >= count, "the bucket that did not fit came back smaller"
            w.enospc.append((step, res.count))
        assert res.count <= count, f"asked for {count}, got {res.count}"
        assert len(res.keys) == res.count
        w.counts.append(res.count)
        w.items.extend(res.items)
        if res.done:
            w.last_errno = res.errno
            return w
        assert res.count > 0, "a call that is not the end copied nothing"
        cursor = res.cursor
    raise AssertionError(f"LOOKUP_BATCH with step {step} did not end: cursor not advancing")


def assert_exactly(items: list[tuple[bytes, Value]], expected: dict[bytes, Value]) -> None:
    keys = [k for k, _ in items]
    assert len(keys) == len(set(keys)), "a key came back twice"
    assert dict(items) == expected


@pytest.mark.parametrize("kind", ALL_KINDS, ids=[k.name for k in ALL_KINDS])
def test_every_step_size_walks_the_whole_map(kind: Kind) -> None:
    """NULL starts, out_batch passed back continues, ENOENT ends; for every
    count from 1 to beyond max_entries."""
    m, expected = filled(kind)
    with m:
        for step in range(1, m.max_entries + 3):
            w = batch_walk(m, step)
            assert w.last_errno == errno.ENOENT
            assert_exactly(w.items, expected)
            if kind in GENERIC_KINDS:
                # The generic code fills count exactly; the call that runs into
                # the end returns what is left (maybe 0) with ENOENT.
                assert not w.enospc, "only hash maps answer ENOSPC"
                full, rest = divmod(N, step)
                assert w.counts == [step] * full + [rest], f"step {step}: {w.counts}"


@pytest.mark.parametrize("kind", [HASH, ARRAY, LPM], ids=["hash", "array", "lpm_trie"])
def test_count_zero_returns_at_once(kind: Kind) -> None:
    m, _ = filled(kind)
    with m:
        csize = cursor_size(m.key_size)
        out = ctypes.create_string_buffer(b"\x5a" * csize, csize)
        keys = ctypes.create_string_buffer(b"\x5a" * 64, 64)
        values = ctypes.create_string_buffer(b"\x5a" * 64, 64)
        attr = bytearray(
            attrs.pack_batch(
                m.fd, 0, ctypes.addressof(out), ctypes.addressof(keys), ctypes.addressof(values), 0
            )
        )
        assert bpf_raw(Cmd.MAP_LOOKUP_BATCH, attr) == 0
        assert attrs.U32.unpack_from(attr, attrs.BATCH_COUNT_OFFSET)[0] == 0
        assert out.raw == b"\x5a" * csize, "out_batch written by a count-0 call"
        assert keys.raw == values.raw == b"\x5a" * 64, "elements copied by a count-0 call"


@pytest.mark.parametrize("kind", ALL_KINDS, ids=[k.name for k in ALL_KINDS])
def test_enoent_at_the_end_carries_the_partial_count(kind: Kind) -> None:
    m, expected = filled(kind)
    with m:
        res = m.lookup_batch(None, N + 5)
        assert res.errno == errno.ENOENT and res.count == N, "one call for everything ends it"
        assert_exactly(res.items, expected)
        again = m.lookup_batch(res.cursor, N + 5)
        assert (again.errno, again.count) == (errno.ENOENT, 0), "past the end: ENOENT, count 0"


@pytest.mark.parametrize("kind", HASH_KINDS, ids=[k.name for k in HASH_KINDS])
def test_empty_hash_map_ends_at_once(kind: Kind) -> None:
    with kind.create(8) as m:
        res = m.lookup_batch(None, 8)
        assert (res.errno, res.count) == (errno.ENOENT, 0)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=[k.name for k in ALL_KINDS])
def test_the_cursor_is_the_only_state(kind: Kind) -> None:
    """Two calls from the same cursor return the same elements: nothing is
    remembered in the fd, the caller carries the position."""
    m, _ = filled(kind)
    with m:
        first = m.lookup_batch(None, N // 2)
        assert first.count > 0 and not first.done
        again = m.lookup_batch(None, N // 2)
        assert again.items == first.items and again.cursor == first.cursor
        second = m.lookup_batch(first.cursor, N // 2)
        repeat = m.lookup_batch(first.cursor, N // 2)
        assert second.items == repeat.items
        assert not {k for k, _ in first.items} & {k for k, _ in second.items}


@pytest.mark.parametrize("kind", [HASH, LRU], ids=["hash", "lru_hash"])
def test_enospc_when_the_first_bucket_does_not_fit(kind: Kind, record_property: Recorder) -> None:
    """512 keys in at most 1024 buckets: some bucket holds two or more (the
    odds of none are below e^-100), and count 1 cannot hold that bucket.
    BPF_F_ZERO_SEED makes the bucket layout the same on every run, so the
    recorded numbers differ between kernels only if their hashing does."""
    n = 512
    m, expected = filled(replace(kind, map_flags=kind.map_flags | int(MapFlag.ZERO_SEED)), n)
    with m:
        w = batch_walk(m, 1)
        assert w.last_errno == errno.ENOENT
        assert_exactly(w.items, expected)
        assert w.enospc, "no ENOSPC at count 1 in a full hash map"
        # Every call that fit returned whole buckets: ENOSPC at count c means
        # the first bucket there held more than c elements.
        assert all(fit > tried for tried, fit in w.enospc)
        record_property("enospc_calls", len(w.enospc))
        record_property("largest_bucket_seen", max(fit for _, fit in w.enospc))


LAD_KINDS = HASH_KINDS


@pytest.mark.parametrize("kind", LAD_KINDS, ids=[k.name for k in LAD_KINDS])
def test_lookup_and_delete_batch_empties_the_map(kind: Kind) -> None:
    m, expected = filled(kind, 300)
    with m:
        w = batch_walk(m, 16, delete=True)
        assert w.last_errno == errno.ENOENT
        assert_exactly(w.items, expected)
        with pytest.raises(BpfError) as info:
            m.get_next_key(None)
        assert info.value.errno == errno.ENOENT, "the map is not empty"
        res = m.lookup_batch(None, 16)
        assert (res.errno, res.count) == (errno.ENOENT, 0)


def _k(i: int) -> bytes:
    return U32.pack(i)


def _v(i: int) -> bytes:
    return U64.pack(i)


def test_update_batch_stops_at_the_first_bad_element_hash() -> None:
    with BpfMap.create(MapType.HASH, 4, 8, 5) as m:
        m.update(_k(100), _v(100))
        keys = [_k(i) for i in range(8)]
        with pytest.raises(BpfError) as info:
            m.update_batch(keys, [_v(i) for i in range(8)])
        # The fifth new key finds the map full (E2BIG).
        assert info.value.errno == errno.E2BIG
        assert info.value.count == 4, "count must say how many were processed"
        assert [m.lookup(_k(i)) for i in range(4)] == [_v(i) for i in range(4)]
        for i in range(4, 8):
            with pytest.raises(BpfError) as miss:
                m.lookup(_k(i))
            assert miss.value.errno == errno.ENOENT, f"element {i} from the bad one on was written"


def test_update_batch_elem_flags_take_only_f_lock() -> None:
    """Unlike UPDATE_ELEM, the batch refuses NOEXIST/EXIST outright (EINVAL)
    before touching any element."""
    with BpfMap.create(MapType.HASH, 4, 8, 8) as m:
        for flag in (UpdateFlag.NOEXIST, UpdateFlag.EXIST):
            with pytest.raises(BpfError) as info:
                m.update_batch([_k(1)], [_v(1)], elem_flags=int(flag))
            assert info.value.errno == errno.EINVAL
        with pytest.raises(BpfError) as miss:
            m.lookup(_k(1))
        assert miss.value.errno == errno.ENOENT


def test_update_batch_stops_at_the_first_bad_element_array() -> None:
    with BpfMap.create(MapType.ARRAY, 4, 8, 8) as m:
        keys = [_k(0), _k(1), _k(2), _k(8), _k(4)]  # index 8 is out of range
        with pytest.raises(BpfError) as info:
            m.update_batch(keys, [_v(10 + i) for i in range(5)])
        assert info.value.errno == errno.E2BIG
        assert info.value.count == 3
        assert [m.lookup(_k(i)) for i in range(3)] == [_v(10), _v(11), _v(12)]
        assert m.lookup(_k(4)) == _v(0), "the element after the bad one was written"


def test_update_batch_stops_at_the_first_bad_element_lpm() -> None:
    with LPM.create(16) as m:
        good = [LPM.key(i) for i in range(4)]
        bad = U32.pack(33) + bytes(4)  # prefixlen beyond the 32 data bits
        keys = good + [bad, LPM.key(9)]
        with pytest.raises(BpfError) as info:
            m.update_batch(keys, [_v(i) for i in range(6)])
        assert info.value.errno == errno.EINVAL
        assert info.value.count == 4
        assert [m.lookup(k) for k in good] == [_v(i) for i in range(4)]
        with pytest.raises(BpfError) as miss:
            m.lookup(LPM.key(9))
        assert miss.value.errno == errno.ENOENT


@pytest.mark.parametrize("kind", [HASH, LRU, LPM], ids=["hash", "lru_hash", "lpm_trie"])
def test_delete_batch_stops_at_the_first_bad_element(kind: Kind) -> None:
    m, expected = filled(kind, 10)
    with m:
        keys = [kind.key(i) for i in range(10)]
        m.delete(keys[5])
        with pytest.raises(BpfError) as info:
            m.delete_batch(keys)
        assert info.value.errno == errno.ENOENT
        assert info.value.count == 5
        for k in keys[:6]:
            with pytest.raises(BpfError) as miss:
                m.lookup(k)
            assert miss.value.errno == errno.ENOENT
        assert [m.lookup(k) for k in keys[6:]] == [expected[k] for k in keys[6:]]
        assert m.delete_batch(keys[6:]) == 4


def test_batch_flags_are_checked() -> None:
    m, _ = filled(HASH, 4)
    with m:
        for elem_flags in (UpdateFlag.F_LOCK, UpdateFlag.F_LOCK << 1):
            # F_LOCK needs a bpf_spin_lock in the value (BTF); this map has none.
            with pytest.raises(BpfError) as info:
                m.lookup_batch(None, 4, elem_flags=int(elem_flags))
            assert info.value.errno == errno.EINVAL
        with pytest.raises(BpfError) as info:
            m.lookup_batch(None, 4, flags=1)
        assert info.value.errno == errno.EINVAL


BATCH_CMDS = (
    Cmd.MAP_LOOKUP_BATCH,
    Cmd.MAP_LOOKUP_AND_DELETE_BATCH,
    Cmd.MAP_UPDATE_BATCH,
    Cmd.MAP_DELETE_BATCH,
)
ALL4 = frozenset(BATCH_CMDS)
LOOKUP_UPDATE = frozenset({Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_UPDATE_BATCH})
# What each map type supports. Array-likes cannot delete; the LPM trie got
# the generic lookup/update/delete but no lookup-and-delete.
EXPECTED_SUPPORT: dict[MapType, frozenset[Cmd]] = {
    MapType.HASH: ALL4,
    MapType.PERCPU_HASH: ALL4,
    MapType.LRU_HASH: ALL4,
    MapType.LRU_PERCPU_HASH: ALL4,
    MapType.HASH_OF_MAPS: ALL4,
    MapType.ARRAY: LOOKUP_UPDATE,
    MapType.PERCPU_ARRAY: LOOKUP_UPDATE,
    MapType.ARRAY_OF_MAPS: LOOKUP_UPDATE,
    MapType.LPM_TRIE: ALL4 - {Cmd.MAP_LOOKUP_AND_DELETE_BATCH},
    MapType.QUEUE: frozenset(),
    MapType.STACK: frozenset(),
    MapType.BLOOM_FILTER: frozenset(),
}


def _any_map(map_type: MapType) -> Iterator[BpfMap]:
    if map_type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        with BpfMap.create(MapType.ARRAY, 4, 4, 1) as inner:
            yield BpfMap.create(map_type, 4, 4, 4, inner_map_fd=inner.fd)
    elif map_type == MapType.LPM_TRIE:
        yield BpfMap.create(map_type, 8, 4, 4, MapFlag.NO_PREALLOC)
    elif map_type in (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER):
        yield BpfMap.create(map_type, 0, 4, 4)
    else:
        yield BpfMap.create(map_type, 4, 4, 4)


@pytest.mark.parametrize("map_type", list(EXPECTED_SUPPORT), ids=[t.name for t in EXPECTED_SUPPORT])
def test_batch_support_per_map_type(
    map_type: MapType, features: Features, record_property: Recorder
) -> None:
    """count 0 is answered before any element is touched, so it asks only
    'does this map type implement the command': 0 if so, ENOTSUPP (524) if not."""
    if not features.has_map_type(map_type):
        pytest.skip(f"kernel lacks map type {map_type.name} "
                    f"(probe: {features.observed.get(f'map_type.{map_type.name}')})")
    outcome: dict[str, str] = {}
    for m in _any_map(map_type):
        with m:
            for cmd in BATCH_CMDS:
                attr = bytearray(attrs.pack_batch(m.fd, 0, 0, 0, 0, 0))
                try:
                    bpf_raw(cmd, attr)
                    outcome[cmd.name] = "ok"
                except BpfError as e:
                    outcome[cmd.name] = errno_name(e.errno)
    record_property("batch_support", outcome)
    want = {c.name: ("ok" if c in EXPECTED_SUPPORT[map_type] else errno_name(ENOTSUPP))
            for c in BATCH_CMDS}
    assert outcome == want


@pytest.mark.parametrize("kind", GENERIC_KINDS, ids=[k.name for k in GENERIC_KINDS])
def test_generic_batch_cursor_bytes(kind: Kind, record_property: Recorder) -> None:
    """The generic code's cursor is opaque to the caller; what this kernel puts in
    out_batch after three elements (and whether it uses the whole buffer) is
    recorded, from a buffer pre-filled with 0x5a. The count is exact."""
    m, expected = filled(kind)
    with m:
        csize = cursor_size(m.key_size)
        out = ctypes.create_string_buffer(b"\x5a" * csize, csize)
        keys = ctypes.create_string_buffer(m.key_size * 3)
        values = ctypes.create_string_buffer(m.layout.buf_size * 3)
        attr = bytearray(attrs.pack_batch(m.fd, 0, ctypes.addressof(out), ctypes.addressof(keys),
                                          ctypes.addressof(values), 3))
        assert bpf_raw(Cmd.MAP_LOOKUP_BATCH, attr) == 0
        assert attrs.U32.unpack_from(attr, attrs.BATCH_COUNT_OFFSET)[0] == 3
        got = [keys.raw[i * m.key_size : (i + 1) * m.key_size] for i in range(3)]
        if kind.map_type == MapType.LPM_TRIE:  # the trie's own order
            assert len(set(got)) == 3 and set(got) <= set(expected)
        else:  # an array in index order
            assert got == [kind.key(i) for i in range(3)]
        record_property("cursor_after_three", out.raw.hex())
