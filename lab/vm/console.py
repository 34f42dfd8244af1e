"""The guest's serial console: drained continuously into console.log, searchable for markers.

QEMU writes the console to a pty that pexpect owns. The pty must be read all the time, or
QEMU blocks on a full buffer and the guest stalls; a daemon thread does only that, and
everyone else looks at what it collected. Nothing the guest prints can fill the host: the
memory keeps a window of the latest output (WINDOW), console.log stops at LOG_CAP (it says
so, and gets the window's tail at the end), and a log that cannot be written (a full disk)
is remembered, the pty still read, so waiting for a marker fails as the host's error.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pexpect

from ..core.errors import InfraError
from ..core.files import write_all

MiB = 1 << 20
# Module constants, so tests can lower them.
LOG_CAP = 64 * MiB  # bytes of console.log one console writes before it only counts
WINDOW = 4 * MiB  # bytes kept in memory for marker searches, text() and excerpts
OVERLAP = 256  # a marker split across reads is found by re-scanning this much before the last end


class ConsoleClosed(Exception):
    """QEMU exited (the pty closed) before the awaited text appeared."""


class ConsoleTimeout(Exception):
    """The awaited text did not appear in time, or the console fell silent for too long."""

    def __init__(self, message: str, silent: bool) -> None:
        super().__init__(message)
        self.silent = silent


class Console:
    def __init__(self, child: pexpect.spawn, log_path: Path) -> None:
        self._child = child
        self._log_path = log_path
        try:
            self._log = log_path.open("ab", buffering=0)
            # What the log already holds (a restored guest's saved boot) counts against LOG_CAP.
            self._already = self._log.tell()
        except OSError as exc:
            raise InfraError(f"opening {log_path}: {exc}") from exc
        self._data = bytearray()  # the last WINDOW bytes of the output
        self._dropped = 0  # bytes of the output before _data (so offsets stay absolute)
        self._logged = 0  # bytes of the output written to console.log
        self.truncated = False  # console.log stopped at LOG_CAP
        self.write_error = ""  # why console.log could not be written ("" while it can)
        self._changed = threading.Condition()
        self._closed = False
        self.last_output = time.monotonic()
        self._thread = threading.Thread(target=self._drain, name="console-drain", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = self._child.read_nonblocking(65536, timeout=0.5)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError, ValueError):
                break
            with self._changed:
                self._data += chunk
                if len(self._data) > WINDOW:
                    excess = len(self._data) - WINDOW
                    del self._data[:excess]
                    self._dropped += excess
                self._write_log(chunk)
                self.last_output = time.monotonic()
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _write_log(self, chunk: bytes) -> None:
        """Into console.log up to LOG_CAP; past it, or after a failed write, the chunk is only
        counted: the drain goes on, or QEMU would block on the pty."""
        if self.write_error or self.truncated:
            return
        room = max(0, LOG_CAP - self._already - self._logged)
        try:
            self._write_all(chunk[:room])
            self._logged += min(room, len(chunk))
            if len(chunk) > room:
                self.truncated = True
                self._write_all(f"\n[lab: console.log truncated at {LOG_CAP} bytes; the console was still read, "
                                f"and its last bytes follow at the end]\n".encode())
        except OSError as exc:
            self.write_error = f"writing {self._log_path}: {exc}"
            self._changed.notify_all()

    def _write_all(self, data: bytes) -> None:
        write_all(self._log, data)  # unbuffered: may write less (then ENOSPC on the rest)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def total(self) -> int:
        """Bytes the console has produced so far."""
        return self._dropped + len(self._data)

    def text(self) -> str:
        """The latest output (up to WINDOW bytes)."""
        with self._changed:
            return self._data.decode(errors="replace")

    def excerpt(self, lines: int = 25) -> str:
        return "\n".join(self.text().replace("\r", "").splitlines()[-lines:])

    def wait_for(self, pattern: re.Pattern[bytes], timeout: float, silence: float | None = None) -> re.Match[bytes]:
        """Wait until pattern appears; ConsoleClosed if QEMU is gone, ConsoleTimeout otherwise,
        InfraError once console.log cannot be written (waiting on would only hide that)."""
        deadline = time.monotonic() + timeout
        searched_to = 0  # absolute offset in the output
        with self._changed:
            while True:
                if self.write_error:
                    raise InfraError(self.write_error)
                # Searched in a copy of what is new (and a little before): the drain thread
                # trims and grows _data, and a match must keep its text.
                start = max(0, searched_to - OVERLAP - self._dropped)
                match = pattern.search(bytes(self._data[start:]))
                if match:
                    return match
                searched_to = self.total
                if self._closed:
                    raise ConsoleClosed(f"QEMU exited before {pattern.pattern!r} appeared")
                now = time.monotonic()
                if now >= deadline:
                    raise ConsoleTimeout(f"no {pattern.pattern!r} on the console within {timeout:.0f} s", silent=False)
                if silence is not None and now - self.last_output >= silence:
                    raise ConsoleTimeout(f"the console was silent for {silence:.0f} s", silent=True)
                self._changed.wait(timeout=min(0.5, deadline - now))

    def wait_closed(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._closed, timeout=timeout)

    @property
    def log_warning(self) -> str:
        """What the record should say about a truncated console.log ("" for a whole one)."""
        if not self.truncated:
            return ""
        return (f"{self._log_path.name} truncated at {LOG_CAP} bytes: the guest printed {self.total}; "
                f"the last {min(WINDOW, self.total - self._logged)} are at its end")

    def check_log(self, warn: Callable[[str], None]) -> None:
        """Once QEMU stopped: a log that could not be written is InfraError (a verdict read from
        half of it could miss the crash); a truncated one is a warning of the run."""
        if self.write_error:
            raise InfraError(self.write_error)
        if self.truncated:
            warn(self.log_warning)

    def close(self) -> None:
        self._thread.join(timeout=5)
        with self._changed:
            if self.truncated and not self.write_error:
                self._write_tail()
        self._log.close()

    def _write_tail(self) -> None:
        """What a truncated log missed at the end (a crash after a printk storm) is in the window."""
        missing = self.total - self._logged
        tail = bytes(self._data[-missing:]) if missing else b""
        try:
            self._write_all(f"\n[lab: {missing - len(tail)} bytes of the console not logged; its last {len(tail)} "
                            f"bytes:]\n".encode() + tail)
        except OSError as exc:
            self.write_error = f"writing {self._log_path}: {exc}"
