"""lab.run.cpus: the CPUs a kernel brought up, from sysfs lists or its boot lines, and the warning."""
from __future__ import annotations

from pathlib import Path

import pytest

from lab.run.cpus import CpuCounts, count_cpu_list, from_console, read
from lab.target.base import CommandResult

GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.mark.parametrize("text, count", [("0", 1), ("0-1\n", 2), ("0-3,8,10-11", 7), ("", None), ("x", None),
                                         ("0-", None)])
def test_count_cpu_list(text: str, count: int | None) -> None:
    assert count_cpu_list(text) == count


def test_read_asks_sysfs_for_possible_then_online() -> None:
    class Target:
        def run(self, command: str, timeout: float, stdout_sink: Path | None = None) -> CommandResult:
            assert command == "cat /sys/devices/system/cpu/possible /sys/devices/system/cpu/online"
            return CommandResult(0, "0-7\n0-1\n", "")

    assert read(Target(), 5, given=2) == CpuCounts(2, 8, 2)  # type: ignore[arg-type]


def test_boot_lines_of_a_one_cpu_and_a_two_cpu_kernel() -> None:
    one = (GOLDEN / "console" / "lockdep-6.1.192.log").read_text(errors="replace")
    two = (GOLDEN / "console" / "gpf-6.1.0-56-cloud-amd64.log").read_text(errors="replace")
    assert from_console(one, 2) == CpuCounts(2, 1, 1) and from_console(two, 2) == CpuCounts(2, 2, 2)
    assert from_console("no boot lines here", 2) == CpuCounts(2, None, None)


@pytest.mark.parametrize("counts, warns", [
    (CpuCounts(2, 2, 2), False), (CpuCounts(2, 1, 1), True), (CpuCounts(2, 2, 1), True),
    (CpuCounts(None, 4, 4), False), (CpuCounts(None, 1, 1), True),  # a real machine: fewer than two
    (CpuCounts(2, None, None), False),  # nothing known: nothing claimed
])
def test_warning_when_fewer_cpus_than_given(counts: CpuCounts, warns: bool) -> None:
    assert (counts.warning is not None) is warns
