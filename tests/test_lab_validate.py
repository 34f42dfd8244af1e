"""`lab validate` over several versions without building or booting anything: the pipeline with
fake sources, builds and child runs (real run directories), each version's verdict, the exit
code rule, the text table, validate.json and report.html."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from validatefakes import (
    BAD_TESTS,
    BASE_TESTS,
    GOOD_TESTS,
    LINES,
    replaced,
    run_dir,
    tree,
    udiff,
)

from lab.core.outcome import Outcome
from lab.kernel import build as kernel_build
from lab.kernel import patches
from lab.kernel import source as ksource
from lab.matrix import children as matrixrun
from lab.validate import html as vhtml
from lab.validate import pipeline, verdict
from lab.validate import table as vtable
from lab.validate.plan import Plan, Version

PATCH_TEXT = udiff("kernel/f.c", LINES, replaced(LINES, {5: "patched\n"}))


class Fakes:
    """What each fake version does: its tree's text, whether the patched build fails, its runs."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp
        self.trees: dict[Path, ksource.SourceTree] = {}
        self.fail_build: dict[tuple[Path, bool], str] = {}
        self.runs: dict[str, tuple[Outcome, dict[str, str]]] = {}
        self.built: list[str] = []
        self.started: list[list[list[str]]] = []
        monkeypatch.setattr(ksource, "acquire", self.acquire)
        monkeypatch.setattr(kernel_build, "build", self.build)
        monkeypatch.setattr(matrixrun, "prepare_cache", lambda log: None)
        monkeypatch.setattr(matrixrun, "run_children", self.run_children)

    def version(self, index: int, name: str, text: list[str] = LINES, kernelversion: str = "6.1.192") -> Version:
        root = self.tmp / "sources" / name
        self.trees[root] = tree(root, kernelversion, text)
        return Version(index, name, ksource.TreeSource(root))

    def acquire(self, spec: ksource.SourceSpec, cache: Path, log: object) -> ksource.SourceTree:
        assert isinstance(spec, ksource.TreeSource)
        return self.trees[spec.path]

    def build(self, request: kernel_build.BuildRequest, cache: Path, log: object, jobs: int | None = None,
              source: ksource.SourceTree | None = None) -> kernel_build.Built:
        assert isinstance(request.source, ksource.TreeSource)
        assert source is self.trees[request.source.path]  # acquired once, for the apply check and both builds
        patched = bool(request.patches)
        name = f"{request.source.path.name}-{'patched' if patched else 'base'}"
        self.built.append(name)
        if error := self.fail_build.get((request.source.path, patched)):
            raise kernel_build.BuildError(error)
        return kernel_build.Built(name, cache / name, None, cached=True)  # type: ignore[arg-type]

    def run_children(self, children: list[matrixrun.Child], jobs: int, env: dict[str, str], show: object) -> None:
        self.started.append([child.argv for child in children])
        for child in children:
            kernel = child.argv[child.argv.index("--kernel") + 1]
            outcome, tests = self.runs[kernel.removeprefix("build:")]
            run_dir(child.root, kernel, outcome, tests)
            child.returncode, child.seconds = 0, 1.5


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fakes:
    return Fakes(tmp_path, monkeypatch)


def validate(fakes: Fakes, versions: list[Version]) -> tuple[list[pipeline.VersionState], Path]:
    patch = fakes.tmp / "0001-fix.patch"
    patch.write_text(PATCH_TEXT)
    plan = Plan(tuple(versions), (patch,), ())
    directory = fakes.tmp / "results" / "validate-x"
    directory.mkdir(parents=True)
    states = pipeline.new_states(plan, directory)
    pipeline.run(plan, states, "dump", 2, ["--accel", "tcg"], {}, fakes.tmp / "cache", lambda m: None, lambda m: None)
    return states, directory


def three_versions(fakes: Fakes) -> tuple[list[pipeline.VersionState], Path]:
    good = fakes.version(1, "good")
    stale = fakes.version(2, "stale", text=replaced(LINES, {6: "the context moved on\n"}), kernelversion="6.12.117")
    broken = fakes.version(3, "broken")
    fakes.fail_build[(fakes.tmp / "sources" / "broken", True)] = (
        "build failed: kernel/f.c:5:1: error: 'x' undeclared (log: /cache/builds/failed/broken.log)")
    fakes.runs.update({"good-base": (Outcome.PASSED, BASE_TESTS), "good-patched": (Outcome.PASSED, GOOD_TESTS)})
    return validate(fakes, [good, stale, broken])


def test_each_version_gets_its_own_verdict_and_a_stale_one_is_not_built(fakes: Fakes) -> None:
    states, _ = three_versions(fakes)
    verdicts = [verdict.verdict(s) for s in states]
    assert [v.kind for v in verdicts] == [verdict.NO_REGRESSION, verdict.DOES_NOT_APPLY, verdict.REGRESSED]
    assert verdicts[1].reason == "does not apply: 1/1 0001-fix.patch: kernel/f.c hunk #1 (at line 2)"
    assert verdicts[2].reason.startswith("the patched build fails where the base built: build failed: kernel/f.c:5:1")
    assert states[2].builds["patched"].log == "/cache/builds/failed/broken.log"
    # Nothing of the stale version was built; the broken one has no runs; only the good pair ran, in one batch.
    assert fakes.built == ["good-base", "good-patched", "broken-base", "broken-patched"]
    assert [sorted(argv[argv.index("--kernel") + 1] for argv in batch) for batch in fakes.started] == [
        ["build:good-base", "build:good-patched"]]
    result = states[0].comparison
    assert result is not None and len(result.newly_passing) == 2 and not result.regressions
    assert verdict.exit_status(verdicts) == 1


def test_the_child_runs_go_to_base_and_patched_run_roots_with_the_run_options(fakes: Fakes) -> None:
    states, directory = three_versions(fakes)
    child = states[0].children["patched"]
    assert child.root == directory / "1-good" / "patched"
    assert child.argv[-2:] == ["--accel", "tcg"] and child.argv[child.argv.index("--suite") + 1] == "dump"
    assert states[0].run_directory("base").parent == directory / "1-good" / "base"  # type: ignore[union-attr]


def test_a_newly_failing_test_is_a_regression(fakes: Fakes) -> None:
    fakes.runs.update({"v-base": (Outcome.PASSED, BASE_TESTS), "v-patched": (Outcome.FAILED, BAD_TESTS)})
    states, _ = validate(fakes, [fakes.version(1, "v")])
    found = verdict.verdict(states[0])
    assert found.kind == verdict.REGRESSED
    assert found.reason == "regressed: 1 newly failing, run outcome passed -> failed"
    assert verdict.exit_status([found]) == 1


@pytest.mark.parametrize("outcome", [Outcome.INFRA_ERROR, Outcome.INTERRUPTED])
def test_a_run_the_host_spoilt_is_undecided_and_exit_8(fakes: Fakes, outcome: Outcome) -> None:
    fakes.runs.update({"v-base": (Outcome.PASSED, BASE_TESTS), "v-patched": (outcome, {})})
    fakes.runs.update({"w-base": (Outcome.PASSED, BASE_TESTS), "w-patched": (Outcome.PASSED, GOOD_TESTS)})
    states, _ = validate(fakes, [fakes.version(1, "v"), fakes.version(2, "w")])
    found = [verdict.verdict(s) for s in states]
    assert found[0].kind == verdict.UNDECIDED, found  # "removed that passed" would be a lie too
    assert f"patched run {outcome.value}" in found[0].reason
    assert found[1].kind == verdict.NO_REGRESSION
    assert verdict.exit_status(found) == 8


def test_a_base_that_does_not_build_is_undecided(fakes: Fakes) -> None:
    version = fakes.version(1, "v")
    fakes.fail_build[(fakes.tmp / "sources" / "v", False)] = "config: CONFIG_X=y is n in the final config"
    states, _ = validate(fakes, [version])
    found = verdict.verdict(states[0])
    assert found.kind == verdict.UNDECIDED and "the base does not build: config: CONFIG_X" in found.reason
    assert fakes.built == ["v-base"]


def test_a_run_that_left_no_directory_is_undecided(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    def exits_at_once(children: list[matrixrun.Child], jobs: int, env: object, show: object) -> None:
        for child in children:
            child.returncode = 8
    monkeypatch.setattr(matrixrun, "run_children", exits_at_once)
    states, _ = validate(fakes, [fakes.version(1, "v")])
    found = verdict.verdict(states[0])
    assert found.kind == verdict.UNDECIDED and found.reason == "no base or patched run directory (see base/lab.log)"


def test_the_exit_code_rule() -> None:
    def v(*kinds: str) -> list[verdict.Verdict]:
        return [verdict.Verdict(kind, "") for kind in kinds]
    assert verdict.exit_status(v(verdict.NO_REGRESSION, verdict.NO_REGRESSION)) == 0
    assert verdict.exit_status(v(verdict.NO_REGRESSION, verdict.DOES_NOT_APPLY)) == 0  # shown, not a regression
    assert verdict.exit_status(v(verdict.DOES_NOT_APPLY)) == 0
    assert verdict.exit_status(v(verdict.NO_REGRESSION, verdict.UNDECIDED)) == 8
    assert verdict.exit_status(v(verdict.UNDECIDED, verdict.REGRESSED, verdict.DOES_NOT_APPLY)) == 1


def test_a_version_whose_port_applies_uses_it(fakes: Fakes) -> None:
    series = fakes.tmp / "series"
    (series / "ports" / "6.12").mkdir(parents=True)
    (series / "0001-fix.patch").write_text(PATCH_TEXT)
    moved = replaced(LINES, {6: "the context moved on\n"})
    (series / "ports" / "6.12" / "0001-fix.patch").write_text(udiff("kernel/f.c", moved, replaced(moved, {5: "patched\n"})))
    versions = (fakes.version(1, "old"), fakes.version(2, "new", text=moved, kernelversion="6.12.117"))
    fakes.runs.update({f"{n}-{s}": (Outcome.PASSED, GOOD_TESTS) for n in ("old", "new") for s in ("base", "patched")})
    plan = Plan(versions, (series,), ())
    directory = fakes.tmp / "results" / "validate-y"
    directory.mkdir(parents=True)
    states = pipeline.new_states(plan, directory)
    pipeline.run(plan, states, "dump", 2, [], {}, fakes.tmp / "cache", lambda m: None, lambda m: None)
    assert [s.port for s in states] == [None, "series/ports/6.12"]
    assert [s.series[0].path for s in states] == [series / "0001-fix.patch", series / "ports/6.12/0001-fix.patch"]
    assert [verdict.verdict(s).kind for s in states] == [verdict.NO_REGRESSION] * 2


# --- table, JSON, HTML ---------------------------------------------------------------------------


def test_the_text_table_has_one_row_per_version_then_the_details(fakes: Fakes) -> None:
    states, _ = three_versions(fakes)
    text = vtable.render(vtable.rows(states))
    lines = text.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == list(vtable.HEADERS)
    assert re.split(r"\s{2,}", lines[1]) == ["1", "good", "tree 6.1.192", "clean", "both", "passed (3)", "passed (3)",
                                             "2 newly passing", "no regression"]
    assert re.split(r"\s{2,}", lines[2]) == ["2", "stale", "tree 6.12.117", "does not apply", "—", "—", "—", "—",
                                             "does not apply"]
    assert re.split(r"\s{2,}", lines[3]) == ["3", "broken", "tree 6.1.192", "clean", "patched fails", "—", "—", "—",
                                             "regressed"]
    assert "applies: does not apply: 1/1 0001-fix.patch: kernel/f.c hunk #1 (at line 2)" in lines
    assert "patched build: build failed: kernel/f.c:5:1: error: 'x' undeclared (log: /cache/builds/failed/broken.log)" in lines
    # The `lab compare` text of the version that ran, in full.
    assert "newly passing: 2" in text and "  dump/test_dump_rfc.py::test_a: skipped -> passed" in text
    assert "compared 3 tests: 0 newly failing, 2 newly passing" in text


def test_validate_json_has_every_row_with_relative_runs_and_the_comparison(fakes: Fakes) -> None:
    states, directory = three_versions(fakes)
    rows = vtable.rows(states)
    vtable.write_json(directory / "validate.json", rows, {"sources": ["good", "stale", "broken"]}, 1)
    data = json.loads((directory / "validate.json").read_text())
    assert data["exit_code"] == 1 and data["sources"] == ["good", "stale", "broken"]
    good, stale, broken = data["versions"]
    assert [v["verdict"] for v in data["versions"]] == ["no regression", "does not apply", "regressed"]
    assert good["builds"]["base"]["build_id"] == "good-base" and good["builds"]["patched"]["error"] is None
    assert good["runs"]["base"]["run"].startswith("1-good/base/") and good["runs"]["base"]["outcome"] == "passed"
    assert (directory / good["runs"]["patched"]["run"] / "results.json").is_file()
    assert good["comparison"]["counts"]["newly_passing"] == 2 and good["comparison"]["regression"] is False
    assert good["comparison"]["a"]["directory"] == good["runs"]["base"]["run"]
    assert good["series"] == [{"name": "0001-fix.patch", "sha256": states[0].series[0].sha256}]
    assert good["resolved"]["version"] == "6.1.192" and "source_and_apply_check_seconds" in good["timings"]
    assert stale["applies"]["status"] == "does not apply" and stale["builds"] == {} and stale["runs"] == {}
    assert broken["builds"]["patched"]["log"] == "/cache/builds/failed/broken.log" and broken["comparison"] is None


def test_report_html_is_self_contained_with_base_and_patched_side_by_side(fakes: Fakes) -> None:
    states, directory = three_versions(fakes)
    page = vhtml.write(vtable.rows(states), directory / "report.html").read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert page.count('<table class="sides">') == 2  # the two versions that were built
    assert "<th>base</th><th>patched</th>" in page
    assert "build:good-base" in page and "build:good-patched" in page
    assert 'href="1-good/base/' in page  # console links relative to the report
    assert "newly passing: 2" in page and "dump/test_dump_rfc.py::test_a: skipped -&gt; passed" in page
    assert "does not apply: 1/1 0001-fix.patch: kernel/f.c hunk #1 (at line 2)" in page
    assert 'class="verdict verdict-regressed"' in page and "td.verdict-regressed { background: #e64646; }" in page


def test_an_interrupted_validation_still_has_rows(fakes: Fakes) -> None:
    version = fakes.version(1, "v")
    plan = Plan((version,), (fakes.tmp / "p.patch",), ())
    states = pipeline.new_states(plan, fakes.tmp / "results" / "validate-z")
    found = verdict.verdict(states[0])
    assert found == verdict.Verdict(verdict.UNDECIDED, "not reached (interrupted)")
    assert vtable.cells(vtable.rows(states)[0])[3:] == ("—", "—", "—", "—", "—", "undecided")


def test_patches_dry_run_messages_are_parsed_in_english(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    source = tree(tmp_path / "tree", text=replaced(LINES, {6: "x\n"}))
    patch = tmp_path / "p.patch"
    patch.write_text(PATCH_TEXT)
    assert patches.check_applies(source.root, patches.load_series([patch]), tmp_path / "s").failure == \
        "1/1 p.patch: kernel/f.c hunk #1 (at line 2)"
