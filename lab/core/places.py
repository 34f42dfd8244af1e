"""Directories the lab writes (results, cache, a job's output), proven writable before anything
starts. Who named the place decides whose fault it is: a place the user gave (an option, an
environment variable) that cannot be written is bad input; the lab's own default is the host's."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .errors import InfraError, UserError


def writable_directory(path: Path, what: str, named_by: str | None, create: bool = False) -> Path:
    """Prove `path` can be made (or is) a directory the lab can write in: a file is written in it, or
    in its nearest existing parent, which is all a later mkdir needs. Nothing is left behind unless
    `create`. `named_by` is how the user named it ("--results", "$LAB_CACHE"), None for a default."""
    try:
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".lab-write-check-"):
            pass
        if create:
            path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if named_by is not None:
            raise UserError(f"{named_by} {path}: cannot write the {what} there: {why}") from exc
        raise InfraError(f"the {what} directory {path} cannot be written: {why}") from exc
    return path
