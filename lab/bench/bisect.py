"""`make bench`: a bisection over five Debian 6.1 package versions with a known answer, beside one
full `lab run` of the same kernel. The bisected test (a suite of its own, in a copy of guest-tests/)
asserts that the kernel's ABI number is below the fourth-oldest package's, so that package is the
answer by construction. Warm cache: one bisection first, unmeasured (downloads, initramfs,
snapshots), then one in a new results root (nothing reused), timed.

Run as `python -m lab.bench.bisect`. Goal: at most ceil(log2 5) + 1 = 4 kernels tried (the
endpoints included); seconds per step beside the full run's.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

from ..core import apt
from ..core.paths import GUEST_TESTS_DIR
from .timing import timed_lab

COUNT = 5
TEST = "release/test_release.py::test_abi_before_the_threshold"


def _tree(directory: Path, threshold: int) -> Path:
    tree = directory / "guest-tests"
    shutil.copytree(GUEST_TESTS_DIR, tree, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "suites" / "release").mkdir()
    (tree / "suites" / "release" / "test_release.py").write_text(
        "import os\n\n\ndef test_abi_before_the_threshold() -> None:\n"
        f"    assert int(os.uname().release.split('-')[1]) < {threshold}\n")
    return tree


def main(argv: list[str] | None = None) -> int:
    packages = apt.kernel_packages("6.1", "cloud-amd64")[:COUNT][::-1]  # the five newest, oldest first
    if len(packages) < COUNT:
        raise SystemExit(f"bench_bisect: the apt lists hold {len(packages)} 6.1 kernels, not {COUNT}")
    threshold = int(packages[3].abi.rsplit("-", 1)[1])
    with tempfile.TemporaryDirectory(prefix="lab-bench-bisect-") as tmp:
        tree = _tree(Path(tmp), threshold)
        args = ["bisect", "--good", f"debian:{packages[0].abi}", "--bad", f"debian:{packages[-1].abi}", "--test", TEST,
                "--guest-tests", str(tree)]
        timed_lab([*args, "--results", str(Path(tmp) / "warm")], "bench_bisect")
        seconds = timed_lab([*args, "--results", str(Path(tmp) / "measured")], "bench_bisect")
        (record,) = (Path(tmp) / "measured").glob("bisect-*/bisect.json")
        data = json.loads(record.read_text())
        steps = list(data["phases"]["packages"]["steps"].values())
        full = timed_lab(["run", "--kernel", f"debian:{packages[-1].abi}", "--results", str(Path(tmp) / "full")],
                         "bench_bisect")
    goal = math.ceil(math.log2(COUNT)) + 1
    answer = data["answer"]["first_changed"]
    right = answer.endswith(f"({packages[3].abi})")
    print(f"bench-bisect: {COUNT} packages debian:{packages[0].abi}..{packages[-1].abi}; answer {answer} "
          f"({'right' if right else 'WRONG'}); {len(steps)} kernels tried (goal <= {goal})")
    own = ", ".join(f"{float(step['seconds']):.1f}" for step in steps)
    print(f"bench-bisect: {seconds:.1f} s in all, {seconds / len(steps):.1f} s per step (steps' own: {own} s); "
          f"one full `lab run` of debian:{packages[-1].abi}: {full:.1f} s")
    return 0 if right and len(steps) <= goal else 1


if __name__ == "__main__":
    sys.exit(main())
