"""The names of a results directory's files (README, "Results"), in one place."""
from __future__ import annotations

from pathlib import Path

METADATA = "metadata.json"  # the run: request, kernel, image, stages, outcome
RESULTS = "results.json"  # every suite's summary and every test's record
JUNIT = "junit.xml"  # every suite in one document
CONSOLE = "console.log"  # the whole serial console (a guest; a LAVA job's console)
DMESG = "dmesg.txt"  # the kernel log after the suites
QEMU_CMDLINE = "qemu-cmdline.txt"
REPRODUCER = "reproducer.sh"
TRACEBACK = "lab-traceback.txt"  # a failure of the lab nobody foresaw (the run ended infra-error)
LAVA_LOG = "lava.log"  # lava-run's own log (`lab lava-run`)
LAVA_RESULTS = "lava-results.json"
LAVA_CMDLINE = "lava-run-cmdline.txt"
LAVA_OUTPUT = "lava-output"
COVERAGE = "coverage.json"  # `lab run --coverage`: lines and functions run, per file, per suite and in all
COVERAGE_HTML = "coverage.html"  # gcovr's report of the whole run, with every source line
COVERAGE_DATA = "coverage"  # the kernel's gcov counters as each suite left them: <suite>.tar.gz


def suite_log(run_dir: Path, suite: str) -> Path:
    """pytest's output of one suite, with the streamed per-test lines."""
    return run_dir / f"{suite}.log"


def suite_junit(run_dir: Path, suite: str) -> Path:
    """pytest's own JUnit report of one suite."""
    return run_dir / f"junit-{suite}.xml"


def suite_counters(run_dir: Path, suite: str) -> Path:
    """The kernel's gcov counters after one suite (reset before it): .gcda files, a gzipped tar."""
    return run_dir / COVERAGE_DATA / f"{suite}.tar.gz"
