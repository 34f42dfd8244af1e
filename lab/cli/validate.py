"""`lab validate --source S [--source S ...] --patch P ... [--config F ...] [--suite ...] [--jobs N]`:
the glue between the command line, the plan (validate/plan), the work (validate/pipeline), the
table and validate.json (validate/table) and the page (validate/html).

Results: <results root>/validate-<stamp>/ with one directory per version (<n>-<source>/) holding
the base/ and patched/ run roots, validate.json and report.html (both written even when
interrupted). Exit codes: validate/verdict.py."""
from __future__ import annotations

import argparse
import datetime as dt
import os

from ..core.log import stderr as log
from ..core.paths import cache_dir
from ..matrix import children as matrixrun
from ..validate import html as vhtml
from ..validate import pipeline, plan
from ..validate import table as vtable
from ..validate import verdict as vverdict
from . import options


def _show(message: str) -> None:
    print(message, flush=True)


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "validate", help="build sources without and with patches, run the suites on both, a verdict per version")
    parser.add_argument("--source", action="append", required=True, metavar="SOURCE",
                        help="debian:X.Y (the newest), debian:6.1.176-1 or debian:6.1.0-53 (exact), a kernel tree or "
                             "a source tarball (repeat: one row each)")
    parser.add_argument("--config", action="append", default=[], metavar="FRAGMENT",
                        help="Kconfig fragment merged over kernel-configs/base.config (repeatable, later wins)")
    parser.add_argument("--patch", action="append", default=[], metavar="FILE",
                        help="patch, or directory of *.patch (with ports/X.Y[.Z]/ per version), applied in order")
    parser.add_argument("--jobs", type=options.count,
                        help="runs (VMs) at once (default: min(cores, MemAvailable / per-VM memory))")
    options.add_accel(parser)
    options.add_cmdline(parser)
    options.add_run_bounds(parser)
    options.add_selection(parser)
    options.add_repeat(parser, "the base and the patched kernel")
    options.add_coverage(parser, "the series changed did the patched kernel's suites run (diff coverage);")
    parser.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    # Everything is checked before the first build: one bad input is one line, exit 2.
    suites = options.planned(args).suites
    the_plan = plan.make_plan(list(args.source), list(args.patch), list(args.config), args.coverage)
    root = options.results_root(args)
    jobs = args.jobs or matrixrun.default_jobs(os.cpu_count(), matrixrun.mem_available_mb())
    directory = pipeline.new_validate_dir(root)
    states = pipeline.new_states(the_plan, directory)
    request = {"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "sources": list(args.source), "patches": list(args.patch), "fragments": list(args.config),
               "suites": suites, "tests": list(args.test), "repeat": args.repeat, "jobs": jobs,
               "coverage": args.coverage}
    log(f"validate: {len(states)} version(s); {directory}")
    interrupted = True
    try:
        pipeline.run(the_plan, states, ",".join(suites), jobs, [*options.child_run_options(args), *options.selection_argv(args.test, args.guest_tests)],
                     dict(os.environ), cache_dir(), log, _show, args.repeat)
        interrupted = False
    finally:
        # Written even when interrupted (or failed), so what was found can still be read and seen.
        rows = vtable.rows(states, args.coverage)
        status = vverdict.exit_status([row.verdict for row in rows])
        vtable.write_json(directory / "validate.json", rows,
                          {**request, "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                           "interrupted": interrupted}, None if interrupted else status)
        report = vhtml.write(rows, directory / "report.html")
    print(vtable.render(rows))
    print(f"\nvalidate: {directory}\nreport: {report}")
    return status
