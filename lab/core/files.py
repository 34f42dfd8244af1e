"""Small file helpers every stage uses: a JSON file written whole or not at all, the lab's own
file errors as InfraError, a safe name."""
from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from .errors import InfraError


def write_json_atomic(path: Path, data: object) -> None:
    """Write then rename: a reader (a matrix watching a run, a killed lab) never sees half a file.

    On a full disk the copy beside the file may not fit while the file itself still does (a run's
    metadata.json gains a line at its end): then it is rewritten in place, so the outcome is kept.
    What cannot be written at all is the host's failure, InfraError naming the file.
    """
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    # A name of this process's own: two labs writing one file (accel.json) never share a copy.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
        return
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not path.exists():
            raise InfraError(f"cannot write {path}: {exc.strerror or exc}") from exc
    encoded = text.encode()
    try:
        # Only into blocks the file already has: a write that needs a new one would fail halfway.
        if path.stat().st_blocks * 512 < len(encoded):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        with path.open("r+b") as handle:
            handle.write(encoded)
            handle.truncate()
    except OSError as exc:
        raise InfraError(f"cannot write {path}: {exc.strerror or exc}") from exc


@contextmanager
def local_file(path: Path, doing: str) -> Iterator[None]:
    """Around the lab's own file work: an OSError there (a full disk) is the host's failure,
    InfraError "writing <path>: <error>", never the kernel's or the guest's."""
    try:
        yield
    except OSError as exc:
        raise InfraError(f"{doing} {path}: {exc}") from exc


def safe_name(text: str, limit: int) -> str:
    """A file-name piece from anything a user or a kernel said: letters, digits, '.' and '-' only."""
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in text)[:limit]


def new_stamped_dir(root: Path, prefix: str) -> Path:
    """root/<prefix>-<YYYYmmdd-HHMMSS>[-N], created: a matrix's or a validation's own directory,
    never one another lab made in the same second."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(100):
        path = root / (f"{prefix}-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise InfraError(f"cannot create a {prefix} directory in {root}")


class RawWriter(Protocol):
    def write(self, data: memoryview, /) -> int | None: ...


def write_all(raw: RawWriter, data: bytes) -> None:
    """Every byte of data through an unbuffered file. Its write() may take only part (a nearly
    full disk): the rest is written again, and then fails with ENOSPC where it happens, instead of
    being lost without a word (a truncated report would read as a different result)."""
    view = memoryview(data)
    while view:
        written = raw.write(view)
        if not written:  # nothing taken and no error: the disk has no room for even one byte
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_cache_or_hidden(parts: tuple[str, ...] | list[str]) -> bool:
    """A path (as its parts) inside __pycache__ or a dot-directory, or a dot-file: never shipped
    into a guest nor counted as part of a test tree."""
    return any(part == "__pycache__" or part.startswith(".") for part in parts)


def keep_newest(root: Path, keep: int) -> None:
    """Only the `keep` most recently used (by mtime) entries of a cache directory stay; names
    starting with a dot (work in progress) are left alone."""
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)
