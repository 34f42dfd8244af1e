"""Possible CPUs, which size the user buffers of per-CPU maps.

The kernel copies one slot per *possible* CPU (for_each_possible_cpu), packed
densely, so the count of CPUs in /sys/devices/system/cpu/possible matters,
not os.cpu_count() (online CPUs) and not the highest CPU number.

``on_one_cpu`` keeps the calling thread on one CPU: what some maps do
depends on the CPU a call runs on (an LRU's per-CPU free lists), so a test
that records it must not migrate halfway.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

POSSIBLE_CPUS_PATH = "/sys/devices/system/cpu/possible"


def parse_cpu_list(text: str) -> list[int]:
    """Parse a kernel CPU list such as ``"0-1"`` or ``"0,2-3"`` into sorted ids."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        first = int(lo)
        last = int(hi) if sep else first
        if last < first:
            raise ValueError(f"bad CPU range {part!r}")
        cpus.update(range(first, last + 1))
    if not cpus:
        raise ValueError(f"empty CPU list {text!r}")
    return sorted(cpus)


@functools.lru_cache(maxsize=None)
def possible_cpus(path: str = POSSIBLE_CPUS_PATH) -> tuple[int, ...]:
    """The possible CPU ids, in the order per-CPU values are laid out."""
    with open(path, encoding="ascii") as f:
        return tuple(parse_cpu_list(f.read()))


def num_possible_cpus() -> int:
    """How many value slots a per-CPU lookup fills."""
    return len(possible_cpus())


@contextlib.contextmanager
def on_one_cpu() -> Iterator[int]:
    """Run the block on the lowest CPU this thread may use; the affinity is restored after."""
    allowed = os.sched_getaffinity(0)
    cpu = min(allowed)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, allowed)
