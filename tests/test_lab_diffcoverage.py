"""Diff coverage: the lines a series changed in the profiled directories, which are code, which
ran; and how `lab validate --coverage` shows them (table, details, validate.json, report.html)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from lab.coverage import diff
from lab.kernel import source as ksource
from lab.validate import html as vhtml
from lab.validate import pipeline
from lab.validate import table as vtable
from lab.validate.plan import Plan, Version

BEFORE = """\
static int map_lookup(int key)
{
\treturn key;
}
"""
AFTER = """\
static int map_lookup(int key)
{
\tif (key < 0)
\t\treturn -EINVAL;
\treturn key;
}

/* dump every element */
static int map_dump(int key)
{
\treturn key + 1;
}
"""


def trees(tmp_path: Path) -> tuple[Path, Path]:
    base, patched = tmp_path / "base", tmp_path / "patched"
    for root in (base, patched):
        (root / "kernel" / "bpf").mkdir(parents=True)
        (root / "kernel" / "bpf" / "same.c").write_text("int same;\n")
    (base / "kernel" / "bpf" / "syscall.c").write_text(BEFORE)
    (patched / "kernel" / "bpf" / "syscall.c").write_text(AFTER)
    (patched / "kernel" / "bpf" / "dump.h").write_text("int dump_helper(void);\n")  # the series adds it
    (patched / "include").mkdir()
    (patched / "include" / "bpf.h").write_text("changed, but not profiled\n")
    return base, patched


# Line counts as gcov gives them: only lines with code appear.
COUNTS = {"kernel/bpf/syscall.c": {1: 9, 3: 9, 4: 0, 5: 9, 9: 0, 11: 0}, "kernel/bpf/same.c": {1: 1}}


def test_changed_lines_are_the_patched_files_inserted_and_replaced_ones() -> None:
    assert diff.changed_numbers(["a", "b", "c"], ["a", "x", "c", "d"]) == [2, 4]
    assert diff.changed_numbers([], ["new", "file"]) == [1, 2]
    assert diff.changed_numbers(["a", "b"], ["a"]) == []  # a removed line is no line to run


def test_each_changed_line_of_code_is_run_or_not_and_the_rest_is_no_code(tmp_path: Path) -> None:
    base, patched = trees(tmp_path)
    measured = diff.measure(base, patched, COUNTS)
    assert [f.file for f in measured.files] == ["kernel/bpf/dump.h", "kernel/bpf/syscall.c"]  # include/ is not profiled
    header, syscall = measured.files
    assert header.added and header.code == []  # a declaration: no code
    assert [line.number for line in syscall.lines] == [3, 4, 7, 8, 9, 10, 11, 12]  # the old "}" closes it still
    assert [line.number for line in syscall.run] == [3]
    assert [(line.number, line.text) for line in syscall.not_run] == [
        (4, "\t\treturn -EINVAL;"), (9, "static int map_dump(int key)"), (11, "\treturn key + 1;")]
    assert (measured.code, measured.run, measured.percent) == (4, 1, 25.0)
    assert measured.headline() == ("1 of 4 changed lines of code run (25.0%) in kernel/bpf; "
                                   "9 lines changed in 2 file(s)")
    data = measured.to_json()
    assert data["files"][1]["lines"][1] == {"line": 4, "count": 0, "text": "\t\treturn -EINVAL;"}
    assert diff.measure(base, base, COUNTS).headline() == "the series changes no line in kernel/bpf"


def state_with_coverage(tmp_path: Path) -> pipeline.VersionState:
    base, patched = trees(tmp_path)
    version = Version(1, "debian:6.1", ksource.DebianSource("6.1"))
    state = pipeline.VersionState(version, tmp_path / "validate" / "1-debian-6.1")
    state.diff_coverage = diff.measure(base, patched, COUNTS)
    return state


def test_the_validation_table_and_details_show_the_changed_lines_run(tmp_path: Path) -> None:
    state = state_with_coverage(tmp_path)
    unmeasured = pipeline.VersionState(Version(2, "debian:6.12", ksource.DebianSource("6.12")), tmp_path / "v2")
    unmeasured.coverage_problem = "the patched run has no coverage (see x/metadata.json)"
    text = vtable.render(vtable.rows([state, unmeasured], coverage=True))
    lines = text.splitlines()
    assert re.split(r"\s{2,}", lines[0])[-2:] == ["changed lines run", "verdict"]
    assert re.split(r"\s{2,}", lines[1])[-2:] == ["1 of 4 (25.0%)", "undecided"]
    assert re.split(r"\s{2,}", lines[2])[-2:] == ["unmeasured", "undecided"]
    assert "diff coverage: 1 of 4 changed lines of code run (25.0%) in kernel/bpf; 9 lines changed in 2 file(s)" in lines
    assert "  kernel/bpf/syscall.c: 1 of 4 changed lines of code run" in lines
    assert "changed lines of code not run (3):" in lines
    assert "  kernel/bpf/syscall.c:4: return -EINVAL;" in lines
    assert "diff coverage: none (the patched run has no coverage (see x/metadata.json))" in lines
    assert "changed lines run" not in vtable.render(vtable.rows([state]))  # a validation without --coverage


def test_validate_json_and_the_report_carry_every_changed_line(tmp_path: Path) -> None:
    state = state_with_coverage(tmp_path)
    table = vtable.rows([state], coverage=True)
    written = tmp_path / "validate.json"
    vtable.write_json(written, table, {}, 0)
    row = json.loads(written.read_text())["versions"][0]
    assert row["diff_coverage"]["run"] == 1 and row["diff_coverage"]["code"] == 4 and row["coverage_problem"] is None
    page = vhtml.render(table, tmp_path)
    assert "<th>changed lines run</th>" in page and "<td>1 of 4 (25.0%)</td>" in page
    assert page.count('class="line-not-run"') == 3 and page.count('class="line-run"') == 1
    assert "return -EINVAL;" in page


def test_the_patched_side_of_a_coverage_validation_runs_with_coverage(tmp_path: Path) -> None:
    version = Version(1, "debian:6.1", ksource.DebianSource("6.1"))
    state = pipeline.VersionState(version, tmp_path / "1-debian-6.1")
    for side in pipeline.SIDES:
        state.builds[side] = pipeline.BuildStep(build_id=f"6.1.192-{side}")
    base, patched = pipeline.make_children([state], "maps", [], coverage=True)
    assert "--coverage" not in base.argv and "--coverage" in patched.argv
    assert Plan((version,), (tmp_path / "p.patch",), (), coverage=True).request(version, patched=True).coverage
    assert not Plan((version,), (tmp_path / "p.patch",), (), coverage=True).request(version, patched=False).coverage
