"""How a run ended, decided in one place (syzkaller's monitor): from the suites and the kernel's
log when the stages finished, or from the exception that stopped them."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..core.errors import InfraError, describe_failure
from ..core.outcome import Outcome, Verdict
from ..results import kernel_log
from ..results.model import SuiteResult
from ..target.base import CommandTimedOut, ConnectionLost
from ..vm.machine import BootFailed, BootTimedOut


class RunTimedOut(Exception):
    """The whole run exceeded --run-timeout."""


@dataclass(frozen=True)
class Evidence:
    """What the run saw of its kernel when a stage failed: the console so far ("" where there is
    none, as on a real machine), and the lines to show with the outcome."""
    kernel_log: str = ""
    excerpt: str = ""


KernelLogs = str | Sequence[kernel_log.KernelLog]


def classify_kernel_log(logs: KernelLogs, all_passed: bool,
                        policy: kernel_log.SplatPolicy = kernel_log.SplatPolicy()) -> Verdict | None:
    """A crash in the kernel's log decides the run; a warning only a green one. `logs` is one text
    (a console, or dmesg) or several sources of the same boot, most complete first (the console,
    then dmesg.txt, which also has what the console's loglevel kept off it, as a WARNING under
    `quiet`). A crash in any beats a warning in any; a report two sources show is named once,
    from the first that has one, with its excerpt from there."""
    sources = [kernel_log.KernelLog("", logs)] if isinstance(logs, str) else list(logs)
    found = [(log, kernel_log.scan(log.text, policy)) for log in sources]
    kinds = [("crash", Outcome.KERNEL_CRASHED)] + ([("warning", Outcome.KERNEL_WARNED)] if all_passed else [])
    for kind, outcome in kinds:
        for position, (log, findings) in enumerate(found):
            first = next((f for f in findings if f.kind == kind), None)
            if first:
                # Beyond the first source, say where: the reader would look for it on the console.
                reason = first.title if position == 0 or not log.source else f"{first.title} (in {log.source})"
                return Verdict(outcome, reason, kernel_log.excerpt_around(log.text, first.line))
    return None


def verdict(suites: list[SuiteResult], logs: KernelLogs, policy: kernel_log.SplatPolicy) -> Verdict:
    """The outcome of a run whose suites all ended: the kernel's log first, then timeouts, then failures."""
    all_passed = all(s.ok for s in suites)
    classified = classify_kernel_log(logs, all_passed, policy)
    if classified:
        return classified
    timed_out = [s for s in suites if s.error.startswith("timed out")]
    if timed_out:
        return Verdict(Outcome.TIMED_OUT, f"suite {timed_out[0].name}: {timed_out[0].error}")
    if not all_passed:
        return Verdict(Outcome.FAILED, f"failures in suite(s): {', '.join(s.name for s in suites if not s.ok)}")
    return Verdict(Outcome.PASSED, "every suite passed")


# The ways the stages of a run are expected to stop; anything else is a bug of the lab.
FORESEEN = (RunTimedOut, BootFailed, BootTimedOut, ConnectionLost, CommandTimedOut, InfraError)


def verdict_for(exc: BaseException, evidence: Evidence, policy: kernel_log.SplatPolicy) -> Verdict:
    """Every way the stages of a run can stop, mapped to an outcome. Anything not foreseen is the
    lab's own failure: infra-error, never the kernel's fault."""
    if isinstance(exc, RunTimedOut):
        return Verdict(Outcome.TIMED_OUT, str(exc), evidence.excerpt)
    if isinstance(exc, BootFailed):
        return Verdict(Outcome.BOOT_FAILED, exc.reason, exc.excerpt)
    if isinstance(exc, BootTimedOut):
        return Verdict(Outcome.TIMED_OUT, f"boot: {exc.reason}", exc.excerpt)
    if isinstance(exc, (ConnectionLost, CommandTimedOut)):
        # A guest that panicked drops its connection: the console says which it was.
        crash = classify_kernel_log(evidence.kernel_log, all_passed=False, policy=policy)
        if crash and crash.outcome is Outcome.KERNEL_CRASHED:
            return crash
        if isinstance(exc, CommandTimedOut):  # ship or another housekeeping command hung
            return Verdict(Outcome.TIMED_OUT, str(exc), evidence.excerpt)
        return Verdict(Outcome.LOST_CONNECTION, str(exc), evidence.excerpt)
    if isinstance(exc, InfraError):
        return Verdict(Outcome.INFRA_ERROR, str(exc))
    return Verdict(Outcome.INFRA_ERROR, describe_failure(exc))
