"""Several processes update and delete the same hash map while another one
walks it: no crash, no value that no writer wrote, no lost update, and the
final content is exactly what the writers' last operations say.

A lookup may return the value of another key: the kernel reuses a deleted
element at once (prealloc's free list, and bpf_mem_alloc for noprealloc maps
since 6.1), and the syscall copies the value without a lock, so a walker that
reads an element while it is reused sees the new key's value. That is the
kernel's latitude; the walker counts such values (seen on 6.12 under load) as
a measurement, and fails only on one no writer wrote.

Writers own disjoint key ranges (final state exact), race for shared keys
with NOEXIST (exactly one winner each), and all hammer a few churn keys
(final value: some writer's last write). The run's console is checked by
the lab for Oops/BUG/lockdep splats.
"""

from __future__ import annotations

import errno
import functools
import os
import select
import struct
import time
from collections.abc import Iterator

import pytest

from bpfmap import BpfError, BpfMap, Features, MapFlag, MapType, UpdateFlag
from mapsuite import Child, Recorder, U32, need_two_cpus, need_type, spawn

WRITERS = 3
OWN = 150  # keys per writer
ROUNDS = 10
SHARED = 30
CHURN = 10
MAX_ENTRIES = 1024  # > WRITERS * OWN + SHARED + CHURN, so nothing is ever full
TIMEOUT = 240.0

VAL = struct.Struct("<IIII")  # key, writer, round, magic
MAGIC = 0x5EED5EED


def own_key(w: int, i: int) -> int:
    return 1_000 * (w + 1) + i


def shared_key(j: int) -> int:
    return 900_000 + j


def churn_key(j: int) -> int:
    return 800_000 + j


def value(key: int, writer: int, rnd: int) -> bytes:
    return VAL.pack(key, writer, rnd, MAGIC)


def deleted_in(i: int, rnd: int) -> bool:
    """Own key i is deleted (after being written) in round rnd."""
    return (i + rnd) % 3 == 0


def wait_go(go_r: int) -> None:
    select.select([go_r], [], [], TIMEOUT)  # returns at EOF: the parent let go


def writer(m: BpfMap, w: int, go_r: int) -> list[int]:
    """Returns the shared keys this writer won."""
    wait_go(go_r)
    won = []
    for rnd in range(ROUNDS):
        for i in range(OWN):
            key = own_key(w, i)
            m.update(U32.pack(key), value(key, w, rnd))
            if deleted_in(i, rnd):
                m.delete(U32.pack(key))
            if i % 10 == 0:  # interleave the contended keys with the own ones
                j = (i // 10 + rnd * 7 + w * 3) % CHURN
                ck = churn_key(j)
                m.update(U32.pack(ck), value(ck, w, rnd))
                if rnd < ROUNDS - 1 and w % 2 == 0:
                    try:
                        m.delete(U32.pack(ck))
                    except BpfError as e:
                        assert e.errno == errno.ENOENT
        if rnd == 0:
            for j in range(SHARED):
                sk = shared_key(j)
                try:
                    m.update(U32.pack(sk), value(sk, w, 0), UpdateFlag.NOEXIST)
                    won.append(sk)
                except BpfError as e:
                    assert e.errno == errno.EEXIST, e
    # Every churn key's last write by this writer comes from the final round.
    for j in range(CHURN):
        ck = churn_key(j)
        m.update(U32.pack(ck), value(ck, w, ROUNDS))
    return won


def written_by_a_writer(key: int) -> bool:
    return (any(own_key(w, 0) <= key < own_key(w, OWN) for w in range(WRITERS))
            or key in {shared_key(j) for j in range(SHARED)} or key in {churn_key(j) for j in range(CHURN)})


def walker(m: BpfMap, go_r: int, stop_r: int) -> tuple[int, int, int]:
    """Walk and read the map until told to stop; returns (walks, values checked, values of
    another key: an element reused while it was read)."""
    wait_go(go_r)
    walks = checked = other = 0
    while True:
        stop = bool(select.select([stop_r], [], [], 0)[0])
        key: bytes | None = None
        for _ in range(4 * MAX_ENTRIES):  # a walk can restart when its key vanishes
            try:
                key = m.get_next_key(key)
            except BpfError as e:
                assert e.errno == errno.ENOENT, e
                break
            try:
                raw = m.lookup(key)
            except BpfError as e:
                assert e.errno == errno.ENOENT, e  # deleted between the two calls
                continue
            assert isinstance(raw, bytes)
            k_, w, rnd, magic = VAL.unpack(raw)
            assert magic == MAGIC and written_by_a_writer(k_) and w < WRITERS and rnd <= ROUNDS, \
                f"a value no writer wrote: {raw!r} under key {U32.unpack(key)[0]}"
            other += k_ != U32.unpack(key)[0]
            checked += 1
        walks += 1
        if stop:  # one full walk after the writers finished
            return walks, checked, other


@pytest.fixture(params=[0, int(MapFlag.NO_PREALLOC)], ids=["prealloc", "noprealloc"])
def shared_map(request: pytest.FixtureRequest, features: Features) -> Iterator[BpfMap]:
    need_type(features, MapType.HASH)
    with BpfMap.create(MapType.HASH, 4, VAL.size, MAX_ENTRIES, request.param, name="concurrent") as m:
        yield m


def test_concurrent_writers_and_walker(shared_map: BpfMap, record_property: Recorder) -> None:
    need_two_cpus("racing writers against a walker", online=True)
    m = shared_map
    go_r, go_w = os.pipe()
    stop_r, stop_w = os.pipe()
    children: list[Child] = []
    start = time.monotonic()
    deadline = start + TIMEOUT
    try:
        walk_child = spawn(lambda: walker(m, go_r, stop_r), close_in_child=(go_w, stop_w))
        children.append(walk_child)
        writers = [spawn(functools.partial(writer, m, w, go_r), close_in_child=(go_w, stop_w, stop_r))
                   for w in range(WRITERS)]
        children += writers
        os.close(go_w)  # EOF on go_r: everyone starts
        go_w = -1
        won = [c.result(deadline) for c in writers]
        os.close(stop_w)
        stop_w = -1
        walked = walk_child.result(deadline)
        assert isinstance(walked, tuple)
        walks, checked, other = walked
    finally:
        for fd in (go_r, go_w, stop_r, stop_w):
            if fd >= 0:
                os.close(fd)
        for c in children:  # a child left over after a failure: stop it
            try:
                os.kill(c.pid, 9)
                os.waitpid(c.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    record_property("concurrency_seconds", round(time.monotonic() - start, 2))
    record_property("walker_walks", walks)
    record_property("walker_values_checked", checked)
    record_property("walker_values_of_other_keys", other)
    assert walks >= 1

    # Exactly one NOEXIST winner per shared key.
    winners: dict[int, int] = {}
    for w, keys in enumerate(won):
        assert isinstance(keys, list)
        for sk in keys:
            assert sk not in winners, f"shared key {sk} won twice"
            winners[sk] = w
    assert sorted(winners) == [shared_key(j) for j in range(SHARED)], "a shared key had no winner"

    # The final content, exactly.
    expected: dict[int, bytes] = {}
    for w in range(WRITERS):
        for i in range(OWN):
            if not deleted_in(i, ROUNDS - 1):
                expected[own_key(w, i)] = value(own_key(w, i), w, ROUNDS - 1)
    for sk, w in winners.items():
        expected[sk] = value(sk, w, 0)
    actual = {U32.unpack(key)[0]: m.lookup(key) for key in m.keys()}
    churn = {key: actual.pop(key) for key in list(actual) if 800_000 <= key < 800_000 + CHURN}
    assert sorted(churn) == [churn_key(j) for j in range(CHURN)], "a churn key is missing"
    for ck, raw in churn.items():
        assert isinstance(raw, bytes)
        k_, w, rnd, magic = VAL.unpack(raw)
        assert (k_, rnd, magic) == (ck, ROUNDS, MAGIC) and w < WRITERS, "not a writer's last write"
    assert actual == expected
