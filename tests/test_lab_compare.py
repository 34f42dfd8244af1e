"""lab.compare and `lab compare`: two synthetic runs, each kind of change, the exit code."""
from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Callable, Iterator

import pytest

from lab.cli import main as cli
from lab.report import compare
from lab.report import compare_text as comparereport
from lab.core.errors import UserError
from lab.results.load import load_run

DEBIAN_61 = {"release": "6.1.0-56-cloud-amd64", "origin": "debian", "spec": "debian:6.1",
             "package": "linux-image-6.1.0-56-cloud-amd64-unsigned", "version": "6.1.192-2",
             "config_sha256": "6d45c8c827f41623fa380a0410c6acdca1604c64305459e068d987e65df87dcc"}
DEBIAN_612 = {"release": "6.12.117+deb12-cloud-amd64", "origin": "debian", "spec": "debian:6.12",
              "package": "linux-image-6.12.117+deb12-cloud-amd64-unsigned", "version": "6.12.117-1~deb12u1",
              "config_sha256": "3078ff1ea2c2b2100e82a72f979d61edc3f5e5e224e631f646a061c1018ccb7f"}
# A transcript property as test_cli_vs_bpftool records it: long, one word differs between 6.1 and 6.12.
TRANSCRIPT = ("create=ok show a=ok 0:update=ok 1:update=EEXIST 2:lookup=ok 3:freeze=ok "
              "4:update=EPERM 5:freeze={} 6:lookup=ok dump a=ok dump b=ok")


@pytest.fixture(autouse=True)
def keep_sigterm() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)  # cli.main() installs its own handler
    yield
    signal.signal(signal.SIGTERM, previous)


def t(name: str, outcome: str = "passed", suite: str = "maps", **extra: object) -> dict[str, object]:
    return {"suite": suite, "name": name, "outcome": outcome, "duration": 0.1, "message": "",
            "skip_reason": "", "properties": {}, **extra}


def write_run(root: Path, run_id: str, tests: list[dict[str, object]], outcome: str | None = "passed",
              kernel: dict[str, object] | None = None, reason: str = "") -> Path:
    directory = root / run_id
    directory.mkdir(parents=True)
    (directory / "metadata.json").write_text(json.dumps({
        "run_id": run_id, "request": {"kernel": "debian:6.1", "suites": ["maps"], "accel": "auto"},
        "kernel": kernel if kernel is not None else DEBIAN_61, "outcome": outcome, "reason": reason}))
    (directory / "results.json").write_text(json.dumps({"run_id": run_id, "suites": [], "tests": tests}))
    return directory


def pair(tmp_path: Path, tests_a: list[dict[str, object]], tests_b: list[dict[str, object]],
         outcome_a: str | None = "passed", outcome_b: str | None = "passed") -> compare.Comparison:
    return compare.compare(load_run(write_run(tmp_path, "run-a", tests_a, outcome_a)),
                           load_run(write_run(tmp_path, "run-b", tests_b, outcome_b)))


def names(changes: list[compare.Change]) -> list[str]:
    return [change.name for change in changes]


def test_newly_failing_is_any_non_failure_that_now_fails(tmp_path: Path) -> None:
    result = pair(tmp_path,
                  [t("p.py::pass_fail"), t("p.py::skip_fail", "skipped"), t("p.py::pass_error"),
                   t("p.py::fail_error", "failed"), t("p.py::steady")],
                  [t("p.py::pass_fail", "failed", message="AssertionError: EPERM != EBUSY\nmore"),
                   t("p.py::skip_fail", "failed"), t("p.py::pass_error", "error"),
                   t("p.py::fail_error", "error"), t("p.py::steady")])
    assert names(result.newly_failing) == ["p.py::pass_error", "p.py::pass_fail", "p.py::skip_fail"]
    assert all(change.regression for change in result.newly_failing)
    assert result.failing_in_both == 1  # failed -> error is the same class: not listed
    assert result.regressions == ["3 newly failing"]
    text = comparereport.render(result)
    assert "maps/p.py::pass_fail: passed -> failed: AssertionError: EPERM != EBUSY\n" in text
    assert "fail_error" not in text


def test_newly_passing_and_newly_skipped(tmp_path: Path) -> None:
    result = pair(tmp_path,
                  [t("p.py::fail_pass", "failed"), t("p.py::skip_pass", "skipped"), t("p.py::error_pass", "error"),
                   t("p.py::pass_skip"), t("p.py::fail_skip", "failed")],
                  [t("p.py::fail_pass"), t("p.py::skip_pass"), t("p.py::error_pass"),
                   t("p.py::pass_skip", "skipped", skip_reason="BPF_MAP_DUMP not available"),
                   t("p.py::fail_skip", "skipped", skip_reason="no batch")])
    assert names(result.newly_passing) == ["p.py::error_pass", "p.py::fail_pass", "p.py::skip_pass"]
    assert names(result.newly_skipped) == ["p.py::fail_skip", "p.py::pass_skip"]
    assert not result.newly_failing and not result.regressions
    text = comparereport.render(result)
    assert "maps/p.py::pass_skip: passed -> skipped: BPF_MAP_DUMP not available" in text  # B's reason


def test_added_and_removed_and_which_of_them_regress(tmp_path: Path) -> None:
    result = pair(tmp_path,
                  [t("p.py::kept"), t("p.py::gone_passed"), t("p.py::gone_failed", "failed"),
                   t("p.py::gone_skipped", "skipped")],
                  [t("p.py::kept"), t("p.py::new_passing"), t("p.py::new_failing", "failed"),
                   t("p.py::new_error", "error")])
    assert names(result.added) == ["p.py::new_error", "p.py::new_failing", "p.py::new_passing"]
    assert [c.regression for c in result.added] == [True, True, False]
    assert names(result.removed) == ["p.py::gone_failed", "p.py::gone_passed", "p.py::gone_skipped"]
    assert [c.regression for c in result.removed] == [False, True, False]
    assert result.regressions == ["2 added and failing", "1 removed that passed in A"]
    assert result.compared == 7  # in A or B
    text = comparereport.render(result)
    assert "maps/p.py::gone_passed: was passed  [regression: it passed in A]" in text
    assert "maps/p.py::gone_failed: was failed\n" in text
    assert "maps/p.py::new_failing: failed  [regression]" in text
    assert "maps/p.py::new_passing: passed\n" in text


def test_a_suite_missing_from_one_run_is_one_line(tmp_path: Path) -> None:
    result = pair(tmp_path, [t("m.py::a"), t("d.py::x", suite="dump"), t("d.py::y", suite="dump")],
                  [t("m.py::a"), t("p.py::z", "failed", suite="pin")])
    text = comparereport.render(result)
    assert "dump/*: all 2 tests (the suite did not run in B)  [regression: 2 passed in A]" in text
    assert "pin/*: all 1 tests (the suite did not run in A)  [regression: 1 failed in B]" in text
    assert "dump/d.py::x" not in text
    assert len(result.removed) == 2 and len(result.added) == 1  # the JSON form keeps every test


def test_behaviour_changed_lists_each_property(tmp_path: Path) -> None:
    result = pair(tmp_path,
                  [t("a.py::freeze_twice", properties={"second_freeze_errno": "EBUSY", "same": "1"}),
                   t("a.py::new_key", properties={}),
                   t("a.py::timed", properties={"concurrency_seconds": "0.32", "seconds_until_id_gone": "0.1"}),
                   t("a.py::walker", properties={"walker_walks": "5", "walker_values_checked": "1263"}),
                   t("a.py::both_failing", "failed", properties={"errno": "EINVAL"}),
                   t("a.py::now_failing", properties={"errno": "EINVAL"})],
                  [t("a.py::freeze_twice", properties={"second_freeze_errno": "EPERM", "same": "1"}),
                   t("a.py::new_key", properties={"union_bpf_attr_size": "152"}),
                   t("a.py::timed", properties={"concurrency_seconds": "0.15", "seconds_until_id_gone": "2.0"}),
                   t("a.py::walker", properties={"walker_walks": "4", "walker_values_checked": "959"}),
                   t("a.py::both_failing", "error", properties={"errno": "ENOENT"}),
                   t("a.py::now_failing", "failed", properties={"errno": "ENOENT"})])
    # Measurements (times, the walker's counts) are not behaviour; an outcome change is listed as that.
    assert names(result.behaviour_changed) == ["a.py::both_failing", "a.py::freeze_twice", "a.py::new_key"]
    freeze = result.behaviour_changed[1]
    assert freeze.properties == (compare.PropertyChange("second_freeze_errno", "EBUSY", "EPERM"),)
    assert result.regressions == ["1 newly failing"]
    text = comparereport.render(result)
    assert "  maps/a.py::freeze_twice (passed)\n      second_freeze_errno: EBUSY -> EPERM\n" in text
    assert "union_bpf_attr_size: (not recorded) -> 152" in text
    assert "errno: EINVAL -> ENOENT" in text  # shown under the newly failing test too
    assert "seconds" not in text and "walker" not in text


def test_long_values_show_only_the_words_that_changed(tmp_path: Path) -> None:
    result = pair(tmp_path, [t("c.py::transcript", properties={"outcomes": TRANSCRIPT.format("EBUSY")})],
                  [t("c.py::transcript", properties={"outcomes": TRANSCRIPT.format("EPERM")})])
    (change,) = result.behaviour_changed
    (prop,) = change.properties
    assert prop.words == (compare.WordChange("5:freeze=EBUSY", "5:freeze=EPERM"),)
    line = comparereport.property_line(prop)
    assert line == "outcomes (changed words): 5:freeze=EBUSY -> 5:freeze=EPERM"
    assert "0:update=ok" not in comparereport.render(result)


def test_word_changes_with_words_inserted_and_removed() -> None:
    changes = compare.word_changes("a b c d e f", "a x b c e f g h")
    assert changes == (compare.WordChange("", "x"), compare.WordChange("d", ""), compare.WordChange("", "g h"))
    prop = compare.PropertyChange("k", "a b c d e f" * 8, "a x b" * 8, changes)
    assert comparereport.property_line(prop) == "k (changed words): (nothing) -> x; d -> (nothing); (nothing) -> g h"


def test_short_values_are_shown_whole() -> None:
    (prop,) = compare.property_changes({"k": "no such map"}, {"k": "no such entry"})
    assert prop.words == ()
    assert comparereport.property_line(prop) == "k: no such map -> no such entry"


def test_a_changed_skip_reason_is_counted_not_listed(tmp_path: Path) -> None:
    result = pair(tmp_path, [t("s.py::x", "skipped", skip_reason="no BPF_MAP_DUMP")],
                  [t("s.py::x", "skipped", skip_reason="needs root")])
    assert result.skip_reason_changed == 1
    assert not any(result.category(name) for name in compare.CATEGORIES)
    text = comparereport.render(result)
    assert "needs root" not in text
    assert text.endswith("0 added, 0 removed (1 skipped in both for another reason)\nno regression")


@pytest.mark.parametrize("a, b, verdict", [
    ("passed", "kernel-crashed", "worse"),
    ("passed", "kernel-warned", "worse"),
    ("failed", "boot-failed", "worse"),
    ("timed-out", "kernel-crashed", "worse"),
    ("kernel-crashed", "passed", "better"),
    ("timed-out", "lost-connection", "different"),
    ("passed", "infra-error", "not comparable"),
    ("interrupted", "passed", "not comparable"),
    ("passed", None, "not comparable"),
    ("kernel-warned", "kernel-warned", "same"),
])
def test_run_outcome_verdict(a: str, b: str | None, verdict: str) -> None:
    assert compare.outcome_change(a, b).verdict == verdict


def test_a_worse_run_outcome_alone_is_a_regression(tmp_path: Path) -> None:
    result = pair(tmp_path, [t("x.py::a")], [t("x.py::a")], "passed", "kernel-crashed")
    assert result.regressions == ["run outcome passed -> kernel-crashed"]
    assert "run outcome: passed -> kernel-crashed (worse: a regression)" in comparereport.render(result)
    better = compare.compare(result.b, result.a)
    assert better.regressions == []


def test_header_names_both_kernels(tmp_path: Path) -> None:
    built = {"release": "6.1.99-lab", "origin": "build", "spec": "build:0123abcd",
             "source": json.dumps({"origin": "debian", "spec": "debian:6.1"}),
             "patches": json.dumps([{"name": "0001-bpf-fix.patch", "sha256": "ab"}]),
             "fragments": "[]", "config_sha256": "ff" * 32}
    a = load_run(write_run(tmp_path, "run-a", [], kernel=DEBIAN_61, reason="every suite passed"))
    b = load_run(write_run(tmp_path, "run-b", [], outcome="kernel-crashed", kernel=built,
                                   reason="Kernel panic - not syncing"))
    text = comparereport.render(compare.compare(a, b))
    assert ("kernel:  6.1.0-56-cloud-amd64 (debian:6.1; linux-image-6.1.0-56-cloud-amd64-unsigned 6.1.192-2; "
            "config 6d45c8c827f4)") in text
    assert ("kernel:  6.1.99-lab (build:0123abcd; config ffffffffffff; source: debian:6.1; "
            "patches: 0001-bpf-fix.patch)") in text
    assert "outcome: kernel-crashed (Kernel panic - not syncing); 0 tests" in text
    assert "fragments" not in text  # an empty list says nothing


def test_summary_line(tmp_path: Path) -> None:
    result = pair(tmp_path, [t("x.py::a"), t("x.py::b", "failed"), t("x.py::c", "failed")],
                  [t("x.py::a", "failed"), t("x.py::b"), t("x.py::c", "failed")])
    assert comparereport.summary_line(result) == (
        "compared 3 tests: 1 newly failing, 1 newly passing, 0 newly skipped, 0 behaviour changed, "
        "0 added, 0 removed (1 failing in both)")


def test_a_results_json_only_run_still_compares(tmp_path: Path) -> None:
    directory = write_run(tmp_path, "bare", [t("x.py::a")])
    (directory / "metadata.json").unlink()
    run = load_run(directory)
    assert run.outcome is None and run.kernel == {} and run.run_id == "bare"


@pytest.mark.parametrize("setup, needle", [
    (lambda d: None, "no such directory"),
    (lambda d: d.mkdir(), "no results.json"),
    (lambda d: (d.mkdir(), (d / "results.json").write_text("{not json")), "results.json is not valid JSON"),
    (lambda d: (d.mkdir(), (d / "results.json").write_text('{"tests": {}}')), "no list of tests"),
    (lambda d: (d.mkdir(), (d / "results.json").write_text(json.dumps({"tests": [t("x", "xfailed")]}))),
     "unknown outcome 'xfailed'"),
    (lambda d: (d.mkdir(), (d / "results.json").write_text(json.dumps({"tests": [{"outcome": "passed"}]}))),
     "tests[0] has no suite and name"),
    (lambda d: (d.mkdir(), (d / "results.json").write_text(json.dumps({"tests": [t("x"), t("x", "failed")]}))),
     "maps/x appears twice"),
    (lambda d: (d.mkdir(), (d / "results.json").write_text('{"tests": []}'), (d / "metadata.json").write_text("[")),
     "metadata.json is not valid JSON"),
])
def test_bad_runs_are_user_errors_naming_the_path(tmp_path: Path, setup: Callable[[Path], object],
                                                  needle: str) -> None:
    setup(tmp_path / "broken")
    with pytest.raises(UserError) as info:
        load_run(tmp_path / "broken")
    assert str(tmp_path / "broken") in str(info.value)
    assert needle in str(info.value)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path, "a", [t("x.py::a"), t("x.py::b", "skipped")])
    same = write_run(tmp_path, "same", [t("x.py::a"), t("x.py::b", "skipped")])
    better = write_run(tmp_path, "better", [t("x.py::a"), t("x.py::b")])
    worse = write_run(tmp_path, "worse", [t("x.py::a", "failed"), t("x.py::b", "skipped")], outcome="failed")

    code, out, err = run_cli(["compare", str(a), str(same)], capsys)
    assert (code, err) == (0, "")
    assert out.endswith("compared 2 tests: 0 newly failing, 0 newly passing, 0 newly skipped, "
                        "0 behaviour changed, 0 added, 0 removed\nno regression\n")
    assert run_cli(["compare", str(a), str(better)], capsys)[0] == 0
    code, out, _ = run_cli(["compare", str(a), str(worse)], capsys)
    assert code == 1
    assert "regression: 1 newly failing, run outcome passed -> failed" in out
    assert run_cli(["compare", str(worse), str(a)], capsys)[0] == 0


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path, "a", [t("x.py::a"), t("x.py::b", properties={"errno": "EBUSY"})])
    b = write_run(tmp_path, "b", [t("x.py::a", "failed", message="boom"), t("x.py::b", properties={"errno": "EPERM"})],
                  outcome="failed", kernel=DEBIAN_612)
    code, out, _ = run_cli(["compare", "--json", str(a), str(b)], capsys)
    assert code == 1
    data = json.loads(out)
    assert data["counts"]["newly_failing"] == 1 and data["counts"]["behaviour_changed"] == 1
    assert data["newly_failing"] == [{"suite": "maps", "name": "x.py::a", "a": "passed", "b": "failed",
                                      "regression": True, "message": "boom"}]
    assert data["behaviour_changed"][0]["properties"] == [{"key": "errno", "a": "EBUSY", "b": "EPERM"}]
    assert data["b"]["kernel"]["release"] == "6.12.117+deb12-cloud-amd64"
    assert data["run_outcome"] == {"a": "passed", "b": "failed", "verdict": "worse"}
    assert data["regression"] is True


def test_cli_takes_a_run_id_under_the_results_root(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_RESULTS", str(tmp_path / "results"))
    write_run(tmp_path / "results", "run-1", [t("x.py::a")])
    write_run(tmp_path / "results", "run-2", [t("x.py::a", "failed")])
    code, out, _ = run_cli(["compare", "run-1", "run-2"], capsys)
    assert code == 1
    assert f"A: {tmp_path / 'results' / 'run-1'}" in out


def test_cli_bad_input_is_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_run(tmp_path, "good", [t("x.py::a")])
    code, out, err = run_cli(["compare", str(good), str(tmp_path / "missing")], capsys)
    assert code == 2
    assert out == ""
    assert err == f"lab: error: run {tmp_path / 'missing'}: no such directory\n"
