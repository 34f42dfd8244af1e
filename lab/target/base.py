"""The Target contract every place that runs tests meets (a QEMU guest over SSH, a real machine),
and the results and failures of its commands. No SSH library here: the runner only needs this."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from ..core.files import local_file


class ConnectionLost(Exception):
    """The SSH connection broke (guest died, QEMU killed) in the middle of something."""


class CommandTimedOut(Exception):
    def __init__(self, command: str, timeout: float, partial_out: str) -> None:
        super().__init__(f"{command!r} did not finish within {timeout:.0f} s")
        self.partial_out = partial_out


class TransferRefused(Exception):
    """The target offered a file the lab will not take (larger than the cap, not a regular
    file): the guest's doing, so the suite says so; the partial copy is already deleted."""


@dataclass(frozen=True)
class CommandResult:
    rc: int
    out: str
    err: str
    truncated: str = ""  # what the lab stopped keeping of the output, e.g. "stdout past 64 MiB"


def quote_command(argv: list[str]) -> str:
    """A shell command line where every word is quoted: names and paths cannot inject."""
    return " ".join(shlex.quote(word) for word in argv)


class OutputSink(Protocol):
    """Where a command's stdout goes as it arrives (instead of a file): the runner of several
    suites in one command splits it by suite as it comes."""

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...

    def deadline(self) -> float | None:
        """A time.monotonic() by which the command must end, earlier than its timeout (one suite's
        bound, restarted as each starts); None: the command's timeout alone."""
        ...


Sink = Path | OutputSink


class FileSink:
    """A stdout sink that is a file: appended to, flushed as it comes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with local_file(path, "opening"):
            self._handle: BinaryIO | None = path.open("ab")

    def write(self, data: bytes) -> None:
        if self._handle is not None:
            with local_file(self.path, "writing"):
                self._handle.write(data)
                self._handle.flush()

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            with local_file(self.path, "writing"):
                handle.close()

    def deadline(self) -> float | None:
        return None


def as_sink(sink: Sink | None) -> OutputSink | None:
    return FileSink(sink) if isinstance(sink, Path) else sink


class Target(Protocol):
    """Every call is bounded by its `timeout` as a whole (a run also by its sink's deadline): past
    it, CommandTimedOut (or ConnectionLost); a failure writing the lab's own files is InfraError."""

    def run(self, command: str, timeout: float, stdout_sink: Sink | None = None) -> CommandResult: ...
    def put_tree(self, local_dir: Path, remote_dir: str, timeout: float) -> int: ...
    def put_archive(self, archive: Path, remote_dir: str, timeout: float) -> bool: ...
    def get(self, remote: str, local: Path, timeout: float) -> bool: ...
