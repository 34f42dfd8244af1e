"""Run several suites for the lab from one python that has imported pytest once.

Under TCG a python start plus `import pytest` costs seconds; a run paid it once per suite. Here
it is paid once: each suite is `pytest.main` in a forked child of this process, so every suite
is still its own pytest session (its own session fixtures, JUnit file and exit status), a crash
or a leak in one cannot reach the next, and a suite over its time is killed with all it started.
Suites run side by side, one per CPU (`jobs`; 1: one after the other): under TCG a suite keeps
one vCPU busy and leaves the other idle.

stdout carries only `@@lab-suite <json>` event lines the host splits the stream by: a
`series-start` (how many suites run at once), then per suite `suite-start`, `output` (what its
pytest printed, as it came) and `suite-end` with the exit status, whether it timed out, its
stderr and its JUnit XML (so a guest that dies in a later suite has already sent the earlier
suites' reports). Usage: python3 labsuites.py '<json spec>' (see run/series.py).

With `coverage` in the spec (a kernel built with gcov profiling, `lab run --coverage`), the
kernel's counters are reset before each suite and sent with its end (a gzipped tar of every
.gcda under /sys/kernel/debug/gcov, base64), so each suite's coverage is its own. Suites then run
one after the other: counters are the kernel's, not a process's.
"""
from __future__ import annotations

import base64
import io
import json
import os
import select
import signal
import stat
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from typing import Any

PREFIX = "@@lab-suite "
POLL = 0.05  # seconds between looks at a running suite
STDERR_KEPT = 65536  # the tail of a suite's stderr sent with its end (bytes)
REPORT_CAP = 64 << 20  # a JUnit report larger than this is refused (the lab's download cap)

GCOV = "/sys/kernel/debug/gcov"  # the kernel's gcov counters (CONFIG_GCOV_KERNEL)

_running: dict[int, str] = {}  # the process groups of the suites running now


def emit(event: dict[str, Any]) -> None:
    # Everything on this stdout is an event line: a suite's own output comes inside `output`.
    sys.stdout.write(PREFIX + json.dumps(event, sort_keys=True) + "\n")
    sys.stdout.flush()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(signum: int, frame: object) -> None:
    # The target's own bound (timeout(1)) or a hang-up: the running suite goes with us.
    for pgid in list(_running):
        _kill_group(pgid)
    os._exit(128 + signum)


def _child(args: list[str], stderr_path: str, fresh: bool) -> None:
    """In the fork: a process group of its own (killed as a whole), stderr into a file.
    `fresh`: a new python runs the suite's pytest instead (what a run cost before this runner;
    the benchmark compares the two)."""
    import pytest

    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    if fresh:
        os.execvp(sys.executable, [sys.executable, "-m", "pytest", *args])
    code = 3
    try:
        code = int(pytest.main(args))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _tail(path: str, keep: int) -> str:
    """The last `keep` bytes of a file ("" when there is none)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return ""
    return data[-keep:].decode(errors="replace")


def _report(path: str) -> tuple[str | None, str]:
    """A suite's JUnit text, or why it is not sent: what no report can be (a link to /dev/zero
    never ends; a test may have made one) is refused, as the lab refuses such a download."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None, ""
    with handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            return None, f"{path} on the target is not a regular file; not sent"
        data = handle.read(REPORT_CAP + 1)
    if len(data) > REPORT_CAP:
        return None, f"{path} on the target has more than {REPORT_CAP} bytes; not sent"
    return data.decode(errors="replace"), ""


def coverage_ready() -> str:
    """"" when the kernel's counters can be read (debugfs mounted if it was not); else why not."""
    if not os.path.isdir(GCOV):
        subprocess.run(["mount", "-t", "debugfs", "debugfs", "/sys/kernel/debug"], capture_output=True, check=False)
    if not os.path.isdir(GCOV):
        return f"no {GCOV} on this kernel (built without CONFIG_GCOV_KERNEL, or debugfs missing)"
    return ""


def reset_counters() -> None:
    with open(f"{GCOV}/reset", "w") as handle:
        handle.write("1")


def counters() -> str:
    """Every .gcda the kernel has, as a gzipped tar (paths relative to GCOV), base64."""
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as tar:
        for directory, _, files in sorted(os.walk(GCOV)):
            for name in sorted(files):
                path = os.path.join(directory, name)
                if not name.endswith(".gcda") or os.path.islink(path):
                    continue  # the .gcno entries are links to the build's own files
                with open(path, "rb") as handle:
                    data = handle.read()
                info = tarfile.TarInfo(os.path.relpath(path, GCOV))
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(packed.getvalue()).decode()


@dataclass
class Running:
    """A suite's pytest in its child: its process group, its stdout pipe, its bound."""

    name: str
    pid: int
    fd: int | None  # the read end of the child's stdout; None once drained to its end
    started: float
    timeout: float
    junit: str
    stderr_path: str
    rc: int | None = None
    exited: bool = False
    coverage: bool = False  # the kernel's counters were reset for this suite alone


def start_suite(suite: dict[str, Any], out: str, timeout: float, fresh: bool, coverage: bool = False) -> Running:
    """Fork one suite's pytest with its stdout into a pipe of its own; say it started."""
    name = str(suite["name"])
    junit = f"{out}/{name}.xml"
    stderr_path = f"{out}/{name}.stderr"
    for stale in (junit, stderr_path):
        if os.path.exists(stale):
            os.unlink(stale)
    args = [*suite["args"], f"--junitxml={junit}"]
    emit({"event": "suite-start", "suite": name})
    if coverage:
        reset_counters()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.dup2(write_fd, 1)
        os.close(write_fd)
        _child(args, stderr_path, fresh)
    os.close(write_fd)
    try:
        os.setpgid(pid, pid)  # as the child does: whichever runs first, the group exists before any kill
    except (ProcessLookupError, PermissionError):
        pass  # already exited, or already its own group leader
    _running[pid] = name
    return Running(name, pid, read_fd, time.monotonic(), timeout, junit, stderr_path, coverage=coverage)


def _forward(suite: Running, chunk: bytes) -> None:
    # surrogateescape: the host gets the suite's exact bytes back, a split UTF-8 character too.
    emit({"event": "output", "suite": suite.name, "text": chunk.decode("utf-8", "surrogateescape")})


def _drain(suite: Running) -> None:
    """What the ended suite left in its pipe, without waiting: a process that escaped its group
    may hold the pipe open for ever."""
    if suite.fd is None:
        return
    os.set_blocking(suite.fd, False)
    try:
        while chunk := os.read(suite.fd, 65536):
            _forward(suite, chunk)
    except BlockingIOError:
        pass
    os.close(suite.fd)
    suite.fd = None


def end_suite(suite: Running) -> None:
    """The suite's child is gone (or over its bound: killed now): what it started goes too; its
    last output, then its end event with its report."""
    _kill_group(suite.pid)  # a suite over its bound; in any case whatever it started and left behind
    if not suite.exited:
        os.waitpid(suite.pid, 0)
    _running.pop(suite.pid, None)
    _drain(suite)
    report, refused = _report(suite.junit)
    end = {"event": "suite-end", "suite": suite.name, "rc": suite.rc, "timed_out": not suite.exited,
           "seconds": round(time.monotonic() - suite.started, 3), "timeout": suite.timeout,
           "stderr": _tail(suite.stderr_path, STDERR_KEPT), "junit": report, "refused": refused}
    if suite.coverage:
        try:
            end["coverage"] = counters()
        except OSError as exc:
            end["coverage_error"] = f"reading {GCOV}: {exc}"
    emit(end)


def _poll(running: list[Running]) -> list[Running]:
    """Forward what the running suites printed (waiting at most POLL); the ones that ended."""
    fds = {suite.fd: suite for suite in running if suite.fd is not None}
    if fds:
        readable, _, _ = select.select(list(fds), [], [], POLL)
        for fd in readable:
            suite = fds[fd]
            chunk = os.read(fd, 65536)
            if chunk:
                _forward(suite, chunk)
            else:
                os.close(fd)
                suite.fd = None
    else:
        time.sleep(POLL)
    ended = []
    now = time.monotonic()
    for suite in running:
        done, status = os.waitpid(suite.pid, os.WNOHANG)
        if done:
            suite.exited, suite.rc = True, os.waitstatus_to_exitcode(status)
            ended.append(suite)
        elif now >= suite.started + suite.timeout:
            ended.append(suite)  # over its bound: end_suite kills it
    return ended


def run_suites(suites: list[dict[str, Any]], out: str, timeout: float, jobs: int, fresh: bool = False,
               coverage: bool = False) -> None:
    """The suites in order, `jobs` of them at a time, each within `timeout`. A suite that timed out
    stops the series there (the ones running go on to their end; no other starts)."""
    waiting = list(suites)
    running: list[Running] = []
    stopped = False
    while running or (waiting and not stopped):
        while waiting and not stopped and len(running) < jobs:
            running.append(start_suite(waiting.pop(0), out, timeout, fresh, coverage))
        for suite in _poll(running):
            end_suite(suite)
            running.remove(suite)
            stopped = stopped or not suite.exited


def suites_at_once(asked: int, count: int) -> int:
    """`asked` (0: one per CPU this process may use), never more than there are suites."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(asked or cpus, count))


def _preload() -> None:
    """What every suite's pytest imports, imported once before the forks: pytest, its built-in
    plugins (a config is made and dropped; nothing is collected) and the suites' bpf(2) client."""
    try:
        from _pytest.config import get_config

        get_config()
    except Exception:  # noqa: BLE001 - pytest's internals are a speed-up only; the suites still run
        pass
    try:
        import bpfmap  # noqa: F401
    except ImportError:
        pass  # a --guest-tests tree of the user's may not have it


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    try:
        import pytest  # noqa: F401
    except ImportError as exc:
        sys.stderr.write(f"labsuites: this python has no pytest: {exc}\n")
        return 3
    _preload()

    suites = list(spec["suites"])
    coverage = bool(spec.get("coverage"))
    jobs = 1 if coverage else suites_at_once(int(spec.get("jobs", 1)), len(suites))
    start: dict[str, Any] = {"event": "series-start", "jobs": jobs}
    if coverage and (why := coverage_ready()):
        start["coverage_error"] = why
        coverage = False
    emit(start)
    run_suites(suites, spec["out"], float(spec["timeout"]), jobs, bool(spec.get("fresh_python")), coverage)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
