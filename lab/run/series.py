"""The requested suites in one command: guest-tests/labsuites.py imports pytest once and forks a
pytest session per suite; this side splits its stdout back into one log, one JUnit report and
one SuiteResult per suite, each saved as the suite ends.

Per suite, exactly what a command per suite gave: its log, its JUnit file, its exit status, its
bound (the target's runner kills a suite over it; a target that cannot, being frozen, is timed
out here one suite bound after that suite started), and the finished tests of a suite the
target died in. Only the command's start is paid once instead of once per suite.
"""
from __future__ import annotations

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
                   python: str = "python3") -> str:
    """One command running `names` in order in the target, each within `suite_timeout`.
    `only`: the node ids selected in a suite (none: all of it). `repeat`: the run's repetition
    (`--repeat`), as LAB_REPEAT, so a test can tell repetitions apart. `python`: the target's."""
    tree = tree or default_tree()
    spec = {"out": out_dir(root), "timeout": suite_timeout, "fresh_python": not ONE_PYTHON,
            "suites": [{"name": name, "args": [*PYTEST_ARGS, *suite_paths(tree, name, only(name))]} for name in names]}
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
    """The OutputSink of the series command: each suite's lines into its own log, each end made a
    SuiteResult and handed to `finished` at once (so it is saved before the next suite runs)."""

    run_dir: Path
    names: list[str]
    suite_timeout: float
    started: Callable[[str], None]
    finished: Callable[[SuiteResult], None]
    results: list[SuiteResult] = field(default_factory=list)
    preamble: bytearray = field(default_factory=bytearray)  # what the runner said outside any suite
    running: _Running | None = None
    _pending: bytearray = field(default_factory=bytearray)
    _mid_line: bool = False  # part of the current line has been written out as text
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.suite_timeout + HOST_SLACK  # for the runner to start

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
        if self.running is not None:
            with local_file(self.running.log, "writing"):
                self.running.handle.close()

    def deadline(self) -> float | None:
        return self._deadline

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
        self._text(line)

    def _text(self, data: bytes) -> None:
        if self.running is None:
            self.preamble += data[:65536 - len(self.preamble)]
            return
        with local_file(self.running.log, "writing"):
            self.running.handle.write(data)
            self.running.handle.flush()

    def _event(self, event: dict[str, object]) -> None:
        name = str(event["suite"])
        if event.get("event") == "suite-start" and self.running is None:
            log = layout.suite_log(self.run_dir, name)
            with local_file(log, "opening"):
                handle = log.open("ab")
            self.started(name)
            self.running = _Running(name, time.monotonic(), log, handle)
            self._deadline = self.running.started + self.suite_timeout + HOST_SLACK
        elif event.get("event") == "suite-end" and self.running is not None and self.running.name == name:
            self._end(event)

    def _end(self, event: dict[str, object]) -> None:
        running = self.running
        assert running is not None
        # The target's own measure of the suite (the stream may arrive in bursts); else this side's.
        seconds = event.get("seconds")
        wall = float(seconds) if isinstance(seconds, (int, float)) else time.monotonic() - running.started
        stderr = str(event.get("stderr") or "")
        with local_file(running.log, "writing"):
            if stderr:
                running.handle.write(stderr.encode())
            running.handle.close()
        self.running = None
        self._deadline = time.monotonic() + self.suite_timeout + HOST_SLACK
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

    # --- after the command ----------------------------------------------------------------------

    def unfinished(self, why: str, rc: int | None = None, lost: bool = False) -> SuiteResult | None:
        """The suite the command ended in, else the next one that never started: cut short with why."""
        if self.running is not None:
            running, self.running = self.running, None
            with local_file(running.log, "writing"):
                running.handle.close()
            return cut_short(running.log, running.name, time.monotonic() - running.started, why, rc, lost)
        waiting = self._waiting()
        if not waiting:
            return None
        return cut_short(layout.suite_log(self.run_dir, waiting[0]), waiting[0], 0.0, why, rc, lost)

    def _waiting(self) -> list[str]:
        ended = {result.name for result in self.results}
        return [name for name in self.names if name not in ended]

    @property
    def blamed(self) -> str:
        """The suite the command is in: the running one, else the next to start."""
        if self.running is not None:
            return self.running.name
        return (self._waiting() or ["runner"])[0]


class SeriesProgress:
    """`suite <name>: <done> of <collected> tests` for the progress line (shown with no label of
    its own), from the running suite's log."""

    def __init__(self) -> None:
        self._sink: SeriesSink | None = None
        self._shown: tuple[str, SuiteProgress] | None = None

    def watch(self, sink: SeriesSink) -> None:
        self._sink = sink

    def __call__(self) -> str | None:
        running = self._sink.running if self._sink is not None else None
        if running is None:
            return None
        if self._shown is None or self._shown[0] != running.name:
            self._shown = (running.name, SuiteProgress(running.log))
        counted = self._shown[1]()
        return f"suite {running.name}: {counted}" if counted else f"suite {running.name}"


def run_series(target: Target, names: list[str], run_dir: Path, suite_timeout: float,
               started: Callable[[str], None], finished: Callable[[SuiteResult], None],
               tree: TestTree | None = None, root: str = REMOTE_ROOT,
               only: Callable[[str], tuple[str, ...]] = lambda name: (), repeat: int | None = None,
               watch: Callable[[SeriesSink], None] = lambda sink: None) -> str:
    """Run the suites; each one's result goes to `finished` as it ends (a timed-out suite ends
    the series, as do a lost connection and a runner that stopped). Returns the target's note
    when the output was cut (else "")."""
    sink = SeriesSink(run_dir, names, suite_timeout, started, finished)
    watch(sink)
    command = series_command(names, suite_timeout, tree, root, only, repeat)
    try:
        result = target.run(command, total_bound(len(names), suite_timeout), stdout_sink=sink)
    except CommandTimedOut:
        doing = "finish" if sink.running is not None else "start"
        cut = sink.unfinished(f"timed out: suite {sink.blamed} did not {doing} within {suite_timeout:.0f} s")
        if cut is not None:
            finished(cut)
        return ""
    except ConnectionLost as exc:
        cut = sink.unfinished(f"lost connection: {exc}", lost=True)
        if cut is not None:
            finished(cut)
        return ""
    finally:
        sink.close()
    stopped_early = not sink.results or not sink.results[-1].error.startswith("timed out")
    if len(sink.results) < len(names) and stopped_early:
        said = (result.err or sink.preamble.decode(errors="replace")).strip()[-300:]
        log = layout.suite_log(run_dir, sink.blamed)
        with local_file(log, "writing"), log.open("a") as handle:
            handle.write(result.err)  # where the suite's own output would be
        cut = sink.unfinished(f"the suite runner in the target exited {result.rc} before the suite ended: {said}",
                              result.rc)
        if cut is not None:
            finished(cut)
    return result.truncated
