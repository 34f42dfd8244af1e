"""The `lab` command line: the parser of every command, and the one place that turns the lab's
own failures into exit codes (bad input 2, infra-error 8, interrupted 130). Any exception is one
line on stderr (LAB_DEBUG=1 adds its traceback; a run keeps it in lab-traceback.txt)."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from types import FrameType

from ..core.errors import InfraError, UserError, describe_failure
from ..core.outcome import USER_ERROR_EXIT, Outcome, exit_code
from . import bisect, kcidb, kernel, lava, matrix, options, run, validate


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C, so every context manager stops its QEMU.
    raise KeyboardInterrupt(f"signal {signum}")


def build_parser() -> argparse.ArgumentParser:
    parser = options.LabParser(prog="lab", description="Boot kernels under QEMU and run bpf(2) map suites.")
    commands = parser.add_subparsers(dest="command", required=True)
    kernel.add_parsers(commands)
    run.add_parsers(commands)
    validate.add_parser(commands)
    matrix.add_parser(commands)
    bisect.add_parser(commands)
    lava.add_parsers(commands)
    kcidb.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    except InfraError as exc:
        print(f"lab: infrastructure error: {exc}", file=sys.stderr)
        return exit_code(Outcome.INFRA_ERROR)
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return exit_code(Outcome.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the one place any other failure becomes infra-error
        if isinstance(exc, BrokenPipeError):
            _quiet_stdout()  # the reader went away; flushing at exit would fail again
        notes = "; ".join(getattr(exc, "__notes__", []))
        if os.environ.get("LAB_DEBUG"):
            traceback.print_exception(exc)
        print(f"lab: infrastructure error: {describe_failure(exc)}{f' ({notes})' if notes else ''}", file=sys.stderr)
        return exit_code(Outcome.INFRA_ERROR)


def _quiet_stdout() -> None:
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a real file (captured): nothing will flush to a closed pipe
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
