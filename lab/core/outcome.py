"""A run's outcome, the typed verdict a run ends with, and the exit code each outcome maps to
(one table, used everywhere)."""
from __future__ import annotations

import enum
from typing import NamedTuple


class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    BOOT_FAILED = "boot-failed"
    KERNEL_CRASHED = "kernel-crashed"
    KERNEL_WARNED = "kernel-warned"
    TIMED_OUT = "timed-out"
    LOST_CONNECTION = "lost-connection"
    INFRA_ERROR = "infra-error"
    INTERRUPTED = "interrupted"


class Verdict(NamedTuple):
    """How a run ended: the outcome, one line of why, and the kernel's own lines when they matter."""
    outcome: Outcome
    reason: str
    excerpt: str = ""


# Exit code 2 is reserved for bad input (UserError), which never reaches an Outcome.
USER_ERROR_EXIT = 2

EXIT_CODES: dict[Outcome, int] = {
    Outcome.PASSED: 0,
    Outcome.FAILED: 1,
    Outcome.BOOT_FAILED: 3,
    Outcome.KERNEL_CRASHED: 4,
    Outcome.KERNEL_WARNED: 5,
    Outcome.TIMED_OUT: 6,
    Outcome.LOST_CONNECTION: 7,
    Outcome.INFRA_ERROR: 8,
    Outcome.INTERRUPTED: 130,
}


def exit_code(outcome: Outcome) -> int:
    return EXIT_CODES[outcome]
