"""`lab matrix --kernel K --kernel K ... [--suite ...] [--results DIR] [--jobs N] [--all] [--coverage]`: the glue
between the command line, the child runs (matrix/children), the table (matrix/table) and the page (matrix/html)."""
from __future__ import annotations

import argparse
import datetime as dt
import os

from ..core.log import stderr as _log
from ..core.paths import cache_dir
from ..coverage import material as coverage_material
from ..kernel import acquire
from ..kernel.spec import parse_kernel_spec
from ..matrix import children as matrixrun
from ..matrix import html as matrixhtml
from ..matrix import table as matrix
from . import options


def _show(message: str) -> None:
    print(message, flush=True)


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("matrix", help="run the suites on several kernels at once; table and HTML report")
    parser.add_argument("--kernel", action="append", required=True, metavar="K",
                        help="debian:6.1, debian:6.12, build:<id> or a bzImage path (repeat: one column each)")
    options.add_suite(parser)
    options.add_results(parser)
    parser.add_argument("--jobs", type=options.count, help="VMs at once (default: min(cores, MemAvailable / per-VM memory))")
    parser.add_argument("--all", action="store_true", help="also print the rows identical on every kernel")
    parser.add_argument("--accel", choices=options.ACCELERATORS, help="passed to each run")
    options.add_selection(parser)
    options.add_repeat(parser, "each kernel")
    options.add_coverage(parser, "each kernel's suites")
    parser.set_defaults(func=cmd_matrix)


def check_kernels(kernels: list[str], coverage: bool = False) -> None:
    """Every column's kernel, checked before the first boot: one bad one is exit 2, not a report;
    with --coverage, one without gcov profiling too."""
    matrixrun.refuse_duplicates(kernels)
    cache = cache_dir()
    for kernel in kernels:
        spec = parse_kernel_spec(kernel)
        if coverage:
            coverage_material.required(spec, cache)
        acquire.check(spec, cache)


def cmd_matrix(args: argparse.Namespace) -> int:
    suites = options.planned(args).suites  # bad names: before anything is fetched
    check_kernels(list(args.kernel), args.coverage)
    jobs = args.jobs or matrixrun.default_jobs(os.cpu_count(), matrixrun.mem_available_mb())
    root = options.results_root(args)
    matrix_dir = matrixrun.new_matrix_dir(root)
    extra = [*(["--accel", args.accel] if args.accel else []), *options.selection_argv(args.test, args.guest_tests),
             *(["--coverage"] if args.coverage else [])]
    children = matrixrun.make_children(list(args.kernel), ",".join(suites), matrix_dir, extra, args.repeat)
    env = dict(os.environ)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    _log(f"matrix: {len(children)} kernel(s), {min(jobs, len(children))} at once; {matrix_dir}")
    try:
        matrixrun.prepare_cache(_log)
        matrixrun.run_children(children, jobs, env, _show)
    finally:
        # Written even when interrupted, so the runs that did finish can still be read and seen.
        matrixrun.write_matrix_json(matrix_dir, children, ",".join(suites), jobs, started)
        result = matrix.load(matrix_dir)
        report = matrixhtml.write(result, matrix_dir / "report.html")
    print(matrix.render_table(result, show_all=args.all))
    print(f"matrix: {matrix_dir}\nreport: {report}")
    return 0 if matrix.passed(result) else 1
