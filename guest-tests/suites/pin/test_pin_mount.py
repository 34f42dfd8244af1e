"""bpffs instances: each mount is a new, independent filesystem."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pinkit import wait_map_gone

from bpfmap import BpfError, BpfMap, MapType, obj_get
from bpfmap.bpffs import BPF_FS_MAGIC, fs_magic, mount_bpffs, umount

Recorder = Callable[[str, object], None]


@pytest.fixture
def second_bpffs(tmp_path: Path) -> Iterator[Path]:
    """Another bpffs instance, mounted with mode=0700."""
    target = tmp_path / "second"
    target.mkdir()
    mount_bpffs(target, "mode=0700")
    try:
        yield target
    finally:
        if fs_magic(target) == BPF_FS_MAGIC:
            umount(target, detach=True)


# With CONFIG_BPF_PRELOAD the kernel itself pins two iterator links in every
# new instance (names user space could not create: they contain a dot).
PRELOADED = {"maps.debug", "progs.debug"}


def test_mount_gives_a_bpffs_with_a_sticky_world_writable_root(
    bpffs: Path, record_property: Recorder
) -> None:
    assert fs_magic(bpffs) == BPF_FS_MAGIC
    assert os.stat(bpffs).st_mode == 0o41777, oct(os.stat(bpffs).st_mode)
    initial = set(os.listdir(bpffs))
    record_property("preloaded_entries", sorted(initial))
    assert initial in (set(), PRELOADED), "a new instance starts empty (but for preloaded iterators)"


def test_mode_option_sets_the_root_mode(second_bpffs: Path) -> None:
    assert os.stat(second_bpffs).st_mode == 0o41700, oct(os.stat(second_bpffs).st_mode)


def test_two_instances_are_independent(bpffs: Path, second_bpffs: Path) -> None:
    assert os.stat(bpffs).st_dev != os.stat(second_bpffs).st_dev
    with BpfMap.create(MapType.ARRAY, 4, 4, 1) as a, BpfMap.create(MapType.ARRAY, 4, 4, 1) as b:
        a.pin(bpffs / "m")
        assert not (second_bpffs / "m").exists()
        with pytest.raises(BpfError) as info:
            obj_get(second_bpffs / "m")
        assert info.value.errno == errno.ENOENT, "a pin leaked into the other instance"
        b.pin(second_bpffs / "m")  # the same name, another map: no EEXIST
        with BpfMap.from_pin(bpffs / "m") as got_a, BpfMap.from_pin(second_bpffs / "m") as got_b:
            assert got_a.info().id == a.info().id
            assert got_b.info().id == b.info().id
        umount(second_bpffs)
        with BpfMap.from_pin(bpffs / "m") as still:
            assert still.info().id == a.info().id, "unmounting one instance touched the other"


def test_unmounting_drops_the_pins(second_bpffs: Path, record_property: Recorder) -> None:
    """The pins live in the instance: after umount (and no fd) the map is freed."""
    with BpfMap.create(MapType.HASH, 4, 4, 4) as m:
        m.pin(second_bpffs / "m")
        map_id = m.info().id
    umount(second_bpffs)
    record_property("seconds_until_id_gone", round(wait_map_gone(map_id), 3))
