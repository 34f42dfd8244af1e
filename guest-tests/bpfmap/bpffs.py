"""Mounting private bpf filesystem instances (for pin tests)."""

from __future__ import annotations

import ctypes
import os
import struct

from .syscall import libc

BPF_FS_MAGIC = 0xCAFE4A11
MNT_DETACH = 2

_libc = libc()  # its own handle: the prototypes below belong to its function objects
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.mount.restype = ctypes.c_int
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.umount2.restype = ctypes.c_int
_libc.statfs.argtypes = (ctypes.c_char_p, ctypes.c_void_p)
_libc.statfs.restype = ctypes.c_int
_LONG = struct.Struct("l")  # struct statfs starts with f_type (__fsword_t, a long)


def _check(ret: int, path: str | os.PathLike[str]) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), os.fspath(path))


def mount_bpffs(target: str | os.PathLike[str], options: str | None = None) -> None:
    """mount -t bpf bpf TARGET: a new bpffs instance, private to this mount."""
    opts = options.encode() if options is not None else None
    _check(_libc.mount(b"bpf", os.fsencode(target), b"bpf", 0, opts), target)


def umount(target: str | os.PathLike[str], detach: bool = False) -> None:
    """umount2(TARGET); ``detach`` for MNT_DETACH (lazy) when it may be busy."""
    _check(_libc.umount2(os.fsencode(target), MNT_DETACH if detach else 0), target)


def fs_magic(path: str | os.PathLike[str]) -> int:
    """statfs(2) f_type of the filesystem holding ``path``."""
    buf = ctypes.create_string_buffer(256)  # > sizeof(struct statfs) on every ABI
    _check(_libc.statfs(os.fsencode(path), buf), path)
    f_type: int = _LONG.unpack_from(buf.raw)[0]
    return f_type & 0xFFFFFFFF


def is_bpffs(path: str | os.PathLike[str]) -> bool:
    """Is ``path`` on a bpf filesystem?"""
    return fs_magic(path) == BPF_FS_MAGIC
