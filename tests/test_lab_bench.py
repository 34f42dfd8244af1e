"""lab.bench: the figure line (the measurements themselves need real boots: e2e)."""
from __future__ import annotations

import pytest

from lab import bench


def test_describe_reports_median_min_max_and_count() -> None:
    line = bench.describe("boot-to-ssh", [3.0, 1.0, 2.0, 10.0])
    assert line.startswith("boot-to-ssh  median ")
    assert "median   2.50 s" in line
    assert "(min 1.00, max 10.00, n=4)" in line


def test_describe_needs_samples() -> None:
    with pytest.raises(ValueError):
        bench.describe("whole-run", [])
