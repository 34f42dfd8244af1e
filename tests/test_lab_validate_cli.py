"""`lab validate` on the command line: bad input is one line and exit 2 with nothing fetched or
built; a validation with fake builds and runs writes validate.json and report.html and exits by
the rule (validate/verdict.py)."""
from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_lab_validate import PATCH_TEXT, Fakes
from validatefakes import BAD_TESTS, BASE_TESTS, GOOD_TESTS, LINES, replaced

from lab.cli import main as cli
from lab.core.errors import UserError
from lab.core.outcome import Outcome
from lab.guest import assets, image
from lab.kernel import acquire
from lab.kernel import build as kernel_build
from lab.kernel import source as ksource
from lab.matrix import children as matrixrun

REAL_CHECK = ksource.check


@pytest.fixture(autouse=True)
def private_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LAB_RESULTS", str(tmp_path / "results"))
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Sources checked (ksource.check), without reading the host's apt lists: a version the lists
    do not hold is refused."""
    seen: list[str] = []

    def check(spec: ksource.SourceSpec) -> None:
        seen.append(str(spec))
        if isinstance(spec, ksource.DebianSource) and spec.exact == "6.1.999-1":
            raise UserError("no linux-source-6.1 6.1.999-1 in the host's apt lists (nearest: 6.1.192-3)")
    monkeypatch.setattr(ksource, "check", check)
    return seen


@pytest.fixture
def nothing_starts(monkeypatch: pytest.MonkeyPatch, checked: list[str]) -> Iterator[list[str]]:
    started: list[str] = []

    def forbidden(*args: object, **kwargs: object) -> None:
        started.append("something")
        raise AssertionError("validate should have failed before starting anything")

    for owner, name in ((image, "build"), (assets, "prepare"), (kernel_build, "build"), (ksource, "acquire"),
                        (acquire, "fetch_debian"), (matrixrun, "run_children"), (matrixrun, "prepare_cache")):
        monkeypatch.setattr(owner, name, forbidden)
    yield started
    assert not started, "a stage started"


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = cli.main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, lines)
    return lines[0]


@pytest.fixture
def patch(tmp_path: Path) -> Path:
    path = tmp_path / "0001-fix.patch"
    path.write_text(PATCH_TEXT)
    return path


@pytest.mark.parametrize("argv, expected", [
    (["--source", "debian:6.1", "--source", "debian:6.1"], "--source debian:6.1 is given twice"),
    (["--source", "debian:6.1", "--source", "debian:6.x"], "bad source 'debian:6.x'"),
    (["--source", "debian:6.1", "--source", "/no/such/tree"], "source /no/such/tree: no such file or directory"),
    (["--source", "debian:6.1", "--suite", "maps,nope"], "unknown suite nope"),
    (["--source", "debian:6.1", "--config", "/no/such.config"], "fragment /no/such.config"),
    (["--source", "debian:6.1", "--patch", "/no/such.patch"], "patch /no/such.patch"),
])
def test_bad_input_is_one_line_before_anything_is_built(argv: list[str], expected: str, patch: Path,
                                                         nothing_starts: list[str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(["validate", *argv, "--patch", str(patch)], capsys)
    assert expected in line, line


def test_every_source_is_checked_before_anything_is_built(patch: Path, nothing_starts: list[str], checked: list[str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(["validate", "--source", "debian:6.12", "--source", "debian:6.1.999-1", "--source", "debian:6.1",
                           "--patch", str(patch)], capsys)
    assert "no linux-source-6.1 6.1.999-1" in line
    assert len(checked) == 2  # the first, then the one refused


def test_a_tree_that_is_not_a_kernel_tree_is_bad_input(tmp_path: Path, patch: Path, nothing_starts: list[str],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(ksource, "check", REAL_CHECK)
    (tmp_path / "not-a-kernel").mkdir()
    line = one_line_error(["validate", "--source", str(tmp_path / "not-a-kernel"), "--patch", str(patch)], capsys)
    assert "not an x86 kernel source tree (no Makefile)" in line


def test_no_patch_is_bad_input(nothing_starts: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert "at least one --patch" in one_line_error(["validate", "--source", "debian:6.1"], capsys)


def test_a_bad_port_directory_is_bad_input(tmp_path: Path, patch: Path, nothing_starts: list[str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    series = tmp_path / "series"
    (series / "ports" / "next").mkdir(parents=True)
    (series / "0001.patch").write_text(PATCH_TEXT)
    line = one_line_error(["validate", "--source", "debian:6.1", "--patch", str(series)], capsys)
    assert "ports/next is not a version directory" in line


def test_an_unwritable_results_root_is_bad_input(tmp_path: Path, patch: Path, nothing_starts: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = one_line_error(["validate", "--source", "debian:6.1", "--patch", str(patch),
                           "--results", str(blocker / "results")], capsys)
    assert str(blocker) in line


def test_jobs_must_be_a_count(patch: Path, nothing_starts: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["validate", "--source", "debian:6.1", "--patch", str(patch), "--jobs", "0"])
    assert caught.value.code == 2


def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Fakes, list[str]]:
    fakes = Fakes(tmp_path, monkeypatch)
    one = fakes.version(1, "one")
    two = fakes.version(2, "two", text=replaced(LINES, {6: "moved\n"}), kernelversion="6.12.117")
    return fakes, [str(one.spec.path), str(two.spec.path)]  # type: ignore[union-attr]


def test_a_validation_writes_its_json_and_report_and_exits_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             patch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fakes, paths = sources(tmp_path, monkeypatch)
    fakes.runs.update({"one-base": (Outcome.PASSED, BASE_TESTS), "one-patched": (Outcome.PASSED, GOOD_TESTS)})
    code = cli.main(["validate", "--source", paths[0], "--source", paths[1], "--patch", str(patch), "--suite", "dump",
                     "--jobs", "3", "--suite-timeout", "99"])
    out = capsys.readouterr().out
    assert code == 0, out
    validations = list((tmp_path / "results").glob("validate-*"))
    assert len(validations) == 1
    data = json.loads((validations[0] / "validate.json").read_text())
    assert data["exit_code"] == 0 and data["jobs"] == 3 and data["suites"] == ["dump"]
    assert [v["verdict"] for v in data["versions"]] == ["no regression", "does not apply"]
    assert [v["directory"][:2] for v in data["versions"]] == ["1-", "2-"]
    assert all((validations[0] / v["directory"]).is_dir() for v in data["versions"][:1])
    child = data["versions"][0]["runs"]["base"]
    assert (validations[0] / child["log"]).parent.name == "base"
    assert (validations[0] / "report.html").is_file()
    assert "validate: 2 version(s): 1 no regression, 1 does not apply" in out
    assert f"report: {validations[0] / 'report.html'}" in out


def test_a_regression_anywhere_is_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patch: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    fakes, paths = sources(tmp_path, monkeypatch)
    fakes.runs.update({"one-base": (Outcome.PASSED, BASE_TESTS), "one-patched": (Outcome.FAILED, BAD_TESTS)})
    assert cli.main(["validate", "--source", paths[0], "--source", paths[1], "--patch", str(patch)]) == 1
    assert "regressed: 1 newly failing" in capsys.readouterr().out


def test_an_interrupted_validation_still_writes_its_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         patch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, paths = sources(tmp_path, monkeypatch)

    def interrupted(children: list[matrixrun.Child], jobs: int, env: object, show: object) -> None:
        raise KeyboardInterrupt
    monkeypatch.setattr(matrixrun, "run_children", interrupted)
    assert cli.main(["validate", "--source", paths[0], "--patch", str(patch)]) == 130
    data = json.loads(next((tmp_path / "results").glob("validate-*/validate.json")).read_text())
    assert data["versions"][0]["verdict"] == "undecided" and data["interrupted"] is True
    assert data["versions"][0]["builds"]["base"]["build_id"] == "one-base"
    assert os.path.exists(next((tmp_path / "results").glob("validate-*/report.html")))
