"""Access through pins: OBJ_GET's RDONLY/WRONLY, the pinned inode's mode
(0600 & ~umask), and another user opening a pin according to that mode."""

from __future__ import annotations

import errno
import json
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pinkit import CAP_BPF, DROP, User, run_python, unprivileged_user
from pinkit import public_bpffs  # noqa: F401  (a fixture)

from bpfmap import BpfError, BpfMap, FileFlag, MapType, obj_get

Recorder = Callable[[str, object], None]
U32 = struct.Struct("<I")
KEY, VAL, NEW = U32.pack(1), U32.pack(10), U32.pack(11)


@pytest.fixture
def pinned(bpffs: Path) -> Iterator[tuple[BpfMap, Path]]:
    path = bpffs / "m"
    with BpfMap.create(MapType.HASH, 4, 4, 8, name="pin_access") as m:
        m.update(KEY, VAL)
        m.pin(path)
        yield m, path


def outcome(call: Callable[[], object]) -> str:
    """"ok" or the errno name the call failed with."""
    try:
        call()
    except BpfError as e:
        return e.errname
    return "ok"


def what_fd_allows(m: BpfMap) -> dict[str, str]:
    """Try each kind of access through ``m`` (a reading, then writing ones)."""
    spare = U32.pack(2)
    return {
        "lookup": outcome(lambda: m.lookup(KEY)),
        "get_next_key": outcome(lambda: m.get_next_key(None)),
        "lookup_batch": outcome(lambda: m.lookup_batch(None, 8)),
        "update": outcome(lambda: m.update(KEY, NEW)),
        "update_batch": outcome(lambda: m.update_batch([spare], [VAL])),
        "delete": outcome(lambda: m.delete(spare)),
        "lookup_and_delete": outcome(lambda: m.lookup_and_delete(KEY)),
        "info": outcome(m.info),
    }


READ = {"lookup": "ok", "get_next_key": "ok", "lookup_batch": "ok", "info": "ok"}
NO_READ = {"lookup": "EPERM", "get_next_key": "EPERM", "lookup_batch": "EPERM", "info": "ok"}
WRITE = {"update": "ok", "update_batch": "ok", "delete": "ok"}
NO_WRITE = {"update": "EPERM", "update_batch": "EPERM", "delete": "EPERM"}


@pytest.mark.parametrize(
    ("flags", "allowed"),
    [
        (FileFlag.RDONLY, {**READ, **NO_WRITE, "lookup_and_delete": "EPERM"}),
        (FileFlag.WRONLY, {**NO_READ, **WRITE, "lookup_and_delete": "EPERM"}),
        (FileFlag.NONE, {**READ, **WRITE, "lookup_and_delete": "ok"}),
    ],
    ids=["RDONLY", "WRONLY", "RDWR"],
)
def test_obj_get_flags_decide_what_the_fd_may_do(
    pinned: tuple[BpfMap, Path], flags: FileFlag, allowed: dict[str, str]
) -> None:
    m, path = pinned
    with BpfMap.from_pin(path, int(flags)) as fd:
        got = what_fd_allows(fd)
    assert got == allowed
    if flags == FileFlag.RDONLY:
        assert m.lookup(KEY) == VAL, "a read-only fd changed the map"


def test_rdonly_and_wronly_together_is_einval(pinned: tuple[BpfMap, Path]) -> None:
    _, path = pinned
    for flags in (FileFlag.RDONLY | FileFlag.WRONLY, 1):  # both; an unknown bit
        with pytest.raises(BpfError) as info:
            obj_get(path, int(flags))
        assert info.value.errno == errno.EINVAL


def test_the_pinning_fds_access_does_not_limit_obj_get(bpffs: Path) -> None:
    """A pin refers to the map, not to the fd it was made from."""
    path = bpffs / "from_rdonly"
    with BpfMap.create(MapType.HASH, 4, 4, 8) as m:
        with BpfMap.from_id(m.info().id, int(FileFlag.RDONLY)) as ro:
            with pytest.raises(BpfError) as info:
                ro.update(KEY, VAL)
            assert info.value.errno == errno.EPERM
            ro.pin(path)
        with BpfMap.from_pin(path) as rw:
            rw.update(KEY, VAL)
        assert m.lookup(KEY) == VAL


UMASKS = [(0o022, 0o600), (0o077, 0o600), (0o277, 0o400), (0o477, 0o200), (0o777, 0o000)]


@pytest.mark.parametrize(("umask", "mode"), UMASKS, ids=[f"umask{u:03o}" for u, _ in UMASKS])
def test_pinned_inode_mode_is_0600_masked_by_umask(bpffs: Path, umask: int, mode: int) -> None:
    path = bpffs / "masked"
    with BpfMap.create(MapType.ARRAY, 4, 4, 1) as m:
        old = os.umask(umask)
        try:
            m.pin(path)
        finally:
            os.umask(old)
    st = os.stat(path)
    assert st.st_mode == 0o100000 | mode, oct(st.st_mode)  # S_IFREG | mode
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())


def test_directories_follow_the_umask_too(bpffs: Path) -> None:
    old = os.umask(0o027)
    try:
        os.mkdir(bpffs / "d", 0o777)
    finally:
        os.umask(old)
    assert os.stat(bpffs / "d").st_mode == 0o40750


# -- another user ------------------------------------------------------------

# Run as root, imports first, then drops to the user (keeping only the
# capabilities asked for) and tries each (name, path, file_flags).
OPENER = DROP + r"""
import json, sys
from bpfmap import BpfError, BpfMap, obj_get
spec = json.loads(sys.argv[1])
drop(spec["uid"], spec["gid"], spec["caps"])
key, new = bytes.fromhex(spec["key"]), bytes.fromhex(spec["new"])
out = {}
for name, path, flags in spec["attempts"]:
    r = {}
    try:
        fd = obj_get(path, flags)
    except BpfError as e:
        out[name] = {"get": e.errname}
        continue
    r["get"] = "ok"
    with BpfMap.from_fd(fd) as m:
        for what, call in (("lookup", lambda: m.lookup(key)), ("update", lambda: m.update(key, new))):
            try:
                call()
                r[what] = "ok"
            except BpfError as e:
                r[what] = e.errname
    out[name] = r
print(json.dumps(out))
"""

# (mode of the pin, owner is the user?, file_flags) -> what the user gets,
# by the inode's permission bits (no CAP_DAC_OVERRIDE in the child).
RD, WR, RW = int(FileFlag.RDONLY), int(FileFlag.WRONLY), 0
DENIED = {"get": "EACCES"}
CASES: list[tuple[str, int, bool, int, dict[str, str]]] = [
    ("0600-rdonly", 0o600, False, RD, DENIED),
    ("0644-rdonly", 0o644, False, RD, {"get": "ok", "lookup": "ok", "update": "EPERM"}),
    ("0644-rdwr", 0o644, False, RW, DENIED),
    ("0644-wronly", 0o644, False, WR, DENIED),
    ("0602-wronly", 0o602, False, WR, {"get": "ok", "lookup": "EPERM", "update": "ok"}),
    ("0666-rdwr", 0o666, False, RW, {"get": "ok", "lookup": "ok", "update": "ok"}),
    ("owned-0400-rdonly", 0o400, True, RD, {"get": "ok", "lookup": "ok", "update": "EPERM"}),
    ("owned-0400-rdwr", 0o400, True, RW, DENIED),
]


def _open_as(user: User, caps: list[int], base: Path) -> dict[str, dict[str, str]]:
    """Pin one map per case under ``base`` and let ``user`` try them."""
    attempts = []
    maps = []
    try:
        for name, mode, owned, flags, _ in CASES:
            m = BpfMap.create(MapType.HASH, 4, 4, 4)
            maps.append(m)
            m.update(KEY, VAL)
            path = base / name
            m.pin(path)
            os.chmod(path, mode)
            if owned:
                os.chown(path, user.uid, user.gid)
            attempts.append((name, str(path), flags))
        attempts.append(("missing", str(base / "missing"), RD))
        spec = {"uid": user.uid, "gid": user.gid, "caps": caps, "attempts": attempts,
                "key": KEY.hex(), "new": NEW.hex()}
        proc = run_python(OPENER, json.dumps(spec))
        assert proc.returncode == 0, proc.stderr
        result: dict[str, dict[str, str]] = json.loads(proc.stdout)
        return result
    finally:
        for m in maps:
            m.close()


def test_user_with_cap_bpf_opens_pins_by_their_mode(
    public_bpffs: Path, record_property: Recorder
) -> None:
    """CAP_BPF passes every kernel's unprivileged-bpf gate but is no DAC
    override, so what the user may open is decided by the inode's mode."""
    user = unprivileged_user()
    record_property("user", user.name)
    got = _open_as(user, [CAP_BPF], public_bpffs)
    assert got.pop("missing") == {"get": "ENOENT"}
    assert got == {name: want for name, _, _, _, want in CASES}


def test_unprivileged_user_reads_pins_by_mode_or_is_refused_outright(
    public_bpffs: Path, record_property: Recorder
) -> None:
    """Without any capability the answer depends on the kernel: older ones
    refuse every bpf(2) command with EPERM while kernel.unprivileged_bpf_disabled
    is set; later ones apply that sysctl only to MAP_CREATE and PROG_LOAD, so
    OBJ_GET is decided by the pin's mode (all the lab's kernels, 6.1 included,
    are of this kind). Which one this kernel is shows in the answer for a
    missing path (EPERM vs ENOENT), and is recorded."""
    user = unprivileged_user()
    sysctl = Path("/proc/sys/kernel/unprivileged_bpf_disabled").read_text().strip()
    got = _open_as(user, [], public_bpffs)
    missing = got.pop("missing")["get"]
    record_property("unprivileged_bpf_disabled", sysctl)
    record_property("user", user.name)
    if missing == "EPERM":
        record_property("unprivileged_obj_get", "refused: EPERM for every command")
        assert sysctl != "0", "EPERM for unprivileged bpf(2) although the sysctl allows it"
        assert got == {name: {"get": "EPERM"} for name, _, _, _, _ in CASES}
    else:
        record_property("unprivileged_obj_get", "by the pin's mode")
        assert missing == "ENOENT"
        assert got == {name: want for name, _, _, _, want in CASES}
