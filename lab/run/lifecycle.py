"""The one run lifecycle every kind of run shares (a QEMU guest, a `--target` machine, a LAVA
job): the record is created -> the stages run under the run's deadline -> one Verdict -> the
record is finished. What the stages raise is mapped to an outcome by verdict.verdict_for."""
from __future__ import annotations

import signal
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from ..core import progress
from ..core.log import Log
from ..core.outcome import Outcome, Verdict
from ..core.timeouts import Timeouts
from ..results import layout
from ..results.kernel_log import SplatPolicy
from ..results.model import SuiteResult
from ..results.record import RunRecord, suite_order
from ..target.base import CommandTimedOut, ConnectionLost, Target
from . import series
from . import suites as suite_runner
from .selection import Selection
from .verdict import FORESEEN, Evidence, RunTimedOut, verdict_for

# The stages of one kind of run: they append each finished suite to the list they are given
# and return the verdict of a run that got to its end.
Stages = Callable[[list[SuiteResult]], Verdict]


@dataclass
class RunOutcome:
    verdict: Verdict
    record: RunRecord
    suites: list[SuiteResult]

    @property
    def outcome(self) -> Outcome:
        return self.verdict.outcome

    @property
    def reason(self) -> str:
        return self.verdict.reason


def no_evidence() -> Evidence:
    return Evidence()


def conduct(record: RunRecord, stages: Stages, *, policy: SplatPolicy, run_timeout: float | None = None,
            evidence: Callable[[], Evidence] = no_evidence,
            cleanup: Callable[[], None] | None = None) -> RunOutcome:
    """Run the stages; whatever happens the record ends with a verdict (interrupted: recorded,
    then raised on; a failure of the lab itself: recorded as infra-error, then raised on)."""
    suites: list[SuiteResult] = []
    try:
        with run_deadline(run_timeout):
            verdict = stages(suites)
    except KeyboardInterrupt:
        record.finish(Verdict(Outcome.INTERRUPTED, "interrupted (SIGINT/SIGTERM)"))
        raise
    except FORESEEN as exc:
        verdict = verdict_for(exc, evidence(), policy)
    except Exception as exc:
        # Not foreseen: the host refused something (a full disk) or the lab has a bug. Recorded as
        # infra-error if the disk still takes it, the traceback kept beside it, then raised on for
        # `lab` to say in one line.
        keep_traceback(record, exc)
        try:
            record.finish(verdict_for(exc, Evidence(), policy))
        except Exception:  # noqa: BLE001 - the first failure is the one to report
            pass
        raise
    finally:
        if cleanup is not None:
            cleanup()
    record.finish(verdict)
    return RunOutcome(verdict, record, suites)


def keep_traceback(record: RunRecord, exc: BaseException) -> None:
    """The traceback of a failure nobody foresaw, into the run directory (best effort: the disk
    may be what failed), named on the exception so `lab` can point at it."""
    path = record.directory / layout.TRACEBACK
    try:
        path.write_text("".join(traceback.format_exception(exc)))
    except OSError:
        return
    exc.add_note(f"traceback: {path}")


@contextmanager
def run_deadline(seconds: float | None) -> Iterator[None]:
    """Raise RunTimedOut in the main thread when the run has taken `seconds`.

    A SIGALRM timer interrupts whatever the run waits on; the context managers on the way out
    still stop QEMU. Signals reach only the main thread, which is where `lab run` runs.
    """
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise RunTimedOut(f"the whole run exceeded {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_suites_then_dmesg(target: Target, names: list[str], tree: suite_runner.TestTree | None, timeouts: Timeouts,
                          record: RunRecord, suites: list[SuiteResult], on_suite: Callable[[SuiteResult], None],
                          log: Log, root: str = suite_runner.REMOTE_ROOT, selection: Selection | None = None,
                          repeat: int | None = None, jobs: int | None = None, coverage: bool = False) -> None:
    """The suites in one command (only the selected tests of each, when there is a selection),
    `jobs` at once (None: one per CPU of the target), each saved and reported as it ends (into
    suites); a lost connection raises ConnectionLost, a timed-out suite ends the series; then the
    kernel log into dmesg.txt. `coverage`: each suite's gcov counters kept (one suite at a time)."""
    stages: dict[str, float] = {}

    def started(name: str) -> None:
        stages[name] = record.start_stage(f"suite:{name}")

    def finished(result: SuiteResult) -> None:
        if result.name in stages:
            record.end_stage(f"suite:{result.name}", stages[result.name])
        suites.append(result)
        record.add_suite(result, order=names)  # saved before anything else can go wrong
        progress.wipe()
        on_suite(result)

    sink_progress = series.SeriesProgress()
    sinks: list[series.SeriesSink] = []

    def watch(sink: series.SeriesSink) -> None:
        sink_progress.watch(sink)
        sinks.append(sink)

    try:
        with record.stage("suites"), progress.showing("", sink_progress):
            truncated = series.run_series(target, names, record.directory, timeouts.suite, started, finished, tree,
                                          root, only=selection.of if selection else lambda name: (), repeat=repeat,
                                          watch=watch, jobs=1 if coverage else jobs, coverage=coverage)
    except BaseException as exc:
        ended = {result.name for result in suites}
        for name, began in stages.items():
            if name not in ended:
                record.end_stage(f"suite:{name}", began, str(exc))  # the suite it broke off
        raise
    finally:
        if sinks and sinks[0].jobs is not None:
            record.update(suites_at_once=sinks[0].jobs)
        for problem in sinks[0].coverage_errors if sinks else []:
            log(f"warning: coverage: {problem}")
            record.warn(f"coverage: {problem}")
    suites.sort(key=suite_order(names))  # as asked, not as they ended
    if truncated:
        warning = f"suite output truncated ({truncated}); see the suite logs"
        log(f"warning: {warning}")
        record.warn(warning)
    lost = [result for result in suites if result.lost]
    if lost:
        raise ConnectionLost(lost[0].error)
    # A machine that just hung a suite may not answer at all: ask briefly then.
    dmesg_timeout = min(timeouts.command, 15.0) if any(s.error for s in suites) else timeouts.command
    try:
        suite_runner.collect_dmesg(target, record.directory, dmesg_timeout)
    except CommandTimedOut as exc:
        log(f"warning: no dmesg: {exc}")
