"""The Target contract every place that runs tests meets (a QEMU guest over SSH, a real machine),
and the results and failures of its commands. No SSH library here: the runner only needs this."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


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


class Target(Protocol):
    """Every call is bounded by its `timeout` as a whole: past it, CommandTimedOut (or
    ConnectionLost); a failure writing the lab's own files is InfraError."""

    def run(self, command: str, timeout: float, stdout_sink: Path | None = None) -> CommandResult: ...
    def put_tree(self, local_dir: Path, remote_dir: str, timeout: float) -> int: ...
    def get(self, remote: str, local: Path, timeout: float) -> bool: ...
