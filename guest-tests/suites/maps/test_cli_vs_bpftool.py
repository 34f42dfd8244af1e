"""`python3 -m bpfmap` against bpftool, a client no one here wrote, on the same kernel.

Every scenario creates twin maps, one with each tool, then replays one
operation list: operations that change a map run bpftool on the twin it made
and the CLI on the other; read-only ones run both tools on the same map (hash
order, getnext included, depends on the map's random seed, so only one map
can answer them identically). Each pair of answers must agree: both succeed
with the same JSON, or both fail with the same errno (and message, when both
print one), or both reject the arguments. At the end both tools dump both
twins and must see the same contents.

bpftool's errno comes from its message ("update failed: File exists" ->
EEXIST) or, when it prints only null/[] (lookup miss, pop of an empty map,
dump of a queue), from its exit status, which libbpf makes -errno.
The CLI runs in-process (a Python start costs ~0.4 s under TCG); one test
runs it as `python3 -m bpfmap` to cover the entry point and exit codes.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bpfmap import Features, MapType, errno_name
from bpfmap.cli import main as cli_main

GUEST_TESTS = Path(__file__).resolve().parents[2]
Recorder = Callable[[str, object], None]
JSON = object

# strerror text -> errno name, to read bpftool's "<context>: <strerror>" messages.
_STRERROR = {os.strerror(n): errno_name(n) for n in range(1, 600)}
_CLI_ERRNAME = re.compile(r"\((E[A-Z0-9_]+)\)\s*$")


@dataclass(frozen=True)
class Outcome:
    """One tool's answer: ``kind`` is "ok", "errno" or "usage"."""

    kind: str
    output: JSON = None
    errname: str | None = None
    message: str | None = None

    def renamed(self, old: str, new: str) -> Outcome:
        if self.message is None:
            return self
        return Outcome(self.kind, self.output, self.errname, self.message.replace(old, new))

    def same_as(self, other: Outcome) -> bool:
        if self.kind != other.kind:
            return False
        if self.kind == "ok":
            return self.output == other.output
        if self.kind == "errno" and self.errname != other.errname:
            return False
        return self.message is None or other.message is None or self.message == other.message


def _loads(text: str) -> JSON:
    return json.loads(text) if text.strip() else None


def run_bpftool(words: list[str]) -> Outcome:
    proc = subprocess.run(["bpftool", "-j", *words], capture_output=True, text=True, timeout=60)
    doc = _loads(proc.stdout)
    if proc.returncode == 0:
        return Outcome("ok", doc)
    message = doc.get("error") if isinstance(doc, dict) else None
    if message is not None:
        name = _STRERROR.get(message.rsplit(": ", 1)[-1])
        if name is None:
            return Outcome("usage", message=message)
        # libbpf returns -errno, so a status other than 255 (-1) must agree.
        if proc.returncode != 255:
            assert errno_name(256 - proc.returncode) == name, (words, proc.returncode, message)
        return Outcome("errno", errname=name, message=message)
    assert proc.returncode != 255, f"bpftool {words} failed without saying why: {proc.stdout!r}"
    return Outcome("errno", errname=errno_name(256 - proc.returncode))


def run_cli(words: list[str]) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    status = cli_main(["-j", *words], stdout=out, stderr=err)
    doc = _loads(out.getvalue())
    if status == 0:
        assert err.getvalue() == "", err.getvalue()
        return Outcome("ok", doc)
    if status == 2:
        assert "Usage: " in err.getvalue()
        assert isinstance(doc, dict) and "errno" not in doc, doc
        return Outcome("usage", message=doc["error"])
    assert status == 1, f"exit status {status}"
    if isinstance(doc, dict):
        return Outcome("errno", errname=doc["errno"], message=doc["error"])
    found = _CLI_ERRNAME.search(err.getvalue())  # null on stdout, errno on stderr
    assert found, f"no errno name in {err.getvalue()!r}"
    return Outcome("errno", errname=found.group(1))


@dataclass
class Twin:
    """One of the two maps: its pin, id and a second pin path for `map pin`."""

    path: Path
    map_id: int = 0

    def fill(self, words: str, by_id: bool) -> list[str]:
        handle = f"id {self.map_id}" if by_id else f"pinned {self.path}"
        text = words.format(M=handle, PIN=f"{self.path}_pin", DOT=f"{self.path}.pin",
                            MISSING=f"{self.path}_missing")
        return ["map", *text.split()]


@dataclass(frozen=True)
class Op:
    words: str
    mutates: bool = True
    # The answer depends on the map's random hash seed (is this key the last one?): both tools
    # must still agree, but the outcome is recorded as "seeded", not as a fact about the kernel.
    seeded: bool = False


def R(words: str, seeded: bool = False) -> Op:  # noqa: N802 - reads as a marker in the tables below
    return Op(words, mutates=False, seeded=seeded)


K = "key {} 0 0 0".format


@dataclass(frozen=True)
class Scenario:
    name: str
    create: str
    ops: tuple[Op, ...]
    dumpable: bool = True
    map_type: MapType = MapType.HASH


HASH_OPS = (
    Op(f"update {{M}} {K(1)} value 1 0 0 0 0 0 0 0"),
    Op(f"update {{M}} {K(2)} value hex ff 00 00 00 00 00 00 01 any"),
    Op(f"update {{M}} {K(1)} value 9 9 9 9 9 9 9 9 noexist"),  # EEXIST
    Op(f"update {{M}} {K(3)} value 3 0 0 0 0 0 0 0 exist"),  # ENOENT
    Op(f"update {{M}} {K(3)} value 3 0 0 0 0 0 0 0 noexist"),
    Op(f"update {{M}} {K(1)} value 7 0 0 0 0 0 0 0 exist"),
    Op(f"update {{M}} {K(4)} value 4 0 0 0 0 0 0 0"),
    Op(f"update {{M}} {K(5)} value 5 0 0 0 0 0 0 0"),  # full: E2BIG
    R(f"lookup {{M}} {K(1)}"),
    R(f"lookup {{M}} {K(9)}"),  # ENOENT
    R("getnext {M}"),
    R(f"getnext {{M}} {K(2)}", seeded=True),  # ENOENT only if the seed put key 2 last
    R(f"getnext {{M}} {K(9)}"),  # a missing key restarts at the first
    Op(f"delete {{M}} {K(2)}"),
    Op(f"delete {{M}} {K(2)}"),  # ENOENT
    R("lookup {M} key 1 0 0"),  # too short: usage
    R("lookup {M} key 1 0 0 zz"),  # not a byte: usage
    R("lookup {M}"),  # no key: usage
    R(f"lookup pinned {{MISSING}} {K(1)}"),  # ENOENT from OBJ_GET
    R(f"lookup id 4294967295 {K(1)}"),  # ENOENT from GET_FD_BY_ID
    Op("pin {M} {DOT}"),  # EPERM: bpffs reserves names with dots
    Op("pin {M} {PIN}"),
    Op("pin {M} {PIN}"),  # EEXIST
    R("show pinned {PIN}"),
    Op("freeze {M}"),
    Op(f"update {{M}} {K(1)} value 1 0 0 0 0 0 0 0"),  # EPERM: frozen
    Op(f"delete {{M}} {K(1)}"),  # EPERM
    Op("freeze {M}"),  # refrozen: the errno is the kernel's choice, the same for both
    R(f"lookup {{M}} {K(1)}"),
    R("show {M}"),
)

ARRAY_OPS = (
    Op(f"update {{M}} {K(2)} value 2 0 0 0"),
    Op(f"update {{M}} {K(4)} value 4 0 0 0"),  # E2BIG: past max_entries
    Op(f"update {{M}} {K(1)} value 1 0 0 0 noexist"),  # EEXIST: array slots always exist
    Op(f"update {{M}} {K(3)} value hex 0a 0b 0c 0d exist"),
    Op(f"delete {{M}} {K(2)}"),  # EINVAL
    R(f"lookup {{M}} {K(2)}"),
    R(f"lookup {{M}} {K(9)}"),  # ENOENT
    R("getnext {M}"),
    R(f"getnext {{M}} {K(3)}"),  # ENOENT: last index
    R(f"getnext {{M}} {K(7)}"),  # out of range: index 0
)

PERCPU_HASH_OPS = (
    Op(f"update {{M}} {K(1)} value 1 2 3 4 5 6 7 8 9 10 11 12"),
    Op(f"update {{M}} {K(2)} value hex 10 20 30 40 50 60 70 80 90 a0 b0 c0"),
    Op(f"update {{M}} {K(1)} value 0 0 0 0 0 0 0 0 0 0 0 0 noexist"),  # EEXIST
    R(f"lookup {{M}} {K(2)}"),
    R(f"lookup {{M}} {K(3)}"),  # ENOENT
    Op(f"delete {{M}} {K(2)}"),
    Op(f"delete {{M}} {K(2)}"),  # ENOENT
    R("getnext {M}"),
)

PERCPU_ARRAY_OPS = (
    Op(f"update {{M}} {K(0)} value 1 2 3 4 5 6 7 8 9 10 11 12"),
    Op(f"update {{M}} {K(1)} value 1 0 0 0 0 0 0 0 0 0 0 0 noexist"),  # EEXIST
    Op(f"update {{M}} {K(2)} value 0 0 0 0 0 0 0 0 0 0 0 0"),  # E2BIG
    R(f"lookup {{M}} {K(0)}"),
    R(f"getnext {{M}} {K(0)}"),
)

LRU_OPS = (
    Op(f"update {{M}} {K(1)} value 1 0 0 0"),
    Op(f"update {{M}} {K(2)} value 2 0 0 0"),
    Op(f"update {{M}} {K(2)} value 2 2 0 0 noexist"),  # EEXIST
    Op(f"update {{M}} {K(3)} value 3 0 0 0 exist"),  # ENOENT
    Op(f"delete {{M}} {K(1)}"),
    R(f"lookup {{M}} {K(1)}"),  # ENOENT
    R(f"lookup {{M}} {K(2)}"),
    R("getnext {M}"),
)


# Shared by queue and stack maps (3 entries): the order differs, the errnos not.
QUEUE_OPS = (
    Op("push {M} value 1 0 0 0"),
    Op("push {M} value 2 0 0 0"),
    Op("push {M} value 3 0 0 0"),
    Op("push {M} value 4 0 0 0"),  # E2BIG: full
    Op("push {M} value 5 0 0 0 exist"),  # full + BPF_EXIST: replaces the oldest
    Op("push {M} value 6 0 0 0 noexist"),  # EINVAL: NOEXIST is meaningless here
    R("peek {M}"),
    Op("pop {M}"),
    R("peek {M}"),
    R("lookup {M} key 1 0 0 0"),  # usage: a queue has no key
    R("getnext {M}"),  # EINVAL
    R("dump {M}"),  # EINVAL (bpftool prints [] and exits -EINVAL)
    Op("pop {M}"),
    Op("pop {M}"),
    Op("pop {M}"),  # ENOENT: empty
    R("peek {M}"),  # ENOENT
)


SCENARIOS = [
    Scenario("hash", "type hash key 4 value 8 entries 4", HASH_OPS),
    Scenario("array", "type array key 4 value 4 entries 4", ARRAY_OPS, map_type=MapType.ARRAY),
    Scenario("percpu_hash", "type percpu_hash key 4 value 12 entries 8", PERCPU_HASH_OPS,
             map_type=MapType.PERCPU_HASH),
    Scenario("percpu_array", "type percpu_array key 4 value 12 entries 2", PERCPU_ARRAY_OPS,
             map_type=MapType.PERCPU_ARRAY),
    # Large enough that no per-CPU LRU free list runs dry: which CPU each
    # tool ran on would otherwise decide what gets evicted.
    Scenario("lru_hash", "type lru_hash key 4 value 4 entries 1024", LRU_OPS,
             map_type=MapType.LRU_HASH),
    Scenario("queue", "type queue key 0 value 4 entries 3", QUEUE_OPS,
             dumpable=False, map_type=MapType.QUEUE),
    Scenario("stack", "type stack key 0 value 4 entries 3", QUEUE_OPS,
             dumpable=False, map_type=MapType.STACK),
]


@pytest.fixture(scope="module")
def bpftool() -> str:
    path = shutil.which("bpftool")
    if path is None:
        pytest.skip("bpftool is not installed: nothing to compare the CLI with")
    return path


@pytest.fixture
def twins(bpffs: Path) -> tuple[Twin, Twin]:
    """Pin paths for the bpftool-made map (A) and the CLI-made one (B), on the
    private bpffs, whose unmount drops the pins (and so the maps)."""
    return Twin(bpffs / "a"), Twin(bpffs / "b")


def agree(what: str, tool: Outcome, cli: Outcome, log: list[str], seeded: bool = False) -> None:
    log.append(f"{what}={'seeded' if seeded else tool.errname or tool.kind}")
    assert tool.same_as(cli), f"{what}:\n  bpftool: {tool}\n  bpfmap:  {cli}"


def show_id(twin: Twin) -> int:
    out = run_cli(["map", "show", "pinned", str(twin.path)])
    assert out.kind == "ok" and isinstance(out.output, dict), out
    map_id = out.output["id"]
    assert isinstance(map_id, int)
    return map_id


def compare_contents(a: Twin, b: Twin, dumpable: bool, log: list[str]) -> None:
    """Both tools dump both twins: same map -> same list; twins -> same set."""
    dumps = []
    for twin in (a, b):
        words = twin.fill("dump {M}", by_id=False)
        tool, cli = run_bpftool(words), run_cli(words)
        agree(f"dump {twin.path.name}", tool, cli, log)
        dumps.append(tool)
    if dumpable:
        assert as_set(dumps[0]) == as_set(dumps[1]), "the twins' contents differ"


def as_set(dump: Outcome) -> list[str]:
    """A dump without its order (twin hash maps have different hash seeds)."""
    assert isinstance(dump.output, list)
    return sorted(json.dumps(e, sort_keys=True) for e in dump.output)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_operations_match_bpftool(
    scenario: Scenario, bpftool: str, features: Features, twins: tuple[Twin, Twin],
    record_property: Recorder,
) -> None:
    if not features.has_map_type(scenario.map_type):
        pytest.skip(f"{scenario.map_type.name} maps are not supported by this kernel (probed)")
    a, b = twins
    log: list[str] = []
    create = f"{scenario.create} name h5_{scenario.name[:10]}"
    agree("create", run_bpftool(["map", "create", str(a.path), *create.split()]),
          run_cli(["map", "create", str(b.path), *create.split()]), log)
    a.map_id, b.map_id = show_id(a), show_id(b)

    shows = []
    for twin in (a, b):
        words = twin.fill("show {M}", by_id=False)
        tool = run_bpftool(words)
        agree(f"show {twin.path.name}", tool, run_cli(words), log)
        assert isinstance(tool.output, dict)
        shows.append({k: v for k, v in tool.output.items() if k != "id"})
    assert shows[0] == shows[1], "twin maps differ in bpftool's `map show`"

    for i, op in enumerate(scenario.ops):
        by_id = i % 2 == 1  # alternate the two handle forms
        if op.mutates:
            tool = run_bpftool(a.fill(op.words, by_id))
            # Messages name the pin path: B's must read as A's.
            cli = run_cli(b.fill(op.words, by_id)).renamed(str(b.path), str(a.path))
        else:
            words = a.fill(op.words, by_id)
            tool, cli = run_bpftool(words), run_cli(words)
        agree(f"{i}:{op.words.split()[0]}", tool, cli, log, op.seeded)

    compare_contents(a, b, scenario.dumpable, log)
    record_property("outcomes", " ".join(log))


def test_create_failures_match_bpftool(
    bpftool: str, features: Features, bpffs: Path, record_property: Recorder
) -> None:
    """Failing creates: kernel refusals (errno), a taken pin path, bad arguments."""
    cases = [
        "type hash key 0 value 4 entries 4 name h5_k0",  # EINVAL: hash needs a key
        "type array key 4 value 4 entries 0 name h5_e0",  # EINVAL: no entries
        "type queue key 4 value 4 entries 4 name h5_qk",  # EINVAL: queues have no key
        "type hash key 4 value 4 entries 4 name bad-name",  # EINVAL: '-' not allowed
        "type nosuch key 4 value 4 entries 4 name h5_x",  # usage: unknown type
        "type hash key 4 value 4 entries 4",  # usage: no name
        "type hash key 4 key 8 value 4 entries 4 name h5_x",  # usage: key twice
        "type hash key four value 4 entries 4 name h5_x",  # usage: not a number
    ]
    log: list[str] = []
    for i, case in enumerate(cases):
        path = str(bpffs / f"c{i}")
        tool = run_bpftool(["map", "create", path, *case.split()])
        cli = run_cli(["map", "create", path + "x", *case.split()])
        agree(case, tool, cli, log)
        assert tool.kind != "ok", f"bpftool accepted {case!r}"
    # A taken path: the map is created, then OBJ_PIN says EEXIST.
    taken = bpffs / "taken"
    assert run_cli(["map", "create", str(taken), *"type hash key 4 value 4 entries 1 name h5_t".split()]).kind == "ok"
    words = ["map", "create", str(taken), *"type hash key 4 value 4 entries 1 name h5_t".split()]
    agree("create on a pinned path", run_bpftool(words), run_cli(words), log)
    record_property("outcomes", " | ".join(log))


def test_show_all_lists_the_same_maps(
    bpftool: str, features: Features, twins: tuple[Twin, Twin]
) -> None:
    """`map show` without a handle: both list our two maps identically."""
    a, b = twins
    spec = "type hash key 4 value 4 entries 2 name h5_all".split()
    assert run_bpftool(["map", "create", str(a.path), *spec]).kind == "ok"
    assert run_cli(["map", "create", str(b.path), *spec]).kind == "ok"
    ours = {show_id(a), show_id(b)}
    tool, cli = run_bpftool(["map", "show"]), run_cli(["map", "show"])
    assert tool.kind == cli.kind == "ok"
    assert isinstance(tool.output, list) and isinstance(cli.output, list)

    def pick(listing: list[dict[str, object]]) -> list[dict[str, object]]:
        return sorted((e for e in listing if e["id"] in ours), key=lambda e: str(e["id"]))

    assert len(pick(tool.output)) == 2
    assert pick(tool.output) == pick(cli.output)


def test_text_output_matches_bpftool(bpftool: str, features: Features, twins: tuple[Twin, Twin]) -> None:
    """Without -j the CLI prints bpftool's plain text (same map, same words)."""
    a, _ = twins
    spec = "type percpu_hash key 4 value 20 entries 4 name h5_text".split()
    assert run_cli(["map", "create", str(a.path), *spec]).kind == "ok"
    handle = ["pinned", str(a.path)]
    value = [str(i) for i in range(1, 21)]
    assert run_cli(["map", "update", *handle, "key", "1", "0", "0", "0", "value", *value]).kind == "ok"
    for words in (["map", "dump", *handle], ["map", "show", *handle],
                  ["map", "lookup", *handle, "key", "1", "0", "0", "0"],
                  ["map", "getnext", *handle]):
        tool = subprocess.run(["bpftool", *words], capture_output=True, text=True, timeout=60)
        out, err = io.StringIO(), io.StringIO()
        status = cli_main(words, stdout=out, stderr=err)
        assert (status, out.getvalue()) == (tool.returncode, tool.stdout), words


def test_feature_probe_agrees_with_bpftool(bpftool: str, features: Features) -> None:
    """Every map type the CLI reports, bpftool reports the same way."""
    tool = run_bpftool(["feature", "probe", "kernel"])
    cli = run_cli(["feature", "probe", "kernel"])
    assert tool.kind == cli.kind == "ok"
    assert isinstance(tool.output, dict) and isinstance(cli.output, dict)
    assert cli.output["syscall_config"] == tool.output["syscall_config"]
    ours = cli.output["map_types"]
    assert isinstance(ours, dict) and len(ours) == len(MapType)
    assert ours == {k: tool.output["map_types"][k] for k in ours}


def test_entry_point_exit_codes(features: Features, bpffs: Path) -> None:
    """`python3 -m bpfmap` itself: 0 with bpftool's JSON, 2 with usage, 1 with an errno."""
    env = dict(os.environ, PYTHONPATH=str(GUEST_TESTS))

    def start(*words: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "bpfmap", *words], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)

    def finished(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    path = str(bpffs / "ep")
    ok = finished(start("-j", "map", "create", path, "type", "hash", "key", "4", "value", "4",
                        "entries", "1", "name", "h5_ep"))
    assert (ok.returncode, ok.stdout.strip()) == (0, "null"), ok.stderr
    # The two that need the map run at once: a python start is most of each under TCG.
    usage_proc = start("map", "update", "pinned", path, "value", "1", "0", "0", "0", "key", "1", "0")
    failed_proc = start("map", "delete", "pinned", path, "key", "1", "0", "0", "0")
    usage, failed = finished(usage_proc), finished(failed_proc)
    assert usage.returncode == 2
    assert "Error: key expected 4 bytes got 2" in usage.stderr and "Usage: " in usage.stderr
    assert failed.returncode == 1
    assert failed.stderr.strip() == (
        f"Error: delete failed: {os.strerror(errno.ENOENT)} ({errno_name(errno.ENOENT)})"
    )
