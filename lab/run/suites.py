"""The suites a Target runs: which there are, shipping guest-tests/ there, and what pytest is
given for each (run/series.py runs them). It talks only to the Target contract
(run/put_tree/get), so a QEMU guest and a real machine over SSH are the same to it.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..core.files import local_file
from ..core.paths import GUEST_TESTS_DIR
from ..results import layout
from ..target.base import Target, quote_command

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

# What every shipped tree must hold: the lab's suite runner and its streaming pytest plugin.
LAB_MODULES = ("labsuites.py", "labstream.py")


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
    missing = [name for name in LAB_MODULES if not (root / name).is_file()]
    if missing:
        raise UserError(f"--guest-tests {path}: no {', '.join(missing)} in it (the lab's own; copy guest-tests/ to start "
                        f"a tree)")
    ordered = [name for name in SUITES if name in found] + [name for name in found if name not in SUITES]
    return TestTree(root, {name: f"suites/{name}" for name in ordered})


def parse_suites(text: str, tree: TestTree | None = None) -> list[str]:
    known = (tree or default_tree()).suites
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise UserError(f"unknown suite {', '.join(unknown) or repr(text)}: choose from {', '.join(known)}")
    return list(dict.fromkeys(names))


def tests_dir(root: str) -> str:
    return f"{root}/guest-tests"


def out_dir(root: str) -> str:
    return f"{root}/out"


def ship(target: Target, timeout: float, tree: TestTree | None = None, root: str = REMOTE_ROOT) -> int:
    """Upload the tree under `root` (a guest's /root/lab; a per-run directory on a real machine)."""
    tree = tree or default_tree()
    target.run(quote_command(["rm", "-rf", root]) + " && " + quote_command(["mkdir", "-p", out_dir(root)]), timeout)
    return target.put_tree(tree.root, tests_dir(root), timeout)


def suite_base(tree: TestTree, suite: str) -> str:
    """The directory a suite's test names (pytest node ids) are relative to: its own, or its file's."""
    path = tree.suites[suite]
    return posixpath.dirname(path) if path.endswith(".py") else path


def suite_paths(tree: TestTree, suite: str, only: tuple[str, ...] = ()) -> list[str]:
    """What pytest is given for one suite: its directory, or the selected node ids in it (run/selection)."""
    return [f"{suite_base(tree, suite)}/{name}" for name in only] or [tree.suites[suite]]


def _write_local(path: Path, text: str, mode: str = "w") -> None:
    with local_file(path, "writing"), path.open(mode) as handle:
        handle.write(text)


def collect_dmesg(target: Target, run_dir: Path, timeout: float) -> None:
    result = target.run("dmesg", timeout)
    _write_local(run_dir / layout.DMESG, result.out)
