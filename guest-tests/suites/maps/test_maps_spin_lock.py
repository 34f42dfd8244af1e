"""BPF_F_LOCK (5.1): the one LOOKUP/UPDATE flag beyond NOEXIST/EXIST.

It needs a value with a ``struct bpf_spin_lock``, which the kernel learns
from BTF; the BTF blob below is built by hand (int, bpf_spin_lock, and
``struct locked { struct bpf_spin_lock lock; int cnt; }``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import struct
from collections.abc import Iterator

import pytest

from bpfmap import BpfError, BpfMap, Cmd, Features, MapType, UpdateFlag, attrs, bpf_raw
from mapsuite import Recorder, errno_of, k

BPF_BTF_LOAD = 18
F_LOCK = int(UpdateFlag.F_LOCK)
KIND_INT, KIND_STRUCT = 1, 4

STRINGS = b"\0int\0bpf_spin_lock\0val\0locked\0lock\0cnt\0"


def _str(name: bytes) -> int:
    return STRINGS.index(b"\0" + name + b"\0") + 1


def _btf_blob() -> bytes:
    def type_(name: bytes, kind: int, vlen: int, size: int) -> bytes:
        return struct.pack("<III", _str(name) if name else 0, kind << 24 | vlen, size)

    def member(name: bytes, type_id: int, bit_off: int) -> bytes:
        return struct.pack("<III", _str(name), type_id, bit_off)

    types = b"".join([
        type_(b"int", KIND_INT, 0, 4), struct.pack("<I", 1 << 24 | 32),  # [1] signed 32-bit
        type_(b"bpf_spin_lock", KIND_STRUCT, 1, 4), member(b"val", 1, 0),  # [2]
        type_(b"locked", KIND_STRUCT, 2, 8), member(b"lock", 2, 0), member(b"cnt", 1, 32),  # [3]
    ])
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(STRINGS))
    return header + types + STRINGS


def load_btf() -> tuple[int | None, str]:
    """BTF_LOAD the blob: (fd, "") or (None, errno name + verifier log)."""
    raw = _btf_blob()
    blob = ctypes.create_string_buffer(raw, len(raw))
    log = ctypes.create_string_buffer(4096)
    attr = struct.pack("<QQIII", ctypes.addressof(blob), ctypes.addressof(log), len(raw), len(log), 1)
    try:
        return bpf_raw(BPF_BTF_LOAD, attr), ""
    except BpfError as e:
        return None, f"{e.errname}: {log.value.decode(errors='replace')}"


def create_locked(map_type: MapType, btf_fd: int) -> BpfMap:
    """A map whose 8-byte value is ``struct locked`` (BTF type 3), key int (1)."""
    attr = attrs.MAP_CREATE.pack(map_type, 4, 8, 4, 0, 0, 0, b"locked", 0, btf_fd, 1, 3, 0, 0)
    fd = bpf_raw(Cmd.MAP_CREATE, attr)
    return BpfMap(fd, map_type, 4, 8, 4)


def val(cnt: int, lock: int = 0) -> bytes:
    return struct.pack("<Ii", lock, cnt)


@contextlib.contextmanager
def loaded_btf(skip_note: str = "") -> Iterator[int]:
    """The blob loaded, closed afterwards. An unknown command is EINVAL before any log is
    written, so that kernel skips; a kernel with BTF_LOAD that refuses this blob is a failure."""
    btf_fd, why = load_btf()
    if btf_fd is None:
        assert why == "EINVAL: ", f"BTF_LOAD refused the blob: {why}"
        pytest.skip(f"kernel lacks BPF_BTF_LOAD (EINVAL, empty log){skip_note}")
    try:
        yield btf_fd
    finally:
        os.close(btf_fd)


@pytest.fixture(params=[MapType.HASH, MapType.ARRAY], ids=lambda t: t.name)
def locked(request: pytest.FixtureRequest, features: Features) -> Iterator[BpfMap]:
    with loaded_btf(": no spin-lock values") as btf_fd, create_locked(request.param, btf_fd) as m:
        yield m


def test_f_lock_update_and_lookup(locked: BpfMap) -> None:
    locked.update(k(1), val(5), F_LOCK)
    assert locked.lookup(k(1), F_LOCK)[4:] == val(5)[4:]
    # The lock word is the kernel's: what user space writes there is not
    # stored, and lookups show it as zero.
    locked.update(k(1), val(6, lock=0xFFFFFFFF), F_LOCK)
    assert locked.lookup(k(1), F_LOCK) == val(6)
    assert locked.lookup(k(1)) == val(6)


def test_f_lock_with_other_flags(locked: BpfMap) -> None:
    locked.update(k(1), val(1))
    for flags in (F_LOCK | int(UpdateFlag.NOEXIST), F_LOCK | 8):
        assert errno_of(lambda: locked.lookup(k(1), flags)) == errno.EINVAL
    # Update takes F_LOCK combined with NOEXIST/EXIST; NOEXIST on a present key:
    assert errno_of(lambda: locked.update(k(1), val(2), F_LOCK | int(UpdateFlag.NOEXIST))) == errno.EEXIST
    locked.update(k(1), val(3), F_LOCK | int(UpdateFlag.EXIST))
    assert locked.lookup(k(1), F_LOCK) == val(3)
    assert errno_of(lambda: locked.update(k(1), val(4), F_LOCK | 8)) == errno.EINVAL
    assert locked.lookup(k(1)) == val(3)


def test_f_lock_lookup_and_delete(locked: BpfMap, record_property: Recorder) -> None:
    locked.update(k(2), val(9))
    if locked.map_type == MapType.ARRAY:
        assert errno_of(lambda: locked.lookup_and_delete(k(2), F_LOCK)) == 524
        return
    result = None
    try:
        got = locked.lookup_and_delete(k(2), F_LOCK)
    except BpfError as e:
        result = e.errname
        record_property("hash_lookup_and_delete_f_lock", result)
        if e.errno == 524:
            pytest.skip("kernel lacks LOOKUP_AND_DELETE for hash maps (ENOTSUPP)")
        raise
    record_property("hash_lookup_and_delete_f_lock", "ok")
    assert got == val(9)
    assert errno_of(lambda: locked.lookup(k(2))) == errno.ENOENT


def _btf_object_id(btf_fd: int) -> int:
    """The ID of a loaded BTF object (struct bpf_btf_info: btf, btf_size, id)."""
    buf = ctypes.create_string_buffer(64)
    bpf_raw(Cmd.OBJ_GET_INFO_BY_FD, attrs.pack_info(btf_fd, 64, ctypes.addressof(buf)))
    btf_id: int = struct.unpack_from("<I", buf.raw, 12)[0]
    return btf_id


def test_info_reports_the_btf(features: Features, record_property: Recorder) -> None:
    """A map made with BTF reports the BTF object's ID and the key/value type IDs
    it was given; the vmlinux fields (and anything else in the tail) are the
    kernel's, recorded."""
    with loaded_btf() as btf_fd, create_locked(MapType.HASH, btf_fd) as m:
        buf = ctypes.create_string_buffer(256)
        attr = bytearray(attrs.pack_info(m.fd, 256, ctypes.addressof(buf)))
        bpf_raw(Cmd.OBJ_GET_INFO_BY_FD, attr)
        # after type..name[16] (40 bytes): ifindex, btf_vmlinux_value_type_id,
        # netns_dev, netns_ino, btf_id, btf_key_type_id, btf_value_type_id, btf_vmlinux_id
        fields = struct.unpack_from("<IIQQIIII", buf.raw, 40)
        btf_id, key_type, value_type = fields[4:7]
        assert btf_id == _btf_object_id(btf_fd) and btf_id > 0
        assert (key_type, value_type) == (1, 3)
        record_property("btf_map_info_vmlinux_fields", {
            "btf_vmlinux_value_type_id": fields[1], "btf_vmlinux_id": fields[7]})
