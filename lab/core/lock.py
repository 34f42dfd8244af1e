"""Cache entries shared by concurrent `lab` processes: one writer per entry, whole entries only.

An entry (a directory or a file in the cache) is locked with flock(2) on `.<entry>.lock` beside
it. The kernel drops the lock however its holder ends, so a lock is never stale; a child given
the lock's descriptor (pass_fds) keeps it held until the child ends too. The holder writes its
pid into the file so that a waiter can say whom it waits for, and removes the file before it
lets go (a lock taken on a file that was removed meanwhile is taken again on the new one), so
the cache keeps no lock files of finished work.

An entry is staged under a name of its own (`.build-<entry>`), touched only under the entry's
lock, so whatever a killed process left there is found and removed by the next one; then
renamed into place whole.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InfraError
from .log import Log

# An image build or a kernel download holds its lock for minutes; nothing the lab does holds
# one for half an hour, so a lock held that long is a stuck lab, and waiting on it is an error.
WAIT_SECONDS = 30 * 60.0
REPORT_EVERY_SECONDS = 60.0
POLL_SECONDS = 0.25


def lock_path(entry: Path) -> Path:
    # Hidden, like the staging names: listings of entries (`[!.]*`) never see it.
    return entry.with_name(f".{entry.name}.lock")


def holder(lock_file: Path) -> str:
    """Who holds the lock, as far as its file says: "pid N (its command)", or "another process"."""
    try:
        pid = int(lock_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return "another process"
    try:
        command = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split())
    except OSError:
        # The pid that took the lock is gone, so a child it gave the lock to holds it now.
        return f"a process left behind by pid {pid}"
    return f"pid {pid} ({command[:120]})" if command else f"pid {pid}"


def _open(lock_file: Path) -> int:
    try:
        # The entry's directory may not be there yet: builds/ on a fresh cache, before its first build.
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        return os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise InfraError(f"cannot open the lock file {lock_file}: {exc.strerror}") from exc


def _try(lock_file: Path) -> int | None:
    """The descriptor of `lock_file`, locked, or None if another process holds it.

    The holder removes the file before it lets go, so a lock taken on a file that is no longer
    the one at that path is let go and taken again on the new one."""
    while True:
        fd = _open(lock_file)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:
            current = os.stat(lock_file)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


def _release(lock_file: Path, fd: int) -> None:
    # Removed while still held, so the cache keeps no lock files; then closing lets go.
    try:
        os.unlink(lock_file)
    except FileNotFoundError:
        pass
    os.close(fd)


@contextmanager
def locked(entry: Path, log: Log, what: str, wait_seconds: float = WAIT_SECONDS) -> Iterator[int]:
    """Hold the lock on `entry` (its parent must exist); yields the lock's descriptor.

    A lock another process holds is waited for, saying so (and again every minute); after
    `wait_seconds` the wait ends in InfraError naming the holder.
    """
    lock_file = lock_path(entry)
    fd = _try(lock_file)
    if fd is None:
        started = reported = time.monotonic()
        log(f"waiting for the lock on {what} ({lock_file}) held by {holder(lock_file)}")
        while (fd := _try(lock_file)) is None:
            now = time.monotonic()
            if now - started >= wait_seconds:
                raise InfraError(f"gave up after {wait_seconds:.0f} s waiting for the lock on {what} "
                                 f"({lock_file}), held by {holder(lock_file)}")
            if now - reported >= REPORT_EVERY_SECONDS:
                log(f"still waiting for the lock on {what} ({now - started:.0f} s), held by {holder(lock_file)}")
                reported = now
            time.sleep(POLL_SECONDS)
    try:
        yield fd
    finally:
        _release(lock_file, fd)


@contextmanager
def unless_locked(entry: Path) -> Iterator[bool]:
    """The lock on `entry` if nobody holds it (True), else nothing (False): for cleaning up what a
    dead process left, never what a live one is working on."""
    lock_file = lock_path(entry)
    fd = _try(lock_file)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            _release(lock_file, fd)


def staging_path(entry: Path, prefix: str = ".build-") -> Path:
    """Where `entry` is put together before it is renamed into place (use it under the entry's lock)."""
    return entry.with_name(prefix + entry.name)


def entry_of_staging(staging: Path, prefix: str = ".build-") -> Path:
    return staging.with_name(staging.name.removeprefix(prefix))


def install(staging: Path, entry: Path) -> None:
    """Rename a finished `staging` to `entry`, replacing a damaged entry that is there.

    A reader without the lock sees the old entry, then none, then the new one; never half of one.
    """
    if entry.exists() or entry.is_symlink():
        aside = entry.with_name(f".old-{entry.name}-{os.getpid()}")
        os.rename(entry, aside)
        os.rename(staging, entry)
        _remove(aside)
    else:
        os.rename(staging, entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
