"""lab.run.verdict over several kernel logs of one boot: the console, then dmesg.txt.

Under `quiet` the console shows only levels below 4, so a WARNING (KERN_WARNING = 4) reaches
dmesg alone; a report both show must be named once (issue 14 item 6)."""
from __future__ import annotations

from lab.core.outcome import Outcome
from lab.results.kernel_log import KernelLog, SplatPolicy
from lab.results.model import FAILED, PASSED, SuiteResult
from lab.results.model import TestRecord as Record
from lab.run.verdict import classify_kernel_log, verdict

BOOT = "[    0.000000] Linux version 6.1.0-57-cloud-amd64\n[    2.1] Run /init as init process\n"
WARN = "[   30.100000] WARNING: CPU: 1 PID: 345 at kernel/bpf/hashtab.c:1234 htab_map_free+0x12/0x40\n"
WARN_TITLE = "WARNING: CPU: 1 PID: 345 at kernel/bpf/hashtab.c:1234 htab_map_free+0x12/0x40"
CRASH = "[   31.000000] kernel BUG at kernel/bpf/hashtab.c:812!\n"


def logs(console: str, dmesg: str) -> list[KernelLog]:
    return [KernelLog("console.log", console), KernelLog("dmesg.txt", dmesg)]


def suites(ok: bool = True) -> list[SuiteResult]:
    record = Record("maps", "test_maps.py::t", PASSED if ok else FAILED, 0.1)
    return [SuiteResult("maps", [record], 1.0, 0 if ok else 1)]


def test_a_warning_only_in_dmesg_makes_a_green_run_kernel_warned() -> None:
    found = verdict(suites(), logs(BOOT, BOOT + "[   30.0] ------------[ cut here ]------------\n" + WARN), SplatPolicy())
    assert found.outcome is Outcome.KERNEL_WARNED
    assert found.reason == f"{WARN_TITLE} (in dmesg.txt)"  # where to look: not on the console
    assert WARN_TITLE in found.excerpt and "cut here" in found.excerpt  # the excerpt is dmesg's


def test_a_warning_only_in_dmesg_with_failing_suites_is_failed() -> None:
    assert verdict(suites(ok=False), logs(BOOT, BOOT + WARN), SplatPolicy()).outcome is Outcome.FAILED


def test_a_report_both_show_is_named_once_from_the_console() -> None:
    console = BOOT + "console-only context\n" + WARN
    found = classify_kernel_log(logs(console, BOOT + WARN), all_passed=True)
    assert found is not None and found.reason == WARN_TITLE
    assert "console-only context" in found.excerpt
    assert found.excerpt.count(WARN_TITLE) == 1


def test_a_crash_in_either_beats_a_warning_in_either() -> None:
    found = classify_kernel_log(logs(BOOT + WARN, BOOT + CRASH), all_passed=True)
    assert found is not None and found.outcome is Outcome.KERNEL_CRASHED
    assert found.reason == "kernel BUG at kernel/bpf/hashtab.c:812! (in dmesg.txt)"
    found = classify_kernel_log(logs(BOOT + CRASH, BOOT + WARN), all_passed=False)
    assert found is not None and found.reason == "kernel BUG at kernel/bpf/hashtab.c:812!"


def test_the_splat_policy_applies_to_every_source() -> None:
    policy = SplatPolicy(allow=(r"hashtab\.c:1234",), deny=(r"bpf: lab complaint",))
    assert classify_kernel_log(logs(BOOT, BOOT + WARN), all_passed=True, policy=policy) is None
    found = classify_kernel_log(logs(BOOT, BOOT + "[    9.0] bpf: lab complaint\n"), all_passed=True, policy=policy)
    assert found is not None and found.reason == "bpf: lab complaint (in dmesg.txt)"


def test_clean_sources_and_a_missing_dmesg_are_clean() -> None:
    assert classify_kernel_log(logs(BOOT, BOOT), all_passed=True) is None
    assert classify_kernel_log(logs(BOOT, ""), all_passed=True) is None
    assert verdict(suites(), logs(BOOT, ""), SplatPolicy()).outcome is Outcome.PASSED


def test_one_text_is_classified_as_before() -> None:
    found = classify_kernel_log(BOOT + WARN, all_passed=True)
    assert found is not None and (found.outcome, found.reason) == (Outcome.KERNEL_WARNED, WARN_TITLE)
