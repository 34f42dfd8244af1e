"""Which errno the kernel answers when one call breaks two rules at once.

Each case is a call that breaks rule A and rule B together, paired with two
control calls that break only A and only B, so each rule's own errno is
shown first. The kernel may check the rules in either order; the errno it
gave for both is recorded (property ``errno_first``, e.g. "EPERM (read-only
fd)"), so two kernels that check in another order differ there. Only pairs
whose two errnos differ are listed: the same errno would not say which came
first.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import bpfmap
import pytest
from bpfmap import (
    ENOTSUPP,
    BpfMap,
    Cmd,
    Features,
    MapFlag,
    MapType,
    attrs,
    bpf_raw,
    map_get_fd_by_id,
)
from mapsuite import (
    PAGE_SIZE,
    U32,
    Recorder,
    elem_attr,
    errno_of,
    k,
    need_cmd,
    need_type,
    run_in_child,
    v,
)

RD, WR, NP = int(MapFlag.RDONLY), int(MapFlag.WRONLY), int(MapFlag.NO_PREALLOC)
BIG = 1 << 30  # a value no kernel allocates (E2BIG)
PCPU_TOO_BIG = 32768 + 8  # above PCPU_MIN_UNIT_SIZE (E2BIG for per-CPU values)
BAD_FLAGS = 3  # NOEXIST|EXIST: EINVAL everywhere
NOBODY = 65534
Call = Callable[[], object]


@dataclass(frozen=True)
class Rule:
    """One rule the call breaks: what it is, the call that breaks only it, its errno."""

    text: str
    alone: Call
    errno: int


@dataclass(frozen=True)
class Clash:
    both: Call
    a: Rule
    b: Rule


# A case builds its maps on ``stack`` (closed after the test) and returns the clash.
Case = Callable[[contextlib.ExitStack], Clash]


def _map(stack: contextlib.ExitStack, map_type: MapType, key: int, value: int, max_entries: int,
         flags: int = 0, inner_map_fd: int = 0) -> BpfMap:
    return stack.enter_context(BpfMap.create(map_type, key, value, max_entries, flags, inner_map_fd=inner_map_fd))


def _create(map_type: MapType, key: int, value: int, max_entries: int, flags: int = 0) -> Call:
    return lambda: BpfMap.create(map_type, key, value, max_entries, flags).close()


def _reopen(stack: contextlib.ExitStack, m: BpfMap, open_flags: int) -> BpfMap:
    """Another fd of ``m`` with ``open_flags`` (RDONLY/WRONLY)."""
    return stack.enter_context(BpfMap.from_id(m.info().id, open_flags))


def _frozen(stack: contextlib.ExitStack, map_type: MapType, key: int, value: int, max_entries: int,
            fill: Callable[[BpfMap], None] = lambda m: None) -> BpfMap:
    m = _map(stack, map_type, key, value, max_entries)
    fill(m)
    m.freeze()
    return m


# -- MAP_CREATE -----------------------------------------------------------------


def create_zero_key_and_huge_value(stack: contextlib.ExitStack) -> Clash:
    return Clash(_create(MapType.HASH, 0, BIG, 4),
                 Rule("key_size 0", _create(MapType.HASH, 0, 8, 4), errno.EINVAL),
                 Rule("value too big", _create(MapType.HASH, 4, BIG, 4), errno.E2BIG))


def create_lru_noprealloc_and_zero_max_entries(stack: contextlib.ExitStack) -> Clash:
    return Clash(_create(MapType.LRU_HASH, 4, 8, 0, NP),
                 Rule("LRU without prealloc", _create(MapType.LRU_HASH, 4, 8, 4, NP), ENOTSUPP),
                 Rule("max_entries 0", _create(MapType.LRU_HASH, 4, 8, 0), errno.EINVAL))


def create_lru_noprealloc_and_huge_value(stack: contextlib.ExitStack) -> Clash:
    return Clash(_create(MapType.LRU_HASH, 4, BIG, 4, NP),
                 Rule("LRU without prealloc", _create(MapType.LRU_HASH, 4, 8, 4, NP), ENOTSUPP),
                 Rule("value too big", _create(MapType.LRU_HASH, 4, BIG, 4), errno.E2BIG))


def create_percpu_zero_key_and_value_above_pcpu_unit(stack: contextlib.ExitStack) -> Clash:
    return Clash(_create(MapType.PERCPU_HASH, 0, PCPU_TOO_BIG, 4),
                 Rule("key_size 0", _create(MapType.PERCPU_HASH, 0, 8, 4), errno.EINVAL),
                 Rule("per-CPU value too big", _create(MapType.PERCPU_HASH, 4, PCPU_TOO_BIG, 4), errno.E2BIG))


def create_array_key_8_and_value_above_pcpu_unit(stack: contextlib.ExitStack) -> Clash:
    return Clash(_create(MapType.PERCPU_ARRAY, 8, PCPU_TOO_BIG, 4),
                 Rule("array key_size 8", _create(MapType.PERCPU_ARRAY, 8, 8, 4), errno.EINVAL),
                 Rule("per-CPU value too big", _create(MapType.PERCPU_ARRAY, 4, PCPU_TOO_BIG, 4), errno.E2BIG))


def create_queue_key_4_and_huge_value(stack: contextlib.ExitStack) -> Clash:
    return Clash(_create(MapType.QUEUE, 4, BIG, 4),
                 Rule("queue key_size 4", _create(MapType.QUEUE, 4, 8, 4), errno.EINVAL),
                 Rule("value too big", _create(MapType.QUEUE, 0, BIG, 4), errno.E2BIG))


def create_outer_closed_template_and_value_size_8(stack: contextlib.ExitStack) -> Clash:
    inner = _map(stack, MapType.ARRAY, 4, 8, 2)
    closed = os.dup(0)
    os.close(closed)

    def outer(value_size: int, template: int) -> Call:
        return lambda: BpfMap.create(MapType.ARRAY_OF_MAPS, 4, value_size, 4, inner_map_fd=template).close()

    return Clash(outer(8, closed),
                 Rule("closed inner_map_fd", outer(4, closed), errno.EBADF),
                 Rule("outer value_size 8", outer(8, inner.fd), errno.EINVAL))


def create_size_above_page_and_bad_fields(stack: contextlib.ExitStack) -> Clash:
    bad = attrs.pack_map_create(MapType.HASH, 0, 8, 4)
    good = attrs.pack_map_create(MapType.HASH, 4, 8, 4)

    def create(attr: bytes, size: int) -> Call:
        return lambda: os.close(bpf_raw(Cmd.MAP_CREATE, attr, size))

    return Clash(create(bad, PAGE_SIZE + 1),
                 Rule("size > PAGE_SIZE", create(good, PAGE_SIZE + 1), errno.E2BIG),
                 Rule("key_size 0", create(bad, PAGE_SIZE), errno.EINVAL))


# -- element commands -----------------------------------------------------------


def update_rdonly_fd_and_bad_flags(stack: contextlib.ExitStack) -> Clash:
    ro = _map(stack, MapType.HASH, 4, 8, 4, RD)
    rw = _map(stack, MapType.HASH, 4, 8, 4)
    return Clash(lambda: ro.update(k(1), v(1), BAD_FLAGS),
                 Rule("read-only fd", lambda: ro.update(k(1), v(1)), errno.EPERM),
                 Rule("flags NOEXIST|EXIST", lambda: rw.update(k(1), v(1), BAD_FLAGS), errno.EINVAL))


def update_frozen_and_bad_flags(stack: contextlib.ExitStack) -> Clash:
    frozen = _frozen(stack, MapType.HASH, 4, 8, 4)
    rw = _map(stack, MapType.HASH, 4, 8, 4)
    return Clash(lambda: frozen.update(k(1), v(1), BAD_FLAGS),
                 Rule("frozen map", lambda: frozen.update(k(1), v(1)), errno.EPERM),
                 Rule("flags NOEXIST|EXIST", lambda: rw.update(k(1), v(1), BAD_FLAGS), errno.EINVAL))


def update_frozen_array_out_of_range(stack: contextlib.ExitStack) -> Clash:
    frozen = _frozen(stack, MapType.ARRAY, 4, 8, 4)
    rw = _map(stack, MapType.ARRAY, 4, 8, 4)
    return Clash(lambda: frozen.update(k(4), v(1)),
                 Rule("frozen map", lambda: frozen.update(k(0), v(1)), errno.EPERM),
                 Rule("index past max_entries", lambda: rw.update(k(4), v(1)), errno.E2BIG))


def update_rdonly_array_out_of_range(stack: contextlib.ExitStack) -> Clash:
    ro = _map(stack, MapType.ARRAY, 4, 8, 4, RD)
    rw = _map(stack, MapType.ARRAY, 4, 8, 4)
    return Clash(lambda: ro.update(k(4), v(1)),
                 Rule("read-only fd", lambda: ro.update(k(0), v(1)), errno.EPERM),
                 Rule("index past max_entries", lambda: rw.update(k(4), v(1)), errno.E2BIG))


def update_array_out_of_range_and_bad_flags(stack: contextlib.ExitStack) -> Clash:
    m = _map(stack, MapType.ARRAY, 4, 8, 4)
    return Clash(lambda: m.update(k(4), v(1), BAD_FLAGS),
                 Rule("index past max_entries", lambda: m.update(k(4), v(1)), errno.E2BIG),
                 Rule("flags NOEXIST|EXIST", lambda: m.update(k(0), v(1), BAD_FLAGS), errno.EINVAL))


def _full_hash(stack: contextlib.ExitStack, flags: int = 0) -> BpfMap:
    m = _map(stack, MapType.HASH, 4, 8, 4, flags)
    for i in range(4):
        m.update(k(i), v(i))
    return m


def update_full_hash_exist_on_missing_key(stack: contextlib.ExitStack) -> Clash:
    full = _full_hash(stack)
    roomy = _map(stack, MapType.HASH, 4, 8, 4)
    return Clash(lambda: full.update(k(9), v(9), int(bpfmap.UpdateFlag.EXIST)),
                 Rule("map full", lambda: full.update(k(9), v(9)), errno.E2BIG),
                 Rule("EXIST on a missing key", lambda: roomy.update(k(9), v(9), int(bpfmap.UpdateFlag.EXIST)),
                      errno.ENOENT))


def update_full_noprealloc_hash_exist_on_missing_key(stack: contextlib.ExitStack) -> Clash:
    full = _full_hash(stack, NP)
    roomy = _map(stack, MapType.HASH, 4, 8, 4, NP)
    return Clash(lambda: full.update(k(9), v(9), int(bpfmap.UpdateFlag.EXIST)),
                 Rule("map full", lambda: full.update(k(9), v(9)), errno.E2BIG),
                 Rule("EXIST on a missing key", lambda: roomy.update(k(9), v(9), int(bpfmap.UpdateFlag.EXIST)),
                      errno.ENOENT))


def update_full_hash_bad_flags(stack: contextlib.ExitStack) -> Clash:
    full = _full_hash(stack)
    roomy = _map(stack, MapType.HASH, 4, 8, 4)
    return Clash(lambda: full.update(k(9), v(9), BAD_FLAGS),
                 Rule("map full", lambda: full.update(k(9), v(9)), errno.E2BIG),
                 Rule("flags NOEXIST|EXIST", lambda: roomy.update(k(9), v(9), BAD_FLAGS), errno.EINVAL))


def lookup_wronly_fd_and_bad_flags(stack: contextlib.ExitStack) -> Clash:
    wo = _map(stack, MapType.HASH, 4, 8, 4, WR)
    wo.update(k(1), v(1))
    rw = _reopen(stack, wo, 0)
    return Clash(lambda: wo.lookup(k(1), int(bpfmap.UpdateFlag.NOEXIST)),
                 Rule("write-only fd", lambda: wo.lookup(k(1)), errno.EPERM),
                 Rule("lookup flag NOEXIST", lambda: rw.lookup(k(1), int(bpfmap.UpdateFlag.NOEXIST)), errno.EINVAL))


def lookup_wronly_fd_and_missing_key(stack: contextlib.ExitStack) -> Clash:
    wo = _map(stack, MapType.HASH, 4, 8, 4, WR)
    wo.update(k(1), v(1))
    rw = _reopen(stack, wo, 0)
    return Clash(lambda: wo.lookup(k(2)),
                 Rule("write-only fd", lambda: wo.lookup(k(1)), errno.EPERM),
                 Rule("missing key", lambda: rw.lookup(k(2)), errno.ENOENT))


def delete_array_via_rdonly_fd(stack: contextlib.ExitStack) -> Clash:
    array = _map(stack, MapType.ARRAY, 4, 8, 4)
    ro_hash = _map(stack, MapType.HASH, 4, 8, 4, RD)
    ro_array = _reopen(stack, array, RD)
    return Clash(lambda: ro_array.delete(k(0)),
                 Rule("read-only fd", lambda: ro_hash.delete(k(0)), errno.EPERM),
                 Rule("array delete", lambda: array.delete(k(0)), errno.EINVAL))


def delete_frozen_array(stack: contextlib.ExitStack) -> Clash:
    frozen = _frozen(stack, MapType.ARRAY, 4, 8, 4)
    frozen_hash = _frozen(stack, MapType.HASH, 4, 8, 4, lambda m: m.update(k(0), v(0)))
    array = _map(stack, MapType.ARRAY, 4, 8, 4)
    return Clash(lambda: frozen.delete(k(0)),
                 Rule("frozen map", lambda: frozen_hash.delete(k(0)), errno.EPERM),
                 Rule("array delete", lambda: array.delete(k(0)), errno.EINVAL))


def delete_frozen_hash_missing_key(stack: contextlib.ExitStack) -> Clash:
    frozen = _frozen(stack, MapType.HASH, 4, 8, 4, lambda m: m.update(k(0), v(0)))
    rw = _map(stack, MapType.HASH, 4, 8, 4)
    return Clash(lambda: frozen.delete(k(5)),
                 Rule("frozen map", lambda: frozen.delete(k(0)), errno.EPERM),
                 Rule("missing key", lambda: rw.delete(k(5)), errno.ENOENT))


def _write_only_get_next_key(stack: contextlib.ExitStack) -> Rule:
    """The write-only fd rule alone: GET_NEXT_KEY through a write-only fd of a hash map with a key."""
    wo_hash = _map(stack, MapType.HASH, 4, 8, 4, WR)
    wo_hash.update(k(1), v(1))
    return Rule("write-only fd", lambda: wo_hash.get_next_key(), errno.EPERM)


def get_next_key_queue_via_wronly_fd(stack: contextlib.ExitStack) -> Clash:
    queue = _map(stack, MapType.QUEUE, 0, 8, 4)
    queue.update(None, v(1))
    wo_queue = _reopen(stack, queue, WR)
    return Clash(lambda: wo_queue.get_next_key(),
                 _write_only_get_next_key(stack),
                 Rule("queue get_next_key", lambda: queue.get_next_key(), errno.EINVAL))


def lookup_and_delete_array_via_rdonly_fd(stack: contextlib.ExitStack) -> Clash:
    array = _map(stack, MapType.ARRAY, 4, 8, 4)
    ro_array = _reopen(stack, array, RD)
    queue = _map(stack, MapType.QUEUE, 0, 8, 4)
    queue.update(None, v(1))
    ro_queue = _reopen(stack, queue, RD)
    return Clash(lambda: ro_array.lookup_and_delete(k(0)),
                 Rule("read-only fd", lambda: ro_queue.lookup_and_delete(None), errno.EPERM),
                 Rule("array lookup_and_delete", lambda: array.lookup_and_delete(k(0)), ENOTSUPP))


def lookup_and_delete_frozen_array(stack: contextlib.ExitStack) -> Clash:
    frozen = _frozen(stack, MapType.ARRAY, 4, 8, 4)
    frozen_queue = _frozen(stack, MapType.QUEUE, 0, 8, 4, lambda m: m.update(None, v(1)))
    array = _map(stack, MapType.ARRAY, 4, 8, 4)
    return Clash(lambda: frozen.lookup_and_delete(k(0)),
                 Rule("frozen map", lambda: frozen_queue.lookup_and_delete(None), errno.EPERM),
                 Rule("array lookup_and_delete", lambda: array.lookup_and_delete(k(0)), ENOTSUPP))


def pop_frozen_empty_queue(stack: contextlib.ExitStack) -> Clash:
    frozen_empty = _frozen(stack, MapType.QUEUE, 0, 8, 4)
    frozen_full = _frozen(stack, MapType.QUEUE, 0, 8, 4, lambda m: m.update(None, v(1)))
    empty = _map(stack, MapType.QUEUE, 0, 8, 4)
    return Clash(lambda: frozen_empty.lookup_and_delete(None),
                 Rule("frozen map", lambda: frozen_full.lookup_and_delete(None), errno.EPERM),
                 Rule("empty queue", lambda: empty.lookup_and_delete(None), errno.ENOENT))


def _full_queue(stack: contextlib.ExitStack, map_type: MapType = MapType.QUEUE) -> BpfMap:
    m = _map(stack, map_type, 0, 8, 2)
    m.update(None, v(1))
    m.update(None, v(2))
    return m


def push_full_queue_noexist(stack: contextlib.ExitStack) -> Clash:
    full = _full_queue(stack)
    empty = _map(stack, MapType.QUEUE, 0, 8, 2)
    return Clash(lambda: full.update(None, v(3), int(bpfmap.UpdateFlag.NOEXIST)),
                 Rule("queue full", lambda: full.update(None, v(3)), errno.E2BIG),
                 Rule("push flag NOEXIST", lambda: empty.update(None, v(3), int(bpfmap.UpdateFlag.NOEXIST)),
                      errno.EINVAL))


def push_frozen_full_stack(stack: contextlib.ExitStack) -> Clash:
    frozen_full = _full_queue(stack, MapType.STACK)
    frozen_full.freeze()
    frozen_empty = _frozen(stack, MapType.STACK, 0, 8, 2)
    full = _full_queue(stack, MapType.STACK)
    return Clash(lambda: frozen_full.update(None, v(3)),
                 Rule("frozen map", lambda: frozen_empty.update(None, v(3)), errno.EPERM),
                 Rule("stack full", lambda: full.update(None, v(3)), errno.E2BIG))


def bloom_push_bad_flag_via_rdonly_fd(stack: contextlib.ExitStack) -> Clash:
    bloom = _map(stack, MapType.BLOOM_FILTER, 0, 8, 16)
    ro = _reopen(stack, bloom, RD)
    noexist = int(bpfmap.UpdateFlag.NOEXIST)
    return Clash(lambda: ro.update(None, v(1), noexist),
                 Rule("read-only fd", lambda: ro.update(None, v(1)), errno.EPERM),
                 Rule("bloom push flag NOEXIST", lambda: bloom.update(None, v(1), noexist), errno.EINVAL))


def bloom_get_next_key_via_wronly_fd(stack: contextlib.ExitStack) -> Clash:
    bloom = _map(stack, MapType.BLOOM_FILTER, 0, 8, 16)
    bloom.update(None, v(1))
    wo_bloom = _reopen(stack, bloom, WR)
    return Clash(lambda: wo_bloom.get_next_key(),
                 _write_only_get_next_key(stack),
                 Rule("bloom get_next_key", lambda: bloom.get_next_key(), errno.EOPNOTSUPP))


def lpm_update_prefixlen_too_long_on_full_trie(stack: contextlib.ExitStack) -> Clash:
    def key(prefixlen: int, last: int) -> bytes:
        return U32.pack(prefixlen) + bytes([10, 0, 0, last])

    full = _map(stack, MapType.LPM_TRIE, 8, 8, 2, NP)
    full.update(key(32, 1), v(1))
    full.update(key(32, 2), v(2))
    roomy = _map(stack, MapType.LPM_TRIE, 8, 8, 2, NP)
    return Clash(lambda: full.update(key(33, 3), v(3)),
                 Rule("trie full", lambda: full.update(key(32, 3), v(3)), errno.ENOSPC),
                 Rule("prefixlen 33 > 32", lambda: roomy.update(key(33, 3), v(3)), errno.EINVAL))


def outer_array_update_closed_fd_out_of_range(stack: contextlib.ExitStack) -> Clash:
    inner = _map(stack, MapType.ARRAY, 4, 8, 2)
    outer = _map(stack, MapType.ARRAY_OF_MAPS, 4, 4, 2, inner_map_fd=inner.fd)
    closed = os.dup(0)
    os.close(closed)
    return Clash(lambda: outer.update(k(2), U32.pack(closed)),
                 Rule("closed inner map fd", lambda: outer.update(k(0), U32.pack(closed)), errno.EBADF),
                 Rule("index past max_entries", lambda: outer.update(k(2), U32.pack(inner.fd)), errno.E2BIG))


def outer_hash_update_exist_missing_with_a_pipe(stack: contextlib.ExitStack) -> Clash:
    inner = _map(stack, MapType.ARRAY, 4, 8, 2)
    outer = _map(stack, MapType.HASH_OF_MAPS, 4, 4, 2, inner_map_fd=inner.fd)
    r, w = os.pipe()
    stack.callback(os.close, r)
    stack.callback(os.close, w)
    exist = int(bpfmap.UpdateFlag.EXIST)
    return Clash(lambda: outer.update(k(0), U32.pack(r), exist),
                 Rule("EXIST on a missing key", lambda: outer.update(k(0), U32.pack(inner.fd), exist), errno.ENOENT),
                 Rule("a pipe is no map", lambda: outer.update(k(0), U32.pack(r)), errno.EINVAL))


# -- attribute checks and other commands ------------------------------------------


def lookup_check_attr_and_closed_fd(stack: contextlib.ExitStack) -> Clash:
    m = _map(stack, MapType.HASH, 4, 8, 4)
    m.update(k(1), v(1))
    key = ctypes.create_string_buffer(k(1), 4)
    val = ctypes.create_string_buffer(8)
    stack.callback(lambda: (key, val))  # keep the buffers alive until the calls ran
    closed = os.dup(0)
    os.close(closed)

    def lookup(fd: int, tail: int) -> Call:
        attr = elem_attr(fd, ctypes.addressof(key), ctypes.addressof(val), size=40)
        attr[32] = tail  # past LOOKUP_ELEM's last field (flags)
        return lambda: bpf_raw(Cmd.MAP_LOOKUP_ELEM, attr, 40)

    return Clash(lookup(closed, 1),
                 Rule("non-zero byte past flags", lookup(m.fd, 1), errno.EINVAL),
                 Rule("closed fd", lookup(closed, 0), errno.EBADF))


def get_fd_by_unknown_id_with_bad_open_flags(stack: contextlib.ExitStack) -> Clash:
    m = _map(stack, MapType.HASH, 4, 8, 4)
    unknown = 0x7FFFFFFF

    def get(map_id: int, flags: int) -> Call:
        return lambda: os.close(map_get_fd_by_id(map_id, flags))

    return Clash(get(unknown, RD | WR),
                 Rule("unknown ID", get(unknown, 0), errno.ENOENT),
                 Rule("RDONLY|WRONLY", get(m.info().id, RD | WR), errno.EINVAL))


def get_info_closed_fd_and_nonzero_byte_past_the_struct(stack: contextlib.ExitStack) -> Clash:
    m = _map(stack, MapType.HASH, 4, 8, 4)
    dirty = ctypes.create_string_buffer(PAGE_SIZE)
    dirty[PAGE_SIZE - 1] = b"\x01"  # far past every kernel's bpf_map_info
    clean = ctypes.create_string_buffer(PAGE_SIZE)
    stack.callback(lambda: (dirty, clean))
    closed = os.dup(0)
    os.close(closed)

    def info(fd: int, buf: ctypes.Array[ctypes.c_char]) -> Call:
        return lambda: bpf_raw(Cmd.OBJ_GET_INFO_BY_FD, attrs.pack_info(fd, PAGE_SIZE, ctypes.addressof(buf)))

    return Clash(info(closed, dirty),
                 Rule("closed fd", info(closed, clean), bpfmap.EBADFD),
                 Rule("non-zero byte past the struct", info(m.fd, dirty), errno.E2BIG))


def _as_nobody(fn: Callable[[], str]) -> Callable[[], str]:
    def run() -> str:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
        return fn()
    return run


def _outcome(call: Call) -> Callable[[], str]:
    """``call``'s errno name, for a forked child to send back ("ok" if it succeeded)."""
    def run() -> str:
        try:
            call()
        except bpfmap.BpfError as e:
            return e.errname
        return "ok"
    return run


def create_unprivileged_with_zero_key(stack: contextlib.ExitStack) -> Clash:
    with open("/proc/sys/kernel/unprivileged_bpf_disabled", encoding="ascii") as f:
        if f.read().strip() == "0":
            pytest.skip("kernel.unprivileged_bpf_disabled is 0 here: no EPERM rule to clash with")
    bad, good = _create(MapType.HASH, 0, 8, 4), _create(MapType.HASH, 4, 8, 4)

    def in_child(call: Call, unprivileged: bool) -> Call:
        def run() -> None:
            name = run_in_child(_as_nobody(_outcome(call)) if unprivileged else _outcome(call))
            if name != "ok":
                raise bpfmap.BpfError(_errno_by_name(name), Cmd.MAP_CREATE)
        return run

    return Clash(in_child(bad, True),
                 Rule("unprivileged caller", in_child(good, True), errno.EPERM),
                 Rule("key_size 0", in_child(bad, False), errno.EINVAL))


def _errno_by_name(name: str) -> int:
    return next(n for n in range(1, 600) if bpfmap.errno_name(n) == name)


ELEM_CASES: list[Case] = [
    create_zero_key_and_huge_value,
    create_lru_noprealloc_and_zero_max_entries,
    create_lru_noprealloc_and_huge_value,
    create_percpu_zero_key_and_value_above_pcpu_unit,
    create_array_key_8_and_value_above_pcpu_unit,
    create_queue_key_4_and_huge_value,
    create_outer_closed_template_and_value_size_8,
    create_size_above_page_and_bad_fields,
    update_rdonly_fd_and_bad_flags,
    update_frozen_and_bad_flags,
    update_frozen_array_out_of_range,
    update_rdonly_array_out_of_range,
    update_array_out_of_range_and_bad_flags,
    update_full_hash_exist_on_missing_key,
    update_full_noprealloc_hash_exist_on_missing_key,
    update_full_hash_bad_flags,
    lookup_wronly_fd_and_bad_flags,
    lookup_wronly_fd_and_missing_key,
    delete_array_via_rdonly_fd,
    delete_frozen_array,
    delete_frozen_hash_missing_key,
    get_next_key_queue_via_wronly_fd,
    lookup_and_delete_array_via_rdonly_fd,
    lookup_and_delete_frozen_array,
    pop_frozen_empty_queue,
    push_full_queue_noexist,
    push_frozen_full_stack,
    bloom_push_bad_flag_via_rdonly_fd,
    bloom_get_next_key_via_wronly_fd,
    lpm_update_prefixlen_too_long_on_full_trie,
    outer_array_update_closed_fd_out_of_range,
    outer_hash_update_exist_missing_with_a_pipe,
    lookup_check_attr_and_closed_fd,
    get_fd_by_unknown_id_with_bad_open_flags,
    get_info_closed_fd_and_nonzero_byte_past_the_struct,
    create_unprivileged_with_zero_key,
]

# What a case needs from the kernel beyond the basics (skips name it).
NEEDS_TYPE: dict[str, MapType] = {
    "bloom_push_bad_flag_via_rdonly_fd": MapType.BLOOM_FILTER,
    "bloom_get_next_key_via_wronly_fd": MapType.BLOOM_FILTER,
}
NEEDS_FREEZE = ("frozen",)


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as s:
        yield s


def check_clash(clash: Clash) -> str:
    """Each rule alone gives its own errno; both together one of the two.
    Returns the recorded value: the errno given for both and the rule it is."""
    for rule in (clash.a, clash.b):
        got = errno_of(rule.alone)
        assert got == rule.errno, (f"{rule.text} alone: expected {bpfmap.errno_name(rule.errno)}, "
                                   f"got {bpfmap.errno_name(got)}")
    both = errno_of(clash.both)
    winner = next((r for r in (clash.a, clash.b) if r.errno == both), None)
    assert winner is not None, (f"both rules broken: {bpfmap.errno_name(both)}, neither "
                                f"{bpfmap.errno_name(clash.a.errno)} nor {bpfmap.errno_name(clash.b.errno)}")
    return f"{bpfmap.errno_name(both)} ({winner.text})"


@pytest.mark.parametrize("case", ELEM_CASES, ids=lambda c: c.__name__)
def test_errno_checked_first(case: Case, stack: contextlib.ExitStack, features: Features,
                             record_property: Recorder) -> None:
    name = case.__name__
    if name in NEEDS_TYPE:
        need_type(features, NEEDS_TYPE[name])
    if any(word in name for word in NEEDS_FREEZE):
        need_cmd(features, Cmd.MAP_FREEZE)
    if "lookup_and_delete" in name or "pop_" in name:
        need_cmd(features, Cmd.MAP_LOOKUP_AND_DELETE_ELEM)
    clash = case(stack)
    assert clash.a.errno != clash.b.errno, "a clash of one errno says nothing about the order"
    record_property("errno_first", check_clash(clash))
