"""``BpfMap``: an owned map fd with the per-element and batch commands.

The per-element methods are the path a benchmark compares with C, so each
map keeps its key/value buffers and its *_ELEM attribute buffers pre-packed
(fd and pointers never change); a call copies the key in, patches ``flags``
and makes the syscall. Consequences: a ``BpfMap`` is not thread-safe, and
after :meth:`BpfMap.close` the per-element calls fail with EBADF (the
pre-packed fd is poisoned) rather than paying for an "is closed" check.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import warnings
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import cast

from . import attrs
from . import batch as _batch
from . import syscall as _sc
from .batch import BatchResult
from .constants import NR_BPF, Cmd, MapFlag
from .errors import BpfError
from .info import MapInfo, map_info
from .layout import Value, ValueIn, ValueLayout
from .objects import map_get_fd_by_id, obj_get, obj_pin

_addressof = ctypes.addressof
_pack_flags = attrs.U64.pack_into
_FLAGS_OFF = attrs.ELEM_FLAGS_OFFSET
_ELEM_SIZE = attrs.ELEM.size

_LOOKUP = int(Cmd.MAP_LOOKUP_ELEM)
_UPDATE = int(Cmd.MAP_UPDATE_ELEM)
_DELETE = int(Cmd.MAP_DELETE_ELEM)
_NEXT_KEY = int(Cmd.MAP_GET_NEXT_KEY)
_LOOKUP_AND_DELETE = int(Cmd.MAP_LOOKUP_AND_DELETE_ELEM)
# The undeclared-prototype syscall (see syscall.syscall_buf): the hot path
# passes its pre-packed attribute buffers straight to it.
_call = _sc.syscall_buf
_get_errno = _sc.get_errno
_NR = NR_BPF

DEFAULT_BATCH_COUNT = 64


class BpfMap:
    """A BPF map file descriptor owned by this object.

    Keys are ``bytes`` of ``key_size`` (``None`` for queue, stack and bloom
    filter maps, whose key_size is 0). Values are ``bytes`` of
    ``value_size``; for per-CPU maps a list with one ``bytes`` per possible
    CPU, in the order of /sys/devices/system/cpu/possible.
    Use it as a context manager, or call :meth:`close`.
    """

    __slots__ = (
        "_fd", "map_type", "key_size", "value_size", "max_entries", "map_flags", "name",
        "_layout", "_percpu", "_val_size", "_kv_flags",
        "_key", "_val", "_next", "_key_addr", "_val_addr", "_next_addr",
        "_a_kv", "_a_k", "_a_next", "_a_first",
        "_a_kv_addr", "_a_k_addr", "_a_next_addr", "_a_first_addr",
    )

    def __init__(
        self,
        fd: int,
        map_type: int,
        key_size: int,
        value_size: int,
        max_entries: int,
        map_flags: int = 0,
        name: str = "",
    ) -> None:
        """Wrap (and take ownership of) an open map ``fd`` whose geometry is known."""
        self._fd: int = fd
        self.map_type: int = map_type
        self.key_size: int = key_size
        self.value_size: int = value_size
        self.max_entries: int = max_entries
        self.map_flags: int = map_flags
        self.name: str = name
        self._layout: ValueLayout = ValueLayout.for_map(map_type, value_size)
        self._percpu: bool = self._layout.percpu
        self._val_size: int = self._layout.buf_size

        self._kv_flags: int = 0  # flags currently packed in _a_kv
        self._key = ctypes.create_string_buffer(max(key_size, 1))
        self._next = ctypes.create_string_buffer(max(key_size, 1))
        self._val = ctypes.create_string_buffer(max(self._val_size, 1))
        # A map with key_size 0 must get a NULL key pointer, or the kernel
        # answers EINVAL (__bpf_copy_key).
        self._key_addr: int = _addressof(self._key) if key_size else 0
        self._next_addr: int = _addressof(self._next)
        self._val_addr: int = _addressof(self._val)

        pack = attrs.ELEM.pack
        self._a_kv = _sc.attr_buffer(pack(fd, self._key_addr, self._val_addr, 0))
        # DELETE_ELEM's last field is ``key`` and GET_NEXT_KEY's is
        # ``next_key``: any non-zero byte after them is EINVAL (CHECK_ATTR),
        # so these get their own buffers rather than sharing _a_kv.
        self._a_k = _sc.attr_buffer(pack(fd, self._key_addr, 0, 0))
        self._a_next = _sc.attr_buffer(pack(fd, self._key_addr, self._next_addr, 0))
        self._a_first = _sc.attr_buffer(pack(fd, 0, self._next_addr, 0))
        self._a_kv_addr: int = _addressof(self._a_kv)
        self._a_k_addr: int = _addressof(self._a_k)
        self._a_next_addr: int = _addressof(self._a_next)
        self._a_first_addr: int = _addressof(self._a_first)

    # -- construction -------------------------------------------------------

    @classmethod
    def create(
        cls,
        map_type: int,
        key_size: int,
        value_size: int,
        max_entries: int,
        map_flags: int = 0,
        *,
        name: str = "",
        inner_map_fd: int = 0,
        numa_node: int | None = None,
        map_extra: int = 0,
    ) -> BpfMap:
        """BPF_MAP_CREATE.

        ``numa_node`` sets BPF_F_NUMA_NODE too, because the kernel ignores the
        field without that flag.
        """
        flags = map_flags
        node = 0
        if numa_node is not None:
            flags |= MapFlag.NUMA_NODE
            node = numa_node
        attr = attrs.pack_map_create(
            map_type, key_size, value_size, max_entries, int(flags),
            inner_map_fd, node, name, map_extra,
        )
        fd = _sc.bpf(Cmd.MAP_CREATE, _sc.attr_buffer(attr))
        return cls(fd, map_type, key_size, value_size, max_entries, int(flags), name)

    @classmethod
    def from_fd(cls, fd: int) -> BpfMap:
        """Adopt an open map fd, learning its geometry from OBJ_GET_INFO_BY_FD.

        The fd is owned by the new object even if reading the info fails
        (it is closed then), so callers never leak it.
        """
        try:
            info = map_info(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(
            fd, info.type, info.key_size, info.value_size, info.max_entries,
            info.map_flags, info.name,
        )

    @classmethod
    def from_pin(cls, path: str | os.PathLike[str], file_flags: int = 0) -> BpfMap:
        """OBJ_GET on a pinned map."""
        return cls.from_fd(obj_get(path, file_flags))

    @classmethod
    def from_id(cls, map_id: int, open_flags: int = 0) -> BpfMap:
        """MAP_GET_FD_BY_ID."""
        return cls.from_fd(map_get_fd_by_id(map_id, open_flags))

    # -- fd lifetime ----------------------------------------------------------

    @property
    def fd(self) -> int:
        """The map fd; ValueError once closed (a stale number may be reused)."""
        if self._fd < 0:
            raise ValueError("operation on closed BpfMap")
        return self._fd

    def fileno(self) -> int:
        return self.fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def is_percpu(self) -> bool:
        return self._percpu

    @property
    def layout(self) -> ValueLayout:
        return self._layout

    def close(self) -> None:
        """Close the fd (idempotent)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
            # Poison the pre-packed attributes so a stray call fails with EBADF
            # instead of acting on whatever reuses the fd number.
            for buf in (self._a_kv, self._a_k, self._a_next, self._a_first):
                attrs.U32.pack_into(buf, 0, 0xFFFFFFFF)

    def __enter__(self) -> BpfMap:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
            try:
                self.close()
            except Exception:  # interpreter shutdown: nothing useful to do
                pass

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else f"fd={self._fd}"
        return (
            f"<BpfMap {state} type={self.map_type} key={self.key_size} "
            f"value={self.value_size} max={self.max_entries}>"
        )

    # -- per-element commands (hot path) -------------------------------------
    # Buffers are exactly key_size / value-buffer bytes long, so the ``.raw``
    # setter/getter (a plain memcpy in C, ~10x cheaper than ctypes.memmove or
    # string_at, which go through libffi) moves keys and values.

    def _load_key(self, key: bytes | None) -> None:
        ks = self.key_size
        if ks:
            if key is None or len(key) != ks:
                raise ValueError(f"key must be {ks} bytes, got {key!r}")
            self._key.raw = key
        elif key is not None:
            raise ValueError("this map has key_size 0: pass key=None")

    def _set_flags(self, flags: int) -> None:
        if flags != self._kv_flags:
            _pack_flags(self._a_kv, _FLAGS_OFF, flags)
            self._kv_flags = flags

    def _value(self) -> Value:
        if self._percpu:
            return self._layout.decode(self._val.raw)
        return self._val.raw if self._val_size else b""

    def lookup(self, key: bytes | None = None, flags: int = 0) -> Value:
        """LOOKUP_ELEM (a peek for queue/stack maps)."""
        # _load_key inlined: a method call is ~5% of a whole lookup.
        ks = self.key_size
        if ks:
            if key is None or len(key) != ks:
                raise ValueError(f"key must be {ks} bytes, got {key!r}")
            self._key.raw = key
        elif key is not None:
            raise ValueError("this map has key_size 0: pass key=None")
        if flags != self._kv_flags:
            self._set_flags(flags)
        if _call(_NR, _LOOKUP, self._a_kv, _ELEM_SIZE) < 0:
            raise BpfError(_get_errno(), _LOOKUP)
        if self._percpu:
            return self._layout.decode(self._val.raw)
        return self._val.raw if self._val_size else b""

    def update(self, key: bytes | None, value: ValueIn, flags: int = 0) -> None:
        """UPDATE_ELEM with ``flags`` (ANY/NOEXIST/EXIST/F_LOCK); a push for queue/stack."""
        ks = self.key_size
        if ks:
            if key is None or len(key) != ks:
                raise ValueError(f"key must be {ks} bytes, got {key!r}")
            self._key.raw = key
        elif key is not None:
            raise ValueError("this map has key_size 0: pass key=None")
        if self._percpu:
            self._val.raw = self._layout.encode(value)
        else:
            if len(value) != self.value_size or not isinstance(value, (bytes, bytearray, memoryview)):
                raise ValueError(f"value must be {self.value_size} bytes, got {value!r}")
            if self._val_size:
                self._val.raw = value if type(value) is bytes else bytes(value)
        if flags != self._kv_flags:
            self._set_flags(flags)
        if _call(_NR, _UPDATE, self._a_kv, _ELEM_SIZE) < 0:
            raise BpfError(_get_errno(), _UPDATE)

    def delete(self, key: bytes | None) -> None:
        """DELETE_ELEM."""
        self._load_key(key)
        if _call(_NR, _DELETE, self._a_k, _ELEM_SIZE) < 0:
            raise BpfError(_get_errno(), _DELETE)

    def get_next_key(self, key: bytes | None = None) -> bytes:
        """GET_NEXT_KEY: the key after ``key``, or the first key when None."""
        if key is None:
            attr = self._a_first
        else:
            ks = self.key_size  # _load_key inlined, as in lookup()
            if len(key) != ks or not ks:
                self._load_key(key)  # raises the right ValueError
            self._key.raw = key
            attr = self._a_next
        if _call(_NR, _NEXT_KEY, attr, _ELEM_SIZE) < 0:
            raise BpfError(_get_errno(), _NEXT_KEY)
        return self._next.raw if self.key_size else b""

    def lookup_and_delete(self, key: bytes | None = None, flags: int = 0) -> Value:
        """LOOKUP_AND_DELETE_ELEM (a pop for queue/stack maps)."""
        self._load_key(key)
        if flags != self._kv_flags:
            self._set_flags(flags)
        if _call(_NR, _LOOKUP_AND_DELETE, self._a_kv, _ELEM_SIZE) < 0:
            raise BpfError(_get_errno(), _LOOKUP_AND_DELETE)
        return self._value()

    def contains(self, value: bytes) -> bool:
        """Bloom filter membership: LOOKUP_ELEM with ``value`` as the input."""
        self._val.raw = self._layout.encode(value)
        self._set_flags(0)
        try:
            _sc.bpf_addr(_LOOKUP, self._a_kv_addr, _ELEM_SIZE)
        except BpfError as e:
            if e.errno == _errno.ENOENT:
                return False
            raise
        return True

    def freeze(self) -> None:
        """MAP_FREEZE: user-space writes fail with EPERM afterwards."""
        # FREEZE's last field is map_fd: key/value/flags must be zero.
        _sc.bpf(Cmd.MAP_FREEZE, _sc.attr_buffer(attrs.pack_elem(self.fd)))

    def keys(self, limit: int | None = None) -> Iterator[bytes]:
        """Iterate keys with GET_NEXT_KEY until ENOENT.

        More than ``limit`` keys (default ``max_entries``, which bounds every
        map's element count) means the walk restarted, which GET_NEXT_KEY does
        when the current key vanished under a concurrent delete; raising
        RuntimeError then beats iterating forever.
        """
        bound = self.max_entries if limit is None else limit
        key: bytes | None = None
        for n in range(bound + 1):
            try:
                key = self.get_next_key(key)
            except BpfError as e:
                if e.errno == _errno.ENOENT:
                    return
                raise
            if n == bound:
                break
            yield key
        raise RuntimeError(f"GET_NEXT_KEY walk passed {bound} keys: it restarted")

    # -- batch commands -------------------------------------------------------

    def _lookup_batch(
        self, cmd: int, in_batch: bytes | None, count: int, elem_flags: int, flags: int
    ) -> BatchResult:
        """LOOKUP_BATCH or LOOKUP_AND_DELETE_BATCH, split into keys and values."""
        raw = _batch.lookup(
            cmd, self.fd, self.key_size, self._val_size, in_batch, count, elem_flags, flags
        )
        keys = _batch.split(raw.keys, self.key_size, raw.count)
        vals = _batch.split(raw.values, self._val_size, raw.count)
        # list[bytes] is a list[Value] already; cast spares a copy of the list.
        values = [self._layout.decode(v) for v in vals] if self._percpu else cast(list[Value], vals)
        return BatchResult(keys, values, raw.count, raw.out_batch, raw.errno)

    def lookup_batch(
        self,
        in_batch: bytes | None = None,
        count: int = DEFAULT_BATCH_COUNT,
        elem_flags: int = 0,
        flags: int = 0,
    ) -> BatchResult:
        """LOOKUP_BATCH; at the end of the map ``result.done`` is True and the
        elements of that last call are still returned."""
        return self._lookup_batch(Cmd.MAP_LOOKUP_BATCH, in_batch, count, elem_flags, flags)

    def lookup_and_delete_batch(
        self,
        in_batch: bytes | None = None,
        count: int = DEFAULT_BATCH_COUNT,
        elem_flags: int = 0,
        flags: int = 0,
    ) -> BatchResult:
        """LOOKUP_AND_DELETE_BATCH (same contract as :meth:`lookup_batch`)."""
        return self._lookup_batch(
            Cmd.MAP_LOOKUP_AND_DELETE_BATCH, in_batch, count, elem_flags, flags
        )

    def update_batch(
        self,
        keys: Sequence[bytes],
        values: Sequence[ValueIn],
        elem_flags: int = 0,
        flags: int = 0,
    ) -> int:
        """UPDATE_BATCH; returns the count processed. On failure the
        :class:`BpfError` carries the count the kernel got through."""
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys but {len(values)} values")
        kraw = self._join_keys(keys)
        vraw = b"".join(self._layout.encode(v) for v in values)
        return _batch.update(self.fd, kraw, vraw, len(keys), elem_flags, flags)

    def delete_batch(self, keys: Sequence[bytes], elem_flags: int = 0, flags: int = 0) -> int:
        """DELETE_BATCH; returns the count processed (see :meth:`update_batch`)."""
        return _batch.delete(self.fd, self._join_keys(keys), len(keys), elem_flags, flags)

    def _join_keys(self, keys: Sequence[bytes]) -> bytes:
        ks = self.key_size
        for k in keys:
            if len(k) != ks:
                raise ValueError(f"key must be {ks} bytes, got {k!r}")
        return b"".join(bytes(k) for k in keys)

    # -- object commands ------------------------------------------------------

    def pin(self, path: str | os.PathLike[str], file_flags: int = 0) -> None:
        """OBJ_PIN this map at ``path`` (on a bpffs)."""
        obj_pin(self.fd, path, file_flags)

    def info(self) -> MapInfo:
        """OBJ_GET_INFO_BY_FD."""
        return map_info(self.fd)


create_map = BpfMap.create
