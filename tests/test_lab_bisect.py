"""`lab bisect` (lab/bisect, lab/cli/bisect.py) on fake kernels: the child runs are replaced by real
run records whose test outcome depends on the kernel, so the whole bisection is exercised — the
endpoints, the steps, flaky and untestable candidates, the answer, bisect.json, reuse on a rerun,
an interruption, the host failing — and, over a small git repository, commits that do not build
(skipped) with the user's tree untouched. The real boots are in tests/test_e2e_repeat_and_bisect.py."""
from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.bisect import candidates as bcandidates
from lab.bisect import search
from lab.cli import main as cli
from lab.core.outcome import Outcome, Verdict
from lab.kernel import build as kernel_build
from lab.matrix import children as matrixrun
from lab.results.model import FAILED, PASSED, SuiteResult
from lab.results.model import TestRecord as Record
from lab.results.record import RunRecord

TEST = "maps/test_maps_hash.py::test_update_noexist[HASH]"
NAME = TEST.split("/", 1)[1]
KERNELS = [f"debian:6.1.0-{n}" for n in (40, 41, 42, 43, 44, 45, 46)]

# kernel spec, repetition -> (outcome, properties) of the test; None: the run ends infra-error first.
Behaviour = Callable[[str, int], "tuple[str, dict[str, str]] | None"]


def option(argv: list[str], name: str) -> str | None:
    for item in argv:
        if item.startswith(f"{name}="):
            return item.split("=", 1)[1]
    return argv[argv.index(name) + 1] if name in argv else None


class FakeRuns:
    """matrix.children.run_children, writing each child's run record as `lab run` would."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.kernels: list[str] = []
        self.interrupt_after: int | None = None

    def __call__(self, children: list[matrixrun.Child], jobs: int, env: dict[str, str], show: object,
                 poll_seconds: float = 0.0) -> None:
        for child in children:
            if self.interrupt_after is not None and len(self.kernels) >= self.interrupt_after:
                raise KeyboardInterrupt
            kernel = option(child.argv, "--kernel") or ""
            assert option(child.argv, "--test") == TEST
            repetition = int(option(child.argv, "--repetition") or 1)
            self.kernels.append(kernel)
            child.root.mkdir(parents=True, exist_ok=True)
            record = RunRecord.create(child.root, kernel, {"kernel": kernel, "suites": ["maps"], "accel": "tcg"})
            seen = self.behaviour(kernel, repetition)
            if seen is None:
                record.finish(Verdict(Outcome.INFRA_ERROR, "the host failed"))
            else:
                outcome, properties = seen
                record.add_suite(SuiteResult("maps", [Record("maps", NAME, outcome, 0.1, properties=properties)], 1.0,
                                             0 if outcome == PASSED else 1))
                record.finish(Verdict(Outcome.PASSED if outcome == PASSED else Outcome.FAILED, "x"))
            child.returncode = 0


def changes_at(first: str, flaky: frozenset[str] = frozenset()) -> Behaviour:
    """Fails from kernel `first` on; the kernels in `flaky` fail on their second repetition only."""
    def behaviour(kernel: str, repetition: int) -> tuple[str, dict[str, str]]:
        if kernel in flaky:
            return (FAILED if repetition == 2 else PASSED), {}
        index = KERNELS.index(kernel) if kernel in KERNELS else int(kernel.rsplit("-", 1)[-1])
        changed = index >= KERNELS.index(first) if kernel in KERNELS else kernel >= first
        return (FAILED if changed else PASSED), {"errno": "EPERM" if changed else "EBUSY"}
    return behaviour


@pytest.fixture
def packages(monkeypatch: pytest.MonkeyPatch) -> None:
    """The apt lists hold KERNELS; no image is built."""
    def candidates(good: str, bad: str) -> list[bcandidates.Candidate]:
        if good == bad:
            raise cli.UserError(f"--good {good} and --bad {bad} are the same package")
        return [bcandidates.Candidate(k, k.split(":")[1], k) for k in KERNELS]
    monkeypatch.setattr(bcandidates, "debian_candidates", candidates)
    monkeypatch.setattr(matrixrun, "prepare_cache", lambda log: None)


def fake(monkeypatch: pytest.MonkeyPatch, behaviour: Behaviour) -> FakeRuns:
    runs = FakeRuns(behaviour)
    monkeypatch.setattr(matrixrun, "run_children", runs)
    return runs


def bisect(tmp_path: Path, *extra: str, good: str = KERNELS[0], bad: str = KERNELS[-1]) -> int:
    return cli.main(["bisect", "--good", good, "--bad", bad, "--test", TEST, "--results", str(tmp_path / "results"),
                     *extra])


def record_of(tmp_path: Path) -> dict[str, object]:
    found = list((tmp_path / "results").glob("bisect-*/bisect.json"))
    assert len(found) == 1
    return json.loads(found[0].read_text())


@pytest.mark.usefixtures("packages")
def test_the_first_changed_package_is_found_within_the_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    runs = fake(monkeypatch, changes_at(KERNELS[4]))
    assert bisect(tmp_path) == 0
    out = capsys.readouterr().out
    assert f"bisect: first changed: {KERNELS[4]}: {TEST} outcome 'fail' (last good {KERNELS[3]}: 'pass')" in out
    assert len(runs.kernels) <= search.most_steps(len(KERNELS))
    assert runs.kernels[:2] == [KERNELS[0], KERNELS[-1]]  # the endpoints first
    data = record_of(tmp_path)
    assert data["answer"]["first_changed"] == KERNELS[4] and data["answer"]["exact"]  # type: ignore[index]
    script = next((tmp_path / "results").glob("bisect-*/reproducer.sh")).read_text()
    assert f"--kernel={KERNELS[3]}" in script and f"--kernel={KERNELS[4]}" in script and f"--test={TEST}" in script


@pytest.mark.usefixtures("packages")
def test_a_property_is_bisected_like_an_outcome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    fake(monkeypatch, changes_at(KERNELS[2]))
    assert bisect(tmp_path, "--property", "errno") == 0
    assert f"first changed: {KERNELS[2]}: {TEST} property errno 'EPERM'" in capsys.readouterr().out


@pytest.mark.usefixtures("packages")
def test_a_rerun_reuses_the_steps_and_an_interrupted_one_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    runs = fake(monkeypatch, changes_at(KERNELS[5]))
    runs.interrupt_after = 3
    assert bisect(tmp_path) == 130
    # Three kernels ran (the endpoints, then the middle one): it was trying the fourth.
    assert "bisect: interrupted at packages [" in (out := capsys.readouterr().out)
    assert "; rerun the same command to go on" in out
    kept = record_of(tmp_path)["phases"]["packages"]["steps"]  # type: ignore[index]
    assert len(kept) == 3
    runs.interrupt_after = None
    assert bisect(tmp_path) == 0
    assert len(runs.kernels) == len(set(runs.kernels)), "no kernel ran twice over both invocations"
    assert "(3 reused)" in capsys.readouterr().out
    before = len(runs.kernels)
    assert bisect(tmp_path) == 0
    assert len(runs.kernels) == before  # everything decided: nothing runs again


@pytest.mark.usefixtures("packages")
def test_repeated_runs_that_disagree_make_a_step_flaky_and_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    runs = fake(monkeypatch, changes_at(KERNELS[4], flaky=frozenset({KERNELS[3]})))
    assert bisect(tmp_path, "--repeat", "3") == 0
    out = capsys.readouterr().out
    assert f"{KERNELS[3]}: skipped (flaky: 2 x pass, 1 x fail)" in out
    assert "skips prevent an exact answer" in out
    assert all(runs.kernels.count(k) == 3 for k in set(runs.kernels))


@pytest.mark.usefixtures("packages")
def test_a_flaky_endpoint_is_undecidable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    fake(monkeypatch, changes_at(KERNELS[4], flaky=frozenset({KERNELS[0]})))
    assert bisect(tmp_path, "--repeat", "2") == 1
    assert f"the good kernel {KERNELS[0]} cannot be judged: flaky" in capsys.readouterr().out


@pytest.mark.usefixtures("packages")
def test_good_and_bad_that_agree_are_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    fake(monkeypatch, lambda kernel, repetition: (PASSED, {}))
    assert bisect(tmp_path) == 2
    assert "good and bad agree" in capsys.readouterr().out


@pytest.mark.usefixtures("packages")
def test_a_host_failure_is_infra_error_and_keeps_the_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    decided = changes_at(KERNELS[4])
    fake(monkeypatch, lambda kernel, repetition: None if kernel == KERNELS[3] else decided(kernel, repetition))
    assert bisect(tmp_path) == 8
    assert "rerun the same command to go on" in capsys.readouterr().err
    assert len(record_of(tmp_path)["phases"]["packages"]["steps"]) == 2  # type: ignore[index]


@pytest.mark.usefixtures("packages")
@pytest.mark.parametrize("extra, says", [
    (["--test", "maps/test_nope.py::test_x"], "the maps suite has no such test"),
    (["--test", "maps/test_maps_hash.py::test_update_noexist"], "names"),
    (["--config", "x.config"], "need --source TREE"),
])
def test_bad_input_is_one_line_before_anything_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], extra: list[str], says: str) -> None:
    runs = fake(monkeypatch, changes_at(KERNELS[4]))
    assert bisect(tmp_path, *extra) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and runs.kernels == []


# --- a git tree's commits --------------------------------------------------------------------


def git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Eight commits: the fourth does not build, the sixth changes the behaviour."""
    repo = tmp_path / "linux"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    for n in range(8):
        state = "BROKEN" if n == 3 else "changed" if n >= 5 else "same"
        (repo / "kernel.c").write_text(f"{n} {state}\n")
        git(repo, "add", "kernel.c")
        git(repo, "commit", "-q", "-m", f"commit {n}: {state}")
        git(repo, "tag", f"c{n}")
    (repo / "work-in-progress.c").write_text("the user's own, uncommitted\n")
    return repo


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """kernel_build.build of the checked-out commit: build:<n>-<state>, or BuildError when BROKEN."""
    built: list[str] = []

    def build(request: kernel_build.BuildRequest, cache: Path, log: object, jobs: int | None = None,
              source: object = None) -> object:
        n, state = (Path(str(request.source.path)) / "kernel.c").read_text().split()  # type: ignore[union-attr]
        assert not (Path(str(request.source.path)) / "work-in-progress.c").exists()
        built.append(n)
        if state == "BROKEN":
            raise kernel_build.BuildError("build failed: kernel.c:1:1: error: expected ';'")
        return type("Built", (), {"build_id": f"{n}-{state}"})()

    monkeypatch.setattr(kernel_build, "build", build)
    monkeypatch.setattr(matrixrun, "prepare_cache", lambda log: None)
    return built


def by_build(kernel: str, repetition: int) -> tuple[str, dict[str, str]]:
    return (FAILED if kernel.endswith("-changed") else PASSED), {}


def test_commits_are_bisected_in_a_clone_skipping_one_that_does_not_build(
        tmp_path: Path, tree: Path, builds: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    fake(monkeypatch, by_build)
    head, status = git(tree, "rev-parse", "HEAD"), git(tree, "status", "--porcelain")
    assert cli.main(["bisect", "--source", str(tree), "--good", "c0", "--bad", "c7", "--test", TEST,
                     "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "does not build: build failed: kernel.c:1:1: error: expected ';'" in out
    changed = git(tree, "rev-parse", "c5")[:12]
    assert f"bisect: first changed: {changed} commit 5: changed" in out
    assert "3" in builds
    # The user's tree: same commit, same branch, the uncommitted file still there.
    assert git(tree, "rev-parse", "HEAD") == head and git(tree, "status", "--porcelain") == status
    assert git(tree, "branch", "--show-current") == "main"


@pytest.mark.parametrize("good, bad, says", [
    ("c0", "nope", "--bad nope: no such revision"),
    ("c2", "c2", "are the same commit"),
    ("c5", "c1", "--good c5 is not an ancestor of --bad c1"),
])
def test_bad_revisions_are_one_line(tmp_path: Path, tree: Path, builds: list[str], good: str, bad: str, says: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bisect", "--source", str(tree), "--good", good, "--bad", bad, "--test", TEST,
                     "--results", str(tmp_path / "results")]) == 2
    assert says in capsys.readouterr().err and builds == []


def test_a_tree_that_is_not_a_git_repository_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # a temporary directory inside a checkout
    (tmp_path / "plain").mkdir()
    assert cli.main(["bisect", "--source", str(tmp_path / "plain"), "--good", "a", "--bad", "b", "--test", TEST]) == 2
    assert "not a git repository" in capsys.readouterr().err


def test_a_run_that_did_not_get_to_the_test_is_untestable_unless_the_host_failed(tmp_path: Path) -> None:
    from lab.bisect import judge
    from lab.results import load
    probe = judge.Probe("maps", NAME)
    record = RunRecord.create(tmp_path, "k", {"kernel": "k", "suites": ["maps"], "accel": "tcg"})
    record.finish(Verdict(Outcome.BOOT_FAILED, "no ready marker"))
    seen = judge.seen_in(load.load_run(record.directory), probe)
    assert seen.value is None and seen.untestable.startswith("boot-failed: the test did not run")
    assert judge.agreed([seen]).verdict == search.SKIPPED
    record = RunRecord.create(tmp_path, "k", {"kernel": "k", "suites": ["maps"], "accel": "tcg"})
    record.finish(Verdict(Outcome.INFRA_ERROR, "disk full"))
    with pytest.raises(judge.HostFailed):
        judge.seen_in(load.load_run(record.directory), probe)


def test_packages_then_the_commits_between_their_tags(tmp_path: Path, builds: list[str],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Debian kernels and --source TREE: the packages narrow it to a pair, then the tree's commits
    between the pair's upstream tags (v6.1.43..v6.1.44) are bisected."""
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "stable"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "linux-6.1.y")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    versions = [f"6.1.{n}" for n in range(40, 47)]
    for n, version in enumerate(versions):
        for step in ("a", "b") if version == "6.1.44" else ("a",):
            changed = version > "6.1.44" or (version == "6.1.44" and step == "b")
            (repo / "kernel.c").write_text(f"{version}{step} {'changed' if changed else 'same'}\n")
            git(repo, "add", "kernel.c")
            git(repo, "commit", "-q", "-m", f"{version} {step}")
        git(repo, "tag", f"v{version}")
    packages = [bcandidates.Candidate(f"debian:{v}-1", f"{v}-1", f"debian:{v}-1") for v in versions]
    monkeypatch.setattr(bcandidates, "debian_candidates", lambda good, bad: packages)

    def behaviour(kernel: str, repetition: int) -> tuple[str, dict[str, str]]:
        if kernel.startswith("build:"):
            return by_build(kernel, repetition)
        return (FAILED if kernel >= "debian:6.1.44-1" else PASSED), {}
    fake(monkeypatch, behaviour)
    assert cli.main(["bisect", "--good", "debian:6.1.40-1", "--bad", "debian:6.1.46-1", "--source", str(repo),
                     "--test", TEST, "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "bisect: first changed: debian:6.1.44-1: " in out
    changing = git(repo, "rev-parse", "v6.1.44")[:12]
    assert f"bisect: first changed: {changing} 6.1.44 b: " in out  # then the commit, between the tags
    phases = record_of(tmp_path)["phases"]
    assert set(phases) == {"packages", "commits"}  # type: ignore[arg-type]
    assert record_of(tmp_path)["answer"]["phase"] == "commits"  # type: ignore[index]
