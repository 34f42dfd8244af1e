"""The two kinds of failure the lab itself can have (the kernel's failures are Outcomes), and the
one line that names any other exception as the lab's (or the host's) failure."""
from __future__ import annotations

import errno
import json


class UserError(Exception):
    """Bad input from the user: reported as one line, exit 2, before anything starts."""


class InfraError(Exception):
    """The lab or the host failed (apt, QEMU missing, disk): not the kernel's fault."""


def describe_failure(exc: BaseException) -> str:
    """One line for an exception nobody foresaw: what the host refused (a full disk, a permission,
    a closed pipe, a corrupt file), else the lab's own bug by its type. Never the kernel's fault."""
    if isinstance(exc, json.JSONDecodeError):
        return f"a corrupt JSON file: {exc}"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        what = exc.strerror or str(exc) or type(exc).__name__
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"the host's disk is full: {what}{where}"
        return f"the host refused: {what}{where}"
    return f"the lab failed: {type(exc).__name__}: {exc}"
