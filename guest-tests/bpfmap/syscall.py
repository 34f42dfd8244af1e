"""The bpf(2) system call through libc's syscall(3), errno preserved."""

from __future__ import annotations

import ctypes

from .constants import NR_BPF
from .errors import BpfError


def libc() -> ctypes.CDLL:
    """The C library the interpreter runs on (dlopen(NULL) sees its symbols). Not
    ctypes.util.find_library("c"): that runs ldconfig in a subprocess, which costs a guest
    under TCG about 0.1 s of every `import bpfmap`."""
    return ctypes.CDLL(None, use_errno=True)


_libc = libc()
# Declared prototype so ctypes passes (long, int, pointer, unsigned) without
# guessing per call; this is also the cheapest call form ctypes offers.
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint)
_get_errno = ctypes.get_errno

# The same libc function without argtypes, for the per-element hot path: a
# declared prototype runs from_param on every argument (~0.5 us per call,
# half of a hash lookup's own cost). Undeclared, ctypes passes a ctypes buffer
# as its address and a Python int as a C int, which libffi sign-extends into
# the 64-bit register syscall(3) reads, so NR, cmd and size arrive intact.
# (A separate CDLL handle, because argtypes belongs to the function object.)
syscall_buf = libc().syscall
syscall_buf.restype = ctypes.c_long
get_errno = _get_errno


def bpf_buf(cmd: int, attr: ctypes.Array[ctypes.c_char], size: int) -> int:
    """bpf(cmd, attr, size) on a ctypes buffer by the undeclared (fast) call."""
    ret: int = syscall_buf(NR_BPF, cmd, attr, size)
    if ret < 0:
        raise BpfError(_get_errno(), cmd)
    return ret


def bpf_addr(cmd: int, attr_addr: int, size: int) -> int:
    """bpf(cmd, attr_addr, size); return the result or raise :class:`BpfError`.

    The hot path of :class:`bpfmap.maps.BpfMap` calls this with pre-packed
    attribute buffers, so it does nothing but the call and the errno check.
    """
    ret: int = _syscall(NR_BPF, cmd, attr_addr, size)
    if ret < 0:
        raise BpfError(_get_errno(), cmd)
    return ret


def attr_buffer(data: bytes) -> ctypes.Array[ctypes.c_char]:
    """A writable ctypes copy of attribute bytes, exactly ``len(data)`` long.

    (``create_string_buffer(data)`` alone would append a NUL byte.)
    """
    return ctypes.create_string_buffer(data, len(data))


def bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], size: int | None = None) -> int:
    """bpf(2) on a ctypes buffer; kernel write-backs land in ``attr``."""
    return bpf_addr(cmd, ctypes.addressof(attr), len(attr) if size is None else size)


def bpf_raw(cmd: int, attr: bytes | bytearray, size: int | None = None) -> int:
    """Send arbitrary attribute bytes with an arbitrary ``size`` (ABI tests).

    The kernel reads ``size`` bytes, so the buffer handed over is ``attr``
    zero-padded to ``max(len(attr), size)``: a ``size`` beyond PAGE_SIZE or a
    non-zero byte in a tail is then exactly what the caller wrote. If ``attr``
    is a bytearray, what the kernel wrote back (counts, next_id, info_len, ...)
    is copied into it. A returned fd belongs to the caller.
    """
    length = len(attr) if size is None else size
    if length < 0:
        raise ValueError("size must be >= 0")
    buf = ctypes.create_string_buffer(bytes(attr), max(len(attr), length, 1))
    try:
        return bpf_addr(cmd, ctypes.addressof(buf), length)
    finally:
        if isinstance(attr, bytearray):
            attr[:] = buf.raw[: len(attr)]
