"""BPF_MAP_DUMP, the 2019 RFC (seed 003) that upstream never merged.

No stock kernel has it: upstream turned it into the *_BATCH commands (5.6).
A patched kernel appends it to ``enum bpf_cmd``, so its number depends on the
tree: 36 on the lab's patched 6.1 (after BPF_PROG_BIND_MAP = 35), 37 on the
6.12 port (after BPF_TOKEN_CREATE = 36, new in 6.9). Neither the number nor a
version decides whether the kernel has it: :func:`probe_map_dump` tries each
candidate (:data:`CANDIDATE_CMDS`, in order) with a behavioural trial and uses
the first that behaves like BPF_MAP_DUMP; ``$BPF_MAP_DUMP_CMD`` names the one
number to use instead.

Probing a number that is another command is harmless: the trial's attribute
has non-zero pointers at offsets 16 and 24 (buf, buf_len), so a command whose
attribute ends before them (BPF_TOKEN_CREATE's ends at 8) fails CHECK_ATTR
with EINVAL before doing anything; a positive return (some command's new fd)
is closed and counts as "absent"; and only a real dump shrinks ``*buf_len``
to the two elements' size and fills ``buf`` with exactly them.

The RFC's ``union bpf_attr`` member (offset:size)::

    map_fd 0:4, prev_key 8:8, buf 16:8, buf_len 24:8, flags 32:8

``buf_len`` is a *pointer* to a u32 (``u32 __user *ubuf_len`` in the RFC):
its value is buf's size on input and the bytes copied on output. ``buf``
receives whole elements packed back to back, each ``key`` (key_size bytes)
immediately followed by its value (value_size bytes; per-CPU maps:
round_up(value_size, 8) per possible CPU), no padding. A NULL ``prev_key``
starts at the first key and nothing is written back; a non-NULL one
continues after that key and, on success, receives the last key copied.
ENOENT means nothing was left to copy; EINVAL means ``buf_len`` is smaller
than one element. The RFC's LAST_FIELD is ``buf_len``, so a non-zero
``flags`` is EINVAL under CHECK_ATTR.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from . import syscall as _sc
from .constants import MapType
from .errors import BpfError
from .layout import Value
from .maps import BpfMap

# The numbers the lab's ports give BPF_MAP_DUMP, tried in this order: 36 on
# 6.1 (36 is BPF_TOKEN_CREATE from 6.9), 37 on 6.12.
CANDIDATE_CMDS = (36, 37)
DEFAULT_MAP_DUMP_CMD = CANDIDATE_CMDS[0]  # the number used when no candidate is a dump
MAP_DUMP_CMD_ENV = "BPF_MAP_DUMP_CMD"

# map_fd, pad, prev_key, buf, buf_len (pointer to u32), flags
DUMP_ATTR = struct.Struct("<I4xQQQQ")
assert DUMP_ATTR.size == 40
_U32 = struct.Struct("<I")


def env_map_dump_cmd() -> int | None:
    """$BPF_MAP_DUMP_CMD (any base), or None when it is unset or empty."""
    text = os.environ.get(MAP_DUMP_CMD_ENV, "").strip()
    return int(text, 0) if text else None


def map_dump_cmd() -> int:
    """The command number to use: $BPF_MAP_DUMP_CMD, else the probe's choice.

    Without the override this probes the candidates (once per process); on a
    kernel where none behaves like BPF_MAP_DUMP it is the first candidate.
    """
    override = env_map_dump_cmd()
    return override if override is not None else probe_map_dump().cmd


def pack_dump(map_fd: int, prev_key: int, buf: int, buf_len: int, flags: int = 0) -> bytes:
    """Attribute bytes for BPF_MAP_DUMP (pointers as integers)."""
    return DUMP_ATTR.pack(map_fd, prev_key, buf, buf_len, flags)


def elem_size(m: BpfMap) -> int:
    """Bytes one key/value pair occupies in ``buf``."""
    return m.key_size + m.layout.buf_size


@dataclass(frozen=True, slots=True)
class DumpResult:
    """One successful BPF_MAP_DUMP call.

    ``buf_len`` is what the kernel wrote back; ``raw`` is ``buf[:buf_len]``;
    ``prev_key`` is the content of the prev_key buffer after the call (None
    when the call was made with a NULL prev_key); ``tail`` is the part of
    ``buf`` past ``buf_len`` (the kernel must not have touched it).
    """

    entries: list[tuple[bytes, Value]]
    buf_len: int
    raw: bytes
    prev_key: bytes | None
    tail: bytes

    @property
    def keys(self) -> list[bytes]:
        return [k for k, _ in self.entries]


def split_elements(m: BpfMap, raw: bytes) -> list[tuple[bytes, Value]]:
    """Unpack ``raw`` (whole key/value pairs back to back) for map ``m``."""
    size = elem_size(m)
    if len(raw) % size:
        raise ValueError(f"{len(raw)} bytes is not a whole number of {size}-byte elements")
    ks = m.key_size
    out: list[tuple[bytes, Value]] = []
    for off in range(0, len(raw), size):
        value = raw[off + ks : off + size]
        out.append((raw[off : off + ks], m.layout.decode(value)))
    return out


# Filled into buf before the call, so bytes the kernel did not write show up.
SENTINEL = 0xA5


def map_dump(
    m: BpfMap,
    prev_key: bytes | None,
    buf_len: int,
    flags: int = 0,
    *,
    cmd: int | None = None,
    map_fd: int | None = None,
) -> DumpResult:
    """BPF_MAP_DUMP of ``m`` into a ``buf_len``-byte buffer; ``map_fd``: another
    fd passed in ``m``'s place (one the kernel must refuse), ``m`` giving the sizes.

    Raises :class:`BpfError` on failure (ENOENT: the walk is complete).
    """
    if buf_len < 0:
        raise ValueError("buf_len must be >= 0")
    if prev_key is not None and len(prev_key) != m.key_size:
        raise ValueError(f"prev_key must be {m.key_size} bytes, got {prev_key!r}")
    buf = ctypes.create_string_buffer(bytes([SENTINEL]) * max(buf_len, 1), max(buf_len, 1))
    length = ctypes.c_uint32(buf_len)
    key_buf = ctypes.create_string_buffer(prev_key, len(prev_key)) if prev_key else None
    attr = _sc.attr_buffer(
        pack_dump(
            m.fd if map_fd is None else map_fd,
            ctypes.addressof(key_buf) if key_buf is not None else 0,
            ctypes.addressof(buf),
            ctypes.addressof(length),
            flags,
        )
    )
    number = map_dump_cmd() if cmd is None else cmd
    ret = _sc.bpf(number, attr)
    if ret != 0:
        # Not the RFC's contract: a positive return is some other command's
        # fd (BPF_TOKEN_CREATE shares the number upstream). Do not leak it.
        if ret > 0:
            os.close(ret)
        raise RuntimeError(f"command {number} returned {ret}, BPF_MAP_DUMP returns 0")
    written = length.value
    if written > buf_len:
        raise RuntimeError(f"kernel reported {written} bytes in a {buf_len}-byte buffer")
    raw = buf.raw[:written]
    return DumpResult(
        entries=split_elements(m, raw),
        buf_len=written,
        raw=raw,
        prev_key=key_buf.raw if key_buf is not None else None,
        tail=buf.raw[written:buf_len],
    )


def walk_dump(m: BpfMap, buf_len: int, limit: int | None = None) -> Iterator[tuple[bytes, Value]]:
    """Yield every (key, value) by BPF_MAP_DUMP, ``buf_len`` bytes per call.

    Each call continues after the last key of the previous one; ENOENT ends.
    More than ``limit`` elements (default ``max_entries``) means the walk
    restarted (a key vanished under it): RuntimeError rather than a loop.
    """
    bound = m.max_entries if limit is None else limit
    seen = 0
    prev: bytes | None = None
    while True:
        try:
            res = map_dump(m, prev, buf_len)
        except BpfError as e:
            if e.errno == _errno.ENOENT:
                return
            raise
        if not res.entries:
            raise RuntimeError("BPF_MAP_DUMP returned 0 with no element")
        seen += len(res.entries)
        if seen > bound:
            raise RuntimeError(f"BPF_MAP_DUMP walk passed {bound} elements: it restarted")
        yield from res.entries
        prev = res.entries[-1][0]


@dataclass(frozen=True, slots=True)
class MapDumpProbe:
    """Outcome of the behavioural probe of ``cmd``; ``observed`` is "ok" or what happened.

    ``tried`` is every (number, observed) probed to reach this answer, in
    order (empty for a single number's probe, which tried only ``cmd``).
    """

    available: bool
    observed: str
    cmd: int
    tried: tuple[tuple[int, str], ...] = ()

    @property
    def summary(self) -> str:
        """What each number did, e.g. "cmd 36: EINVAL; cmd 37: ok" (the suites record it)."""
        steps = self.tried or ((self.cmd, self.observed),)
        return "; ".join(f"cmd {number}: {observed}" for number, observed in steps)

    @property
    def skip_reason(self) -> str:
        return f"kernel has no BPF_MAP_DUMP (RFC, not merged upstream): probe returned {self.summary}"


_PROBE_ENTRIES = {b"\x01\x00\x00\x00": b"\x11\x11\x11\x11", b"\x02\x00\x00\x00": b"\x22\x22\x22\x22"}


def probe_cmd(cmd: int) -> MapDumpProbe:
    """One number's behavioural trial (uncached): does ``cmd`` act as BPF_MAP_DUMP?"""
    with BpfMap.create(MapType.HASH, 4, 4, 4) as m:
        for key, value in _PROBE_ENTRIES.items():
            m.update(key, value)
        # Room for three elements but only two exist: a real BPF_MAP_DUMP
        # must shrink buf_len to 16, which nothing else would do by chance.
        size = 3 * elem_size(m)
        try:
            res = map_dump(m, None, size, cmd=cmd)
        except BpfError as e:
            return MapDumpProbe(False, e.errname, cmd)
        except RuntimeError as e:
            return MapDumpProbe(False, str(e), cmd)
        want = 2 * elem_size(m)
        if res.buf_len != want:
            return MapDumpProbe(False, f"0 but buf_len {res.buf_len} (expected {want})", cmd)
        got = {k: bytes(v) for k, v in res.entries if isinstance(v, bytes)}
        if len(res.entries) != 2 or got != _PROBE_ENTRIES:
            return MapDumpProbe(False, f"0 but the buffer held {res.raw.hex()}", cmd)
        return MapDumpProbe(True, "ok", cmd)


def find_map_dump(probe: Callable[[int], MapDumpProbe], candidates: Sequence[int]) -> MapDumpProbe:
    """Probe ``candidates`` in order; the first that behaves like BPF_MAP_DUMP wins.

    Later numbers are not tried once one is found (on the 6.1 port 37 may be
    anything). With none found the answer is the first candidate's, absent.
    Either way ``tried`` lists every number probed and what it did.
    """
    if not candidates:
        raise ValueError("no candidate command number")
    tried: list[tuple[int, str]] = []
    for number in candidates:
        result = probe(number)
        tried.append((number, result.observed))
        if result.available:
            return MapDumpProbe(True, result.observed, number, tuple(tried))
    return MapDumpProbe(False, tried[0][1], candidates[0], tuple(tried))


@functools.lru_cache(maxsize=8)
def _probe_cached(cmd: int) -> MapDumpProbe:
    return probe_cmd(cmd)


@functools.lru_cache(maxsize=1)
def _search_cached() -> MapDumpProbe:
    return find_map_dump(_probe_cached, CANDIDATE_CMDS)


def probe_map_dump(cmd: int | None = None) -> MapDumpProbe:
    """Try BPF_MAP_DUMP on a two-entry hash map (cached per command number).

    ``cmd`` given: that number only. Otherwise $BPF_MAP_DUMP_CMD's number only
    if it is set, else :data:`CANDIDATE_CMDS` by :func:`find_map_dump`.
    """
    if cmd is None:
        cmd = env_map_dump_cmd()
    return _search_cached() if cmd is None else _probe_cached(cmd)


def has_map_dump() -> bool:
    """Does this kernel implement the RFC's BPF_MAP_DUMP (by behaviour)?"""
    return probe_map_dump().available


__all__ = [
    "CANDIDATE_CMDS",
    "DEFAULT_MAP_DUMP_CMD",
    "DUMP_ATTR",
    "MAP_DUMP_CMD_ENV",
    "SENTINEL",
    "DumpResult",
    "MapDumpProbe",
    "elem_size",
    "env_map_dump_cmd",
    "find_map_dump",
    "has_map_dump",
    "map_dump",
    "map_dump_cmd",
    "pack_dump",
    "probe_cmd",
    "probe_map_dump",
    "split_elements",
    "walk_dump",
]
