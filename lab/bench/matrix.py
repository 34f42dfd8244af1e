"""`make bench`: what running kernels side by side buys. One kernel's `lab run` alone, then two
kernels as one `lab matrix` (two VMs at once), wall seconds each; warm cache (each kernel is
run once first, unmeasured, so fetching and the initramfs are not counted).

Run as `python -m lab.bench.matrix [--kernel A --kernel B] [--suite pin]`. On a 2-core TCG host
the pair should take clearly less than twice one kernel alone.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .timing import timed_lab

DEFAULT_KERNELS = ["debian:6.1", "debian:6.12"]


def _timed(args: list[str]) -> float:
    return timed_lab(args, "bench_matrix")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.matrix")
    parser.add_argument("--kernel", action="append", help="two kernels (default: debian:6.1 and debian:6.12)")
    parser.add_argument("--suite", default="pin")
    args = parser.parse_args(argv)
    kernels = args.kernel or DEFAULT_KERNELS
    with tempfile.TemporaryDirectory(prefix="lab-bench-matrix-") as tmp:
        results = str(Path(tmp) / "results")
        for kernel in kernels:  # warm-up: cache filled, initramfs built, KVM verdict cached
            _timed(["run", "--kernel", kernel, "--suite", args.suite, "--results", results])
        alone = [_timed(["run", "--kernel", k, "--suite", args.suite, "--results", results]) for k in kernels]
        together = _timed(["matrix", *(a for k in kernels for a in ("--kernel", k)), "--suite", args.suite,
                           "--results", results])
    print(f"bench-matrix: suite {args.suite}; alone: " + ", ".join(f"{k} {s:.1f} s" for k, s in zip(kernels, alone)))
    print(f"bench-matrix: {len(kernels)} kernels one after the other {sum(alone):.1f} s; "
          f"`lab matrix` (at once) {together:.1f} s; ratio to the slower alone {together / max(alone):.2f}, "
          f"to the sum {together / sum(alone):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
