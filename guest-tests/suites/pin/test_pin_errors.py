"""Where a pin can and cannot be made or opened, and the errno for each."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bpfmap import BpfMap, FileFlag, MapType, obj_get, obj_pin

Recorder = Callable[[str, object], None]


@pytest.fixture
def amap() -> Iterator[BpfMap]:
    with BpfMap.create(MapType.ARRAY, 4, 4, 1, name="pin_errors") as m:
        yield m


def errno_of(call: Callable[[], object]) -> int:
    with pytest.raises(OSError) as info:
        call()
    assert info.value.errno is not None
    return info.value.errno


def test_pin_outside_bpffs_is_eperm(amap: BpfMap, tmp_path: Path) -> None:
    assert errno_of(lambda: amap.pin(tmp_path / "m")) == errno.EPERM
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("name", ["a.b", ".hidden", "trailing."])
def test_a_name_with_a_dot_is_eperm_even_for_stat(amap: BpfMap, bpffs: Path, name: str) -> None:
    before = os.listdir(bpffs)
    path = bpffs / name
    assert errno_of(lambda: amap.pin(path)) == errno.EPERM
    assert errno_of(lambda: os.stat(path)) == errno.EPERM, "bpffs refuses the lookup itself"
    assert errno_of(lambda: obj_get(path)) == errno.EPERM
    assert errno_of(lambda: os.mkdir(path)) == errno.EPERM
    assert os.listdir(bpffs) == before


def test_a_dot_in_a_parent_directory_is_eperm(amap: BpfMap, bpffs: Path) -> None:
    assert errno_of(lambda: amap.pin(bpffs / "d.x" / "m")) == errno.EPERM


def test_existing_path_is_eexist(amap: BpfMap, bpffs: Path) -> None:
    amap.pin(bpffs / "m")
    (bpffs / "d").mkdir()
    with BpfMap.create(MapType.ARRAY, 4, 4, 1) as other:
        assert errno_of(lambda: other.pin(bpffs / "m")) == errno.EEXIST
        assert errno_of(lambda: other.pin(bpffs / "d")) == errno.EEXIST, "a directory's name"
    with BpfMap.from_pin(bpffs / "m") as pinned:
        assert pinned.info().id == amap.info().id


def test_missing_parent_is_enoent(amap: BpfMap, bpffs: Path) -> None:
    assert errno_of(lambda: amap.pin(bpffs / "nodir" / "m")) == errno.ENOENT
    assert errno_of(lambda: obj_get(bpffs / "nodir" / "m")) == errno.ENOENT


def test_obj_get_on_a_missing_pin_is_enoent(bpffs: Path) -> None:
    assert errno_of(lambda: obj_get(bpffs / "missing")) == errno.ENOENT


def test_obj_get_on_what_is_not_a_pin_is_eacces(bpffs: Path, tmp_path: Path) -> None:
    (bpffs / "dir").mkdir()
    regular = tmp_path / "regular"
    regular.write_text("not a bpf object\n")
    for path in (bpffs / "dir", bpffs, regular, tmp_path):
        assert errno_of(lambda: obj_get(path)) == errno.EACCES, path


def test_bpffs_has_no_regular_files(bpffs: Path) -> None:
    """Only pins, directories and links: creating a file is refused (EACCES:
    the directory has no create operation)."""
    assert errno_of(lambda: open(bpffs / "file", "w")) == errno.EACCES


def test_pinning_what_is_not_a_bpf_object(bpffs: Path, tmp_path: Path, record_property: Recorder) -> None:
    """An fd that is not a map/prog/link is EINVAL; a closed fd is refused too
    (EBADF or EINVAL: the kernel tries each object type in turn)."""
    before = os.listdir(bpffs)
    with open(tmp_path / "f", "w") as f:
        assert errno_of(lambda: obj_pin(f.fileno(), bpffs / "file")) == errno.EINVAL
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    closed = errno_of(lambda: obj_pin(r, bpffs / "closed"))
    record_property("pin_closed_fd", errno.errorcode[closed])
    assert closed in (errno.EBADF, errno.EINVAL)
    assert os.listdir(bpffs) == before


# -- which errno comes first when a pin call breaks two rules -------------------

BOTH_FLAGS = int(FileFlag.RDONLY | FileFlag.WRONLY)

# name -> (call breaking both rules, (rule A, its errno, call breaking only A), (rule B, ...)),
# each built from (the map, a non-bpf fd, the bpffs, a directory outside it).
Calls = Callable[[BpfMap, int, Path, Path], Callable[[], object]]
CLASHES: dict[str, tuple[Calls, tuple[str, int, Calls], tuple[str, int, Calls]]] = {
    "pin_a_non_bpf_fd_outside_bpffs": (
        lambda m, f, b, o: lambda: obj_pin(f, o / "x"),
        ("outside bpffs", errno.EPERM, lambda m, f, b, o: lambda: obj_pin(m.fd, o / "x")),
        ("not a bpf object", errno.EINVAL, lambda m, f, b, o: lambda: obj_pin(f, b / "x"))),
    "pin_a_non_bpf_fd_under_a_missing_parent": (
        lambda m, f, b, o: lambda: obj_pin(f, b / "nodir" / "x"),
        ("missing parent", errno.ENOENT, lambda m, f, b, o: lambda: obj_pin(m.fd, b / "nodir" / "x")),
        ("not a bpf object", errno.EINVAL, lambda m, f, b, o: lambda: obj_pin(f, b / "x"))),
    "pin_a_non_bpf_fd_on_an_existing_path": (
        lambda m, f, b, o: lambda: obj_pin(f, b / "taken"),
        ("existing path", errno.EEXIST, lambda m, f, b, o: lambda: obj_pin(m.fd, b / "taken")),
        ("not a bpf object", errno.EINVAL, lambda m, f, b, o: lambda: obj_pin(f, b / "x"))),
    "get_a_missing_path_with_rdonly_and_wronly": (
        lambda m, f, b, o: lambda: obj_get(b / "missing", BOTH_FLAGS),
        ("missing path", errno.ENOENT, lambda m, f, b, o: lambda: obj_get(b / "missing")),
        ("RDONLY|WRONLY", errno.EINVAL, lambda m, f, b, o: lambda: obj_get(b / "taken", BOTH_FLAGS))),
    "get_a_directory_with_rdonly_and_wronly": (
        lambda m, f, b, o: lambda: obj_get(b / "dir", BOTH_FLAGS),
        ("not a pin", errno.EACCES, lambda m, f, b, o: lambda: obj_get(b / "dir")),
        ("RDONLY|WRONLY", errno.EINVAL, lambda m, f, b, o: lambda: obj_get(b / "taken", BOTH_FLAGS))),
    "get_a_name_with_a_dot_with_rdonly_and_wronly": (
        lambda m, f, b, o: lambda: obj_get(b / "a.b", BOTH_FLAGS),
        ("a dot in the name", errno.EPERM, lambda m, f, b, o: lambda: obj_get(b / "a.b")),
        ("RDONLY|WRONLY", errno.EINVAL, lambda m, f, b, o: lambda: obj_get(b / "taken", BOTH_FLAGS))),
}


@pytest.mark.parametrize("name", list(CLASHES))
def test_errno_checked_first(name: str, amap: BpfMap, bpffs: Path, tmp_path: Path,
                             record_property: Recorder) -> None:
    """Each rule alone gives its errno; both at once give one of the two, and
    which one (the order the kernel checks them in) is recorded."""
    both, *rules = CLASHES[name]
    amap.pin(bpffs / "taken")
    (bpffs / "dir").mkdir()
    before = sorted(os.listdir(bpffs))
    with open(tmp_path / "f", "w") as f:
        args = (amap, f.fileno(), bpffs, tmp_path)
        for text, want, alone in rules:
            got = errno_of(alone(*args))
            assert got == want, f"{text} alone: {errno.errorcode[got]}"
        err = errno_of(both(*args))
    winner = [text for text, want, _ in rules if want == err]
    assert winner, f"both rules broken: {errno.errorcode[err]}"
    record_property("errno_first", f"{errno.errorcode[err]} ({winner[0]})")
    assert sorted(os.listdir(bpffs)) == before, "a refused call made something"
