"""Smoke suite: dumping a map by iteration and by LOOKUP_BATCH."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from bpfmap import BpfMap, Cmd, Features, MapType
from bpfmap.dump import walk, walk_batch

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
SIZES = [0, 1, 3000]
MAX_ENTRIES = 4096


def fill(m: BpfMap, n: int) -> dict[bytes, bytes]:
    """Insert n entries whose value derives from the key; return them."""
    expected = {U32.pack(i * 7 + 3): U64.pack(i * 1_000_003) for i in range(n)}
    for key, value in expected.items():
        m.update(key, value)
    return expected


@pytest.fixture
def hmap() -> Iterator[BpfMap]:
    with BpfMap.create(MapType.HASH, 4, 8, MAX_ENTRIES, name="smoke_dump") as m:
        yield m


@pytest.mark.parametrize("n", SIZES)
def test_walk_returns_every_entry_once(hmap: BpfMap, n: int) -> None:
    expected = fill(hmap, n)
    pairs = list(walk(hmap))
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), "a key came back twice"
    assert dict(pairs) == expected


@pytest.mark.parametrize("count", [7, 256])
@pytest.mark.parametrize("n", SIZES)
def test_lookup_batch_walk_matches_iteration(
    hmap: BpfMap, features: Features, n: int, count: int
) -> None:
    if not features.has_command(Cmd.MAP_LOOKUP_BATCH):
        pytest.skip("kernel lacks BPF_MAP_LOOKUP_BATCH (probe: EINVAL)")
    expected = fill(hmap, n)
    pairs = list(walk_batch(hmap, count))
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), "a key came back twice"
    assert dict(pairs) == expected
    assert dict(pairs) == dict(walk(hmap))
