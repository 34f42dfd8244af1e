"""Read-only and write-only map fds (create flags, GET_FD_BY_ID open flags,
OBJ_GET file flags) and MAP_FREEZE."""

from __future__ import annotations

import errno
import mmap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bpfmap import (
    BpfMap,
    Cmd,
    Features,
    FileFlag,
    MapFlag,
    MapType,
    errno_name,
    map_get_fd_by_id,
    obj_get,
)
from mapsuite import Recorder, errno_of, k, need_cmd, outcome, v

RD, WR = int(MapFlag.RDONLY), int(MapFlag.WRONLY)


def can(call: Callable[[], object]) -> str:
    """"ok", "EPERM", or another errno name for a permission probe."""
    return outcome(call)


def perms(m: BpfMap) -> dict[str, str]:
    """What an fd may do, exercised on key 1 (present) / key 2 (absent)."""
    return {
        "lookup": can(lambda: m.lookup(k(1))),
        "get_next_key": can(lambda: m.get_next_key()),
        "update": can(lambda: m.update(k(1), v(11))),
        "delete": can(lambda: m.delete(k(2))),
        "lookup_and_delete": can(lambda: m.lookup_and_delete(k(2))),
    }


READ_ONLY = {"lookup": "ok", "get_next_key": "ok", "update": "EPERM", "delete": "EPERM",
             "lookup_and_delete": "EPERM"}
# delete of the absent key 2 passes the permission check and reaches the map.
WRITE_ONLY = {"lookup": "EPERM", "get_next_key": "EPERM", "update": "ok", "delete": "ENOENT",
              "lookup_and_delete": "EPERM"}


@pytest.fixture
def hmap(features: Features) -> Iterator[BpfMap]:
    need_cmd(features, Cmd.MAP_LOOKUP_AND_DELETE_ELEM)
    with BpfMap.create(MapType.HASH, 4, 8, 8, name="access") as m:
        m.update(k(1), v(1))
        yield m


def test_create_rdonly() -> None:
    with BpfMap.create(MapType.HASH, 4, 8, 8, RD) as m:
        assert errno_of(lambda: m.update(k(1), v(1))) == errno.EPERM
        assert errno_of(lambda: m.lookup(k(1))) == errno.ENOENT, "reads pass the check"
        assert errno_of(lambda: m.get_next_key()) == errno.ENOENT
        assert errno_of(lambda: m.delete(k(1))) == errno.EPERM
        assert m.info().map_flags & (RD | WR) == 0, "RDONLY belongs to the fd, not the map"
    with BpfMap.create(MapType.ARRAY, 4, 8, 2, RD) as m:
        assert m.lookup(k(0)) == bytes(8)


def test_create_wronly() -> None:
    with BpfMap.create(MapType.HASH, 4, 8, 8, WR) as m:
        m.update(k(1), v(1))
        assert errno_of(lambda: m.lookup(k(1))) == errno.EPERM
        assert errno_of(lambda: m.get_next_key()) == errno.EPERM
        m.delete(k(1))
        assert errno_of(lambda: m.delete(k(1))) == errno.ENOENT


def test_rdonly_and_wronly_together_are_einval(hmap: BpfMap, bpffs: Path) -> None:
    assert errno_of(lambda: BpfMap.create(MapType.HASH, 4, 8, 8, RD | WR)) == errno.EINVAL
    assert errno_of(lambda: map_get_fd_by_id(hmap.info().id, RD | WR)) == errno.EINVAL
    hmap.pin(bpffs / "m")
    assert errno_of(lambda: obj_get(bpffs / "m", RD | WR)) == errno.EINVAL


@pytest.mark.parametrize(("flags", "want"), [(RD, READ_ONLY), (WR, WRITE_ONLY)], ids=["RDONLY", "WRONLY"])
def test_get_fd_by_id_open_flags(hmap: BpfMap, flags: int, want: dict[str, str]) -> None:
    with BpfMap.from_id(hmap.info().id, flags) as m:
        assert perms(m) == want
    assert hmap.lookup(k(1)) in (v(1), v(11)), "the original fd keeps full access"
    hmap.update(k(1), v(5))
    assert hmap.lookup(k(1)) == v(5)


@pytest.mark.parametrize(("flags", "want"), [(RD, READ_ONLY), (WR, WRITE_ONLY)], ids=["RDONLY", "WRONLY"])
def test_obj_get_file_flags(hmap: BpfMap, bpffs: Path, flags: int, want: dict[str, str]) -> None:
    hmap.pin(bpffs / "m")
    with BpfMap.from_fd(obj_get(bpffs / "m", flags)) as m:
        assert perms(m) == want


def test_unknown_open_flags_are_einval(hmap: BpfMap) -> None:
    for flags in (1, 1 << 5, 1 << 20):
        assert errno_of(lambda: map_get_fd_by_id(hmap.info().id, flags)) == errno.EINVAL


def test_create_flags_bind_only_the_returned_fd() -> None:
    # map_flags RDONLY is not kept on the map (the info shows it), so a new
    # fd opened by ID without open flags can write.
    with BpfMap.create(MapType.HASH, 4, 8, 8, RD) as ro:
        with BpfMap.from_id(ro.info().id, int(FileFlag.NONE)) as rw:
            rw.update(k(1), v(7))
        assert ro.lookup(k(1)) == v(7)


# -- MAP_FREEZE ------------------------------------------------------------------


@pytest.fixture
def frozen(hmap: BpfMap, features: Features) -> BpfMap:
    need_cmd(features, Cmd.MAP_FREEZE)
    hmap.freeze()
    return hmap


def fdinfo_frozen(m: BpfMap) -> str | None:
    with open(f"/proc/self/fdinfo/{m.fd}", encoding="ascii") as f:
        for line in f:
            if line.startswith("frozen:"):
                return line.split()[1]
    return None


def test_frozen_map_refuses_writes_and_allows_reads(frozen: BpfMap) -> None:
    assert errno_of(lambda: frozen.update(k(1), v(2))) == errno.EPERM
    assert errno_of(lambda: frozen.update(k(3), v(3))) == errno.EPERM
    assert errno_of(lambda: frozen.delete(k(1))) == errno.EPERM
    assert errno_of(lambda: frozen.lookup_and_delete(k(1))) == errno.EPERM
    assert frozen.lookup(k(1)) == v(1)
    assert frozen.get_next_key() == k(1)
    assert fdinfo_frozen(frozen) == "1"


def test_freeze_binds_every_fd(frozen: BpfMap) -> None:
    # Frozen is a property of the map: a fresh read-write fd cannot write.
    with BpfMap.from_id(frozen.info().id) as other:
        assert errno_of(lambda: other.update(k(1), v(2))) == errno.EPERM
        assert other.lookup(k(1)) == v(1)


def test_freeze_array(features: Features) -> None:
    need_cmd(features, Cmd.MAP_FREEZE)
    with BpfMap.create(MapType.ARRAY, 4, 8, 2) as m:
        m.update(k(0), v(9))
        assert fdinfo_frozen(m) == "0"
        m.freeze()
        assert errno_of(lambda: m.update(k(0), v(1))) == errno.EPERM
        assert m.lookup(k(0)) == v(9)


def test_freeze_twice(frozen: BpfMap, record_property: Recorder) -> None:
    """A second freeze was EBUSY; newer kernels check write access first and a
    frozen map has none, so EPERM. Either is accepted and recorded."""
    err = errno_of(frozen.freeze)
    record_property("second_freeze_errno", errno_name(err))
    assert err in (errno.EBUSY, errno.EPERM)


def test_freeze_through_readonly_fd(hmap: BpfMap, features: Features, record_property: Recorder) -> None:
    """Older kernels let an RDONLY fd freeze the map, newer ones want write
    access (EPERM). Either is accepted; the map must match what was said."""
    need_cmd(features, Cmd.MAP_FREEZE)
    with BpfMap.from_id(hmap.info().id, RD) as ro:
        result = outcome(ro.freeze)
    record_property("freeze_rdonly_fd", result)
    assert result in ("ok", "EPERM")
    if result == "ok":
        assert errno_of(lambda: hmap.update(k(1), v(2))) == errno.EPERM
    else:
        hmap.update(k(1), v(2))  # still writable
        assert fdinfo_frozen(hmap) == "0"


def test_freeze_through_writeonly_fd(hmap: BpfMap, features: Features) -> None:
    need_cmd(features, Cmd.MAP_FREEZE)
    with BpfMap.from_id(hmap.info().id, WR) as wo:
        wo.freeze()
    assert errno_of(lambda: hmap.update(k(1), v(2))) == errno.EPERM
    assert hmap.lookup(k(1)) == v(1)


def test_frozen_map_and_the_batch_commands(frozen: BpfMap, features: Features,
                                           record_property: Recorder) -> None:
    """A frozen map stays readable by LOOKUP_BATCH and refuses every batch write;
    the errno each write gets is the kernel's and is recorded."""
    if not features.has_batch:
        pytest.skip("kernel lacks the *_BATCH commands")
    got = {
        "lookup_batch": can(lambda: frozen.lookup_batch(None, 8)),
        "update_batch": can(lambda: frozen.update_batch([k(2)], [v(2)])),
        "delete_batch": can(lambda: frozen.delete_batch([k(1)])),
        "lookup_and_delete_batch": can(lambda: frozen.lookup_and_delete_batch(None, 8)),
    }
    record_property("frozen_map_batch_commands", got)
    assert got["lookup_batch"] == "ok"
    assert all(result != "ok" for name, result in got.items() if name != "lookup_batch"), got
    assert frozen.lookup(k(1)) == v(1) and errno_of(lambda: frozen.lookup(k(2))) == errno.ENOENT


def _mmap(m: BpfMap, prot: int) -> mmap.mmap:
    return mmap.mmap(m.fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED, prot=prot)


def _mmap_outcome(m: BpfMap, prot: int) -> str:
    try:
        _mmap(m, prot).close()
    except OSError as e:
        return errno_name(e.errno or 0)
    return "ok"


def test_freeze_and_mmap_of_an_mmapable_array(features: Features, record_property: Recorder) -> None:
    """A writable mapping of a BPF_F_MMAPABLE array and MAP_FREEZE exclude each
    other. Which errno each side gets, and whether a writable mapping that was
    unmapped still counts, is recorded; a frozen array must refuse a writable
    mapping and still allow a read-only one."""
    need_cmd(features, Cmd.MAP_FREEZE)
    seen: dict[str, str] = {}
    with BpfMap.create(MapType.ARRAY, 4, 8, mmap.PAGESIZE // 8, int(MapFlag.MMAPABLE)) as m:
        writable = _mmap(m, mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            writable[0:8] = v(42)
            assert m.lookup(k(0)) == v(42), "a write through the mapping is the map's value"
            seen["freeze with a writable mapping"] = can(m.freeze)
        finally:
            writable.close()
        if seen["freeze with a writable mapping"] != "ok":
            seen["freeze after unmapping it"] = can(m.freeze)
        seen["writable mapping of the frozen map"] = _mmap_outcome(m, mmap.PROT_READ | mmap.PROT_WRITE)
        seen["read-only mapping of the frozen map"] = _mmap_outcome(m, mmap.PROT_READ)
        assert errno_of(lambda: m.update(k(0), v(1))) == errno.EPERM, "the array is frozen"
    record_property("freeze_vs_mmap", seen)
    assert seen["writable mapping of the frozen map"] != "ok"
    assert seen["read-only mapping of the frozen map"] == "ok"
