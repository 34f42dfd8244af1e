"""Ship guest-tests/ to a Target, run suites with pytest there, and bring the reports back.

It talks only to the Target contract (run/put_tree/get), so a QEMU guest and a real machine
over SSH are the same to it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Protocol

from .errors import UserError
from .paths import GUEST_TESTS_DIR
from .results import SuiteResult, parse_junit, parse_suite_properties
from .transport import CommandResult, CommandTimedOut, quote_command

REMOTE_ROOT = "/root/lab"
REMOTE_TESTS = f"{REMOTE_ROOT}/guest-tests"
REMOTE_OUT = f"{REMOTE_ROOT}/out"

# Suite name -> its directory in guest-tests/ (pytest collects every test_*.py in it; file
# names are unique across suites), in the order they run.
SUITES: dict[str, str] = {
    "maps": "suites/maps",
    "dump": "suites/dump",
    "pin": "suites/pin",
}


class Target(Protocol):
    def run(self, command: str, timeout: float, stdout_sink: Path | None = None) -> CommandResult: ...
    def put_tree(self, local_dir: Path, remote_dir: str) -> int: ...
    def get(self, remote: str, local: Path) -> bool: ...


def parse_suites(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SUITES]
    if unknown or not names:
        raise UserError(f"unknown suite {', '.join(unknown) or repr(text)}: choose from {', '.join(SUITES)}")
    return list(dict.fromkeys(names))


def ship(target: Target, timeout: float) -> int:
    target.run(quote_command(["rm", "-rf", REMOTE_ROOT]), timeout)
    target.run(quote_command(["mkdir", "-p", REMOTE_TESTS, REMOTE_OUT]), timeout)
    return target.put_tree(GUEST_TESTS_DIR, REMOTE_TESTS)


def suite_command(suite: str) -> str:
    argv = ["python3", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
            f"--junitxml={REMOTE_OUT}/{suite}.xml", "-o", "junit_family=xunit1", SUITES[suite]]
    return f"cd {quote_command([REMOTE_TESTS])} && {quote_command(argv)}"


def run_suite(target: Target, suite: str, run_dir: Path, timeout: float) -> SuiteResult:
    """Run one suite; a timeout is recorded in the result (the guest is still there)."""
    log = run_dir / f"{suite}.log"
    started = time.monotonic()
    try:
        result = target.run(suite_command(suite), timeout, stdout_sink=log)
    except CommandTimedOut as exc:
        return SuiteResult(suite, [], time.monotonic() - started, None, f"timed out: {exc}")
    wall = time.monotonic() - started
    if result.err:
        with log.open("a") as handle:
            handle.write(result.err)
    junit = run_dir / f"junit-{suite}.xml"
    if not target.get(f"{REMOTE_OUT}/{suite}.xml", junit):
        return SuiteResult(suite, [], wall, result.rc, f"pytest wrote no report (exit {result.rc}): {result.err.strip()[-300:]}")
    xml_text = junit.read_text()
    return SuiteResult(suite, parse_junit(xml_text, suite), wall, result.rc, properties=parse_suite_properties(xml_text))


def collect_dmesg(target: Target, run_dir: Path, timeout: float) -> None:
    result = target.run("dmesg", timeout)
    (run_dir / "dmesg.txt").write_text(result.out)


def run_suites(target: Target, suites: list[str], run_dir: Path, timeout: float,
               on_suite: Callable[[SuiteResult], None]) -> list[SuiteResult]:
    results = []
    for suite in suites:
        result = run_suite(target, suite, run_dir, timeout)
        on_suite(result)
        results.append(result)
    return results
