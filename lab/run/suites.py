"""Ship guest-tests/ to a Target, run suites with pytest there, and bring the reports back.

It talks only to the Target contract (run/put_tree/get), so a QEMU guest and a real machine
over SSH are the same to it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..core.paths import GUEST_TESTS_DIR
from ..results import layout
from ..results.junit import parse_junit, parse_suite_properties
from ..results.model import SuiteResult
from ..results.stream import records_from_stream
from ..target.base import CommandTimedOut, ConnectionLost, Target, quote_command

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



@dataclass(frozen=True)
class TestTree:
    """What gets shipped (a guest-tests directory) and where each suite is in it."""

    root: Path
    suites: dict[str, str]


def default_tree() -> TestTree:
    return TestTree(GUEST_TESTS_DIR, SUITES)


def parse_suites(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SUITES]
    if unknown or not names:
        raise UserError(f"unknown suite {', '.join(unknown) or repr(text)}: choose from {', '.join(SUITES)}")
    return list(dict.fromkeys(names))


def _tests_dir(root: str) -> str:
    return f"{root}/guest-tests"


def _out_dir(root: str) -> str:
    return f"{root}/out"


def ship(target: Target, timeout: float, tree: TestTree | None = None, root: str = REMOTE_ROOT) -> int:
    """Upload the tree under `root` (a guest's /root/lab; a per-run directory on a real machine)."""
    tree = tree or default_tree()
    target.run(quote_command(["rm", "-rf", root]), timeout)
    target.run(quote_command(["mkdir", "-p", _tests_dir(root), _out_dir(root)]), timeout)
    return target.put_tree(tree.root, _tests_dir(root))


def suite_command(suite: str, tree: TestTree | None = None, root: str = REMOTE_ROOT) -> str:
    tree = tree or default_tree()
    argv = ["python3", "-m", "pytest", "-p", "no:cacheprovider", "-p", "labstream", "-q", "-rs",
            f"--junitxml={_out_dir(root)}/{suite}.xml", "-o", "junit_family=xunit1", tree.suites[suite]]
    return f"cd {quote_command([_tests_dir(root)])} && {quote_command(argv)}"


def run_suite(target: Target, suite: str, run_dir: Path, timeout: float, tree: TestTree | None = None,
              root: str = REMOTE_ROOT) -> SuiteResult:
    """Run one suite. A timeout or a lost connection still gives the tests that finished."""
    log = layout.suite_log(run_dir, suite)
    started = time.monotonic()
    try:
        result = target.run(suite_command(suite, tree, root), timeout, stdout_sink=log)
    except CommandTimedOut as exc:
        why = f"timed out: {exc}"
        partial = records_from_stream(log.read_text(errors="replace") if log.exists() else "", suite, why)
        return SuiteResult(suite, partial, time.monotonic() - started, None, why)
    except ConnectionLost as exc:
        why = f"lost connection: {exc}"
        partial = records_from_stream(log.read_text(errors="replace") if log.exists() else "", suite, why)
        return SuiteResult(suite, partial, time.monotonic() - started, None, why, lost=True)
    wall = time.monotonic() - started
    if result.err:
        with log.open("a") as handle:
            handle.write(result.err)
    junit = layout.suite_junit(run_dir, suite)
    if not target.get(f"{_out_dir(root)}/{suite}.xml", junit):
        return SuiteResult(suite, [], wall, result.rc, f"pytest wrote no report (exit {result.rc}): {result.err.strip()[-300:]}")
    xml_text = junit.read_text()
    return SuiteResult(suite, parse_junit(xml_text, suite), wall, result.rc, properties=parse_suite_properties(xml_text))


def collect_dmesg(target: Target, run_dir: Path, timeout: float) -> None:
    result = target.run("dmesg", timeout)
    (run_dir / layout.DMESG).write_text(result.out)
