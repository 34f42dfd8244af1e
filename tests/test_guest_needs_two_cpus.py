"""A suite test whose meaning needs two CPUs skips, with the reason, where there is one: run on
this host's kernel (root) with the suites' process pinned to one CPU."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from guesthelpers import GUEST_TESTS

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bpf(2) needs root")


def test_the_concurrency_test_skips_on_one_online_cpu() -> None:
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no sched_setaffinity on this platform")
    done = subprocess.run([sys.executable, "-c", (
        "import os, sys, pytest; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "sys.exit(pytest.main(['-p', 'no:cacheprovider', '-q', '-rs', 'suites/maps/test_maps_concurrency.py']))")],
        cwd=GUEST_TESTS, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 skipped" in done.stdout and "the kernel has one online CPU: racing writers against a walker" in done.stdout
