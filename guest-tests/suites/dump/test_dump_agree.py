"""One map, dumped four ways: by the client's GET_NEXT_KEY walk, by
LOOKUP_BATCH, by ``bpftool map dump`` and (where the kernel has it) by the
RFC's BPF_MAP_DUMP. All must give the same set of entries, each once."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable

import pytest
from dumpkit import ARRAY, HASH, LPM, LRU, PERCPU_HASH, Kind, fill

from bpfmap import BpfMap, Features
from bpfmap.dump import walk, walk_batch
from bpfmap.layout import Value
from bpfmap.mapdump import elem_size, probe_map_dump, walk_dump

Recorder = Callable[[str, object], None]
KINDS = [(HASH, 2000), (ARRAY, 300), (LRU, 500), (LPM, 300), (PERCPU_HASH, 200)]


def _bytes(hexes: list[str]) -> bytes:
    return bytes(int(h, 16) for h in hexes)


def bpftool_dump(m: BpfMap) -> list[tuple[bytes, Value]]:
    """``bpftool -j map dump id ID`` as (key, value) pairs (per-CPU: a list)."""
    proc = subprocess.run(
        ["bpftool", "-j", "map", "dump", "id", str(m.info().id)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out: list[tuple[bytes, Value]] = []
    for elem in json.loads(proc.stdout):
        key = _bytes(elem["key"])
        if "values" in elem:  # per-CPU maps: one entry per possible CPU, in order
            cpus = sorted(elem["values"], key=lambda e: e["cpu"])
            out.append((key, [_bytes(c["value"]) for c in cpus]))
        else:
            out.append((key, _bytes(elem["value"])))
    return out


def once(pairs: list[tuple[bytes, Value]], how: str) -> dict[bytes, Value]:
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"{how}: a key came back twice"
    return dict(pairs)


@pytest.mark.parametrize(("kind", "n"), KINDS, ids=[k.name for k, _ in KINDS])
def test_client_batch_bpftool_and_map_dump_agree(
    kind: Kind, n: int, features: Features, record_property: Recorder
) -> None:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed: nothing to compare with")
    expected = kind.entries(n)
    with kind.create(n, name="dump_agree") as m:
        fill(m, expected, features.has_batch)
        by_walk = once(list(walk(m)), "GET_NEXT_KEY walk")
        if kind is not LRU:
            assert by_walk == expected
        dumps = {"bpftool": once(bpftool_dump(m), "bpftool")}
        if features.has_batch:
            dumps["batch"] = once(list(walk_batch(m, 64)), "LOOKUP_BATCH")
        probe = probe_map_dump()
        if probe.available:
            dumps["map_dump"] = once(list(walk_dump(m, 64 * elem_size(m))), "BPF_MAP_DUMP")
        record_property("compared", ["walk", *sorted(dumps)])
        for how, got in dumps.items():
            assert got == by_walk, f"{how} disagrees with the GET_NEXT_KEY walk"
