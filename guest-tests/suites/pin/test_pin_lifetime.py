"""How long a pinned map lives: across processes, until unlink plus close."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

from pinkit import map_id_alive, run_python, wait_map_gone

from bpfmap import BpfMap, MapType

Recorder = Callable[[str, object], None]
U32 = struct.Struct("<I")

# A process that creates a map, fills it, pins it and exits.
PINNER = """
import json, struct, sys
from bpfmap import BpfMap, MapType
U32 = struct.Struct("<I")
with BpfMap.create(MapType.HASH, 4, 4, 16, name="pinned_by_child") as m:
    for i in range(5):
        m.update(U32.pack(i), U32.pack(i * i + 1))
    m.pin(sys.argv[1])
    print(json.dumps({"id": m.info().id}))
"""


def test_a_pin_outlives_the_process_that_made_it(bpffs: Path) -> None:
    path = bpffs / "from_child"
    proc = run_python(PINNER, str(path))
    assert proc.returncode == 0, proc.stderr  # the pinner has exited
    child_id = json.loads(proc.stdout)["id"]
    with BpfMap.from_pin(path) as m:
        info = m.info()
        assert (info.id, info.name) == (child_id, "pinned_by_child")
        assert {k: m.lookup(k) for k in m.keys()} == {
            U32.pack(i): U32.pack(i * i + 1) for i in range(5)
        }


def test_close_then_unlink_frees_the_map(bpffs: Path, record_property: Recorder) -> None:
    path = bpffs / "m"
    with BpfMap.create(MapType.HASH, 4, 4, 4) as m:
        m.pin(path)
        map_id = m.info().id
    assert map_id_alive(map_id), "the pin alone must keep the map"
    path.unlink()
    record_property("seconds_until_id_gone", round(wait_map_gone(map_id), 3))


def test_unlink_then_close_frees_the_map(bpffs: Path, record_property: Recorder) -> None:
    path = bpffs / "m"
    with BpfMap.create(MapType.HASH, 4, 4, 4) as m:
        m.pin(path)
        map_id = m.info().id
        path.unlink()
        assert map_id_alive(map_id), "the open fd alone must keep the map"
        m.update(U32.pack(1), U32.pack(2))
    record_property("seconds_until_id_gone", round(wait_map_gone(map_id), 3))
