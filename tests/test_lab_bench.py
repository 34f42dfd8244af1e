"""lab.bench: the figure line (the measurements themselves need real boots: e2e)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.bench import boot as bench


def test_describe_reports_median_min_max_and_count() -> None:
    line = bench.describe("boot-to-ssh", [3.0, 1.0, 2.0, 10.0])
    assert line.startswith("boot-to-ssh  median ")
    assert "median   2.50 s" in line
    assert "(min 1.00, max 10.00, n=4)" in line


def test_describe_needs_samples() -> None:
    with pytest.raises(ValueError):
        bench.describe("whole-run", [])


def test_suites_seconds_are_the_whole_suites_command_its_start_included(tmp_path: Path) -> None:
    stages = {"accelerator": {"status": "done", "seconds": 0.1}, "ship": {"status": "done", "seconds": 3.5},
              "suites": {"status": "done", "seconds": 116.5},
              "suite:maps": {"status": "done", "seconds": 57.5}, "suite:dump": {"status": "done", "seconds": 51.25},
              "bytecode": {"status": "done", "seconds": 1.0}}
    (tmp_path / "metadata.json").write_text(json.dumps({"stages": stages}))
    assert bench.suites_seconds(tmp_path) == 116.5  # not 108.75: the runner's start counts too


def test_one_line_patch_changes_exactly_one_line_of_code(tmp_path: Path) -> None:
    from lab.bench import build as bench_build
    from lab.kernel import patches

    tree = tmp_path / "tree"
    source = tree / bench_build.CHANGED_FILE
    source.parent.mkdir(parents=True)
    original = "// SPDX\n#include <linux/bpf.h>\n#include <linux/btf.h>\n\nint x;\n"
    source.write_text(original)
    patch = bench_build.one_line_patch(tree, tmp_path / "one.patch")
    patches.apply_series(tree, patches.load_series([patch]))
    before, after = original.splitlines(), source.read_text().splitlines()
    assert len(after) == len(before) + 1
    added = [line for line in after if line not in before]
    assert added == ["static int __maybe_unused lab_bench_one_line_change = 1;"]
    assert after.index(added[0]) == 2  # right after the first #include: code, not a comment
