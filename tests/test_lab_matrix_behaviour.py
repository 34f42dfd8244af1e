"""`lab matrix`'s behaviour differences without QEMU: on fake run directories (matrixfakes), a
property recorded with another value, one recorded on one kernel only, a long value's changed
words and measurements (ignored by `lab compare`'s own rule) in the model, the text table, the
HTML page and matrix.json; two runs of one kernel show nothing."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from matrixfakes import (
    BPFTOOL,
    CONCURRENCY,
    DIFFERING,
    READONLY_FREEZE,
    SECOND_FREEZE,
    matrix_dir,
)

from lab.matrix import children as matrixrun
from lab.matrix import html as matrixhtml
from lab.matrix import table as matrix
from lab.report import compare


def row(m: matrix.Matrix, name: str) -> matrix.Row:
    (found,) = [r for r in m.rows if r.name == name]
    return found


def shown(r: matrix.Row) -> dict[str, tuple[str, ...]]:
    return {p.label: tuple(c.shown for c in p.cells) for p in r.behaviour}


def test_a_property_with_another_value_makes_a_differing_row(tmp_path: Path) -> None:
    m = matrix.load(matrix_dir(tmp_path, identical=2, behaviour=True))
    second = row(m, SECOND_FREEZE)
    assert second.texts == ("pass", "pass") and not second.outcome_differs
    assert second.differs and second in m.differing and second not in m.identical
    # fd_kind is recorded alike on both kernels: not listed.
    assert shown(second) == {"second_freeze_errno": ("EBUSY", "EPERM"),
                             "strerror": ("Device or resource busy & <EBUSY>", "Operation not permitted <EPERM>")}
    assert [r.name for r in m.outcome_differing] == [DIFFERING]
    assert [r.name for r in m.behaviour_differing] == [BPFTOOL, READONLY_FREEZE, SECOND_FREEZE]
    # Outcome differences first, then behaviour differences, then the identical rows.
    assert [r.name for r in m.rows[:4]] == [DIFFERING, BPFTOOL, READONLY_FREEZE, SECOND_FREEZE]


def test_a_property_recorded_on_one_kernel_only_is_a_difference(tmp_path: Path) -> None:
    readonly = row(matrix.load(matrix_dir(tmp_path, identical=0, behaviour=True)), READONLY_FREEZE)
    (prop,) = readonly.behaviour
    assert prop.key == "freeze_rdonly_fd"
    assert [(c.ran, c.value, c.shown) for c in prop.cells] == [(True, "ok", "ok"), (True, None, "(not recorded)")]


def test_a_long_value_shows_its_changed_words(tmp_path: Path) -> None:
    bpftool = row(matrix.load(matrix_dir(tmp_path, identical=0, behaviour=True)), BPFTOOL)
    assert shown(bpftool) == {"outcomes (changed words)": ("27:freeze=EBUSY", "27:freeze=EPERM")}
    assert all(c.value and len(c.value) > compare.LONG_VALUE for c in bpftool.behaviour[0].cells)


def test_measurements_are_left_out_by_lab_compares_own_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = matrix_dir(tmp_path, identical=0, behaviour=True)
    concurrency = row(matrix.load(directory), CONCURRENCY)
    # Its seconds and walker counts differ between the kernels; writers does not.
    values = [c.properties for c in concurrency.cells if c]
    assert values[0]["concurrency_seconds"] != values[1]["concurrency_seconds"]
    assert values[0]["walker_walks"] != values[1]["walker_walks"]
    assert concurrency.behaviour == () and concurrency in matrix.load(directory).identical
    # The rule is `lab compare`'s, not a copy: without it, the same keys would differ here.
    monkeypatch.setattr(compare, "MEASUREMENT_PROPERTY", re.compile(r"^$"))
    assert [p.key for p in row(matrix.load(directory), CONCURRENCY).behaviour] == [
        "concurrency_seconds", "walker_values_checked", "walker_walks"]


def test_two_runs_of_one_kernel_differ_in_nothing(tmp_path: Path) -> None:
    # Two columns that are one kernel: every measurement differs between the runs, nothing else.
    m = matrix.load(matrix_dir(tmp_path, identical=3, behaviour=True, kernels=("debian:6.1", "debian:6.1.0-57")))
    concurrency = row(m, CONCURRENCY)
    assert concurrency.cells[0] and concurrency.cells[1]
    assert concurrency.cells[0].properties != concurrency.cells[1].properties
    assert m.differing == () and len(m.identical) == len(m.rows) == 9
    table = matrix.render_table(m)
    assert "(no test differs between the kernels)" in table
    assert "behaviour differences" not in table
    assert "0 test(s) differ in outcome, 0 in recorded behaviour (9 tests)" in table
    html = matrixhtml.render(m, tmp_path)
    assert "(0 in outcome, 0 in recorded behaviour)" in html
    assert "Behaviour differences" not in html and 'class="value"' not in html
    assert matrix.differences_json(m) == {"tests": 9, "outcome_differs": 0, "behaviour_differs": 0, "identical": 9,
                                          "outcome": [], "behaviour": [], "flaky": []}


def test_text_table_lists_each_key_with_each_kernels_value(tmp_path: Path) -> None:
    table = matrix.render_table(matrix.load(matrix_dir(tmp_path, identical=2, behaviour=True)))
    lines = table.splitlines()
    assert [line.split() for line in lines[:3]] == [["test", "debian:6.1", "debian:6.12"],
                                                    [f"maps/{DIFFERING}", "pass", "FAIL"],
                                                    ["4", "identical", "row(s)", "across", "all", "kernels", "(--all",
                                                     "prints", "them)"]]
    start = lines.index(matrix.BEHAVIOUR_TITLE + ":")
    section = [re.split(r"\s{2,}", line.strip()) for line in lines[start + 1:start + 11]]
    assert section == [
        ["test / property", "debian:6.1", "debian:6.12"],
        [f"maps/{BPFTOOL}", "pass", "pass"],
        ["outcomes (changed words)", "27:freeze=EBUSY", "27:freeze=EPERM"],
        [f"maps/{READONLY_FREEZE}", "pass", "pass"],
        ["freeze_rdonly_fd", "ok", "(not recorded)"],
        [f"maps/{SECOND_FREEZE}", "pass", "pass"],
        ["second_freeze_errno", "EBUSY", "EPERM"],
        ["strerror", "Device or resource busy & <EBUSY>", "Operation not permitted <EPERM>"],
        [""],
        ["1 test(s) differ in outcome, 3 in recorded behaviour (8 tests)"],
    ]
    # The key lines are indented under their test, and each kernel's values line up under its name.
    header, key = lines[start + 1], lines[start + 8]
    assert key.startswith("  strerror ") and key.index("Operation") == header.index("debian:6.12")
    assert "(no test differs" not in table and CONCURRENCY not in table


def test_same_outcome_but_other_behaviour_is_not_no_difference(tmp_path: Path) -> None:
    loaded = matrix.load(matrix_dir(tmp_path, identical=2, behaviour=True))
    # The same matrix without the one test whose outcome differs.
    columns = [dataclasses.replace(c, tests={k: t for k, t in c.tests.items() if k[1] != DIFFERING})
               for c in loaded.columns]
    table = matrix.render_table(matrix.build(columns))
    assert table.splitlines()[1] == "(no test differs in outcome)"
    assert "(no test differs between the kernels)" not in table
    assert "0 test(s) differ in outcome, 3 in recorded behaviour (7 tests)" in table
    assert re.search(r"^  second_freeze_errno +EBUSY +EPERM$", table, re.MULTILINE)


def test_all_prints_every_same_outcome_row_after_the_differing_ones(tmp_path: Path) -> None:
    table = matrix.render_table(matrix.load(matrix_dir(tmp_path, identical=1, behaviour=True)), show_all=True)
    outcome_rows = table.split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in outcome_rows[1:8]] == [
        f"maps/{DIFFERING}", f"maps/{BPFTOOL}", f"maps/{READONLY_FREEZE}", f"maps/{SECOND_FREEZE}",  # these differ
        "maps/test_maps.py::test_same[00]", f"maps/{CONCURRENCY}", "pin/test_pin.py::test_old_flag"]
    assert outcome_rows[8] == "3 identical row(s) across all kernels"


def test_three_kernels_one_without_the_test_and_one_like_the_first(tmp_path: Path) -> None:
    loaded = matrix.load(matrix_dir(tmp_path, identical=0, behaviour=True,
                                    kernels=("debian:6.1", "debian:6.12", "debian:6.1.0-57")))
    missing = matrix.load_column("debian:9.9", None, 1.0)  # its run never started
    m = matrix.build([*loaded.columns, missing])
    assert shown(row(m, SECOND_FREEZE))["second_freeze_errno"] == ("EBUSY", "EPERM", "EBUSY", "—")
    # A long value that is the reference's says so instead of repeating it.
    assert shown(row(m, BPFTOOL))["outcomes (changed words)"] == (
        "27:freeze=EBUSY", "27:freeze=EPERM", "(as debian:6.1)", "—")
    (prop,) = row(m, READONLY_FREEZE).behaviour
    assert [c.ran for c in prop.cells] == [True, True, True, False]
    # A test only one kernel ran has no other kernel to differ from.
    lonely = matrix.build([loaded.columns[0], missing])
    assert lonely.behaviour_differing == ()


def test_html_report_has_a_table_per_test_with_a_column_per_kernel(tmp_path: Path) -> None:
    directory = matrix_dir(tmp_path, identical=2, behaviour=True)
    html = matrixhtml.render(matrix.load(directory), directory)
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script" not in html
    assert "(1 in outcome, 3 in recorded behaviour)" in html
    tables = re.findall(r'<table class="matrix behaviour" id="(behaviour-\d)">(.*?)</table>', html, re.DOTALL)
    assert [name for name, _ in tables] == ["behaviour-1", "behaviour-2", "behaviour-3"]
    assert all(f'href="#{name}"' in html for name, _ in tables)  # linked from the matrix rows
    second = tables[2][1]
    assert re.findall(r"<th>(.*?)</th>", second) == [f"maps/{SECOND_FREEZE}", "debian:6.1", "debian:6.12"]
    # Values are escaped, each kernel's in its own column.
    assert ('<td class="value">Device or resource busy &amp; &lt;EBUSY&gt;</td>\n'
            '  <td class="value">Operation not permitted &lt;EPERM&gt;</td>') in second
    assert '<td class="value">ok</td>\n  <td class="unrecorded">(not recorded)</td>' in tables[1][1]
    # A long value: the changed words, the whole value under them.
    assert "<summary>27:freeze=EPERM</summary><pre>0:update=ok 1:update=ok" in tables[0][1]
    assert "walker_walks" not in html


def test_matrix_json_records_the_differences(tmp_path: Path) -> None:
    directory = matrix_dir(tmp_path, identical=2, behaviour=True)
    children = [matrixrun.Child(kernel, directory / "runs" / f"{i + 1}-{kernel.replace(':', '-')}", [], returncode=i,
                                seconds=60.0 + i) for i, kernel in enumerate(("debian:6.1", "debian:6.12"))]
    matrixrun.write_matrix_json(directory, children, "maps,pin", 2, "2026-12-01T00:00:00+00:00")
    data = json.loads((directory / "matrix.json").read_text())
    differences = data["differences"]
    assert {k: differences[k] for k in ("tests", "outcome_differs", "behaviour_differs", "identical")} == {
        "tests": 8, "outcome_differs": 1, "behaviour_differs": 3, "identical": 4}
    assert differences["outcome"] == [{"suite": "maps", "name": DIFFERING,
                                       "outcomes": {"debian:6.1": "passed", "debian:6.12": "failed"}}]
    readonly = differences["behaviour"][1]
    assert readonly == {"suite": "maps", "name": READONLY_FREEZE,
                        "outcomes": {"debian:6.1": "passed", "debian:6.12": "passed"},
                        "properties": [{"key": "freeze_rdonly_fd", "values": {"debian:6.1": "ok", "debian:6.12": None}}]}
    assert [p["key"] for p in differences["behaviour"][2]["properties"]] == ["second_freeze_errno", "strerror"]
    # The matrix still reads back from it.
    assert [r.name for r in matrix.load(directory).behaviour_differing] == [BPFTOOL, READONLY_FREEZE, SECOND_FREEZE]


def test_an_empty_value_and_a_line_break_stay_on_one_line(tmp_path: Path) -> None:
    loaded = matrix.load(matrix_dir(tmp_path, identical=0))
    key = ("maps", DIFFERING)

    def recording(column: matrix.Column, value: str) -> matrix.Column:
        test = dataclasses.replace(column.tests[key], properties={"note": value})
        return dataclasses.replace(column, tests={**column.tests, key: test})

    m = matrix.build([recording(loaded.columns[0], ""), recording(loaded.columns[1], "EBUSY\nthen EPERM")])
    assert re.search(r'^  note +"" +EBUSY\\nthen EPERM$', matrix.render_table(m), re.MULTILINE)
