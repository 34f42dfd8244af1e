"""Option groups that several `lab` commands share, so each is spelt and explained once."""
from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from ..core.errors import UserError
from ..core.paths import writable_results
from ..kernel.spec import DEFAULT_KERNEL
from ..run.selection import Selection, select
from ..run.suites import SUITES, TestTree, parse_suites, tree_at
from ..vm.accel import PROBE_TIMEOUT


class LabParser(argparse.ArgumentParser):
    """argparse, but bad input is one line (`lab run: error: ...`) and exit 2, like every other
    error of the lab; `--help` still shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def seconds(text: str) -> float:
    """A bound in seconds: a finite number above zero (a negative or zero bound would end every
    stage at once and be blamed on the kernel)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be a finite number above 0")
    return value


def count(text: str) -> int:
    """A count or a job number: a whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def regex(text: str) -> str:
    """A splat pattern, compiled now so a typo fails before the boot, not after the suites."""
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression: {exc}") from None
    return text


def kernel_cmdline(text: str) -> str:
    """Extra kernel parameters: one line of printable text (a control character would end up in
    QEMU's -append and the reproducer)."""
    if any(not ch.isprintable() for ch in text):
        raise argparse.ArgumentTypeError(f"{text!r}: the kernel command line must be printable text on one line")
    if len(text) > 2048:  # x86's COMMAND_LINE_SIZE
        raise argparse.ArgumentTypeError("the kernel command line is longer than the kernel's 2048 bytes")
    return text


KERNEL_HELP = "debian:6.1, debian:6.12, build:<id> or a bzImage path"
ACCELERATORS = ["auto", "kvm", "tcg"]


def add_kernel(parser: argparse.ArgumentParser, default: str | None = DEFAULT_KERNEL) -> None:
    """--kernel, and --modules/--config for a kernel given as a path."""
    parser.add_argument("--kernel", default=default, help=KERNEL_HELP)
    add_kernel_files(parser)


def add_kernel_files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--modules", help="modules directory (lib/modules/RELEASE) for a kernel path")
    parser.add_argument("--config", help="config file for a kernel path")


def add_accel(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    parser.add_argument("--accel", choices=ACCELERATORS, default=default,
                        help="auto probes KVM with a short boot and falls back to TCG")


def add_cmdline(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cmdline", default="", type=kernel_cmdline, help="extra kernel command line")


def add_snapshot(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-snapshot", action="store_true",
                        help="boot cold: neither restore a saved guest nor save one")


DEFAULT_SUITES = ",".join(SUITES)


def add_suite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", default=DEFAULT_SUITES, help="comma-separated: " + DEFAULT_SUITES)


def add_selection(parser: argparse.ArgumentParser) -> None:
    """--test (only these tests; their suites follow from them) and --guest-tests (another tree)."""
    parser.add_argument("--test", action="append", default=[], metavar="SUITE/FILE::TEST",
                        help="run only this test, named as `lab compare` prints it, e.g. "
                             "maps/test_maps_hash.py::test_update_noexist[HASH] (repeatable; instead of --suite)")
    parser.add_argument("--guest-tests", metavar="DIR",
                        help="ship this directory instead of the lab's guest-tests/ (laid out like it: suites/<name>/)")


def add_suite_jobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite-jobs", type=count, metavar="N",
                        help="suites run at once in the target (default: one per CPU of it; 1: one after the other)")


def add_coverage(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--coverage", action="store_true",
                        help=f"which kernel/bpf lines {what} ran: a kernel built with gcov profiling (`lab kernel build "
                             "--coverage`); the suites then run one after the other (per-suite counters)")


def add_repeat(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--repeat", type=count, default=1, metavar="N",
                        help=f"run {what} N times; a test whose outcome or behaviour differs between them is flaky")


def test_tree(args: argparse.Namespace) -> TestTree | None:
    """--guest-tests as a tree, or None for the lab's own guest-tests/."""
    return tree_at(Path(args.guest_tests)) if getattr(args, "guest_tests", None) else None


@dataclass(frozen=True)
class Planned:
    """What the runs of one command ship and run: the tree, its suites, the --test selection."""
    tree: TestTree | None
    suites: list[str]
    selection: Selection | None  # None: whole suites


def planned(args: argparse.Namespace) -> Planned:
    """--guest-tests, --suite and --test, checked (bad names are UserErrors) before anything starts."""
    tree = test_tree(args)
    if not getattr(args, "test", None):
        return Planned(tree, parse_suites(args.suite, tree), None)
    selection = select(list(args.test), tree)
    # A --suite beside --test may only name the tests' own suites (a child run is given both).
    if args.suite != DEFAULT_SUITES and set(parse_suites(args.suite, tree)) != set(selection.suites):
        raise UserError(f"--suite {args.suite} beside --test: the tests are of {','.join(selection.suites)}; "
                        "--test runs the suites of the tests it names")
    return Planned(tree, selection.suites, selection)


def selection_argv(tests: list[str], guest_tests: str | None) -> list[str]:
    """What a child `lab run` is given for --test and --guest-tests (a relative DIR made absolute)."""
    argv = [f"--test={name}" for name in tests]
    if guest_tests:
        argv.append(f"--guest-tests={Path(guest_tests).expanduser().resolve()}")
    return argv


def add_results(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", help="results root (default: $LAB_RESULTS or ./results)")


def results_root(args: argparse.Namespace, resolve: bool = True) -> Path:
    """--results, else $LAB_RESULTS or ./results, proven writable (call it before anything starts).
    `lab run` keeps a relative --results as given, so the path it prints is the one the user typed."""
    return writable_results(args.results, resolve)


def add_source(parser: argparse.ArgumentParser) -> None:
    """What `lab kernel build` and `lab validate` build: a source, fragments, patches, make -j."""
    parser.add_argument("--source", required=True, help="debian:6.1, debian:6.12, a kernel tree or a source tarball")
    parser.add_argument("--config", action="append", default=[], metavar="FRAGMENT",
                        help="Kconfig fragment merged over kernel-configs/base.config (repeatable, later wins)")
    parser.add_argument("--patch", action="append", default=[], metavar="FILE",
                        help="patch (or directory of *.patch) applied in order with patch -p1 (repeatable)")
    parser.add_argument("--jobs", type=count, help="make -j (default: all cores)")


def add_run_bounds(parser: argparse.ArgumentParser) -> None:
    """The suites, the results root, splat policy and every bound of a run."""
    add_suite(parser)
    add_results(parser)
    add_bounds(parser)


_BOUNDS = ("suite_timeout", "run_timeout", "boot_timeout", "ssh_timeout", "command_timeout", "probe_timeout")


def child_run_options(args: argparse.Namespace) -> list[str]:
    """What each child `lab run` of a matrix, validation or bisection is given besides its kernel,
    suites and results root: the accelerator, command line, bounds and splat policy."""
    extra = ["--accel", args.accel] if getattr(args, "accel", None) else []
    if getattr(args, "cmdline", ""):
        extra += ["--cmdline", args.cmdline]
    for name in _BOUNDS:
        if getattr(args, name, None) is not None:
            extra += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    extra += [a for pattern in getattr(args, "allow_splat", []) for a in ("--allow-splat", pattern)]
    extra += [a for pattern in getattr(args, "deny_splat", []) for a in ("--deny-splat", pattern)]
    return extra


def add_bounds(parser: argparse.ArgumentParser) -> None:
    """Splat policy and every bound of a run."""
    parser.add_argument("--suite-timeout", type=seconds, help="seconds per suite (default 150, x4 under TCG)")
    parser.add_argument("--allow-splat", action="append", default=[], metavar="REGEX", type=regex,
                        help="a console splat matching this is accepted (repeatable)")
    parser.add_argument("--deny-splat", action="append", default=[], metavar="REGEX", type=regex,
                        help="a console line matching this fails the run like a WARNING (repeatable)")
    parser.add_argument("--run-timeout", type=seconds,
                        help="seconds for the whole run, boot to last suite (default: none beyond each stage's bound)")
    parser.add_argument("--boot-timeout", type=seconds,
                        help="seconds from QEMU start to init's ready marker (default 30, x4 under TCG)")
    parser.add_argument("--ssh-timeout", type=seconds,
                        help="seconds from the ready marker to an SSH session (default 15, x4 under TCG)")
    parser.add_argument("--command-timeout", type=seconds,
                        help="seconds for a housekeeping command: upload, dmesg (default 30, x4 under TCG)")
    parser.add_argument("--probe-timeout", type=seconds,
                        help=f"seconds the KVM probe boot may take to reach init (default {PROBE_TIMEOUT:.0f})")
