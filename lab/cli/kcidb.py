"""`lab kcidb RUN... --origin NAME`: the runs as one KCIDB I/O document (report/kcidb.py),
checked by kcidb-io's schema before it is written."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.errors import UserError
from ..core.files import write_json_atomic
from ..core.paths import cache_dir, results_dir
from ..core.places import writable_directory


# report/kcidb imports kcidb-io and its jsonschema (0.1 s): only `lab kcidb` pays for them.
def _origin(text: str) -> str:
    from ..report import kcidb
    try:
        return kcidb.check_origin(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("kcidb", help="write runs as one KCIDB I/O document (KernelCI's reporting format)")
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="results directory or run id; a `lab validate` or `lab matrix` directory gives its runs")
    parser.add_argument("--origin", required=True, type=_origin,
                        help="the CI system's KCIDB origin name (lowercase letters, digits, _), the prefix of every id")
    parser.add_argument("--output", metavar="FILE", help="write the document here (default: standard output)")
    parser.set_defaults(func=cmd_kcidb)


def cmd_kcidb(args: argparse.Namespace) -> int:
    from ..report import kcidb
    # Every run is read before anything is written: a bad one is exit 2 with nothing half-written.
    if args.output:
        writable_directory(Path(args.output).resolve().parent, "KCIDB document", "--output")
    loaded = kcidb.load(args.runs, results_dir())
    data = kcidb.validated(kcidb.document(loaded, args.origin, cache_dir()))
    if args.output:
        write_json_atomic(Path(args.output), data)
        print(f"kcidb: {args.output}: {len(loaded.runs)} run(s) as KCIDB {kcidb.SCHEMA.major}.{kcidb.SCHEMA.minor}",
              file=sys.stderr)
    else:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    return 0
