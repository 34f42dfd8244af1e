"""The console parser against golden console logs captured from real guests.

tests/golden/capture.py made each log by booting the Debian 6.1 kernel in the lab and making
it print one kind of report (sysrq, fsfreeze, the reboot syscall, or the labsplat test
module). Like syzkaller's report tests: every kind has a log, and the parser must name it.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab import consolescan
from lab.outcome import Outcome
from lab.pipeline import _classify_console

GOLDEN = Path(__file__).parent / "golden" / "console"

# kind -> (finding kind, title pattern) of the FIRST finding; None: the log must be clean.
EXPECTED: dict[str, tuple[str, str] | None] = {
    "clean": None,
    "panic": ("crash", r"Kernel panic - not syncing: sysrq triggered crash"),
    "warning": ("warning", r"WARNING: CPU: \d+ PID: \d+ at .*labsplat\.c:\d+ labsplat_init\+.*\[labsplat\]"),
    "bug": ("crash", r"kernel BUG at .*labsplat\.c:\d+!"),
    "null-deref": ("crash", r"BUG: kernel NULL pointer dereference, address: 0000000000000000"),
    "gpf": ("crash", r"general protection fault, probably for non-canonical address 0xdead000000000000: 0000 \[#1\].*"),
    "soft-lockup": ("crash", r"watchdog: BUG: soft lockup - CPU#\d+ stuck for \d+s! \[insmod:\d+\]"),
    "rcu-stall": ("crash", r"rcu: INFO: rcu_\w+ self-detected stall on CPU"),
    "hung-task": ("crash", r"INFO: task touch:\d+ blocked for more than \d+ seconds\."),
    "reboot": ("crash", r"reboot: Restarting system"),
}


def golden_logs() -> list[Path]:
    return sorted(GOLDEN.glob("*.log"))


def kind_of(path: Path) -> str:
    return re.sub(r"-\d+\.\d+.*$", "", path.stem)


def test_every_kind_has_a_golden_log() -> None:
    assert {kind_of(path) for path in golden_logs()} == set(EXPECTED)


@pytest.mark.parametrize("path", golden_logs(), ids=lambda p: p.stem)
def test_golden_log_is_named_by_its_first_finding(path: Path) -> None:
    text = path.read_text(errors="replace")
    findings = consolescan.scan(text)
    expected = EXPECTED[kind_of(path)]
    if expected is None:
        assert findings == []
        assert _classify_console(text, all_passed=True) is None
        return
    kind, title = expected
    assert findings, "the parser found nothing in a log with a kernel report"
    assert findings[0].kind == kind
    assert re.fullmatch(title, findings[0].title), findings[0].title
    outcome, reason, excerpt = _classify_console(text, all_passed=True) or (None, "", "")
    assert outcome is (Outcome.KERNEL_CRASHED if kind == "crash" else Outcome.KERNEL_WARNED)
    assert reason == findings[0].title and findings[0].title in excerpt


@pytest.mark.parametrize("path", golden_logs(), ids=lambda p: p.stem)
def test_every_golden_log_boots_cleanly_before_its_report(path: Path) -> None:
    """The boot part of each log (up to the ready marker) must not produce findings."""
    text = path.read_text(errors="replace")
    boot = text.split("lab-ready: sshd started on", 1)[0]
    assert "lab-ready" in text and consolescan.scan(boot) == []
