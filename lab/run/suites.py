"""Ship guest-tests/ to a Target, run suites with pytest there, and bring the reports back.

It talks only to the Target contract (run/put_tree/get), so a QEMU guest and a real machine
over SSH are the same to it.
"""
from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass
from pathlib import Path

from ..core import progress
from ..core.errors import UserError
from ..core.files import local_file
from ..core.paths import GUEST_TESTS_DIR
from ..results import layout
from ..results.junit import parse_junit, parse_suite_properties
from ..results.model import SuiteResult
from ..results.stream import SuiteProgress, records_from_stream
from ..target.base import (
    CommandTimedOut,
    ConnectionLost,
    Target,
    TransferRefused,
    quote_command,
)

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


def tree_at(path: Path) -> TestTree:
    """A guest-tests directory of the user's (`--guest-tests`): its suites are the directories of
    suites/ (the lab's three first, in their order, then the others by name)."""
    root = path.expanduser().resolve()
    found = sorted(d.name for d in (root / "suites").iterdir() if d.is_dir() and any(d.glob("test_*.py"))) \
        if (root / "suites").is_dir() else []
    if not found:
        raise UserError(f"--guest-tests {path}: no suites/<name>/test_*.py in it (lay it out as guest-tests/)")
    ordered = [name for name in SUITES if name in found] + [name for name in found if name not in SUITES]
    return TestTree(root, {name: f"suites/{name}" for name in ordered})


def parse_suites(text: str, tree: TestTree | None = None) -> list[str]:
    known = (tree or default_tree()).suites
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise UserError(f"unknown suite {', '.join(unknown) or repr(text)}: choose from {', '.join(known)}")
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
    return target.put_tree(tree.root, _tests_dir(root), timeout)


def suite_base(tree: TestTree, suite: str) -> str:
    """The directory a suite's test names (pytest node ids) are relative to: its own, or its file's."""
    path = tree.suites[suite]
    return posixpath.dirname(path) if path.endswith(".py") else path


def suite_command(suite: str, tree: TestTree | None = None, root: str = REMOTE_ROOT, only: tuple[str, ...] = (),
                  repeat: int | None = None) -> str:
    """pytest on one suite in the target (`only`: these node ids within it, see run/selection).
    `repeat`: the run's repetition (`--repeat`), as LAB_REPEAT, so a test can tell repetitions apart."""
    tree = tree or default_tree()
    paths = [f"{suite_base(tree, suite)}/{name}" for name in only] or [tree.suites[suite]]
    argv = ["python3", "-m", "pytest", "-p", "no:cacheprovider", "-p", "labstream", "-q", "-rs",
            f"--junitxml={_out_dir(root)}/{suite}.xml", "-o", "junit_family=xunit1", *paths]
    environment = f"LAB_REPEAT={repeat} " if repeat is not None else ""
    return f"cd {quote_command([_tests_dir(root)])} && {environment}{quote_command(argv)}"


def _cut_short(log: Path, suite: str, wall: float, why: str, rc: int | None = None, lost: bool = False) -> SuiteResult:
    """A suite without its report: the tests that finished, from the streamed log."""
    partial = records_from_stream(log.read_text(errors="replace") if log.exists() else "", suite, why)
    return SuiteResult(suite, partial, wall, rc, why, lost=lost)


def _write_local(path: Path, text: str, mode: str = "w") -> None:
    with local_file(path, "writing"), path.open(mode) as handle:
        handle.write(text)


def run_suite(target: Target, suite: str, run_dir: Path, timeout: float, tree: TestTree | None = None,
              root: str = REMOTE_ROOT, transfer_timeout: float | None = None, only: tuple[str, ...] = (),
              repeat: int | None = None) -> SuiteResult:
    """Run one suite (within `timeout`), then fetch its report (within `transfer_timeout`, the
    command bound; the suite's own by default). A timeout, a lost connection or a refused report
    still gives the tests that finished."""
    log = layout.suite_log(run_dir, suite)
    started = time.monotonic()
    try:
        with progress.showing(f"suite {suite}", SuiteProgress(log)):
            result = target.run(suite_command(suite, tree, root, only, repeat), timeout, stdout_sink=log)
    except CommandTimedOut as exc:
        return _cut_short(log, suite, time.monotonic() - started, f"timed out: {exc}")
    except ConnectionLost as exc:
        return _cut_short(log, suite, time.monotonic() - started, f"lost connection: {exc}", lost=True)
    wall = time.monotonic() - started
    if result.err:
        _write_local(log, result.err, "a")
    junit = layout.suite_junit(run_dir, suite)
    try:
        fetched = target.get(f"{_out_dir(root)}/{suite}.xml", junit, transfer_timeout or timeout)
    except CommandTimedOut as exc:
        return _cut_short(log, suite, wall, f"timed out: {exc}", result.rc)
    except ConnectionLost as exc:
        return _cut_short(log, suite, wall, f"lost connection: {exc}", result.rc, lost=True)
    except TransferRefused as exc:
        return _cut_short(log, suite, wall, f"report refused: {exc}", result.rc)
    warning = f"suite {suite}: output truncated ({result.truncated}); see {log.name}" if result.truncated else ""
    if not fetched:
        return SuiteResult(suite, [], wall, result.rc, f"pytest wrote no report (exit {result.rc}): {result.err.strip()[-300:]}",
                           warning=warning)
    xml_text = junit.read_text()
    return SuiteResult(suite, parse_junit(xml_text, suite), wall, result.rc, properties=parse_suite_properties(xml_text),
                       warning=warning)


def collect_dmesg(target: Target, run_dir: Path, timeout: float) -> None:
    result = target.run("dmesg", timeout)
    _write_local(run_dir / layout.DMESG, result.out)
