"""Host-side tests of guest-tests/bpfmap/mapdump.py (the RFC's BPF_MAP_DUMP).

This host's kernel has no BPF_MAP_DUMP (no stock kernel does), so what can be
checked here is the attribute layout, the buffer unpacking, the command
number's override, that the behavioural probe says "absent" for every
command that is not a dump, including BPF_TOKEN_CREATE, which shares 36, and
how the candidate numbers (36 on the 6.1 port, 37 on the 6.12 port) are
searched: with fake probes, and with a fake kernel that answers one number
with a real dump of the map (computed by GET_NEXT_KEY + LOOKUP_ELEM).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Callable, Iterator

import guesthelpers  # noqa: F401 (puts guest-tests/ on sys.path)
import pytest
from bpfmap import BpfError, BpfMap, MapType, mapdump, num_possible_cpus
from bpfmap import syscall as bpf_syscall


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


@pytest.fixture
def fresh_probe_cache() -> Iterator[None]:
    """The probe caches per process; each test here starts and ends with none."""
    mapdump._search_cached.cache_clear()
    mapdump._probe_cached.cache_clear()
    yield
    mapdump._search_cached.cache_clear()
    mapdump._probe_cached.cache_clear()


def test_command_number_defaults_to_36_and_can_be_overridden(
    monkeypatch: pytest.MonkeyPatch, bpf_usable: None, fresh_probe_cache: None
) -> None:
    monkeypatch.delenv(mapdump.MAP_DUMP_CMD_ENV, raising=False)
    assert mapdump.CANDIDATE_CMDS == (36, 37)
    assert mapdump.map_dump_cmd() == 36  # no candidate is a dump here: the first one
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


# 1 LOOKUP_ELEM, 4 GET_NEXT_KEY, 36 (BPF_TOKEN_CREATE from 6.9, unknown
# before) and 37 (BPF_PROG_STREAM_READ_BY_FD from 6.17, unknown before) all
# exist or not, but none is a dump; 999 is no command at all.
@pytest.mark.parametrize("cmd", [1, 4, 36, 37, 999])
def test_probe_says_absent_for_commands_that_are_not_a_dump(cmd: int, bpf_usable: None) -> None:
    before = _open_fds()
    probe = mapdump.probe_cmd(cmd)
    assert not probe.available, probe
    assert probe.cmd == cmd
    assert probe.tried == ()
    assert probe.summary == f"cmd {cmd}: {probe.observed}"
    assert probe.skip_reason == (
        f"kernel has no BPF_MAP_DUMP (RFC, not merged upstream): probe returned cmd {cmd}: {probe.observed}"
    )
    assert _open_fds() == before, "the probe leaked an fd"


def test_candidates_on_a_kernel_without_the_dump_fail_attr_checks_and_leak_nothing(
    monkeypatch: pytest.MonkeyPatch, bpf_usable: None, fresh_probe_cache: None
) -> None:
    """Both candidates are tried; each is rejected before it does anything.

    36 (BPF_TOKEN_CREATE here) and 37 fail with EINVAL: the probe's non-zero
    buf/buf_len pointers lie past the end of their attributes (CHECK_ATTR),
    and an unknown command is EINVAL too. No fd (e.g. a token) is left open.
    """
    monkeypatch.delenv(mapdump.MAP_DUMP_CMD_ENV, raising=False)
    before = _open_fds()
    probe = mapdump.probe_map_dump()
    assert not probe.available
    assert probe.tried == ((36, "EINVAL"), (37, "EINVAL"))
    assert (probe.cmd, probe.observed) == (36, "EINVAL")
    assert probe.summary == "cmd 36: EINVAL; cmd 37: EINVAL"
    assert probe.skip_reason.endswith("probe returned cmd 36: EINVAL; cmd 37: EINVAL")
    assert mapdump.has_map_dump() is False
    assert _open_fds() == before, "a probe leaked an fd"


def _fake_probes(behaves: dict[int, str], calls: list[int]) -> Callable[[int], mapdump.MapDumpProbe]:
    """A probe function: ``behaves[n]`` is what n does ("ok" = it is a dump)."""
    def probe(cmd: int) -> mapdump.MapDumpProbe:
        calls.append(cmd)
        observed = behaves.get(cmd, "EINVAL")
        return mapdump.MapDumpProbe(observed == "ok", observed, cmd)
    return probe


def test_find_takes_37_when_36_is_another_command() -> None:
    calls: list[int] = []
    found = mapdump.find_map_dump(_fake_probes({37: "ok"}, calls), (36, 37))
    assert calls == [36, 37]
    assert found.available and (found.cmd, found.observed) == (37, "ok")
    assert found.tried == ((36, "EINVAL"), (37, "ok"))
    assert found.summary == "cmd 36: EINVAL; cmd 37: ok"


def test_find_stops_at_the_first_dump() -> None:
    """On the 6.1 port 36 is the dump; 37 is not even tried (it may be anything)."""
    calls: list[int] = []
    found = mapdump.find_map_dump(_fake_probes({36: "ok", 37: "ok"}, calls), (36, 37))
    assert calls == [36]
    assert found.available and found.cmd == 36 and found.tried == ((36, "ok"),)
    assert found.summary == "cmd 36: ok"


def test_find_without_a_dump_answers_with_the_first_candidate() -> None:
    calls: list[int] = []
    behaves = {36: "0 but buf_len 24 (expected 16)", 37: "EBADF"}
    found = mapdump.find_map_dump(_fake_probes(behaves, calls), (36, 37))
    assert calls == [36, 37]
    assert not found.available
    assert (found.cmd, found.observed) == (36, "0 but buf_len 24 (expected 16)")
    assert found.summary == "cmd 36: 0 but buf_len 24 (expected 16); cmd 37: EBADF"
    with pytest.raises(ValueError):
        mapdump.find_map_dump(_fake_probes({}, calls), ())


def test_the_override_is_the_only_number_probed(
    monkeypatch: pytest.MonkeyPatch, fresh_probe_cache: None
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(mapdump, "probe_cmd", _fake_probes({36: "ok", 37: "ok"}, calls))
    monkeypatch.setenv(mapdump.MAP_DUMP_CMD_ENV, "37")
    probe = mapdump.probe_map_dump()
    assert calls == [37] and probe.available and probe.cmd == 37
    assert mapdump.map_dump_cmd() == 37
    monkeypatch.setenv(mapdump.MAP_DUMP_CMD_ENV, "0x30")  # a number that is no dump: believed, not searched
    assert mapdump.map_dump_cmd() == 48
    assert not mapdump.probe_map_dump().available
    assert calls == [37, 48]


# What the fake kernel does with a dump-shaped attribute for other numbers.
NotADump = Callable[[], int]


def _einval() -> int:
    raise BpfError(errno.EINVAL, 36)


def _new_fd() -> int:
    """Like a command that made an object (a BPF_TOKEN_CREATE that succeeded)."""
    return os.open("/dev/null", os.O_RDONLY)


def _fake_kernel(
    monkeypatch: pytest.MonkeyPatch, dump_at: int, others: dict[int, NotADump]
) -> list[int]:
    """Answer number ``dump_at`` with the RFC's dump (GET_NEXT_KEY + LOOKUP_ELEM
    on the real map), numbers in ``others`` as given; the rest go to the real
    bpf(2). Returns the list of candidate numbers the client called."""
    real = bpf_syscall.bpf
    called: list[int] = []

    def bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], size: int | None = None) -> int:
        if cmd in mapdump.CANDIDATE_CMDS:  # not the fake's own INFO/GET_NEXT_KEY/LOOKUP calls
            called.append(cmd)
        if cmd in others:
            return others[cmd]()
        if cmd != dump_at:
            return real(cmd, attr, size)
        map_fd, prev_key, buf, buf_len, _flags = mapdump.DUMP_ATTR.unpack(attr.raw)
        room = ctypes.c_uint32.from_address(buf_len)
        with BpfMap.from_fd(os.dup(map_fd)) as m:
            fits = room.value // mapdump.elem_size(m)
            key = ctypes.string_at(prev_key, m.key_size) if prev_key else None
            copied: list[bytes] = []
            while len(copied) < fits:
                try:
                    key = m.get_next_key(key)
                except BpfError as e:
                    if e.errno != errno.ENOENT:
                        raise
                    break
                copied.append(key + bytes(m.lookup(key)))
        if not copied:
            raise BpfError(errno.ENOENT, cmd)
        out = b"".join(copied)
        ctypes.memmove(buf, out, len(out))
        room.value = len(out)
        if prev_key:
            ctypes.memmove(prev_key, copied[-1], m.key_size)
        return 0

    monkeypatch.setattr(bpf_syscall, "bpf", bpf)
    return called


@pytest.mark.parametrize("at_36", [_einval, _new_fd], ids=["einval", "returns_an_fd"])
def test_a_kernel_with_the_dump_at_37_is_found_and_used(
    at_36: NotADump, monkeypatch: pytest.MonkeyPatch, bpf_usable: None, fresh_probe_cache: None
) -> None:
    """The 6.12 port's case: 36 is something else (even one that returns an
    fd), 37 dumps; the client finds 37 and then dumps with it, unasked."""
    monkeypatch.delenv(mapdump.MAP_DUMP_CMD_ENV, raising=False)
    before = _open_fds()
    called = _fake_kernel(monkeypatch, 37, {36: at_36})
    probe = mapdump.probe_map_dump()
    assert probe.available and probe.cmd == 37, probe
    assert probe.tried[1] == (37, "ok")
    assert probe.tried[0][0] == 36 and probe.tried[0][1] != "ok"
    assert mapdump.map_dump_cmd() == 37
    with BpfMap.create(MapType.HASH, 4, 4, 8) as m:
        for i in range(5):
            m.update(struct.pack("<I", i), struct.pack("<I", 100 + i))
        del called[:]
        walked = dict(mapdump.walk_dump(m, 8 * mapdump.elem_size(m), limit=5))
        assert called == [37, 37]  # one call with all five, then ENOENT from the continuation
    assert walked == {struct.pack("<I", i): struct.pack("<I", 100 + i) for i in range(5)}
    assert _open_fds() == before, "the fd a non-dump command returned was not closed"


def test_a_kernel_with_the_dump_at_36_never_sees_37(
    monkeypatch: pytest.MonkeyPatch, bpf_usable: None, fresh_probe_cache: None
) -> None:
    """The 6.1 port's case: 36 dumps, so 37 (whatever it is there) is not called."""
    monkeypatch.delenv(mapdump.MAP_DUMP_CMD_ENV, raising=False)
    called = _fake_kernel(monkeypatch, 36, {})
    probe = mapdump.probe_map_dump()
    assert probe.available and probe.cmd == 36 and probe.summary == "cmd 36: ok"
    assert 37 not in called and mapdump.map_dump_cmd() == 36


def test_has_map_dump_follows_the_probe(bpf_usable: None) -> None:
    assert mapdump.has_map_dump() is mapdump.probe_map_dump().available
    assert mapdump.probe_map_dump().cmd == mapdump.map_dump_cmd()
