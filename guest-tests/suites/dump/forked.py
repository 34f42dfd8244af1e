"""Run a long check in a forked child, so the guest's other vCPU does it while
the suite goes on; the test that owns the check then waits for its verdict.

Under TCG a 100,000-entry walk costs seconds of one vCPU while the other one
idles. The child runs exactly the function the test would run inline (same
assertions, same pytest.raises); what it recorded, or how it failed, comes
back through a pipe as JSON, and the owning test records it or fails with the
child's message and traceback. Only checks that touch nothing but their own
maps may run this way: a test listing every map in the system would see them.

Not a test module (pytest collects only test_*.py).
"""

from __future__ import annotations

import json
import os
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

Recorder = Callable[[str, object], None]
Check = Callable[[Recorder], None]


def _recordable(value: object) -> object:
    """JSON carries str/int/float/bool as they are; anything else as record_property would show it."""
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def _run_child(check: Check, write_fd: int) -> None:
    recorded: list[tuple[str, object]] = []
    report: dict[str, object] = {"recorded": recorded}
    try:
        check(lambda key, value: recorded.append((key, _recordable(value))))
    except pytest.skip.Exception as exc:
        report["skip"] = str(exc.msg)
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the owning test
        report["failure"] = f"{type(exc).__name__}: {exc}"
        report["traceback"] = "".join(traceback.format_exception(exc))
    data = json.dumps(report).encode()
    while data:
        data = data[os.write(write_fd, data):]


@dataclass
class Child:
    """One forked check, until its owner has collected it."""

    name: str
    pid: int
    read_fd: int
    chunks: list[bytes] = field(default_factory=list)

    def collect(self, record: Recorder) -> None:
        """Wait for the child; record what it recorded, or skip/fail as it did."""
        while chunk := os.read(self.read_fd, 65536):
            self.chunks.append(chunk)
        os.close(self.read_fd)
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        if not self.chunks:
            raise AssertionError(f"{self.name}: the forked check died without a verdict ({_describe(status)})")
        report = json.loads(b"".join(self.chunks))
        for key, value in report["recorded"]:
            record(key, value)
        if "skip" in report:
            pytest.skip(report["skip"])
        if "failure" in report:
            raise AssertionError(f"{self.name}, in its forked child: {report['failure']}\n{report['traceback']}")

    def kill(self) -> None:
        """Stop a child nobody collected (its owner never ran or was interrupted)."""
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            os.close(self.read_fd)
            self.pid = 0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def start(name: str, check: Check) -> Child:
    """Fork a child that runs ``check`` and reports back; the caller goes on at once."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest, whatever happens
        code = 0
        try:
            os.close(read_fd)
            _run_child(check, write_fd)
        except BaseException:  # noqa: BLE001 - the parent reports a child without a verdict
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    return Child(name, pid, read_fd)
