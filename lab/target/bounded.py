"""A Target whose commands the machine itself also stops at their deadline (coreutils' timeout)."""
from __future__ import annotations

import math
from pathlib import Path

from .base import CommandResult, Sink, Target, quote_command

KILL_GRACE = 5  # seconds between timeout's SIGTERM and its SIGKILL on the target
REMOTE_SLACK = 2  # the target's own bound fires this long after the lab's


class BoundedTarget:
    """A guest that overran a suite dies with its QEMU; a real machine would keep the pytest
    (and whatever it started) running after the lab gave up on it. coreutils' timeout kills
    the command's whole process group a little after the lab's own bound, which stays the
    one that decides the outcome.
    """

    def __init__(self, inner: Target) -> None:
        self.inner = inner

    def run(self, command: str, timeout: float, stdout_sink: Sink | None = None) -> CommandResult:
        bound = str(math.ceil(timeout) + REMOTE_SLACK)
        wrapped = quote_command(["timeout", "-k", str(KILL_GRACE), bound, "sh", "-c", command])
        return self.inner.run(wrapped, timeout, stdout_sink)

    def put_tree(self, local_dir: Path, remote_dir: str, timeout: float) -> int:
        return self.inner.put_tree(local_dir, remote_dir, timeout)

    def put_archive(self, archive: Path, remote_dir: str, timeout: float) -> bool:
        return self.inner.put_archive(archive, remote_dir, timeout)

    def get(self, remote: str, local: Path, timeout: float) -> bool:
        return self.inner.get(remote, local, timeout)
