"""lab.bench_client: the ratio table, and one small real run of both sides (root + gcc)."""
from __future__ import annotations

import os
import shutil

import pytest

from lab.bench import client as bench_client


def test_ratio_is_python_time_over_c_time_and_the_aims_are_judged() -> None:
    figures = [
        bench_client.Figure("update", python_ops=400_000, c_ops=1_000_000),
        bench_client.Figure("lookup_batch", python_ops=2_000_000, c_ops=4_000_000),
    ]
    assert figures[0].ratio == pytest.approx(2.5)
    lines = bench_client.format_table(figures)
    assert lines[0].split() == ["operation", "python", "ops/s", "C", "ops/s", "ratio", "aim"]
    assert lines[1].split() == ["update", "400,000", "1,000,000", "2.50x", "<=", "3x", "met"]
    assert lines[2].split() == ["batch", "lookup", "2,000,000", "4,000,000", "2.00x", "<=", "1.5x", "MISSED"]


def test_main_refuses_bad_sizes() -> None:
    with pytest.raises(SystemExit):
        bench_client.main(["--entries", "1"])


def test_a_small_run_of_both_sides_gives_four_figures() -> None:
    if os.geteuid() != 0:
        pytest.skip("bpf(2) on the host kernel needs root")
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the C side cannot be built")
    notes: list[str] = []
    figures = bench_client.measure(entries=3000, batch=64, rounds=1, note=notes.append)
    assert [f.operation for f in figures] == list(bench_client.OPERATIONS)
    assert all(f.python_ops > 0 and f.c_ops > 0 for f in figures)
    assert notes == ["bench_client: round 1/1 done"]
