"""lab.console: a real pty (pexpect) drained into a log, searched for markers."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterator

import pexpect
import pytest

from lab.vm.console import Console, ConsoleClosed, ConsoleTimeout


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator:
    """spawn(shell_code) -> Console over `sh -c shell_code`; everything is stopped afterwards."""
    made: list[tuple[pexpect.spawn, Console]] = []

    def start(code: str, log_name: str = "console.log") -> Console:
        child = pexpect.spawn("sh", ["-c", code], timeout=None, echo=False)
        console = Console(child, tmp_path / log_name)
        made.append((child, console))
        return console

    yield start
    for child, console in made:
        if child.isalive():
            child.terminate(force=True)
        child.close(force=True)
        console.close()


def test_wait_for_finds_a_marker_split_across_writes(spawn) -> None:
    console = spawn("printf 'booting...\\nlab-re'; sleep 0.4; printf 'ady: sshd started on 6.1\\n'; sleep 5")
    started = time.monotonic()
    match = console.wait_for(re.compile(rb"lab-ready: sshd started on (\S+)"), timeout=10)
    assert match[1] == b"6.1"
    assert time.monotonic() - started < 4  # found when it appeared, not at the end
    assert "booting..." in console.text()


def test_wait_for_finds_text_that_arrived_before_the_call(spawn) -> None:
    console = spawn("printf 'early marker\\n'; sleep 5")
    deadline = time.monotonic() + 5
    while "early marker" not in console.text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert console.wait_for(re.compile(rb"early marker"), timeout=1)[0] == b"early marker"


def test_wait_for_finds_a_marker_after_lots_of_output(spawn) -> None:
    # More than one read's worth of output before the marker, so the search runs many times.
    console = spawn("i=0; while [ $i -lt 3000 ]; do echo \"[    1.$i] noise line number $i\"; i=$((i+1)); done; "
                    "echo the-end-marker; sleep 5")
    assert console.wait_for(re.compile(rb"the-end-marker"), timeout=20)
    assert "noise line number 2999" in console.text()


def test_console_closed_when_the_process_ends_without_the_marker(spawn) -> None:
    console = spawn("printf 'Kernel panic - not syncing: VFS\\n'; exit 0")
    started = time.monotonic()
    with pytest.raises(ConsoleClosed):
        console.wait_for(re.compile(rb"lab-ready"), timeout=10)
    assert time.monotonic() - started < 5
    assert console.closed
    assert "Kernel panic" in console.text()


def test_console_timeout_on_silence(spawn) -> None:
    console = spawn("printf 'Probing EDD (edd=off to disable)... ok\\n'; sleep 30")
    started = time.monotonic()
    with pytest.raises(ConsoleTimeout) as caught:
        console.wait_for(re.compile(rb"lab-ready"), timeout=20, silence=1.0)
    elapsed = time.monotonic() - started
    assert caught.value.silent is True
    assert 0.9 <= elapsed < 5
    assert "silent" in str(caught.value)


def test_console_timeout_on_the_deadline_while_output_continues(spawn) -> None:
    console = spawn("while :; do printf '.'; sleep 0.1; done")
    started = time.monotonic()
    with pytest.raises(ConsoleTimeout) as caught:
        console.wait_for(re.compile(rb"lab-ready"), timeout=1.5, silence=1.0)
    elapsed = time.monotonic() - started
    assert caught.value.silent is False
    assert 1.4 <= elapsed < 5
    assert "lab-ready" in str(caught.value)
    assert console.text().count(".") >= 5


def test_the_log_file_receives_everything(spawn, tmp_path: Path) -> None:
    console = spawn("printf 'line one\\n'; sleep 0.2; printf 'line two\\r\\n'; sleep 0.2; printf '\\001\\377 bytes\\n'",
                    log_name="serial.log")
    assert console.wait_closed(10)
    console.close()
    logged = (tmp_path / "serial.log").read_bytes()
    assert b"line one" in logged and b"line two" in logged and b"\x01\xff bytes" in logged
    assert logged.decode(errors="replace") == console.text()


def test_the_log_is_appended_not_truncated(spawn, tmp_path: Path) -> None:
    (tmp_path / "console.log").write_bytes(b"from an earlier boot\n")
    console = spawn("printf 'second boot\\n'")
    assert console.wait_closed(10)
    console.close()
    logged = (tmp_path / "console.log").read_bytes()
    assert logged.startswith(b"from an earlier boot\n")
    assert b"second boot" in logged


def test_excerpt_is_the_last_lines_without_carriage_returns(spawn) -> None:
    console = spawn("i=1; while [ $i -le 40 ]; do printf \"line $i\\r\\n\"; i=$((i+1)); done")
    assert console.wait_closed(10)
    excerpt = console.excerpt(lines=5)
    assert excerpt.splitlines() == [f"line {i}" for i in range(36, 41)]
    assert "\r" not in excerpt


def test_last_output_advances_with_output(spawn) -> None:
    console = spawn("printf a; sleep 0.5; printf b; sleep 5")
    console.wait_for(re.compile(rb"a"), timeout=5)
    first = console.last_output
    console.wait_for(re.compile(rb"b"), timeout=5)
    assert console.last_output > first
