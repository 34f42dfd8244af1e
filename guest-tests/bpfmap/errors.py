"""The one exception the client raises for a failed bpf(2) call."""

from __future__ import annotations

import errno as _errno
import os

from .constants import Cmd

# Kernel-internal errnos (include/linux/errno.h) leak to user space from some
# bpf paths (ENOTSUPP 524 from batch and lookup_and_delete); Python's errno
# module does not know them. EBADFD (77) is a normal errno that some Python
# builds also fail to name, so it is listed explicitly.
ENOTSUPP: int = 524
EBADFD: int = 77

_EXTRA_NAMES: dict[int, str] = {
    EBADFD: "EBADFD",
    512: "ERESTARTSYS",
    513: "ERESTARTNOINTR",
    514: "ERESTARTNOHAND",
    515: "ENOIOCTLCMD",
    516: "ERESTART_RESTARTBLOCK",
    517: "EPROBE_DEFER",
    518: "EOPENSTALE",
    519: "ENOPARAM",
    521: "EBADHANDLE",
    522: "ENOTSYNC",
    523: "EBADCOOKIE",
    ENOTSUPP: "ENOTSUPP",
    525: "ETOOSMALL",
    526: "ESERVERFAULT",
    527: "EBADTYPE",
    528: "EJUKEBOX",
    529: "EIOCBQUEUED",
    530: "ERECALLCONFLICT",
}


def errno_name(err: int) -> str:
    """Symbolic name of ``err`` (``"ENOTSUPP"`` for 524), or ``"E<n>"``."""
    if err in _EXTRA_NAMES:
        return _EXTRA_NAMES[err]
    return _errno.errorcode.get(err, f"E{err}")


def command_name(cmd: int) -> str:
    """Kernel spelling of a command (``BPF_MAP_CREATE``), or ``BPF_CMD_<n>``."""
    try:
        return "BPF_" + Cmd(cmd).name
    except ValueError:
        return f"BPF_CMD_{cmd}"


class BpfError(OSError):
    """A bpf(2) call failed.

    Attributes: ``errno`` (int), ``errname`` (symbolic, incl. kernel-only
    ones), ``cmd`` (the command number), ``command`` (its name) and ``count``
    (for batch commands: how many elements the kernel reported processed, or
    ``None``).
    """

    def __init__(self, err: int, cmd: int, *, count: int | None = None) -> None:
        super().__init__(err, _strerror(err))
        self.errname: str = errno_name(err)
        self.cmd: int = cmd
        self.command: str = command_name(cmd)
        self.count: int | None = count
        self._err: int = err

    def with_count(self, count: int) -> BpfError:
        """The same failure, carrying the batch ``count`` the kernel left."""
        return BpfError(self._err, self.cmd, count=count)

    def __str__(self) -> str:
        text = f"{self.command}: [{self.errname}] {self.strerror}"
        if self.count is not None:
            text += f" (count={self.count})"
        return text

    def __reduce__(self) -> tuple[object, ...]:
        # OSError's default pickling would call __init__ with (errno, strerror).
        return (_rebuild, (self.errno, self.cmd, self.count))


def _rebuild(err: int, cmd: int, count: int | None) -> BpfError:
    return BpfError(err, cmd, count=count)


def _strerror(err: int) -> str:
    name = _EXTRA_NAMES.get(err)
    text = os.strerror(err)
    if name is not None and text.startswith("Unknown error"):
        return f"{name} (kernel-internal errno {err})"
    return text
