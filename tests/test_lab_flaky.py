"""Flakes (lab/report/flaky.py): a test whose outcome or behaviour differs between runs of one kernel
is flaky with its counts, and a comparison of repeated runs calls a change a regression only when
flakiness does not explain it."""
from __future__ import annotations

from pathlib import Path

from lab.core.outcome import Outcome, Verdict
from lab.report import compare, compare_text, flaky
from lab.results import load
from lab.results.model import FAILED, PASSED, SuiteResult
from lab.results.model import TestRecord as Record
from lab.results.record import RunRecord

FLAKY = "test_f.py::test_sometimes"
STEADY_FAIL = "test_f.py::test_broken_by_patch"
BEHAVIOUR = "test_f.py::test_records"


def run(root: Path, records: list[Record]) -> load.LoadedRun:
    record = RunRecord.create(root, "k", {"kernel": "k", "suites": ["maps"], "accel": "tcg"})
    failed = any(r.outcome == FAILED for r in records)
    record.add_suite(SuiteResult("maps", records, 1.0, int(failed)))
    record.finish(Verdict(Outcome.FAILED if failed else Outcome.PASSED, "x"))
    return load.load_run(record.directory)


def rec(name: str, outcome: str = PASSED, **properties: str) -> Record:
    return Record("maps", name, outcome, 0.1, "boom" if outcome == FAILED else "", properties=properties)


def test_a_test_that_differs_between_runs_is_flaky_with_its_counts(tmp_path: Path) -> None:
    runs = [run(tmp_path / str(i), [rec(FLAKY, FAILED if i == 1 else PASSED), rec(STEADY_FAIL, FAILED),
                                    rec(BEHAVIOUR, errno="EBUSY" if i else "EPERM", walker_walks=str(i))])
            for i in range(3)]
    found = flaky.find(runs)
    assert set(found) == {("maps", FLAKY), ("maps", BEHAVIOUR)}  # a steady failure is not a flake
    assert found[("maps", FLAKY)].outcomes == {"pass": 2, "fail": 1}
    assert found[("maps", BEHAVIOUR)].properties == {"errno": {"EBUSY": 2, "EPERM": 1}}  # walker_walks: a measurement
    text = flaky.render(runs, found)
    assert f"flaky: maps/{FLAKY}: 2 pass, 1 fail" in text and "errno: 'EBUSY' x2, 'EPERM' x1" in text


def test_one_run_each_is_plain_compare(tmp_path: Path) -> None:
    a = run(tmp_path / "a", [rec(FLAKY)])
    b = run(tmp_path / "b", [rec(FLAKY, FAILED)])
    result = flaky.compare_repeated([a], [b])
    assert [c.name for c in result.newly_failing] == [FLAKY] and result.regressions and not result.flaky


def test_a_flaky_failure_is_not_a_regression_but_a_steady_one_is(tmp_path: Path) -> None:
    base = [run(tmp_path / f"base{i}", [rec(FLAKY), rec(STEADY_FAIL)]) for i in range(3)]
    # The patched kernel's first run fails the flaky test (alone, it would be a regression) and
    # every run fails the other one.
    patched = [run(tmp_path / f"patched{i}", [rec(FLAKY, FAILED if i == 0 else PASSED), rec(STEADY_FAIL, FAILED)])
               for i in range(3)]
    result = flaky.compare_repeated(base, patched)
    assert [c.name for c in result.newly_failing] == [STEADY_FAIL]
    assert [(t.name, t.a, t.b) for t in result.flaky] == [(FLAKY, "", "2 pass, 1 fail")]
    # Every base run passed and every patched run failed: that, too, is steady.
    assert result.regressions == ["1 newly failing", "run outcome passed -> failed"]
    text = compare_text.render(result)
    assert "flaky (outcome or behaviour differs between runs of one kernel; not counted): 1" in text
    assert compare.to_json(result)["counts"]["flaky"] == 1  # type: ignore[index]


def test_a_run_outcome_that_differs_between_runs_is_not_a_regression(tmp_path: Path) -> None:
    base = [run(tmp_path / f"base{i}", [rec(FLAKY)]) for i in range(2)]
    patched = [run(tmp_path / f"patched{i}", [rec(FLAKY, FAILED if i == 0 else PASSED)]) for i in range(2)]
    result = flaky.compare_repeated(base, patched)
    assert result.outcome.verdict == "flaky" and not result.regressions
    assert "flaky: the runs of one side did not all end the same" in compare_text.outcome_line(result)


def test_a_matrix_with_repeats_lists_a_flaky_test_apart_from_the_differences(tmp_path: Path) -> None:
    from lab.matrix import children as matrixrun
    from lab.matrix import table as matrix

    matrix_dir = tmp_path / "matrix"
    children = matrixrun.make_children(["debian:6.1", "debian:6.12"], "maps", matrix_dir, [], repeat=2)
    # Interleaved: every kernel's first repetition, then every kernel's second.
    assert [c.kernel for c in children] == ["debian:6.1 r1", "debian:6.12 r1", "debian:6.1 r2", "debian:6.12 r2"]
    assert all(c.argv[-1] == f"--repetition={c.kernel[-1]}" for c in children)
    for number, child in enumerate(children):
        new = child.spec == "debian:6.12"
        run(child.root, [rec(FLAKY, FAILED if (new and number == 1) else PASSED),  # flaky on 6.12 only
                         rec(STEADY_FAIL, FAILED if new else PASSED)])  # a real difference
        child.returncode, child.seconds = 0, 1.0
    matrixrun.write_matrix_json(matrix_dir, children, "maps", 2, "now")
    m = matrix.load(matrix_dir)
    assert [r.name for r in m.outcome_differing] == [STEADY_FAIL]
    assert [(r.name, r.flaky) for r in m.flaky] == [(FLAKY, ("", "1 fail, 1 pass"))]
    text = matrix.render_table(m)
    assert f"  maps/{FLAKY}: debian:6.12: 1 fail, 1 pass" in text and "1 flaky" in text
    assert "(2 runs; the first shown)" in text
    assert matrix.differences_json(m)["flaky"] == [{"suite": "maps", "name": FLAKY, "counts": {"debian:6.12": "1 fail, 1 pass"}}]


def test_validate_repeats_interleave_base_and_patched(tmp_path: Path) -> None:
    from lab.kernel import source as ksource
    from lab.validate import pipeline, plan

    version = plan.Version(1, "debian:6.1", ksource.DebianSource("6.1"))
    state = pipeline.VersionState(version, tmp_path / "1-debian-6.1")
    state.builds = {"base": pipeline.BuildStep("6.1.1-aaa"), "patched": pipeline.BuildStep("6.1.1-bbb")}
    children = pipeline.make_children([state], "maps", ["--accel", "tcg"], repeat=3)
    assert [c.kernel for c in children] == [f"debian:6.1 {side} r{n}" for n in (1, 2, 3) for side in ("base", "patched")]
    assert [c.root.relative_to(state.directory).as_posix() for c in children[:2]] == ["base/r1", "patched/r1"]
    assert children[3].argv[-1] == "--repetition=2" and "build:6.1.1-bbb" in children[3].argv
    assert [c.kernel for c in state.repeats["patched"]] == [f"debian:6.1 patched r{n}" for n in (1, 2, 3)]
    assert state.children["base"] is children[0]
    single = pipeline.VersionState(version, tmp_path / "single")
    single.builds = state.builds
    once = pipeline.make_children([single], "maps", [])
    assert [c.root.name for c in once] == ["base", "patched"] and not any("--repetition" in a for c in once for a in c.argv)
