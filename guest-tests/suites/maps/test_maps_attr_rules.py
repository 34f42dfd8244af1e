"""The rules of ``union bpf_attr`` that every bpf(2) call goes through.

From the syscall patch (seed 002) and what became of it: the ``size`` bound,
the zero tail past the kernel's union, zero-filling of a short ``size``,
CHECK_ATTR (zero bytes after each command's last field), bad fds, unknown
commands, and the privilege / memlock rules.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

import bpfmap
from bpfmap import EBADFD, BpfError, BpfMap, Cmd, Features, MapType, attrs, bpf_raw
from mapsuite import (
    ELEM_SIZE,
    PAGE_SIZE,
    Recorder,
    elem_attr,
    errno_of,
    k,
    need_cmd,
    run_in_child,
    v,
)

UNPRIV_SYSCTL = "/proc/sys/kernel/unprivileged_bpf_disabled"
NOBODY = 65534


def _freeze_attr_errno(fd: int, offset: int) -> int:
    """Errno of MAP_FREEZE with one non-zero byte at ``offset`` (size PAGE_SIZE)."""
    attr = elem_attr(fd, size=PAGE_SIZE)
    attr[offset] = 1
    return errno_of(lambda: bpf_raw(Cmd.MAP_FREEZE, attr, PAGE_SIZE))


@pytest.fixture(scope="module")
def union_size() -> int:
    """sizeof(union bpf_attr) of this kernel, found by trial.

    FREEZE's last field is map_fd (bytes 0-3), so a non-zero byte anywhere
    after it is EINVAL (CHECK_ATTR) while it lies inside the kernel's union and
    E2BIG (tail check) beyond it: the first E2BIG offset is the union's size.
    """
    with BpfMap.create(MapType.HASH, 4, 4, 1) as m:
        lo, hi = 4, PAGE_SIZE - 1  # lo: known EINVAL-or-inside, hi: known beyond
        assert _freeze_attr_errno(m.fd, hi) == errno.E2BIG
        assert _freeze_attr_errno(m.fd, lo) == errno.EINVAL
        while hi - lo > 1:
            mid = (lo + hi) // 2
            err = _freeze_attr_errno(m.fd, mid)
            assert err in (errno.EINVAL, errno.E2BIG), bpfmap.errno_name(err)
            if err == errno.E2BIG:
                hi = mid
            else:
                lo = mid
        return hi


def test_union_size_is_consistent(union_size: int, record_property: Recorder) -> None:
    record_property("union_bpf_attr_size", union_size)
    # Every byte inside the union after FREEZE's map_fd is EINVAL, every byte
    # outside E2BIG: check both sides of the boundary and a spread of offsets.
    assert union_size % 8 == 0, "the union is 8-byte aligned (it holds __aligned_u64)"
    assert union_size >= attrs.MAP_CREATE.size
    with BpfMap.create(MapType.HASH, 4, 4, 1) as m:
        for off in (4, 8, union_size // 2, union_size - 1):
            assert _freeze_attr_errno(m.fd, off) == errno.EINVAL, off
        for off in (union_size, union_size + 1, PAGE_SIZE // 2, PAGE_SIZE - 1):
            assert _freeze_attr_errno(m.fd, off) == errno.E2BIG, off
        m.update(k(1), k(1))  # none of the refused freezes took effect


@pytest.mark.parametrize("cmd", [Cmd.MAP_CREATE, Cmd.MAP_LOOKUP_ELEM])
def test_size_above_page_size_is_e2big(cmd: Cmd) -> None:
    with BpfMap.create(MapType.HASH, 4, 8, 4) as m:
        m.update(k(1), v(7))
        key = ctypes.create_string_buffer(k(1), 4)
        val = ctypes.create_string_buffer(8)
        if cmd == Cmd.MAP_CREATE:
            attr = bytearray(attrs.pack_map_create(MapType.HASH, 4, 4, 1))
        else:
            attr = elem_attr(m.fd, ctypes.addressof(key), ctypes.addressof(val))
        assert errno_of(lambda: bpf_raw(cmd, attr, PAGE_SIZE + 1)) == errno.E2BIG
        assert errno_of(lambda: bpf_raw(cmd, attr, 1 << 20)) == errno.E2BIG
        # The same bytes with size == PAGE_SIZE (zero tail) are accepted.
        ret = bpf_raw(cmd, attr, PAGE_SIZE)
        if cmd == Cmd.MAP_CREATE:
            os.close(ret)
        else:
            assert val.raw == v(7)


def test_nonzero_byte_past_the_union_is_e2big(union_size: int) -> None:
    attr = bytearray(attrs.pack_map_create(MapType.HASH, 4, 4, 1)) + bytearray(PAGE_SIZE)
    os.close(bpf_raw(Cmd.MAP_CREATE, attr, PAGE_SIZE))  # all-zero tail: fine
    for off in (union_size, PAGE_SIZE - 1):
        bad = bytearray(attr)
        bad[off] = 0x80
        assert errno_of(lambda: bpf_raw(Cmd.MAP_CREATE, bad, PAGE_SIZE)) == errno.E2BIG, off
    # A size that stops before the non-zero byte never shows it to the kernel.
    bad = bytearray(attr)
    bad[PAGE_SIZE - 1] = 0x80
    os.close(bpf_raw(Cmd.MAP_CREATE, bad, union_size))


def test_short_size_is_zero_filled() -> None:
    # Everything after max_entries is garbage that would be refused (unknown
    # flag bits, a bad name), but size=16 stops the kernel from reading it.
    attr = bytearray(attrs.pack_map_create(MapType.HASH, 4, 8, 3, 1 << 30, name=b"bad-name"))
    fd = bpf_raw(Cmd.MAP_CREATE, attr, 16)
    with BpfMap.from_fd(fd) as m:
        info = m.info()
        assert (info.type, info.key_size, info.value_size, info.max_entries) == (
            MapType.HASH, 4, 8, 3)
        assert info.map_flags == 0 and info.name == ""
        m.update(k(1), v(5))
        # LOOKUP with size 24: the flags field (bytes 24-31) holds garbage
        # the kernel must not see, so it reads flags as 0.
        key = ctypes.create_string_buffer(k(1), 4)
        val = ctypes.create_string_buffer(8)
        la = elem_attr(m.fd, ctypes.addressof(key), ctypes.addressof(val), flags=0xFF)
        assert errno_of(lambda: bpf_raw(Cmd.MAP_LOOKUP_ELEM, la, ELEM_SIZE)) == errno.EINVAL
        bpf_raw(Cmd.MAP_LOOKUP_ELEM, la, 24)
        assert val.raw == v(5)


# -- CHECK_ATTR: a non-zero byte after each command's last field ------------


@dataclass
class AttrCase:
    """One command's attributes, the end of its last field, and what the
    all-zero-tail call must do ("ok" or an errno that is not EINVAL)."""

    attr: bytearray
    end: int
    control: str


class Ctx:
    """Live objects the attribute cases point into (kept referenced)."""

    def __init__(self) -> None:
        self.hmap = BpfMap.create(MapType.HASH, 4, 8, 8)
        self.hmap.update(k(1), v(1))
        self.queue = BpfMap.create(MapType.QUEUE, 0, 8, 4)
        self.queue.update(None, v(2))
        self.key = ctypes.create_string_buffer(k(1), 4)
        self.val = ctypes.create_string_buffer(8)
        self.next = ctypes.create_string_buffer(4)
        self.info = ctypes.create_string_buffer(256)
        self.keys = ctypes.create_string_buffer(4 * 8)
        self.vals = ctypes.create_string_buffer(8 * 8)
        self.empty_path = ctypes.create_string_buffer(b"")

    def close(self) -> None:
        self.hmap.close()
        self.queue.close()


def _case(ctx: Ctx, cmd: Cmd) -> AttrCase:
    a = ctypes.addressof
    fd = ctx.hmap.fd
    if cmd == Cmd.MAP_CREATE:  # last field moves with the kernel: only the end is tested
        return AttrCase(bytearray(attrs.pack_map_create(MapType.HASH, 4, 4, 1)), -1, "ok")
    if cmd == Cmd.MAP_LOOKUP_ELEM:
        return AttrCase(elem_attr(fd, a(ctx.key), a(ctx.val)), 32, "ok")
    if cmd == Cmd.MAP_UPDATE_ELEM:
        return AttrCase(elem_attr(fd, a(ctx.key), a(ctx.val)), 32, "ok")
    if cmd == Cmd.MAP_DELETE_ELEM:  # last field: key, so value and flags count
        return AttrCase(elem_attr(fd, a(ctx.key)), 16, "ok")
    if cmd == Cmd.MAP_GET_NEXT_KEY:
        return AttrCase(elem_attr(fd, a(ctx.key), a(ctx.next)), 24, "ENOENT")
    if cmd == Cmd.MAP_LOOKUP_AND_DELETE_ELEM:
        return AttrCase(elem_attr(ctx.queue.fd, 0, a(ctx.val)), 32, "ok")
    if cmd == Cmd.MAP_FREEZE:
        return AttrCase(elem_attr(fd), 4, "ok")
    if cmd == Cmd.MAP_GET_NEXT_ID:
        return AttrCase(bytearray(attrs.pack_get_id(0)), 8, "ok")
    if cmd == Cmd.MAP_GET_FD_BY_ID:
        return AttrCase(bytearray(attrs.pack_get_id(ctx.hmap.info().id)), 12, "ok")
    if cmd == Cmd.OBJ_GET_INFO_BY_FD:
        return AttrCase(bytearray(attrs.pack_info(fd, 256, a(ctx.info))), 16, "ok")
    if cmd in (Cmd.OBJ_PIN, Cmd.OBJ_GET):  # empty path: ENOENT, after the attr checks
        bpf_fd = fd if cmd == Cmd.OBJ_PIN else 0  # OBJ_GET wants bpf_fd == 0
        return AttrCase(bytearray(attrs.pack_obj(a(ctx.empty_path), bpf_fd)), 16, "ENOENT")
    if cmd == Cmd.MAP_LOOKUP_BATCH:  # empty cursor, whole map fits: ENOENT at the end
        return AttrCase(bytearray(attrs.pack_batch(fd, 0, a(ctx.next), a(ctx.keys),
                                                   a(ctx.vals), 8)), 56, "ENOENT")
    raise AssertionError(cmd)


CHECKED_COMMANDS = [
    Cmd.MAP_CREATE, Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_UPDATE_ELEM, Cmd.MAP_DELETE_ELEM,
    Cmd.MAP_GET_NEXT_KEY, Cmd.MAP_LOOKUP_AND_DELETE_ELEM, Cmd.MAP_FREEZE,
    Cmd.MAP_GET_NEXT_ID, Cmd.MAP_GET_FD_BY_ID, Cmd.OBJ_GET_INFO_BY_FD, Cmd.OBJ_PIN,
    Cmd.OBJ_GET, Cmd.MAP_LOOKUP_BATCH,
]


@pytest.fixture
def ctx() -> Iterator[Ctx]:
    c = Ctx()
    try:
        yield c
    finally:
        c.close()


@pytest.mark.parametrize("cmd", CHECKED_COMMANDS, ids=lambda c: c.name)
def test_nonzero_byte_after_last_field_is_einval(
    cmd: Cmd, ctx: Ctx, union_size: int, features: Features
) -> None:
    need_cmd(features, cmd)
    case = _case(ctx, cmd)
    attr = case.attr + bytearray(union_size - len(case.attr))
    offsets = [union_size - 1] if case.end < 0 else [case.end, case.end + 1, union_size - 1]
    # The refused calls first: if one were acted on (a freeze, a delete), the
    # control call below would notice.
    for off in offsets:
        bad = bytearray(attr)
        bad[off] = 0x01
        err = errno_of(lambda: bpf_raw(cmd, bad, union_size))
        assert err == errno.EINVAL, f"byte {off}: {bpfmap.errno_name(err)}"
    try:
        ret = bpf_raw(cmd, attr, union_size)
    except BpfError as e:
        assert e.errname == case.control, f"zero tail: {e}"
    else:
        assert case.control == "ok"
        if cmd in (Cmd.MAP_CREATE, Cmd.MAP_GET_FD_BY_ID):
            os.close(ret)
    if cmd == Cmd.MAP_DELETE_ELEM:
        assert errno_of(lambda: ctx.hmap.lookup(k(1))) == errno.ENOENT


def test_delete_with_flags_or_value_is_einval() -> None:
    # DELETE_ELEM's last field is key: the fact sheet's "flags must be 0".
    with BpfMap.create(MapType.HASH, 4, 8, 4) as m:
        m.update(k(1), v(1))
        key = ctypes.create_string_buffer(k(1), 4)
        val = ctypes.create_string_buffer(8)
        for attr in (elem_attr(m.fd, ctypes.addressof(key), flags=2),
                     elem_attr(m.fd, ctypes.addressof(key), ctypes.addressof(val))):
            assert errno_of(lambda: bpf_raw(Cmd.MAP_DELETE_ELEM, attr)) == errno.EINVAL
        assert m.lookup(k(1)) == v(1)
        bpf_raw(Cmd.MAP_DELETE_ELEM, elem_attr(m.fd, ctypes.addressof(key)))
        assert errno_of(lambda: m.lookup(k(1))) == errno.ENOENT


def test_lookup_flags_field_is_read(record_property: Recorder) -> None:
    # Since 5.1 LOOKUP_ELEM's last field is flags: a non-zero byte there is a
    # flag (EINVAL for an unknown one), not padding; bytes after it: CHECK_ATTR.
    with BpfMap.create(MapType.HASH, 4, 8, 4) as m:
        m.update(k(1), v(3))
        key = ctypes.create_string_buffer(k(1), 4)
        val = ctypes.create_string_buffer(8)
        attr = elem_attr(m.fd, ctypes.addressof(key), ctypes.addressof(val), size=40)
        bpf_raw(Cmd.MAP_LOOKUP_ELEM, attr, 40)
        assert val.raw == v(3)
        for off in (24, 31, 32):
            bad = bytearray(attr)
            bad[off] = 0x10
            assert errno_of(lambda: bpf_raw(Cmd.MAP_LOOKUP_ELEM, bad, 40)) == errno.EINVAL


def test_freeze_with_key_is_einval() -> None:
    # FREEZE's last field is map_fd: key/value/flags bytes are refused and the
    # map stays writable.
    with BpfMap.create(MapType.HASH, 4, 8, 4) as m:
        for off in (8, 16, 24):
            attr = elem_attr(m.fd)
            attr[off] = 1
            assert errno_of(lambda: bpf_raw(Cmd.MAP_FREEZE, attr)) == errno.EINVAL
        m.update(k(1), v(1))


# -- bad fds and unknown commands --------------------------------------------


def _closed_fd() -> int:
    """An fd number that is certainly closed right now."""
    fd = os.dup(0)
    os.close(fd)
    return fd


FD_COMMANDS = [
    Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_UPDATE_ELEM, Cmd.MAP_DELETE_ELEM,
    Cmd.MAP_GET_NEXT_KEY, Cmd.MAP_LOOKUP_AND_DELETE_ELEM, Cmd.MAP_FREEZE,
]


def _fd_attr(cmd: Cmd, fd: int, bufs: list[ctypes.Array[ctypes.c_char]]) -> bytearray:
    key = ctypes.create_string_buffer(4)
    val = ctypes.create_string_buffer(8)
    bufs += [key, val]
    a = ctypes.addressof
    if cmd == Cmd.MAP_FREEZE:
        return elem_attr(fd)
    if cmd == Cmd.MAP_DELETE_ELEM:
        return elem_attr(fd, a(key))
    return elem_attr(fd, a(key), a(val))


@pytest.mark.parametrize("cmd", FD_COMMANDS, ids=lambda c: c.name)
def test_closed_fd_is_ebadf(cmd: Cmd) -> None:
    bufs: list[ctypes.Array[ctypes.c_char]] = []
    for fd in (_closed_fd(), 0xFFFFFFFF):  # a freed number, and -1
        err = errno_of(lambda: bpf_raw(cmd, _fd_attr(cmd, fd, bufs)))
        assert err == errno.EBADF, bpfmap.errno_name(err)


@pytest.mark.parametrize("cmd", FD_COMMANDS, ids=lambda c: c.name)
def test_non_map_fd_is_einval(cmd: Cmd) -> None:
    bufs: list[ctypes.Array[ctypes.c_char]] = []
    r, w = os.pipe()
    try:
        with open("/proc/self/status", "rb") as f:
            for fd in (r, f.fileno()):
                err = errno_of(lambda: bpf_raw(cmd, _fd_attr(cmd, fd, bufs)))
                assert err == errno.EINVAL, bpfmap.errno_name(err)
    finally:
        os.close(r)
        os.close(w)


def test_get_info_by_fd_bad_fds(record_property: Recorder) -> None:
    buf = ctypes.create_string_buffer(256)
    closed = _closed_fd()
    err = errno_of(lambda: bpf_raw(Cmd.OBJ_GET_INFO_BY_FD,
                                   attrs.pack_info(closed, 256, ctypes.addressof(buf))))
    record_property("get_info_closed_fd_errno", bpfmap.errno_name(err))
    assert err == EBADFD, "GET_INFO_BY_FD on a closed fd is EBADFD, not EBADF"
    r, w = os.pipe()
    try:
        err = errno_of(lambda: bpf_raw(Cmd.OBJ_GET_INFO_BY_FD,
                                       attrs.pack_info(r, 256, ctypes.addressof(buf))))
        assert err == errno.EINVAL
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("cmd", [1000, 0x7FFFFFFF, -1])
def test_unknown_command_is_einval(cmd: int) -> None:
    assert errno_of(lambda: bpf_raw(cmd, bytes(64))) == errno.EINVAL


# -- privilege and memory accounting -------------------------------------------


def _as_nobody(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)  # drops every capability
        return fn()
    return run


def test_unprivileged_is_eperm(record_property: Recorder) -> None:
    with open(UNPRIV_SYSCTL, encoding="ascii") as f:
        disabled = int(f.read())
    record_property("unprivileged_bpf_disabled", disabled)
    if disabled == 0:
        pytest.skip("kernel.unprivileged_bpf_disabled is 0 here: the EPERM rule does not apply")
    with BpfMap.create(MapType.HASH, 4, 8, 4) as m:
        m.update(k(1), v(1))

        def create() -> str:
            try:
                BpfMap.create(MapType.HASH, 4, 8, 4).close()
            except BpfError as e:
                return e.errname
            return "ok"

        def lookup_inherited() -> str:
            try:
                m.lookup(k(1))
            except BpfError as e:
                return e.errname
            return "ok"

        assert run_in_child(_as_nobody(create)) == "EPERM"
        # Older kernels refuse every command to the unprivileged caller;
        # newer ones check only where objects are made (map_create, prog_load),
        # so an inherited map fd keeps working. Both are accepted, and recorded.
        inherited = run_in_child(_as_nobody(lookup_inherited))
        record_property("unprivileged_lookup_on_inherited_fd", inherited)
        assert inherited in ("EPERM", "ok")
        assert run_in_child(create) == "ok", "the same call as root must work"


def test_memlock_rlimit_or_memcg(record_property: Recorder) -> None:
    """Before 5.11 maps were charged to RLIMIT_MEMLOCK (EPERM over it),
    since then to the memory cgroup: with the limit at 0 a map is either
    refused with EPERM, or created. Which one is recorded."""

    def create_with_memlock(limit: int) -> str:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (limit, limit))
        try:
            BpfMap.create(MapType.HASH, 4, 64, 1024).close()
        except BpfError as e:
            return e.errname
        return "ok"

    at_zero = run_in_child(lambda: create_with_memlock(0))
    record_property("create_with_memlock_0", at_zero)
    assert at_zero in ("ok", "EPERM")
    if at_zero == "EPERM":  # rlimit accounting: a sufficient limit must work
        assert run_in_child(lambda: create_with_memlock(resource.RLIM_INFINITY)) == "ok"
