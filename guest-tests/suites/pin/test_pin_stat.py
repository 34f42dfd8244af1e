"""What stat/statfs report on a bpffs, which mount options it honours and shows,
and pinning relative to a directory fd (BPF_F_PATH_FD, 6.5).

The modes of pins and directories are the fact sheet's (test_pin_access); the
rest (link counts, sizes, block sizes, statfs numbers, unknown options, the
options /proc shows) is the kernel's choice and recorded. Inode numbers and
times are left out: they differ between two runs of one kernel.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bpfmap import BpfError, BpfMap, Cmd, FileFlag, MapType, attrs, bpf_raw
from bpfmap.bpffs import mount_bpffs, umount

Recorder = Callable[[str, object], None]
OWNER_UID, OWNER_GID = 4242, 4243


def describe(st: os.stat_result) -> str:
    return (f"mode {st.st_mode:#o} nlink {st.st_nlink} size {st.st_size} "
            f"blocks {st.st_blocks} blksize {st.st_blksize}")


def test_stat_of_pins_directories_and_links(bpffs: Path, record_property: Recorder) -> None:
    old = os.umask(0o022)
    try:
        with BpfMap.create(MapType.ARRAY, 4, 4, 1) as m:
            (bpffs / "d").mkdir()
            m.pin(bpffs / "m")
            m.pin(bpffs / "d" / "m")
            os.symlink(bpffs / "m", bpffs / "sym")
            os.link(bpffs / "d" / "m", bpffs / "hard")
    finally:
        os.umask(old)
    seen = {name: os.lstat(bpffs / name) for name in (".", "d", "m", "d/m", "sym", "hard")}
    assert stat.S_ISDIR(seen["."].st_mode) and stat.S_ISDIR(seen["d"].st_mode)
    assert seen["m"].st_mode == seen["hard"].st_mode == stat.S_IFREG | 0o600
    assert stat.S_ISLNK(seen["sym"].st_mode)
    assert seen["hard"].st_nlink == seen["d/m"].st_nlink, "one inode, two names"
    assert all((st.st_uid, st.st_gid) == (os.geteuid(), os.getegid()) for st in seen.values())
    record_property("bpffs_stat", {name: describe(st) for name, st in seen.items()})


def test_statfs_of_a_bpffs(bpffs: Path, record_property: Recorder) -> None:
    sv = os.statvfs(bpffs)
    assert sv.f_namemax > 0
    record_property("bpffs_statvfs", {field: getattr(sv, field) for field in (
        "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_namemax")})


def super_options(target: Path) -> str:
    """The super-block options /proc/self/mountinfo shows for the mount at ``target``."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields[4] == os.fspath(target):
                return fields[fields.index("-") + 3]
    raise AssertionError(f"{target} is not in /proc/self/mountinfo")


@pytest.fixture
def owned_bpffs(tmp_path: Path) -> Iterator[Path]:
    """A bpffs mounted with mode, uid and gid options (uid/gid: 6.7's token work;
    older kernels ignore options they do not know)."""
    target = tmp_path / "owned"
    target.mkdir()
    mount_bpffs(target, f"mode=0750,uid={OWNER_UID},gid={OWNER_GID}")
    try:
        yield target
    finally:
        umount(target, detach=True)


def test_mount_options_honoured_and_shown(bpffs: Path, owned_bpffs: Path, record_property: Recorder) -> None:
    st = os.stat(owned_bpffs)
    assert st.st_mode == stat.S_IFDIR | stat.S_ISVTX | 0o750, oct(st.st_mode)  # the root is always sticky
    owner = (st.st_uid, st.st_gid)
    assert owner in ((0, 0), (OWNER_UID, OWNER_GID)), owner
    record_property("bpffs_root_owner_with_uid_gid_options", "as asked" if owner != (0, 0) else "root (ignored)")
    record_property("bpffs_shown_options", {"default": super_options(bpffs), "mode, uid, gid": super_options(owned_bpffs)})


def _obj_call(cmd: Cmd, name: bytes, dir_fd: int, bpf_fd: int = 0) -> int:
    path = ctypes.create_string_buffer(name)
    return bpf_raw(cmd, attrs.pack_obj(ctypes.addressof(path), bpf_fd, int(FileFlag.PATH_FD), dir_fd))


def test_pin_and_get_relative_to_a_directory_fd(bpffs: Path, record_property: Recorder) -> None:
    """BPF_F_PATH_FD makes pathname relative to path_fd. A kernel without it refuses
    the flag (EINVAL) and makes nothing; one with it pins and opens the same map."""
    dir_fd = os.open(bpffs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with BpfMap.create(MapType.ARRAY, 4, 4, 1) as m:
            try:
                _obj_call(Cmd.OBJ_PIN, b"rel", dir_fd, m.fd)
            except BpfError as e:
                record_property("obj_pin_path_fd", e.errname)
                assert e.errno == errno.EINVAL
                assert not (bpffs / "rel").exists()
                return
            record_property("obj_pin_path_fd", "ok")
            with BpfMap.from_pin(bpffs / "rel") as by_path, BpfMap.from_fd(_obj_call(Cmd.OBJ_GET, b"rel", dir_fd)) as rel:
                assert by_path.info().id == rel.info().id == m.info().id
    finally:
        os.close(dir_fd)
