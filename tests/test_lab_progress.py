"""Progress on a terminal (lab/core/progress.py), and what each long step counts: a download's
bytes, a build's objects from kbuild's lines, a suite's tests from labstream's lines. Under a real
pty, `lab run` is checked in test_e2e_boot."""
from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import pytest

from lab.core import progress
from lab.kernel import build
from lab.results.stream import STREAM_PREFIX, SuiteProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def not_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")


def run_for(seconds: float, stream: io.StringIO, poll: progress.Poll) -> str:
    with progress.showing("step", poll, stream, interval=0.05):
        time.sleep(seconds)
    return stream.getvalue()


def test_a_terminal_sees_the_line_redrawn_then_wiped() -> None:
    counts = iter(range(1000))
    shown = run_for(0.4, Terminal(), lambda: f"{next(counts)} things")
    frames = shown.split("\r\x1b[K")
    assert frames[0] == "" and frames[-1] == ""  # nothing before the first frame, wiped at the end
    assert frames[1] == "step: 0 things" and len(frames) > 4 and frames[-2].startswith("step: ")


@pytest.mark.parametrize("how", ["not a terminal", "CI", "dumb terminal"])
def test_no_terminal_no_progress(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO() if how == "not a terminal" else Terminal()
    if how == "CI":
        monkeypatch.setenv("CI", "true")
    if how == "dumb terminal":
        monkeypatch.setenv("TERM", "dumb")
    assert run_for(0.2, stream, lambda: "x") == ""


def test_a_poll_that_fails_or_has_nothing_yet_shows_nothing_and_the_step_goes_on() -> None:
    def poll() -> str | None:
        raise OSError("gone")
    assert run_for(0.2, Terminal(), poll) == ""
    assert run_for(0.2, Terminal(), lambda: None) == ""


def test_the_bytes_of_a_download_of_its_total(tmp_path: Path) -> None:
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "x.deb").write_bytes(b"\0" * (3 << 20))
    assert progress.bytes_of(tmp_path, 12 << 20)() == "3.0 MiB of 12.0 MiB"
    assert progress.bytes_of(tmp_path, None)() == "3.0 MiB"


def test_the_last_line_a_step_logged(tmp_path: Path) -> None:
    log = tmp_path / "image.log"
    log.write_text("I: running apt-get update...\nI: extracting archives...\n\n")
    assert progress.last_line(log)() == "I: extracting archives..."
    log.write_text("x" * 10_000 + "\n")
    assert progress.last_line(log, width=20)() == "x" * 20
    log.write_text("")
    assert progress.last_line(log)() is None


def test_lines_are_counted_as_the_log_grows_even_split_mid_line(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text("  CC      kernel/bpf/syscall.o\n  CC      kernel/bp")
    made = progress.counted(log, build.is_object_line, lambda: 1014, "objects", approximate=True)
    assert made() == "1 of about 1014 objects"
    with log.open("a") as handle:
        handle.write("f/map.o\n  LD      vmlinux.o\n  AS      arch/x86/entry/entry_64.o\n  CC      x.s\n")
    assert made() == "3 of about 1014 objects"  # the split line, then AS; not LD, not a .s
    assert progress.counted(tmp_path / "nothing.log", build.is_object_line, lambda: None, "objects")() == "0 objects"


def test_the_expected_objects_are_the_newest_build_of_that_version(tmp_path: Path) -> None:
    for name, version, objects, age in (("a", "6.1.192", 900, 100), ("b", "6.1.192", 1014, 10), ("c", "6.12.9", 5, 0)):
        (tmp_path / name).mkdir()
        recorded = tmp_path / name / "build.json"
        recorded.write_text(json.dumps({"version": version, "objects": objects}))
        os.utime(recorded, (time.time() - age, time.time() - age))
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "build.json").write_text(json.dumps({"version": "6.1.192"}))  # before counts were kept
    assert build.expected_objects(tmp_path, "6.1.192") == 1014
    assert build.expected_objects(tmp_path, "6.6.1") is None


def test_a_suite_counts_its_finished_tests_of_those_collected(tmp_path: Path) -> None:
    log = tmp_path / "maps.log"
    log.write_text("")
    seen = SuiteProgress(log)
    assert seen() is None
    event = lambda **e: STREAM_PREFIX + json.dumps(e, sort_keys=True) + "\n"
    with log.open("a") as handle:
        handle.write(event(event="collected", count=465) + event(event="start", nodeid="a") + ".."
                     + event(event="end", nodeid="a", outcome="passed"))
    assert seen() == "1 of 465 tests"
    with log.open("a") as handle:
        handle.write(event(event="end", nodeid="b", outcome="failed"))
    assert seen() == "2 of 465 tests"


def test_showing_returns_at_once_when_the_step_ends() -> None:
    started = time.monotonic()
    with progress.showing("step", lambda: "x", Terminal(), interval=30):
        pass
    assert time.monotonic() - started < 5
    assert not [t for t in threading.enumerate() if t.name.startswith("progress ")]
