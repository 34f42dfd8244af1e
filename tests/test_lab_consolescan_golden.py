"""The console parser against golden console logs captured from real guests.

tests/golden/capture.py made each log by booting the Debian 6.1 kernel in the lab and making
it print one kind of report (sysrq, fsfreeze, the reboot syscall, or the labsplat test
module); the KASAN, UBSAN and lockdep logs come from a debug kernel the lab built
(kernel-configs/debug.config, kernel-configs/patches/debug-splats) and LKDTM built into it.
Like syzkaller's report tests: every kind has a log, and the parser must name it.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from lab.core.outcome import Outcome
from lab.kernel import kconfig, patches
from lab.results import kernel_log as consolescan
from lab.run.verdict import classify_kernel_log

GOLDEN = Path(__file__).parent / "golden" / "console"
REPO = Path(__file__).resolve().parent.parent

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
    "kasan": ("crash", r"BUG: KASAN: slab-out-of-bounds in lkdtm_SLAB_LINEAR_OVERFLOW(\.cold)?\+0x[0-9a-f]+/0x[0-9a-f]+"),
    "ubsan": ("crash", r"UBSAN: array-index-out-of-bounds in (\.\./)?drivers/misc/lkdtm/bugs\.c:\d+:\d+"),
    "lockdep": ("warning", r"WARNING: possible circular locking dependency detected"),
}

# kind -> what the report's excerpt (the lines after its header) must show
DETAIL: dict[str, str] = {
    "kasan": r"Write of size 4 at addr [0-9a-f]+ by task \S+/\d+",
    "ubsan": r"index 8 is out of range for type 'char \[8\]'",
    "lockdep": r"\(lkdtm_lock_a\)\S* at: lkdtm_LOCKDEP_AB_BA\+",
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
        assert classify_kernel_log(text, all_passed=True) is None
        return
    kind, title = expected
    assert findings, "the parser found nothing in a log with a kernel report"
    assert findings[0].kind == kind
    assert re.fullmatch(title, findings[0].title), findings[0].title
    outcome, reason, excerpt = classify_kernel_log(text, all_passed=True) or (None, "", "")
    assert outcome is (Outcome.KERNEL_CRASHED if kind == "crash" else Outcome.KERNEL_WARNED)
    assert reason == findings[0].title and findings[0].title in excerpt


@pytest.mark.parametrize("path", [p for p in golden_logs() if kind_of(p) in DETAIL], ids=lambda p: p.stem)
def test_debug_report_excerpt_shows_what_went_wrong(path: Path) -> None:
    """The KASAN, UBSAN and lockdep excerpts carry the access, the index, or the locks."""
    text = path.read_text(errors="replace")
    _, _, excerpt = classify_kernel_log(text, all_passed=True) or (None, "", "")
    assert re.search(DETAIL[kind_of(path)], excerpt), excerpt


@pytest.mark.parametrize("path", golden_logs(), ids=lambda p: p.stem)
def test_every_golden_log_boots_cleanly_before_its_report(path: Path) -> None:
    """The boot part of each log (up to the ready marker) must not produce findings."""
    text = path.read_text(errors="replace")
    boot = text.split("lab-ready: sshd started on", 1)[0]
    assert "lab-ready" in text and consolescan.scan(boot) == []


def test_debug_kernel_recipe_has_what_the_debug_kinds_need() -> None:
    """The fragment asks for every symbol capture.py requires of a debug kernel, and the
    patch series that adds LKDTM's LOCKDEP_AB_BA loads."""
    spec = importlib.util.spec_from_file_location("golden_capture", REPO / "tests" / "golden" / "capture.py")
    assert spec and spec.loader
    capture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(capture)
    fragment = REPO / "kernel-configs" / "debug.config"
    asked = {s.symbol: s.value for s in kconfig.parse_fragment(fragment.read_text(), fragment.name)}
    needed = {symbol for symbols in capture.NEEDS_DEBUG_KERNEL.values() for symbol in symbols}
    assert {symbol: asked.get(symbol) for symbol in needed} == dict.fromkeys(needed, "y")
    assert set(capture.NEEDS_DEBUG_KERNEL) == {"kasan", "ubsan", "lockdep"} <= set(EXPECTED)
    series = patches.load_series([REPO / "kernel-configs" / "patches" / "debug-splats"])
    assert [p.name for p in series] == ["0001-lkdtm-add-LOCKDEP_AB_BA.patch"]
    assert "+\tCRASHTYPE(LOCKDEP_AB_BA),\n" in series[0].path.read_text()


# --- reports the console does not show as such (issue 14 item 6) -----------------------------------------

QUIET = Path(__file__).parent / "golden" / "quiet"
CALLER = Path(__file__).parent / "golden" / "printk-caller"
LABSPLAT_WARNING = r"WARNING: CPU: \d+ PID: \d+ at .*labsplat\.c:\d+ labsplat_init\+.*\[labsplat\]"


def quiet_pair() -> tuple[str, str]:
    """tests/golden/capture_hidden.py quiet: Debian 6.1 booted with `quiet`, labsplat's WARN()."""
    [console] = QUIET.glob("warning-*.console.log")
    dmesg = console.with_name(console.name.replace(".console.log", ".dmesg.txt"))
    return console.read_text(errors="replace"), dmesg.read_text(errors="replace")


def test_quiet_keeps_the_warning_off_the_console_and_dmesg_has_it() -> None:
    console, dmesg = quiet_pair()
    assert "lab-ready: sshd started on" in console and consolescan.scan(console) == []
    assert re.search(r"Command line: .* quiet", dmesg)
    [finding] = consolescan.scan(dmesg)  # a whole boot's ring buffer, debug lines too: one report
    assert finding.kind == "warning" and re.fullmatch(LABSPLAT_WARNING, finding.title), finding.title


def test_a_quiet_guest_run_with_a_warning_in_dmesg_is_kernel_warned(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The guest run's verdict reads dmesg.txt beside the console: green suites, a clean quiet
    console and the real WARNING in dmesg end kernel-warned, the excerpt from dmesg.txt."""
    from test_lab_pipeline import World

    from lab.run import suites as runner

    console, dmesg = quiet_pair()
    world = World(tmp_path, monkeypatch)
    world.console = console
    monkeypatch.setattr(runner, "collect_dmesg", lambda target, run_dir, timeout: (run_dir / "dmesg.txt").write_text(dmesg))
    result = world.execute()
    assert result.outcome is Outcome.KERNEL_WARNED, result.reason
    assert re.fullmatch(LABSPLAT_WARNING + r" \(in dmesg\.txt\)", result.reason), result.reason
    assert "labsplat: warning requested" in result.record.metadata.console_excerpt


@pytest.mark.parametrize("kind, title", [
    ("bug", r"kernel BUG at (\.\./)?drivers/misc/lkdtm/bugs\.c:\d+!"),
    ("warning", r"WARNING: CPU: \d+ PID: \d+ at (\.\./)?drivers/misc/lkdtm/bugs\.c:\d+ lkdtm_WARNING\+0x[0-9a-f]+/0x[0-9a-f]+"),
], ids=["bug", "warning"])
def test_printk_caller_console_reports_are_found(kind: str, title: str) -> None:
    """tests/golden/capture_hidden.py caller: a kernel with CONFIG_PRINTK_CALLER, LKDTM's BUG and
    WARNING; every line of the console carries "[    T<pid>]" or "[    C<cpu>]"."""
    [path] = CALLER.glob(f"{kind}-*.log")
    text = path.read_text(errors="replace")
    assert re.search(r"^\[\s*\d+\.\d+\]\[\s*T\d+\] ", text, re.MULTILINE), "not a PRINTK_CALLER console"
    boot = text.split("lab-ready: sshd started on", 1)[0]
    assert consolescan.scan(boot) == []
    findings = consolescan.scan(text)
    assert findings, "the parser found nothing in a log with a kernel report"
    assert re.fullmatch(title, findings[0].title), findings[0].title
    expected = Outcome.KERNEL_CRASHED if kind == "bug" else Outcome.KERNEL_WARNED
    outcome, reason, excerpt = classify_kernel_log(text, all_passed=True) or (None, "", "")
    assert outcome is expected and reason == findings[0].title and reason in excerpt
    if kind == "bug":  # the die() header after it, with its caller prefix, is a crash too
        assert any(re.fullmatch(r"invalid opcode: 0000 \[#1\].*", f.title) for f in findings), findings
