"""The guest's serial console: drained continuously into console.log, searchable for markers.

QEMU writes the console to a pty that pexpect owns. The pty must be read all the time, or
QEMU blocks on a full buffer and the guest stalls; a daemon thread does only that, and
everyone else looks at what it collected.
"""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pexpect


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
        self._log = log_path.open("ab", buffering=0)
        self._data = bytearray()
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
                self._log.write(chunk)
                self.last_output = time.monotonic()
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def text(self) -> str:
        with self._changed:
            return self._data.decode(errors="replace")

    def excerpt(self, lines: int = 25) -> str:
        return "\n".join(self.text().replace("\r", "").splitlines()[-lines:])

    def wait_for(self, pattern: re.Pattern[bytes], timeout: float, silence: float | None = None) -> re.Match[bytes]:
        """Wait until pattern appears; ConsoleClosed if QEMU is gone, ConsoleTimeout otherwise."""
        deadline = time.monotonic() + timeout
        searched_from = 0
        with self._changed:
            while True:
                # Re-scan a little before the last end, so a marker split across reads is found.
                match = pattern.search(self._data, max(0, searched_from - 256))
                if match:
                    return match
                searched_from = len(self._data)
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

    def close(self) -> None:
        self._thread.join(timeout=5)
        self._log.close()
