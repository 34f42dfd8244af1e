"""Host-side tests of `python3 -m bpfmap` (guest-tests/bpfmap/cli.py) on this kernel.

Each subcommand is run (in-process, through ``cli.main``) and its effect is
checked with the client library, not with the CLI itself; the JSON shapes are
bpftool v7.1.0's (compared with bpftool itself by the guest suite's
test_cli_vs_bpftool.py). Wrong arguments must exit 2 with a usage line, a
failing system call 1 with the errno name. Needs root (skips otherwise).
"""

from __future__ import annotations

import errno
import io
import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from guesthelpers import GUEST_TESTS, bpffs, features, no_leaked_fds  # noqa: F401 (fixtures)

from bpfmap import BpfError, BpfMap, Features, MapFlag, MapType
from bpfmap import cli, cliout

U32 = struct.Struct("<I")


def k(i: int) -> bytes:
    return U32.pack(i)


def words_of(data: bytes) -> list[str]:
    return [str(b) for b in data]


def hexes(data: bytes) -> list[str]:
    return [f"0x{b:02x}" for b in data]


@dataclass(frozen=True)
class Run:
    status: int
    stdout: str
    stderr: str

    @property
    def doc(self) -> object:
        return json.loads(self.stdout)


def run(*words: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(list(words), stdout=out, stderr=err)
    return Run(status, out.getvalue(), err.getvalue())


def ok(*words: str) -> Run:
    r = run(*words)
    assert r.status == 0, r
    return r


def failed_with(errname: str, *words: str) -> Run:
    """The command must exit 1 naming ``errname`` (JSON field or stderr suffix)."""
    r = run(*words)
    assert r.status == 1, r
    if "-j" in words and r.stdout.strip() != "null":
        assert r.doc["errno"] == errname, r  # type: ignore[index]
    else:
        assert r.stderr.rstrip().endswith(f"({errname})"), r
    return r


# -- fixtures ---------------------------------------------------------------------


@pytest.fixture
def hash_pin(bpffs: Path) -> Path:
    """A hash map (u32 -> 8 bytes, 4 entries) created and pinned by the CLI."""
    path = bpffs / "h"
    ok("map", "create", str(path), "type", "hash", "key", "4", "value", "8",
       "entries", "4", "name", "cli_hash")
    return path


def client(path: Path) -> BpfMap:
    return BpfMap.from_pin(path)


# -- create / show / pin / freeze ---------------------------------------------------


def test_create_makes_the_map_it_was_told_to(bpffs: Path) -> None:
    path = bpffs / "np"
    r = ok("-j", "map", "create", str(path), "type", "hash", "key", "8", "value", "0x10",
           "entries", "010", "name", "a_name_longer_than_15", "flags", "1")
    assert r.doc is None and r.stdout == "null\n"
    with client(path) as m:
        info = m.info()
    # value 0x10 = 16, entries 010 = 8 (octal, as strtoul base 0); libbpf's
    # strlcpy keeps 15 bytes of the name.
    assert (info.type, info.key_size, info.value_size, info.max_entries) == (MapType.HASH, 8, 16, 8)
    assert info.map_flags == MapFlag.NO_PREALLOC
    assert info.name == "a_name_longer_t"


def test_create_with_inner_map_makes_map_in_map(bpffs: Path) -> None:
    ok("map", "create", str(bpffs / "inner"), "type", "array", "key", "4", "value", "4",
       "entries", "1", "name", "inner")
    ok("map", "create", str(bpffs / "outer"), "type", "array_of_maps", "key", "4", "value", "4",
       "entries", "2", "name", "outer", "inner_map", "pinned", str(bpffs / "inner"))
    with client(bpffs / "outer") as m:
        assert m.map_type == MapType.ARRAY_OF_MAPS


def test_show_by_pin_and_id_matches_the_map(hash_pin: Path) -> None:
    with client(hash_pin) as m:
        info = m.info()
    by_pin = ok("-j", "map", "show", "pinned", str(hash_pin)).doc
    by_id = ok("-j", "map", "show", "id", str(info.id)).doc
    assert by_pin == by_id
    assert isinstance(by_pin, dict)
    memlock = by_pin.pop("bytes_memlock")
    assert isinstance(memlock, int) and memlock > 0
    assert by_pin == {"id": info.id, "type": "hash", "name": "cli_hash", "flags": 0,
                      "bytes_key": 4, "bytes_value": 8, "max_entries": 4, "frozen": 0}
    text = ok("map", "show", "id", str(info.id)).stdout
    assert text == (f"{info.id}: hash  name cli_hash  flags 0x0\n"
                    f"\tkey 4B  value 8B  max_entries 4  memlock {memlock}B\n")


def test_show_without_handle_lists_every_map(hash_pin: Path) -> None:
    with client(hash_pin) as m, BpfMap.create(MapType.ARRAY, 4, 4, 1, name="cli_other") as other:
        ids = {m.info().id, other.info().id}
        listed = ok("-j", "map", "show").doc
        assert isinstance(listed, list)
        assert ids <= {e["id"] for e in listed}
        assert "cli_other" in ok("map", "list").stdout  # alias; text form
        assert ok("-j", "map").doc is not None  # a bare "map" lists, as bpftool


def test_pin_by_id_adds_a_second_path(hash_pin: Path, bpffs: Path) -> None:
    with client(hash_pin) as m:
        map_id = m.info().id
    assert ok("-j", "map", "pin", "id", str(map_id), str(bpffs / "second")).doc is None
    with client(bpffs / "second") as again:
        assert again.info().id == map_id
    failed_with("EEXIST", "-j", "map", "pin", "id", str(map_id), str(bpffs / "second"))


def test_freeze_blocks_writes_and_shows_frozen(hash_pin: Path) -> None:
    ok("map", "freeze", "pinned", str(hash_pin))
    with client(hash_pin) as m:
        with pytest.raises(BpfError) as info:
            m.update(k(1), bytes(8))
        assert info.value.errno == errno.EPERM
    assert ok("-j", "map", "show", "pinned", str(hash_pin)).doc["frozen"] == 1  # type: ignore[index]
    assert "\tfrozen\n" in ok("map", "show", "pinned", str(hash_pin)).stdout
    failed_with("EPERM", "map", "update", "pinned", str(hash_pin), "key", *words_of(k(1)),
                "value", *["0"] * 8)


# -- elements ---------------------------------------------------------------------------


def test_update_writes_the_bytes_given(hash_pin: Path) -> None:
    ok("map", "update", "pinned", str(hash_pin), "key", "1", "0", "0", "0",
       "value", "0x11", "017", "255", "0", "0", "0", "0", "9")
    ok("map", "update", "pinned", str(hash_pin), "key", "hex", "02", "00", "00", "00",
       "value", "hex", "ff", "0xee", "a", "0", "0", "0", "0", "1")
    with client(hash_pin) as m:
        assert m.lookup(k(1)) == bytes([0x11, 0o17, 255, 0, 0, 0, 0, 9])
        assert m.lookup(k(2)) == bytes([0xFF, 0xEE, 0x0A, 0, 0, 0, 0, 1])


def test_update_flags_map_to_errnos(hash_pin: Path) -> None:
    h = ["pinned", str(hash_pin)]
    ok("map", "update", *h, "key", *words_of(k(1)), "value", *["1"] * 8, "noexist")
    failed_with("EEXIST", "-j", "map", "update", *h, "key", *words_of(k(1)), "value", *["2"] * 8, "noexist")
    failed_with("ENOENT", "map", "update", *h, "key", *words_of(k(2)), "value", *["2"] * 8, "exist")
    ok("map", "update", *h, "exist", "value", *["3"] * 8, "key", *words_of(k(1)))  # any order
    with client(hash_pin) as m:
        assert m.lookup(k(1)) == bytes([3] * 8)
        assert list(m.keys()) == [k(1)]


def test_lookup_json_text_and_miss(hash_pin: Path) -> None:
    with client(hash_pin) as m:
        m.update(k(7), bytes(range(8)))
    h = ["pinned", str(hash_pin)]
    doc = ok("-j", "map", "lookup", *h, "key", *words_of(k(7))).doc
    assert doc == {"key": hexes(k(7)), "value": hexes(bytes(range(8)))}
    text = ok("map", "lookup", *h, "key", *words_of(k(7))).stdout
    assert text == "key: 07 00 00 00  value: 00 01 02 03 04 05 06 07\n"
    miss = failed_with("ENOENT", "-j", "map", "lookup", *h, "key", *words_of(k(8)))
    assert miss.stdout == "null\n"  # bpftool's answer to a miss
    miss = failed_with("ENOENT", "map", "lookup", *h, "key", *words_of(k(8)))
    assert miss.stdout == "key:\n08 00 00 00\n\nNot found\n"


def test_delete_removes_and_reports_enoent(hash_pin: Path) -> None:
    with client(hash_pin) as m:
        m.update(k(1), bytes(8))
        m.update(k(2), bytes(8))
    assert ok("-j", "map", "delete", "pinned", str(hash_pin), "key", *words_of(k(1))).doc is None
    with client(hash_pin) as m:
        assert list(m.keys()) == [k(2)]
    failed_with("ENOENT", "-j", "map", "delete", "pinned", str(hash_pin), "key", *words_of(k(1)))


def test_getnext_walks_like_the_client(hash_pin: Path) -> None:
    with client(hash_pin) as m:
        for i in (1, 2, 3):
            m.update(k(i), bytes(8))
        order = list(m.keys())
    h = ["pinned", str(hash_pin)]
    assert ok("-j", "map", "getnext", *h).doc == {"key": None, "next_key": hexes(order[0])}
    assert ok("-j", "map", "getnext", *h, "key", *words_of(order[0])).doc == {
        "key": hexes(order[0]), "next_key": hexes(order[1])}
    assert ok("map", "getnext", *h).stdout == f"key: None\nnext key:\n{cliout.hex_plain(order[0])}\n"
    failed_with("ENOENT", "map", "getnext", *h, "key", *words_of(order[-1]))


def test_dump_lists_every_element(hash_pin: Path) -> None:
    with client(hash_pin) as m:
        for i in (1, 2, 3):
            m.update(k(i), bytes([i]) * 8)
        order = list(m.keys())
    doc = ok("-j", "map", "dump", "pinned", str(hash_pin)).doc
    assert doc == [{"key": hexes(key), "value": hexes(key[:1] * 8)} for key in order]
    text = ok("map", "dump", "pinned", str(hash_pin)).stdout
    assert text.endswith("Found 3 elements\n") and text.count("key: ") == 3


def test_percpu_update_fills_every_cpu_and_dump_shows_them(bpffs: Path) -> None:
    path = bpffs / "pc"
    ok("map", "create", str(path), "type", "percpu_array", "key", "4", "value", "12",
       "entries", "2", "name", "cli_pc")
    ok("map", "update", "pinned", str(path), "key", "1", "0", "0", "0", "value", *words_of(bytes(range(1, 13))))
    with client(path) as m:
        ncpu = m.layout.slots
        assert m.lookup(k(1)) == [bytes(range(1, 13))] * ncpu
    doc = ok("-j", "map", "dump", "pinned", str(path)).doc
    assert doc == [
        {"key": hexes(k(i)), "values": [{"cpu": c, "value": hexes(bytes(range(1, 13)) if i else bytes(12))}
                                        for c in range(ncpu)]}
        for i in (0, 1)
    ]
    text = ok("map", "lookup", "pinned", str(path), "key", "1", "0", "0", "0").stdout
    assert text.startswith("key:\n01 00 00 00\nvalue (CPU 00): 01 02 03 04 05 06 07 08  09 0a 0b 0c\n")


def test_queue_push_peek_pop(bpffs: Path) -> None:
    path = bpffs / "q"
    ok("map", "create", str(path), "type", "queue", "key", "0", "value", "4", "entries", "2", "name", "cli_q")
    q = ["pinned", str(path)]
    ok("map", "push", *q, "value", "1", "0", "0", "0")
    ok("map", "enqueue", *q, "value", "2", "0", "0", "0")
    failed_with("E2BIG", "map", "push", *q, "value", "3", "0", "0", "0")
    assert ok("-j", "map", "peek", *q).doc == {"key": [], "value": hexes(k(1))}
    assert ok("map", "peek", *q).stdout == "value: 01 00 00 00\n"
    assert ok("-j", "map", "pop", *q).doc == {"key": [], "value": hexes(k(1))}
    assert ok("-j", "map", "dequeue", *q).doc == {"key": [], "value": hexes(k(2))}
    empty = failed_with("ENOENT", "-j", "map", "pop", *q)
    assert empty.stdout == "null\n"
    failed_with("EINVAL", "-j", "map", "dump", *q)  # queues have no keys to walk
    with client(path) as m:
        with pytest.raises(BpfError):
            m.lookup()


def test_pop_with_key_on_a_hash(hash_pin: Path, features: Features) -> None:
    with client(hash_pin) as m:
        m.update(k(5), bytes(8))
    r = run("-j", "map", "pop", "pinned", str(hash_pin), "key", *words_of(k(5)))
    if r.status == 1 and r.doc["errno"] in ("ENOTSUPP", "EOPNOTSUPP"):  # type: ignore[index]
        pytest.skip("LOOKUP_AND_DELETE_ELEM on hash maps needs kernel 5.14+ (probed: refused)")
    assert r.status == 0 and r.doc == {"key": hexes(k(5)), "value": hexes(bytes(8))}
    with client(hash_pin) as m:
        assert list(m.keys()) == []


# -- feature probe ------------------------------------------------------------------------


def test_feature_probe_reports_the_probed_map_types(features: Features) -> None:
    doc = ok("-j", "feature", "probe", "kernel").doc
    assert isinstance(doc, dict)
    assert doc["syscall_config"] == {"have_bpf_syscall": True}
    assert doc["map_types"] == {
        f"have_{t.name.lower()}_map_type": features.has_map_type(t) for t in MapType
    }
    text = ok("feature", "probe").stdout
    assert "bpf() syscall is available\n" in text
    assert "eBPF map_type queue is available\n" in text


# -- grammar and exit codes -------------------------------------------------------------


def test_keywords_take_bpftool_prefixes_and_options_go_anywhere(hash_pin: Path) -> None:
    ok("m", "upd", "pi", str(hash_pin), "k", *words_of(k(3)), "v", *["4"] * 8, "noex")
    doc = ok("map", "look", "pinned", str(hash_pin), "key", *words_of(k(3)), "-j").doc
    assert doc == {"key": hexes(k(3)), "value": hexes(bytes([4] * 8))}
    pretty = ok("-p", "map", "lookup", "pinned", str(hash_pin), "key", *words_of(k(3)))
    assert "\n    " in pretty.stdout and pretty.doc == doc


def test_help_exits_0() -> None:
    r = ok("help")
    assert r.stdout.startswith("Usage: python3 -m bpfmap map { show | list } [MAP]\n")
    assert ok("-j", "map", "help").stdout == "null\n"


BAD = [
    ([], "missing OBJECT"),
    (["-x", "map", "show"], "unknown option -x"),
    (["prog", "show"], "object 'prog' is not supported"),
    (["map", "frobnicate"], "unknown map command 'frobnicate'"),
    (["map", "lookup"], "expected 'id' or 'pinned', got: 'None'?"),
    (["map", "lookup", "pinned", "{P}"], "did not find key"),
    (["map", "lookup", "pinned", "{P}", "key", "1", "0", "0"], "key expected 4 bytes got 3"),
    (["map", "lookup", "pinned", "{P}", "key", "1", "0", "0", "256"], "byte out of range (0..255): 256"),
    (["map", "lookup", "pinned", "{P}", "key", "1", "0", "0", "08"], "error parsing byte: 08"),
    (["map", "lookup", "pinned", "{P}", "key", "1", "0", "0", "-1"], "unknown option -1"),
    (["map", "lookup", "pinned", "{P}", "key", "1", "0", "0", "0", "value", "1"], "unnecessary value"),
    (["map", "update", "pinned", "{P}", "key", "1", "0", "0", "0"], "did not find value"),
    (["map", "update", "pinned", "{P}", "key", "1", "0", "0", "0", "value", "0", "0", "0", "0",
      "0", "0", "0", "0", "any", "exist"], "flags specified multiple times: exist"),
    (["map", "update", "pinned", "{P}", "key", "1", "0", "0", "0", "key"], "duplicate key"),
    (["map", "show", "pinned", "{P}", "extra"], "what is 'extra'?"),
    (["map", "show", "id", "twelve"], "can't parse twelve as ID"),
    (["map", "pin", "pinned", "{P}"], "missing FILE"),
    (["map", "freeze", "pinned", "{P}", "now"], "what is 'now'?"),
    (["map", "create", "{P}2", "type", "hash", "key", "4", "value", "4", "entries", "1"],
     "map name not specified"),
    (["map", "create", "{P}2", "type", "hashish", "name", "x"], "unrecognized map type: hashish"),
    (["map", "create", "{P}2", "type", "hash", "key", "4", "key", "4", "name", "x"],
     "key size already specified"),
    (["map", "create", "{P}2", "entries", "4294967296", "name", "x"], "can't parse 4294967296 as max entries"),
    (["map", "create", "{P}2", "type", "hash", "dev", "eth0", "name", "x"],
     "offloaded maps (dev NAME) are not supported"),
    (["map", "event_pipe", "pinned", "{P}"], "this command is not supported by bpfmap"),
    (["feature", "probe", "full"], "expected no more arguments or 'kernel', got: 'full'?"),
]


@pytest.mark.parametrize("words,message", BAD, ids=[" ".join(w) or "empty" for w, _ in BAD])
def test_wrong_arguments_exit_2_with_usage(words: list[str], message: str, hash_pin: Path) -> None:
    filled = [w.replace("{P}", str(hash_pin)) for w in words]
    r = run(*filled)
    assert r.status == 2, r
    assert r.stderr.startswith(f"Error: {message}\nUsage: python3 -m bpfmap ")
    jr = run("-j", *filled)
    assert jr.status == 2 and jr.doc == {"error": message}, jr  # no "errno": no call failed


def test_failing_calls_exit_1_with_errno_name(bpffs: Path, hash_pin: Path) -> None:
    missing = str(bpffs / "missing")
    r = failed_with("ENOENT", "-j", "map", "show", "pinned", missing)
    assert r.doc == {"error": f"bpf obj get ({missing}): No such file or directory", "errno": "ENOENT"}
    failed_with("ENOENT", "map", "dump", "id", "0")
    failed_with("EINVAL", "-j", "map", "create", str(bpffs / "bad"), "type", "hash", "key", "0",
                "value", "4", "entries", "1", "name", "bad")
    assert not (bpffs / "bad").exists()
    failed_with("EPERM", "map", "pin", "pinned", str(hash_pin), str(bpffs / "dotted.name"))
    ok("map", "create", str(bpffs / "arr"), "type", "array", "key", "4", "value", "4",
       "entries", "1", "name", "arr")
    r = failed_with("EINVAL", "map", "delete", "pinned", str(bpffs / "arr"), "key", "0", "0", "0", "0")
    assert r.stderr == "Error: delete failed: Invalid argument (EINVAL)\n"


def test_parse_uint_follows_strtoul_but_whole_words() -> None:
    assert [cli.parse_uint(w) for w in ("0", "10", "0x1F", "017", "08", "-1", "", "1e3")] == [
        0, 10, 31, 15, None, None, None, None]
    assert [cli.parse_uint(w, 16) for w in ("ff", "0xff", "FF", "g", "")] == [255, 255, 255, None, None]


def test_hex_plain_breaks_lines_like_bpftool() -> None:
    assert cliout.hex_plain(bytes(range(20))) == (
        "00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\n10 11 12 13")
    assert cliout.hex_plain(b"") == ""


def test_module_entry_point_exit_codes(bpffs: Path) -> None:
    """The real `python3 -m bpfmap` process, as a user runs it."""
    env = dict(os.environ, PYTHONPATH=str(GUEST_TESTS))

    def proc(*words: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bpfmap", *words], capture_output=True,
                              text=True, timeout=60, env=env)

    path = str(bpffs / "ep")
    made = proc("-j", "map", "create", path, "type", "hash", "key", "4", "value", "4",
                "entries", "2", "name", "ep")
    assert (made.returncode, made.stdout) == (0, "null\n"), made.stderr
    wrong = proc("map", "update", "pinned", path, "key", "1")
    assert wrong.returncode == 2 and "Usage: python3 -m bpfmap map update" in wrong.stderr
    miss = proc("map", "delete", "pinned", path, "key", "1", "0", "0", "0")
    assert (miss.returncode, miss.stderr) == (1, "Error: delete failed: No such file or directory (ENOENT)\n")
