"""One `lab` command as a subprocess, timed as a whole process: what the matrix and validate
benchmarks measure (the user's wait, start-up included)."""
from __future__ import annotations

import subprocess
import sys
import time

from ..core.paths import REPO_ROOT


def timed_lab(args: list[str], bench: str) -> float:
    """Wall seconds of `python -m lab ARGS`; a failing command ends the benchmark with its output."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{bench}: lab {' '.join(args)} exited {done.returncode}:\n"
                         f"{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return seconds
