"""lab.kernel.source: a tarball is unpacked as the lab's own files (issue 14 item 13b): no owners,
no setuid/setgid bits, nothing outside the cache entry, whoever runs the lab (root keeps owners)."""
from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from lab.core.errors import UserError
from lab.kernel import source as ksource

TREE = {
    "Makefile": "VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\n",
    "Kconfig": 'mainmenu "Linux"\n',
    "arch/x86/Kconfig": "config X86\n\tdef_bool y\n",
}
STRANGER = 4242  # an owner that is not the user running the test


def _member(tar: tarfile.TarFile, name: str, data: bytes = b"x", mode: int = 0o644,
            kind: bytes = tarfile.REGTYPE, linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, linkname
    info.uid = info.gid = STRANGER
    info.uname = info.gname = "stranger"
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def crafted(path: Path, escape: Path, extra: list[tuple[str, dict]], top: str = "linux/") -> Path:
    """A kernel tree under `top` ("" for none) with setuid, setgid and sticky entries, then `extra`."""
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        if top:
            _member(tar, top, kind=tarfile.DIRTYPE, mode=0o2777)
        for name, text in TREE.items():
            _member(tar, f"{top}{name}", text.encode())
        _member(tar, f"{top}scripts/setuid-helper", b"#!/bin/sh\n", mode=0o4755)
        _member(tar, f"{top}scripts/setgid-helper", b"#!/bin/sh\n", mode=0o2755)
        _member(tar, f"{top}sticky-dir/", kind=tarfile.DIRTYPE, mode=0o1777)
        for name, options in extra:
            _member(tar, name.format(escape=escape), **options)
    return path


def _acquire(tarball: Path, cache: Path) -> ksource.SourceTree:
    return ksource.acquire(ksource.parse_source_spec(str(tarball)), cache, lambda line: None)


def test_no_owner_and_no_setuid_setgid_or_sticky_bit_survives(tmp_path: Path) -> None:
    escape = tmp_path / "outside"
    # No top directory, so the absolute member (after tar strips its "/") is part of the tree.
    tarball = crafted(tmp_path / "linux.tar.gz", escape, [(str(escape / "absolute"), {})], top="")
    tree = _acquire(tarball, tmp_path / "cache").root
    paths = [tree, *tree.rglob("*")]
    assert {p.relative_to(tree).as_posix() for p in paths} >= {"scripts/setuid-helper", "sticky-dir", "Makefile"}
    for path in paths:
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid()), path  # as root, tar would keep 4242
        assert not info.st_mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), (path, oct(info.st_mode))
    assert os.access(tree / "scripts" / "setuid-helper", os.X_OK)  # still a script one can run
    # The absolute member landed inside the tree, never at its own path.
    assert not escape.exists()
    assert (tree / str(escape).lstrip("/") / "absolute").is_file()


@pytest.mark.parametrize("name", ["linux/../{escape}-dotdot", "../escaped-dotdot"])
def test_a_dotdot_member_is_refused_and_nothing_is_written_outside(name: str, tmp_path: Path) -> None:
    escape = tmp_path / "cache" / "sources"
    tarball = crafted(tmp_path / "linux.tar.gz", escape, [(name, {})])
    with pytest.raises(UserError, match="cannot unpack") as caught:
        _acquire(tarball, tmp_path / "cache")
    assert "'..'" in str(caught.value)
    assert sorted(p.name for p in tmp_path.rglob("*escaped*")) == []
    assert list((tmp_path / "cache" / "sources").iterdir()) == []  # no half-unpacked entry


def test_writing_through_a_symlink_out_of_the_tree_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tarball = crafted(tmp_path / "linux.tar.gz", outside, [
        ("linux/link", {"kind": tarfile.SYMTYPE, "linkname": str(outside)}),
        ("linux/link/planted", {}),
    ])
    with pytest.raises(UserError, match="cannot unpack"):
        _acquire(tarball, tmp_path / "cache")
    assert list(outside.iterdir()) == []
