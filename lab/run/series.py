"""The requested suites in one command: guest-tests/labsuites.py imports pytest once and forks a
pytest session per suite; this side splits its stdout back into one log, one JUnit report and
one SuiteResult per suite, each saved as the suite ends.

Per suite, exactly what a command per suite gave: its log, its JUnit file, its exit status, its
bound (the target's runner kills a suite over it; a target that cannot, being frozen, is timed
out here one suite bound after that suite started), and the finished tests of a suite the
target died in. Only the command's start is paid once instead of once per suite, and suites
may run side by side (one per CPU of the target by default; `lab run --suite-jobs 1`: one after
the other): each suite's output comes in `output` events of its own.
"""
from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

from ..core.files import local_file
from ..results import layout
from ..results.junit import parse_junit, parse_suite_properties
from ..results.model import SuiteResult
from ..results.stream import SuiteProgress, records_from_stream
from ..target.base import CommandTimedOut, ConnectionLost, Target, quote_command
from .suites import LAB_MODULES, REMOTE_ROOT, TestTree, default_tree, out_dir, suite_paths, tests_dir

PREFIX = b"@@lab-suite "  # guest-tests/labsuites.py starts its event lines with it
RUNNER = LAB_MODULES[0]
# The target's runner ends a suite at its bound and says so; this side waits this much longer
# before it decides the target cannot answer at all.
HOST_SLACK = 15.0
# False: each suite in a python of its own, as before the runner (`make bench` compares the two).
ONE_PYTHON = True
PYTEST_ARGS = ["-p", "no:cacheprovider", "-p", "labstream", "-q", "-rs", "-o", "junit_family=xunit1"]


def series_command(names: list[str], suite_timeout: float, tree: TestTree | None = None, root: str = REMOTE_ROOT,
                   only: Callable[[str], tuple[str, ...]] = lambda name: (), repeat: int | None = None,
                   python: str = "python3", jobs: int | None = None, coverage: bool = False) -> str:
    """One command running `names` in order in the target, each within `suite_timeout`, `jobs`
    of them at once (None: one per CPU of the target).
    `only`: the node ids selected in a suite (none: all of it). `repeat`: the run's repetition
    (`--repeat`), as LAB_REPEAT, so a test can tell repetitions apart. `python`: the target's.
    `coverage`: the kernel's gcov counters reset before each suite and sent with its end."""
    tree = tree or default_tree()
    spec = {"out": out_dir(root), "timeout": suite_timeout, "fresh_python": not ONE_PYTHON, "jobs": jobs or 0,
            "suites": [{"name": name, "args": [*PYTEST_ARGS, *suite_paths(tree, name, only(name))]} for name in names]}
    if coverage:
        spec["coverage"] = True
    environment = f"LAB_REPEAT={repeat} " if repeat is not None else ""
    tests = quote_command([tests_dir(root)])
    return f"cd {tests} && {environment}{quote_command([python, RUNNER, json.dumps(spec, sort_keys=True)])}"


def total_bound(count: int, suite_timeout: float) -> float:
    """The command's own bound: every suite at its bound (the sink's moving deadline is tighter)."""
    return count * (suite_timeout + HOST_SLACK)


def cut_short(log: Path, suite: str, wall: float, why: str, rc: int | None = None, lost: bool = False) -> SuiteResult:
    """A suite without its report: the tests that finished, from the streamed log."""
    partial = records_from_stream(log.read_text(errors="replace") if log.exists() else "", suite, why)
    return SuiteResult(suite, partial, wall, rc, why, lost=lost)


@dataclass
class _Running:
    name: str
    started: float
    log: Path
    handle: BinaryIO


@dataclass
class SeriesSink:
    """The OutputSink of the series command: each suite's output into its own log, each end made a
    SuiteResult and handed to `finished` at once (so it is saved before the next suite ends).
    Several suites may be running at once (the runner's `jobs`)."""

    run_dir: Path
    names: list[str]
    suite_timeout: float
    started: Callable[[str], None]
    finished: Callable[[SuiteResult], None]
    results: list[SuiteResult] = field(default_factory=list)
    preamble: bytearray = field(default_factory=bytearray)  # what the runner said outside any suite
    running: dict[str, _Running] = field(default_factory=dict)
    jobs: int | None = None  # how many suites the target's runner runs at once (its series-start)
    coverage_errors: list[str] = field(default_factory=list)  # why a suite's counters did not come
    _pending: bytearray = field(default_factory=bytearray)
    _mid_line: bool = False  # part of the current line has been written out as text
    _idle_deadline: float = 0.0  # while no suite runs: for the next one to start

    def __post_init__(self) -> None:
        self._idle_deadline = time.monotonic() + self.suite_timeout + HOST_SLACK  # for the runner to start

    # --- OutputSink --------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Text goes into the running suite's log as it comes (a test's start line has no newline
        yet while the test runs); only what may be an event line is held until it ends."""
        if self._pending.startswith(PREFIX) and b"\n" not in data:
            self._pending += data  # a long event line (a suite's report) arriving in pieces
            return
        buffer, self._pending = bytes(self._pending) + data, bytearray()
        at = 0
        while at < len(buffer):
            end = buffer.find(b"\n", at)
            if self._mid_line:  # no event starts inside a line: the rest of it is text
                stop = len(buffer) if end < 0 else end + 1
                self._text(buffer[at:stop])
                self._mid_line = end < 0
                at = stop
            elif end >= 0:
                self._line(buffer[at:end + 1])
                at = end + 1
            else:
                tail = buffer[at:]
                if tail.startswith(PREFIX) or PREFIX.startswith(tail):
                    self._pending = bytearray(tail)  # perhaps an event line: wait for its end
                else:
                    self._text(tail)
                    self._mid_line = True
                break

    def close(self) -> None:
        if self._pending:
            self._text(bytes(self._pending))
            self._pending = bytearray()
        for running in self.running.values():
            with local_file(running.log, "writing"):
                running.handle.close()

    def deadline(self) -> float | None:
        """One suite bound (and the slack) after the earliest running suite started."""
        if self.running:
            return min(running.started for running in self.running.values()) + self.suite_timeout + HOST_SLACK
        return self._idle_deadline

    # --- the stream ---------------------------------------------------------------------------

    def _line(self, line: bytes) -> None:
        if line.startswith(PREFIX):
            try:
                event = json.loads(line[len(PREFIX):])
            except ValueError:
                event = None
            if isinstance(event, dict) and event.get("suite") in self.names:
                self._event(event)
                return
            if isinstance(event, dict) and event.get("event") == "series-start" and isinstance(event.get("jobs"), int):
                self.jobs = int(event["jobs"])
                if event.get("coverage_error"):
                    self.coverage_errors.append(str(event["coverage_error"]))
                return
        self._text(line)

    def _text(self, data: bytes, suite: str | None = None) -> None:
        """A suite's output into its log; text outside `output` events goes to the one suite
        running (a runner of one suite at a time), else it is the runner's own."""
        if suite is None and len(self.running) == 1:
            suite = next(iter(self.running))
        running = self.running.get(suite) if suite is not None else None
        if running is None:
            self.preamble += data[:65536 - len(self.preamble)]
            return
        with local_file(running.log, "writing"):
            running.handle.write(data)
            running.handle.flush()

    def _event(self, event: dict[str, object]) -> None:
        name = str(event["suite"])
        kind = event.get("event")
        if kind == "output" and name in self.running and isinstance(event.get("text"), str):
            self._text(str(event["text"]).encode("utf-8", "surrogateescape"), name)
        elif kind == "suite-start" and name not in self.running and name not in self._ended():
            log = layout.suite_log(self.run_dir, name)
            with local_file(log, "opening"):
                handle = log.open("ab")
            self.started(name)
            self.running[name] = _Running(name, time.monotonic(), log, handle)
        elif kind == "suite-end" and name in self.running:
            self._end(self.running.pop(name), event)

    def _end(self, running: _Running, event: dict[str, object]) -> None:
        # The target's own measure of the suite (the stream may arrive in bursts); else this side's.
        seconds = event.get("seconds")
        wall = float(seconds) if isinstance(seconds, (int, float)) else time.monotonic() - running.started
        stderr = str(event.get("stderr") or "")
        with local_file(running.log, "writing"):
            if stderr:
                running.handle.write(stderr.encode())
            running.handle.close()
        self._idle_deadline = time.monotonic() + self.suite_timeout + HOST_SLACK
        self._keep_counters(running.name, event)
        rc = event.get("rc")
        code = rc if isinstance(rc, int) else None
        junit = event.get("junit")
        refused = event.get("refused")
        if event.get("timed_out"):
            result = cut_short(running.log, running.name, wall,
                               f"timed out: suite {running.name} did not finish within {self.suite_timeout:.0f} s")
        elif refused:
            result = cut_short(running.log, running.name, wall, f"report refused: {refused}", code)
        elif not isinstance(junit, str):
            result = SuiteResult(running.name, [], wall, code,
                                 f"pytest wrote no report (exit {code}): {stderr.strip()[-300:]}")
        else:
            path = layout.suite_junit(self.run_dir, running.name)
            with local_file(path, "writing"):
                path.write_text(junit)
            result = SuiteResult(running.name, parse_junit(junit, running.name), wall, code,
                                 properties=parse_suite_properties(junit))
        self.results.append(result)
        self.finished(result)

    def _keep_counters(self, name: str, event: dict[str, object]) -> None:
        """The kernel's counters after the suite (a coverage run), into the run directory."""
        if event.get("coverage_error"):
            self.coverage_errors.append(f"suite {name}: {event['coverage_error']}")
        packed = event.get("coverage")
        if not isinstance(packed, str):
            return
        try:
            data = base64.b64decode(packed, validate=True)
        except (binascii.Error, ValueError):
            self.coverage_errors.append(f"suite {name}: its gcov counters came damaged")
            return
        path = layout.suite_counters(self.run_dir, name)
        with local_file(path, "writing"):
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)

    # --- after the command ----------------------------------------------------------------------

    def unfinished(self, why: Callable[[str, bool], str], rc: int | None = None,
                   lost: bool = False) -> list[SuiteResult]:
        """The suites the command ended in (why(name, True)), else the next one that never
        started (why(name, False)): each cut short, keeping its finished tests."""
        cut = []
        for running in self.running.values():
            with local_file(running.log, "writing"):
                running.handle.close()
            cut.append(cut_short(running.log, running.name, time.monotonic() - running.started,
                                 why(running.name, True), rc, lost))
        self.running = {}
        waiting = self._waiting()
        if not cut and waiting:
            cut.append(cut_short(layout.suite_log(self.run_dir, waiting[0]), waiting[0], 0.0,
                                 why(waiting[0], False), rc, lost))
        return cut

    def _ended(self) -> set[str]:
        return {result.name for result in self.results}

    def _waiting(self) -> list[str]:
        """The suites not ended, running or not."""
        return [name for name in self.names if name not in self._ended()]

    @property
    def blamed(self) -> str:
        """The suite the command is in: the first running one, else the next to start."""
        if self.running:
            return next(iter(self.running))
        return (self._waiting() or ["runner"])[0]


class SeriesProgress:
    """`suite <name>: <done> of <collected> tests` for each running suite, for the progress line
    (shown with no label of its own), from their logs."""

    def __init__(self) -> None:
        self._sink: SeriesSink | None = None
        self._shown: dict[str, SuiteProgress] = {}

    def watch(self, sink: SeriesSink) -> None:
        self._sink = sink

    def __call__(self) -> str | None:
        running = list(self._sink.running.values()) if self._sink is not None else []
        if not running:
            return None
        parts = []
        for suite in running:
            counted = self._shown.setdefault(suite.name, SuiteProgress(suite.log))()
            parts.append(f"suite {suite.name}: {counted}" if counted else f"suite {suite.name}")
        return "; ".join(parts)


def run_series(target: Target, names: list[str], run_dir: Path, suite_timeout: float,
               started: Callable[[str], None], finished: Callable[[SuiteResult], None],
               tree: TestTree | None = None, root: str = REMOTE_ROOT,
               only: Callable[[str], tuple[str, ...]] = lambda name: (), repeat: int | None = None,
               watch: Callable[[SeriesSink], None] = lambda sink: None, jobs: int | None = None,
               coverage: bool = False) -> str:
    """Run the suites, `jobs` at once (None: one per CPU of the target); each one's result goes to
    `finished` as it ends (a timed-out suite ends the series, as do a lost connection and a
    runner that stopped). Returns the target's note when the output was cut (else "")."""
    sink = SeriesSink(run_dir, names, suite_timeout, started, finished)
    watch(sink)
    command = series_command(names, suite_timeout, tree, root, only, repeat, jobs=jobs, coverage=coverage)
    try:
        result = target.run(command, total_bound(len(names), suite_timeout), stdout_sink=sink)
    except CommandTimedOut:
        for cut in sink.unfinished(lambda name, running: f"timed out: suite {name} did not "
                                   f"{'finish' if running else 'start'} within {suite_timeout:.0f} s"):
            finished(cut)
        return ""
    except ConnectionLost as exc:
        lost = f"lost connection: {exc}"
        for cut in sink.unfinished(lambda name, running: lost, lost=True):
            finished(cut)
        return ""
    finally:
        sink.close()
    timed_out = any(result.error.startswith("timed out") for result in sink.results)
    if len(sink.results) < len(names) and not timed_out:
        said = (result.err or sink.preamble.decode(errors="replace")).strip()[-300:]
        log = layout.suite_log(run_dir, sink.blamed)
        with local_file(log, "writing"), log.open("a") as handle:
            handle.write(result.err)  # where the suite's own output would be
        for cut in sink.unfinished(lambda name, running: "the suite runner in the target exited "
                                   f"{result.rc} before the suite ended: {said}", result.rc):
            finished(cut)
    return result.truncated
