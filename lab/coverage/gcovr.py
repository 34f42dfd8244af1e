"""gcovr, the tool that reads gcc's notes and counters (through gcov) and writes coverage as
JSON and HTML: chosen over lcov because one well-kept PyPI package gives both the machine-readable
per-line data (for summaries and diff coverage) and the HTML, and it merges suites' data itself."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ..core.errors import InfraError
from ..kernel.profiling import DIRECTORIES, OBJ


def _gcovr() -> list[str]:
    # The lab's own environment has it (a dependency); its python runs it as a module.
    return [sys.executable, "-m", "gcovr"]


def _filters() -> list[str]:
    # Only the profiled directories: inline functions of include/ headers count in every object.
    return [argument for directory in DIRECTORIES for argument in ("--filter", f"{directory}/")]


def _run(argv: list[str], cwd: Path, what: str) -> None:
    if shutil.which("gcov") is None:
        raise InfraError("gcov is not installed (run `make setup`: gcc brings it)")
    done = subprocess.run([*_gcovr(), *argv], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise InfraError(f"gcovr failed on {what}: {said[0]}")


def trace(tree: Path, written: Path) -> None:
    """gcovr's JSON (every line's count, every function's, every branch's) of a laid-out tree."""
    # gcov runs where kbuild ran gcc (the object directory), so `../kernel/bpf/x.c` resolves.
    _run(["--root", ".", *_filters(), "--gcov-object-directory", str(tree.resolve() / OBJ), "--json", str(written),
          "-j", "2", OBJ], tree, f"{tree}")


def merge(tree: Path, traces: list[Path], written: Path, index: Path, title: str) -> None:
    """The traces merged (counts summed) into one JSON trace, and gcovr's HTML of it: index.html
    and a page per file with every source line (the sources are the build's, in `tree`)."""
    index.parent.mkdir(parents=True, exist_ok=True)
    added = [argument for path in traces for argument in ("--add-tracefile", str(path))]
    # Without syntax highlighting: kernel/bpf's pages are 22 MB then, 29 MB with it.
    _run(["--root", ".", *added, "--json", str(written), "--html-details", str(index), "--html-title", title,
          "--no-html-syntax-highlighting"], tree, "the suites' traces")
