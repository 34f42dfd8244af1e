"""How many CPUs the kernel under test brought up, against how many QEMU gave it.

Per-CPU maps hold one value per *possible* CPU and the concurrency tests need two CPUs to
race, so a guest that sees fewer CPUs than it was given is a warning in the run's record and
summary, never a silent pass. Read from sysfs over the Target contract (a guest, a machine),
or from the kernel's boot lines on a console (a LAVA job).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ..target.base import Target

POSSIBLE = "/sys/devices/system/cpu/possible"
ONLINE = "/sys/devices/system/cpu/online"
# "smpboot: Allowing 2 CPUs, 0 hotplug CPUs" (possible), "smp: Brought up 1 node, 2 CPUs" (online)
_ALLOWING = re.compile(r"smpboot: Allowing (\d+) CPUs")
_BROUGHT_UP = re.compile(r"smp: Brought up \d+ nodes?, (\d+) CPUs?")


@dataclass(frozen=True)
class CpuCounts:
    given: int | None  # vCPUs QEMU was given; None: a real machine
    possible: int | None  # None: the kernel did not say
    online: int | None

    def to_json(self) -> dict[str, int | None]:
        return asdict(self)

    @property
    def warning(self) -> str | None:
        """One line when the kernel has fewer CPUs than it was given (or than two, on a machine)."""
        seen = [n for n in (self.possible, self.online) if n is not None]
        if not seen:
            return None
        fewest = min(seen)
        wanted = self.given if self.given is not None else 2
        if fewest >= wanted:
            return None
        given = f"of the {self.given} QEMU gave it" if self.given is not None else "(the tests that need two skip)"
        return (f"the kernel brought up {self.online if self.online is not None else '?'} CPU(s) "
                f"({self.possible if self.possible is not None else '?'} possible) {given}: "
                "per-CPU and concurrency tests that need two CPUs skip")


def count_cpu_list(text: str) -> int | None:
    """The number of CPUs in a sysfs CPU list such as "0-1,4"; None if it is not one."""
    total = 0
    for part in text.strip().split(","):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            return None
        total += int(last) - int(first) + 1 if last else 1
    return total or None


def read(target: Target, timeout: float, given: int | None) -> CpuCounts:
    result = target.run(f"cat {POSSIBLE} {ONLINE}", timeout)
    lines = result.out.splitlines() if result.rc == 0 else []
    possible = count_cpu_list(lines[0]) if len(lines) > 0 else None
    online = count_cpu_list(lines[1]) if len(lines) > 1 else None
    return CpuCounts(given, possible, online)


def from_console(text: str, given: int | None) -> CpuCounts:
    allowing, brought_up = _ALLOWING.findall(text), _BROUGHT_UP.findall(text)
    return CpuCounts(given, int(allowing[-1]) if allowing else None, int(brought_up[-1]) if brought_up else None)
