"""Run several suites for the lab from one python that has imported pytest once.

Under TCG a python start plus `import pytest` costs seconds; a run paid it once per suite. Here
it is paid once: each suite is `pytest.main` in a forked child of this process, so every suite
is still its own pytest session (its own session fixtures, JUnit file and exit status), a crash
or a leak in one cannot reach the next, and a suite over its time is killed with all it started.

stdout carries pytest's output and, on lines of their own, `@@lab-suite <json>` events the host
splits the stream by: `suite-start`, then `suite-end` with the exit status, whether it timed
out, its stderr and its JUnit XML (so a guest that dies in a later suite has already sent the
earlier suites' reports). Usage: python3 labsuites.py '<json spec>' (see run/series.py).
"""
from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
from typing import Any

PREFIX = "@@lab-suite "
POLL = 0.05  # seconds between looks at a running suite
STDERR_KEPT = 65536  # the tail of a suite's stderr sent with its end (bytes)
REPORT_CAP = 64 << 20  # a JUnit report larger than this is refused (the lab's download cap)

_running: int | None = None  # the process group of the suite running now


def emit(event: dict[str, Any]) -> None:
    # A killed suite may have left half a line: the event starts one of its own.
    sys.stdout.write("\n" + PREFIX + json.dumps(event, sort_keys=True) + "\n")
    sys.stdout.flush()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(signum: int, frame: object) -> None:
    # The target's own bound (timeout(1)) or a hang-up: the running suite goes with us.
    if _running is not None:
        _kill_group(_running)
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


def _wait(pid: int, timeout: float) -> int | None:
    """The child's exit status, or None when it ran past `timeout` (then it is killed)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            _kill_group(pid)
            os.waitpid(pid, 0)
            return None
        time.sleep(POLL)


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


def run_suite(suite: dict[str, Any], out: str, timeout: float, fresh: bool = False) -> bool:
    """One suite in a child; its end event sent. False when it timed out (the series stops)."""
    global _running
    name = str(suite["name"])
    junit = f"{out}/{name}.xml"
    stderr_path = f"{out}/{name}.stderr"
    for stale in (junit, stderr_path):
        if os.path.exists(stale):
            os.unlink(stale)
    args = [*suite["args"], f"--junitxml={junit}"]
    emit({"event": "suite-start", "suite": name})
    started = time.monotonic()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        _child(args, stderr_path, fresh)
    try:
        os.setpgid(pid, pid)  # as the child does: whichever runs first, the group exists before any kill
    except (ProcessLookupError, PermissionError):
        pass  # already exited, or already its own group leader
    _running = pid
    rc = _wait(pid, timeout)
    _kill_group(pid)  # whatever the suite started and left behind
    _running = None
    report, refused = _report(junit)
    emit({"event": "suite-end", "suite": name, "rc": rc, "timed_out": rc is None,
          "seconds": round(time.monotonic() - started, 3), "timeout": timeout,
          "stderr": _tail(stderr_path, STDERR_KEPT), "junit": report, "refused": refused})
    return rc is not None


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

    for suite in spec["suites"]:
        if not run_suite(suite, spec["out"], float(spec["timeout"]), bool(spec.get("fresh_python"))):
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
