"""Pins in a directory tree: nested directories, rename, links, unlink."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfmap import BpfError, BpfMap, MapType, obj_get


@pytest.fixture
def amap() -> Iterator[BpfMap]:
    with BpfMap.create(MapType.ARRAY, 4, 4, 1, name="pin_tree") as m:
        yield m


def pinned_id(path: Path) -> int:
    with BpfMap.from_pin(path) as m:
        return m.info().id


def enoent(path: Path) -> bool:
    with pytest.raises(BpfError) as info:
        obj_get(path)
    return info.value.errno == errno.ENOENT


def test_nested_directories(amap: BpfMap, bpffs: Path) -> None:
    deep = bpffs / "a" / "b" / "c"
    deep.mkdir(parents=True)
    amap.pin(deep / "m")
    assert pinned_id(deep / "m") == amap.info().id
    assert os.listdir(deep) == ["m"]


def test_rename_a_pin_and_a_directory(amap: BpfMap, bpffs: Path) -> None:
    (bpffs / "a" / "b").mkdir(parents=True)
    amap.pin(bpffs / "a" / "b" / "m")
    os.rename(bpffs / "a" / "b" / "m", bpffs / "a" / "moved")
    assert enoent(bpffs / "a" / "b" / "m")
    assert pinned_id(bpffs / "a" / "moved") == amap.info().id
    os.rename(bpffs / "a", bpffs / "z")
    assert pinned_id(bpffs / "z" / "moved") == amap.info().id


def test_rename_over_a_pin_replaces_it(amap: BpfMap, bpffs: Path) -> None:
    with BpfMap.create(MapType.ARRAY, 4, 4, 1) as other:
        before = set(os.listdir(bpffs))
        amap.pin(bpffs / "first")
        other.pin(bpffs / "second")
        os.rename(bpffs / "first", bpffs / "second")
        assert pinned_id(bpffs / "second") == amap.info().id
        assert set(os.listdir(bpffs)) - before == {"second"}


def test_symlink_and_hard_link_reach_the_same_map(amap: BpfMap, bpffs: Path) -> None:
    amap.pin(bpffs / "m")
    os.symlink(bpffs / "m", bpffs / "sym")
    os.link(bpffs / "m", bpffs / "hard")
    assert pinned_id(bpffs / "sym") == pinned_id(bpffs / "hard") == amap.info().id
    os.unlink(bpffs / "m")
    assert pinned_id(bpffs / "hard") == amap.info().id, "the hard link still pins the map"
    assert enoent(bpffs / "sym"), "a dangling symlink"


def test_unlink_and_rmdir(amap: BpfMap, bpffs: Path) -> None:
    before = os.listdir(bpffs)
    (bpffs / "d").mkdir()
    amap.pin(bpffs / "d" / "m")
    with pytest.raises(OSError) as info:
        os.rmdir(bpffs / "d")
    assert info.value.errno == errno.ENOTEMPTY
    os.unlink(bpffs / "d" / "m")
    assert enoent(bpffs / "d" / "m")
    os.rmdir(bpffs / "d")
    assert os.listdir(bpffs) == before
    amap.pin(bpffs / "again")  # the map itself is untouched by the unlink
    assert pinned_id(bpffs / "again") == amap.info().id
