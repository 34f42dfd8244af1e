"""Helpers shared by the dump suite: map kinds, their keys/values, filling.

Not a test module (pytest collects only test_*.py); the suite's test files
import it from their own directory, which pytest puts on sys.path.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass

from bpfmap import BpfError, BpfMap, MapFlag, MapType, num_possible_cpus
from bpfmap.layout import Value

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
BE32 = struct.Struct(">I")

# Filling in chunks keeps each UPDATE_BATCH buffer small (and cond_resched
# in the kernel loop frequent) while still being ~1 syscall per 20k entries.
FILL_CHUNK = 20_000


def lru_headroom() -> int:
    """Spare LRU nodes so filling does not evict.

    A common LRU refills a CPU's local free list 128 nodes at a time
    (LOCAL_FREE_TARGET) and shrinks, i.e. evicts, when the global free list
    holds fewer: a map sized exactly to its contents loses some of them.
    """
    return 128 * (num_possible_cpus() + 2)


@dataclass(frozen=True)
class Kind:
    """A map type as the dump tests use it."""

    name: str
    map_type: MapType
    key_size: int
    value_size: int
    key: Callable[[int], bytes]
    map_flags: int = 0

    def max_entries(self, n: int) -> int:
        if self.map_type == MapType.ARRAY:
            return n  # an array always holds exactly max_entries elements
        if self.map_type in (MapType.LRU_HASH, MapType.LRU_PERCPU_HASH):
            return max(n, 1) + lru_headroom()
        return max(n, 1)

    def create(self, n: int, name: str = "") -> BpfMap:
        return BpfMap.create(
            self.map_type, self.key_size, self.value_size, self.max_entries(n),
            self.map_flags, name=name,
        )

    def value(self, i: int) -> Value:
        """A value derived from the index, distinct per element (and per CPU)."""
        if self.map_type in (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH):
            return [U64.pack(i * 1_000_003 + cpu + 1) for cpu in range(num_possible_cpus())]
        return U64.pack(i * 1_000_003 + 7)

    def entries(self, n: int) -> dict[bytes, Value]:
        return {self.key(i): self.value(i) for i in range(n)}


def _hash_key(i: int) -> bytes:
    return U32.pack(i * 7 + 3)


def _index_key(i: int) -> bytes:
    return U32.pack(i)


def _lpm_key(i: int) -> bytes:
    # /32 host routes 10.0.0.0 + i: distinct, canonical (no bits past the prefix).
    return U32.pack(32) + BE32.pack(0x0A00_0000 + i)


HASH = Kind("hash", MapType.HASH, 4, 8, _hash_key)
ARRAY = Kind("array", MapType.ARRAY, 4, 8, _index_key)
LRU = Kind("lru_hash", MapType.LRU_HASH, 4, 8, _hash_key)
LPM = Kind("lpm_trie", MapType.LPM_TRIE, 8, 8, _lpm_key, int(MapFlag.NO_PREALLOC))
PERCPU_HASH = Kind("percpu_hash", MapType.PERCPU_HASH, 4, 8, _hash_key)
LRU_PERCPU_HASH = Kind("lru_percpu_hash", MapType.LRU_PERCPU_HASH, 4, 8, _hash_key)
PERCPU_ARRAY = Kind("percpu_array", MapType.PERCPU_ARRAY, 4, 8, _index_key)

WALK_KINDS = [HASH, ARRAY, LRU, LPM]


def fill(m: BpfMap, entries: dict[bytes, Value], use_batch: bool) -> str:
    """Insert ``entries``; UPDATE_BATCH when the kernel has it for this map.

    Returns how it was done ("batch" or "elem") so tests can record it.
    """
    keys = list(entries)
    if use_batch:
        try:
            for s in range(0, len(keys), FILL_CHUNK):
                chunk = keys[s : s + FILL_CHUNK]
                done = m.update_batch(chunk, [entries[k] for k in chunk])
                assert done == len(chunk), f"UPDATE_BATCH processed {done} of {len(chunk)}"
            return "batch"
        except BpfError as e:
            # ENOTSUPP (524) before anything was written: this type lacks it.
            if e.errno != 524 or s != 0:
                raise
    for k in keys:
        m.update(k, entries[k])
    return "elem"


def present(m: BpfMap, entries: dict[bytes, Value]) -> dict[bytes, Value]:
    """The subset of ``entries`` that a lookup finds (LRU maps may evict)."""
    out: dict[bytes, Value] = {}
    for k in entries:
        try:
            out[k] = m.lookup(k)
        except BpfError as e:
            if e.errno != errno.ENOENT:
                raise
    return out
