"""Smoke suite: pinning on a private bpffs and reopening the pin."""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import bpfmap
from bpfmap import BpfError, BpfMap, MapType

U32 = struct.Struct("<I")
PKG_ROOT = Path(bpfmap.__file__).resolve().parent.parent

# Run by a second interpreter: open the pin, dump it, report id and entries.
READER = """
import json, sys
from bpfmap import BpfMap
from bpfmap.dump import walk
with BpfMap.from_pin(sys.argv[1]) as m:
    entries = {key.hex(): value.hex() for key, value in walk(m)}
    print(json.dumps({"id": m.info().id, "entries": entries}))
"""


def test_pin_and_get_roundtrip(bpffs: Path) -> None:
    path = bpffs / "roundtrip"
    with BpfMap.create(MapType.HASH, 4, 4, 8, name="smoke_pin") as m:
        m.update(U32.pack(1), U32.pack(11))
        m.pin(path)
        assert path.exists()
        with BpfMap.from_pin(path) as again:
            assert again.fd != m.fd
            info = again.info()
            assert info.id == m.info().id, "OBJ_GET must return the same map"
            assert (info.name, info.key_size, info.value_size) == ("smoke_pin", 4, 4)
            assert again.lookup(U32.pack(1)) == U32.pack(11)
            again.update(U32.pack(2), U32.pack(22))
        assert m.lookup(U32.pack(2)) == U32.pack(22), "writes through the pin fd are shared"


def test_pin_seen_by_second_process_after_close(bpffs: Path) -> None:
    path = bpffs / "shared"
    entries = {U32.pack(i): U32.pack(i * i + 1) for i in range(5)}
    with BpfMap.create(MapType.HASH, 4, 4, 16) as m:
        for key, value in entries.items():
            m.update(key, value)
        m.pin(path)
        map_id = m.info().id
    # Our only fd is closed now; the pin alone keeps the map alive.
    env = dict(os.environ, PYTHONPATH=str(PKG_ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", READER, str(path)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["id"] == map_id
    assert seen["entries"] == {key.hex(): value.hex() for key, value in entries.items()}


def test_pin_existing_path_is_eexist(bpffs: Path) -> None:
    path = bpffs / "taken"
    with BpfMap.create(MapType.ARRAY, 4, 4, 1) as first, BpfMap.create(MapType.ARRAY, 4, 4, 1) as second:
        first.pin(path)
        with pytest.raises(BpfError) as info:
            second.pin(path)
        assert info.value.errno == errno.EEXIST
        with BpfMap.from_pin(path) as pinned:
            assert pinned.info().id == first.info().id, "the failed pin must not replace the first"


def test_get_missing_path_is_enoent(bpffs: Path) -> None:
    with pytest.raises(BpfError) as info:
        BpfMap.from_pin(bpffs / "missing")
    assert info.value.errno == errno.ENOENT
