"""Host-side tests of guest-tests/bpfmap/mapdump.py (the RFC's BPF_MAP_DUMP).

This host's kernel has no BPF_MAP_DUMP (no stock kernel does), so what can be
checked here is the attribute layout, the buffer unpacking, the command
number's override and that the behavioural probe says "absent" for every
command that is not a dump, including BPF_TOKEN_CREATE, which shares 36.
"""

from __future__ import annotations

import os
import struct

import guesthelpers  # noqa: F401 (puts guest-tests/ on sys.path)
import pytest

from bpfmap import BpfError, BpfMap, MapType, num_possible_cpus
from bpfmap import mapdump


@pytest.fixture(scope="module")
def bpf_usable() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for bpf(2)")
    try:
        BpfMap.create(MapType.HASH, 4, 4, 1).close()
    except BpfError as e:
        pytest.skip(f"bpf(2) unavailable: {e}")


def test_attr_layout_matches_the_rfc() -> None:
    raw = mapdump.pack_dump(0x11, 0x2222, 0x3333, 0x4444, 0x55)
    assert len(raw) == 40
    assert struct.unpack_from("<I", raw, 0)[0] == 0x11  # map_fd
    assert raw[4:8] == bytes(4)  # padding before the aligned u64s
    assert struct.unpack_from("<4Q", raw, 8) == (0x2222, 0x3333, 0x4444, 0x55)


def test_command_number_defaults_to_36_and_can_be_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mapdump.MAP_DUMP_CMD_ENV, raising=False)
    assert mapdump.map_dump_cmd() == 36
    monkeypatch.setenv(mapdump.MAP_DUMP_CMD_ENV, "37")
    assert mapdump.map_dump_cmd() == 37
    monkeypatch.setenv(mapdump.MAP_DUMP_CMD_ENV, "0x30")
    assert mapdump.map_dump_cmd() == 48


def test_split_elements_packs_key_then_value(bpf_usable: None) -> None:
    with BpfMap.create(MapType.HASH, 4, 8, 4) as m:
        assert mapdump.elem_size(m) == 12
        raw = b"KEY1" + b"value001" + b"KEY2" + b"value002"
        assert mapdump.split_elements(m, raw) == [(b"KEY1", b"value001"), (b"KEY2", b"value002")]
        with pytest.raises(ValueError):
            mapdump.split_elements(m, raw[:-1])
    with BpfMap.create(MapType.PERCPU_HASH, 4, 4, 4) as p:
        ncpu = num_possible_cpus()
        assert mapdump.elem_size(p) == 4 + 8 * ncpu  # round_up(4, 8) per possible CPU
        raw = b"KKKK" + b"".join(bytes([c]) * 4 + bytes(4) for c in range(ncpu))
        assert mapdump.split_elements(p, raw) == [(b"KKKK", [bytes([c]) * 4 for c in range(ncpu)])]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# 1 LOOKUP_ELEM, 4 GET_NEXT_KEY and 36 (BPF_TOKEN_CREATE from 6.9, unknown
# before) all exist or not, but none is a dump; 999 is no command at all.
@pytest.mark.parametrize("cmd", [1, 4, 36, 999])
def test_probe_says_absent_for_commands_that_are_not_a_dump(cmd: int, bpf_usable: None) -> None:
    before = _open_fds()
    probe = mapdump.probe_map_dump.__wrapped__(cmd)
    assert not probe.available, probe
    assert probe.cmd == cmd
    assert probe.skip_reason == (
        "kernel has no BPF_MAP_DUMP (RFC, not merged upstream): probe returned " + probe.observed
    )
    assert _open_fds() == before, "the probe leaked an fd"


def test_has_map_dump_follows_the_probe(bpf_usable: None) -> None:
    assert mapdump.has_map_dump() is mapdump.probe_map_dump().available
    assert mapdump.probe_map_dump().cmd == mapdump.map_dump_cmd()
