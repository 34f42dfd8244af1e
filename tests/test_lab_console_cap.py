"""lab.vm.console against a guest that prints without end, and a host whose disk is full (issue 14):
the memory keeps a window, console.log stops at its cap and says so, and a log that cannot be
written never stops the drain (QEMU would block) but makes waiting fail as the host's error."""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from lab.core.errors import InfraError
from lab.core.outcome import Outcome
from lab.results.kernel_log import SplatPolicy
from lab.run.verdict import Evidence, verdict_for
from lab.vm import console as console_module
from lab.vm.console import Console, ConsoleTimeout


class FakeChild:
    """What Console reads: chunks, then EOF (QEMU exited) or, with `hold`, silence until released."""

    def __init__(self, chunks: Iterator[bytes], hold: bool = False) -> None:
        self.chunks = chunks
        self.hold = hold
        self.release = threading.Event()
        self.read = 0

    def read_nonblocking(self, size: int, timeout: float) -> bytes:
        chunk = next(self.chunks, None)
        if chunk is None:
            if self.hold and not self.release.wait(timeout):
                raise pexpect.TIMEOUT("quiet")
            raise pexpect.EOF("closed")
        self.read += len(chunk)
        return chunk


def storm(megabytes: int, then: bytes = b"") -> Iterator[bytes]:
    line = b"[   12.345678] bpf: printk storm line, as a looping WARN would print it\n"
    block = (line * (65536 // len(line) + 1))[:65536]  # 64 KiB, as one pty read may return
    for _ in range(megabytes * 16):
        yield block
    if then:
        yield then


@pytest.fixture
def small_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_module, "LOG_CAP", 100_000)
    monkeypatch.setattr(console_module, "WINDOW", 50_000)


def test_a_printk_storm_is_drained_to_the_end_but_logged_only_up_to_the_cap(small_caps: None, tmp_path: Path) -> None:
    child = FakeChild(storm(8, then=b"Kernel panic - not syncing: after the storm\r\n"))
    console = Console(child, tmp_path / "console.log")  # type: ignore[arg-type]
    assert console.wait_closed(20)
    console.close()
    assert child.read > 8 << 20  # everything was read: QEMU never blocked on the pty
    assert console.truncated
    assert len(console.text()) <= 50_000 and console.text().endswith("after the storm\r\n")
    logged = (tmp_path / "console.log").read_bytes()
    assert len(logged) < 100_000 + 50_000 + 1000
    assert b"[lab: console.log truncated at 100000 bytes" in logged
    # What came after the cap at the end is still in the file the verdict reads: the panic is not lost.
    assert logged.rstrip().endswith(b"Kernel panic - not syncing: after the storm")
    assert re.search(rb"\[lab: \d+ bytes of the console not logged; its last 50000 bytes:\]", logged)
    assert "console.log truncated" in console.log_warning


def test_a_restored_guests_saved_boot_counts_against_the_cap(small_caps: None, tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(b"saved boot\n" * 3000)  # 33,000 bytes the snapshot's boot left there
    console = Console(FakeChild(storm(8)), log)  # type: ignore[arg-type]
    assert console.wait_closed(20)
    console.close()
    logged = log.read_bytes()
    assert logged.startswith(b"saved boot\n" * 3000)
    cut = logged.index(b"[lab: console.log truncated at 100000 bytes")
    assert cut == 100_000 + 1  # the cap is the file's: saved boot and live console together (+ its newline)


def test_a_marker_after_a_storm_is_found_in_the_window(small_caps: None, tmp_path: Path) -> None:
    child = FakeChild(storm(4, then=b"lab-ready: sshd started on 6.1\n"), hold=True)
    console = Console(child, tmp_path / "console.log")  # type: ignore[arg-type]
    match = console.wait_for(re.compile(rb"lab-ready: sshd started on (\S+)"), timeout=20)
    assert match[1] == b"6.1"
    assert console.total > 4 << 20 and len(console.text()) <= 50_000
    child.release.set()
    console.close()


def test_a_marker_split_across_a_window_trim_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(console_module, "WINDOW", 1000)
    pieces = iter([b"x" * 990 + b"lab-re", b"ady\n" + b"y" * 500])
    child = FakeChild(pieces, hold=True)
    console = Console(child, tmp_path / "console.log")  # type: ignore[arg-type]
    assert console.wait_for(re.compile(rb"lab-ready"), timeout=10)[0] == b"lab-ready"
    child.release.set()
    console.close()


def test_a_log_under_the_cap_is_whole_and_unmarked(small_caps: None, tmp_path: Path) -> None:
    console = Console(FakeChild(iter([b"short boot\n"])), tmp_path / "console.log")  # type: ignore[arg-type]
    assert console.wait_closed(10)
    console.close()
    assert (tmp_path / "console.log").read_bytes() == b"short boot\n"
    assert not console.truncated and console.log_warning == "" and console.write_error == ""


def test_a_full_disk_under_console_log_keeps_the_drain_and_fails_the_wait_as_infra(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.symlink_to("/dev/full")  # every write: ENOSPC
    child = FakeChild(storm(1, then=b"lab-ready\n"))
    console = Console(child, log)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(InfraError, match=r"writing .*console.log: \[Errno 28\] No space left on device") as caught:
        console.wait_for(re.compile(rb"never printed"), timeout=30, silence=20)
    assert time.monotonic() - started < 5  # said at once, not after the boot timeout
    assert console.wait_closed(10) and child.read > 1 << 20  # the drain went on to the end
    console.close()
    assert "No space left" in console.write_error
    # The run's one exception -> outcome mapping: the host's failure, never the kernel's.
    assert verdict_for(caught.value, Evidence(), SplatPolicy()).outcome is Outcome.INFRA_ERROR


def test_after_a_write_error_even_a_present_marker_is_not_trusted(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.symlink_to("/dev/full")
    console = Console(FakeChild(iter([b"lab-ready\n"])), log)  # type: ignore[arg-type]
    assert console.wait_closed(10)
    with pytest.raises(InfraError):
        console.wait_for(re.compile(rb"lab-ready"), timeout=5)
    console.close()


def test_check_log_warns_of_truncation_and_raises_for_a_write_error(small_caps: None, tmp_path: Path) -> None:
    warnings: list[str] = []
    truncated = Console(FakeChild(storm(1)), tmp_path / "a.log")  # type: ignore[arg-type]
    assert truncated.wait_closed(10)
    truncated.close()
    truncated.check_log(warnings.append)
    assert len(warnings) == 1 and "a.log truncated at 100000 bytes" in warnings[0]
    (tmp_path / "b.log").symlink_to("/dev/full")
    failed = Console(FakeChild(iter([b"x\n"])), tmp_path / "b.log")  # type: ignore[arg-type]
    assert failed.wait_closed(10)
    failed.close()
    with pytest.raises(InfraError, match="b.log"):
        failed.check_log(warnings.append)


def test_a_real_pty_storm_keeps_the_memory_bounded(small_caps: None, tmp_path: Path) -> None:
    # 6 MB through a real pty, as QEMU's serial port would send it, then a marker.
    child = pexpect.spawn("sh", ["-c", "yes 'printk storm line' | head -c 6000000; echo; echo the-marker; sleep 5"],
                          timeout=None, echo=False)
    console = Console(child, tmp_path / "console.log")
    try:
        assert console.wait_for(re.compile(rb"the-marker"), timeout=60)
        assert console.total > 6_000_000 and len(console.text()) <= 50_000
    finally:
        child.terminate(force=True)
        child.close(force=True)
        console.close()
    assert (tmp_path / "console.log").stat().st_size < 100_000 + 50_000 + 1000


def test_silence_still_times_out_with_a_capped_log(small_caps: None, tmp_path: Path) -> None:
    child = FakeChild(storm(1), hold=True)
    console = Console(child, tmp_path / "console.log")  # type: ignore[arg-type]
    with pytest.raises(ConsoleTimeout) as caught:
        console.wait_for(re.compile(rb"lab-ready"), timeout=20, silence=1.0)
    assert caught.value.silent
    child.release.set()
    console.close()
