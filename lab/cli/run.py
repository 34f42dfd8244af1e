"""`lab run`, `lab compare` and `lab report`: suites on a kernel, and runs read back."""
from __future__ import annotations

import argparse
import time

from ..core.errors import UserError
from ..core.log import stderr as log
from ..core.outcome import exit_code
from ..core.paths import cache_dir, results_dir
from ..coverage import material as coverage_material
from ..guest import assets
from ..kernel.spec import DEFAULT_KERNEL, KernelSpec, parse_kernel_spec
from ..report import compare, compare_text, flaky, ktap, show
from ..report.table import SuiteTable
from ..results import load
from ..results.kernel_log import SplatPolicy
from ..run import guest
from ..run.lifecycle import RunOutcome
from ..run.request import RunRequest
from . import options
from . import target as target_cli


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = commands.add_parser("run", help="boot a kernel and run suites in it")
    # None unless given, so --target can tell a given --kernel/--accel from the defaults.
    options.add_kernel(run, default=None)
    options.add_accel(run, default=None)
    options.add_cmdline(run)
    options.add_snapshot(run)
    options.add_run_bounds(run)
    options.add_selection(run)
    options.add_repeat(run, "the suites")
    options.add_suite_jobs(run)
    options.add_coverage(run, "the suites")
    # A child run of `lab matrix/validate/bisect --repeat`: this one run is repetition I (LAB_REPEAT=I).
    run.add_argument("--repetition", type=options.count, help=argparse.SUPPRESS)
    target_cli.add_target_args(run)
    run.set_defaults(func=cmd_run)

    compare_parser = commands.add_parser("compare", help="compare two runs test by test; exit 1 if B regressed")
    compare_parser.add_argument("run_a", metavar="RUN_A", help="results directory (or run id under the results root)")
    compare_parser.add_argument("run_b", metavar="RUN_B", help="results directory (or run id under the results root)")
    compare_parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare_parser.set_defaults(func=cmd_compare)

    report_parser = commands.add_parser("report", help="print runs again as `lab run` did; exit 1 unless all passed")
    report_parser.add_argument("runs", nargs="+", metavar="RUN", help="results directory (or run id under the results root)")
    report_parser.add_argument("--format", choices=("text", "ktap"), default="text",
                               help="text (as `lab run` printed it) or ktap (KTAP version 1, as KUnit prints; one RUN)")
    report_parser.set_defaults(func=cmd_report)


def run_suites(args: argparse.Namespace, spec: KernelSpec, label: str, planned: options.Planned,
               repeat: int | None = None) -> RunOutcome:
    """Boot one kernel, run the requested suites, print the table; the run's outcome and record."""
    results_root = options.results_root(args, resolve=False)  # unwritable: said before the kernel is fetched
    cache = cache_dir()
    started = time.monotonic()
    prepared = assets.prepare(spec, cache, log)
    request = RunRequest(spec, label, planned.suites, args.accel, results_root,
                         args.suite_timeout, args.cmdline, boot_timeout=args.boot_timeout, run_timeout=args.run_timeout,
                         ssh_timeout=args.ssh_timeout, command_timeout=args.command_timeout,
                         probe_timeout=args.probe_timeout, snapshot=not args.no_snapshot,
                         splats=SplatPolicy(tuple(args.allow_splat), tuple(args.deny_splat)),
                         tree=planned.tree, tree_given=planned.tree is not None, selection=planned.selection,
                         repeat=repeat, suite_jobs=args.suite_jobs, coverage=args.coverage)
    table = SuiteTable(log)
    outcome = guest.execute(request, prepared, cache, log, table.add)
    table.close(outcome.outcome, outcome.reason, outcome.record.directory, time.monotonic() - started,
                outcome.record.metadata.recorded("console_excerpt"), warnings=outcome.record.metadata.recorded("warnings"),
                coverage=outcome.record.metadata.recorded("coverage"))
    return outcome


def cmd_run(args: argparse.Namespace) -> int:
    target_cli.check_options(args)
    planned = options.planned(args)  # a bad suite or test name is one line before anything starts
    if args.target is None:
        args.kernel = args.kernel or DEFAULT_KERNEL
        args.accel = args.accel or "auto"
        spec = parse_kernel_spec(args.kernel, args.modules, args.config)
        if args.coverage:
            coverage_material.required(spec, cache_dir())
    if args.repetition is not None and args.repeat > 1:
        raise UserError("--repetition is one run of a --repeat: give one or the other")
    outcomes = []
    for index in range(1, args.repeat + 1):
        repeat = index if args.repeat > 1 else args.repetition
        if repeat is not None:
            log(f"run: repetition {index} of {args.repeat}")
        if args.target is not None:
            outcomes.append(target_cli.run_on_target(args, log, planned, repeat))
        else:
            outcomes.append(run_suites(args, spec, args.kernel, planned, repeat))
    if args.repeat > 1:
        runs = [load.load_run(outcome.record.directory) for outcome in outcomes]
        print(flaky.render(runs, flaky.find(runs)))
    return worst_exit(outcomes)


def worst_exit(outcomes: list[RunOutcome]) -> int:
    """The exit code of the worst run: an unjudged one (infra-error, interrupted) before a kernel's
    failure, since then not every repetition said something; all passed: 0."""
    unjudged = [exit_code(o.outcome) for o in outcomes if o.outcome not in compare.OUTCOME_RANK]
    if unjudged:
        return max(unjudged)
    return exit_code(max((o.outcome for o in outcomes), key=compare.OUTCOME_RANK.__getitem__))


def cmd_compare(args: argparse.Namespace) -> int:
    result = compare.compare(load.load_run(args.run_a, results_dir()), load.load_run(args.run_b, results_dir()))
    print(compare_text.render_json(result) if args.json else compare_text.render(result))
    return 1 if result.regressions else 0


def cmd_report(args: argparse.Namespace) -> int:
    # Every run is read before any is printed: a bad one is exit 2 with nothing half-printed.
    if args.format == "ktap" and len(args.runs) != 1:
        raise UserError(f"--format ktap prints one run as one KTAP document: got {len(args.runs)} runs")
    runs = [load.load_run(arg, results_dir()) for arg in args.runs]
    if args.format == "ktap":
        print(ktap.render(runs[0]), end="")
    else:
        print("\n\n".join(show.render(run) for run in runs))
    return 0 if all(run.passed for run in runs) else 1
