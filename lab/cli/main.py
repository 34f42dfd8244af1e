"""The `lab` command line: the parser of every command, and the one place that turns the lab's
own failures into exit codes (bad input 2, infra-error 8, interrupted 130)."""
from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from ..core.errors import InfraError, UserError
from ..core.outcome import USER_ERROR_EXIT, Outcome, exit_code
from . import kernel, lava, matrix, run


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C, so every context manager stops its QEMU.
    raise KeyboardInterrupt(f"signal {signum}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab", description="Boot kernels under QEMU and run bpf(2) map suites.")
    commands = parser.add_subparsers(dest="command", required=True)
    kernel.add_parsers(commands)
    run.add_parsers(commands)
    matrix.add_parser(commands)
    lava.add_parsers(commands)
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


if __name__ == "__main__":
    sys.exit(main())
