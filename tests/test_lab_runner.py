"""lab.runner against a local Target: commands run with subprocess, the guest's / is a tmp dir."""
from __future__ import annotations

import configparser
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from labfakes import copy_tree, run_in_bash, unpack_archive

from lab.results import stream
from lab.run import bytecode
from lab.run import series
from lab.run import suites as runner
from lab.core.errors import UserError
from lab.results.junit import parse_junit
from lab.results.model import FAILED, PASSED, SKIPPED, SuiteResult
from lab.target.base import CommandResult, CommandTimedOut, Sink


class LocalTarget:
    """The runner's Target contract (run/put_tree/get), in-process: the guest's / is `root`.

    Paths under runner.REMOTE_ROOT are mapped into root; commands run with bash; `python3`
    is this interpreter and `dmesg` prints a canned kernel log.
    """

    def __init__(self, root: Path, bin_dir: Path) -> None:
        self.root = root
        self.bin_dir = bin_dir
        self.commands: list[str] = []

    def local(self, remote: str) -> Path:
        assert remote.startswith(runner.REMOTE_ROOT), remote
        return self.root / remote.lstrip("/")

    def _map(self, command: str) -> str:
        return command.replace(runner.REMOTE_ROOT, str(self.root / runner.REMOTE_ROOT.lstrip("/")))

    def run(self, command: str, timeout: float, stdout_sink: Sink | None = None) -> CommandResult:
        self.commands.append(command)
        env = {**os.environ, "PATH": f"{self.bin_dir}{os.pathsep}{os.environ['PATH']}"}
        env.pop("PYTEST_ADDOPTS", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # a guest's python writes its bytecode
        return run_in_bash(self._map(command), command, timeout, env, self.root, stdout_sink)

    def put_tree(self, local_dir: Path, remote_dir: str, timeout: float) -> int:
        return copy_tree(local_dir, self.local(remote_dir), skip_dot_files=True)

    def put_archive(self, archive: Path, remote_dir: str, timeout: float) -> bool:
        return unpack_archive(archive, self.local(remote_dir))

    def get(self, remote: str, local: Path, timeout: float) -> bool:
        source = self.local(remote)
        if not source.is_file():
            return False
        shutil.copyfile(source, local)
        return True


FAKE_SUITE = '''\
import pytest


def test_one():
    pass


def test_two(record_property):
    record_property("errno", "E2BIG")


def test_three():
    assert 1 == 2, "map is not empty"


def test_four():
    pytest.skip("no BPF_MAP_TYPE_BLOOM_FILTER here")
'''

DIES = '''\
import os
import sys

sys.stderr.write("guest python is broken\\n")
sys.stderr.flush()
os._exit(3)
'''

SLOW = '''\
import subprocess
import time


def test_hangs():
    left = subprocess.Popen(["sleep", "120"])  # what a test started, which outlives it unless killed
    with open("slow-child.pid", "w") as out:
        out.write(str(left.pid))
    print("started", flush=True)
    time.sleep(60)
'''

# Two suites that can only pass side by side: each waits for the other to have started.
MEETS = '''\
import os
import time


def test_meets_the_other_suite():
    name = __name__.rsplit("_", 1)[-1]
    other = "b" if name == "a" else "a"
    open(f"{name}.here", "w").close()
    deadline = time.monotonic() + 20
    while not os.path.exists(f"{other}.here"):
        assert time.monotonic() < deadline, f"suite {other} never ran beside {name}"
        time.sleep(0.05)
    print(f"met in {name}", flush=True)
'''

LINKS_ITS_REPORT = '''\
import os


def test_links_its_report_to_dev_zero(request):
    os.symlink("/dev/zero", request.config.option.xmlpath)  # pytest writes its report through it
'''


@pytest.fixture
def guest_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in guest-tests/ tree, and SUITES pointing into it."""
    tree = tmp_path / "guest-tests"
    (tree / "suites").mkdir(parents=True)
    (tree / "pytest.ini").write_text("[pytest]\njunit_family = xunit1\n")
    (tree / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture(scope='session', autouse=True)\n"
        "def _facts(record_testsuite_property):\n    record_testsuite_property('kernel_release', '6.1.0-fake')\n")
    # The real streaming plugin: the runner loads it with -p labstream.
    shutil.copy(runner.GUEST_TESTS_DIR / "labstream.py", tree / "labstream.py")
    shutil.copy(runner.GUEST_TESTS_DIR / series.RUNNER, tree / series.RUNNER)  # and the real suite runner
    (tree / "suites" / "test_fake.py").write_text(FAKE_SUITE)
    (tree / "suites" / "test_dies.py").write_text(DIES)
    (tree / "suites" / "test_slow.py").write_text(SLOW)
    (tree / "suites" / "test_links.py").write_text(LINKS_ITS_REPORT)
    (tree / "suites" / "test_meet_a.py").write_text(MEETS)
    (tree / "suites" / "test_meet_b.py").write_text(MEETS)
    (tree / "__pycache__").mkdir()
    (tree / "__pycache__" / "junk.pyc").write_bytes(b"junk")
    monkeypatch.setattr(runner, "GUEST_TESTS_DIR", tree)
    monkeypatch.setattr(runner, "SUITES", {"fake": "suites/test_fake.py", "dies": "suites/test_dies.py",
                                           "slow": "suites/test_slow.py", "links": "suites/test_links.py",
                                           "meet_a": "suites/test_meet_a.py", "meet_b": "suites/test_meet_b.py"})
    return tree


@pytest.fixture
def target(tmp_path: Path) -> LocalTarget:
    root = tmp_path / "guest-root"
    root.mkdir()
    bin_dir = tmp_path / "guest-bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n")
    (bin_dir / "dmesg").write_text("#!/bin/sh\necho '[    0.000000] Linux version 6.1.0-fake'\n"
                                   "echo '[    2.125760] Run /init as init process'\n")
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    return LocalTarget(root, bin_dir)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    directory.mkdir()
    return directory


def run_suite(target: object, name: str, run_dir: Path, timeout: float) -> SuiteResult:
    """One suite through the series runner, as `lab run --suite NAME` runs it."""
    got: list[SuiteResult] = []
    series.run_series(target, [name], run_dir, timeout, lambda suite: None, got.append)  # type: ignore[arg-type]
    assert [result.name for result in got] == [name]
    return got[0]


# --- parse_suites / the series command -------------------------------------------------------------


def test_parse_suites_keeps_order_and_drops_duplicates() -> None:
    assert runner.parse_suites("maps,dump,pin") == ["maps", "dump", "pin"]
    assert runner.parse_suites("pin,maps") == ["pin", "maps"]
    assert runner.parse_suites("dump,maps,dump,maps") == ["dump", "maps"]
    assert runner.parse_suites(" maps , pin ,") == ["maps", "pin"]


@pytest.mark.parametrize("text, named", [("nope", "nope"), ("maps,nope,pin", "nope"), ("maps,Maps", "Maps"),
                                         ("", "''"), (",,", "',,'")])
def test_parse_suites_unknown_is_a_user_error_naming_it(text: str, named: str) -> None:
    with pytest.raises(UserError) as caught:
        runner.parse_suites(text)
    message = str(caught.value)
    assert named in message
    assert all(name in message for name in runner.SUITES)  # says what there is


def test_default_suites_exist_in_guest_tests() -> None:
    for name, path in runner.SUITES.items():
        suite_dir = runner.GUEST_TESTS_DIR / path
        assert suite_dir.is_dir() and any(suite_dir.glob("test_*.py")), name
    ini = configparser.ConfigParser()
    ini.read(runner.GUEST_TESTS_DIR / "pytest.ini")
    assert ini["pytest"]["junit_family"] == "xunit1"


def spec_of(command: str) -> dict[str, Any]:
    words = shlex.split(command)
    assert words[:3] == ["cd", runner.REMOTE_TESTS, "&&"]
    assert words[3:5] == ["python3", series.RUNNER]
    return json.loads(words[5])


def test_series_command_words() -> None:
    spec = spec_of(series.series_command(["maps", "pin"], 300))
    assert spec["out"] == runner.REMOTE_OUT and spec["timeout"] == 300
    assert [suite["name"] for suite in spec["suites"]] == ["maps", "pin"]
    args = spec["suites"][0]["args"]
    assert args[args.index("-o") + 1] == "junit_family=xunit1" and "labstream" in args
    assert args[-1] == runner.SUITES["maps"] and spec["suites"][1]["args"][-1] == runner.SUITES["pin"]


@pytest.mark.parametrize("name, path", [
    ("a b", "suites/test a b.py"),
    ("x'; touch /tmp/pwned; echo '", "suites/te'st\"$(touch pwned).py"),
    ("$(reboot)", "suites/`reboot`.py"),
    ("x && reboot", "suites/x;reboot.py"),
])
def test_series_command_cannot_be_injected(name: str, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "SUITES", {name: path})
    command = series.series_command([name], 60)
    assert shlex.split(command).count("&&") == 1  # only the command's own
    spec = spec_of(command)
    assert spec["suites"] == [{"name": name, "args": [*series.PYTEST_ARGS, path]}]


def test_series_command_injection_does_not_run(guest_tests: Path, target: LocalTarget, run_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    name, path = "x'; touch pwned-name; echo '", "suites/te st'; touch pwned-path; '.py"
    monkeypatch.setattr(runner, "SUITES", {name: path})
    runner.ship(target, 30)
    result = run_suite(target, name, run_dir, 60)
    assert result.pytest_rc not in (None, 0)  # pytest ran, and found no such file
    assert not list(target.root.rglob("pwned*")) and not list(run_dir.rglob("pwned*"))


# --- ship ------------------------------------------------------------------------------------------


def test_ship_replaces_the_remote_tree(guest_tests: Path, target: LocalTarget) -> None:
    stale = target.local(runner.REMOTE_TESTS) / "suites" / "test_stale.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("def test_old(): pass\n")
    old_report = target.local(runner.REMOTE_OUT) / "fake.xml"
    old_report.parent.mkdir(parents=True)
    old_report.write_text("<testsuite/>")

    count = runner.ship(target, 30)
    assert count == 10  # pytest.ini, conftest.py, labstream.py, labsuites.py and six suites; no __pycache__
    remote = target.local(runner.REMOTE_TESTS)
    assert sorted(str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file()) == [
        "conftest.py", "labstream.py", "labsuites.py", "pytest.ini", "suites/test_dies.py", "suites/test_fake.py", "suites/test_links.py",
        "suites/test_meet_a.py", "suites/test_meet_b.py", "suites/test_slow.py"]
    assert not stale.exists() and not old_report.exists()  # nothing from a previous run survives
    assert target.local(runner.REMOTE_OUT).is_dir()
    assert target.commands == [f"rm -rf {runner.REMOTE_ROOT} && mkdir -p {runner.REMOTE_OUT}"]  # one command, then the tree


# --- the guest's bytecode, kept for the next run --------------------------------------------------------

IMAGE = "ab" * 32


def remote_pycs(target: LocalTarget) -> dict[str, int]:
    remote = target.local(runner.REMOTE_TESTS)
    return {str(p.relative_to(remote)): p.stat().st_mtime_ns for p in remote.rglob("__pycache__/*.pyc")}


def test_bytecode_is_kept_restored_and_used_as_it_is(guest_tests: Path, target: LocalTarget, run_dir: Path,
                                                      tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    key = bytecode.cache_key(runner.default_tree(), IMAGE)
    runner.ship(target, 30)
    assert bytecode.restore(target, cache, key, 30) is False  # nothing kept yet, nothing sent
    run_suite(target, "fake", run_dir, 120)
    compiled = remote_pycs(target)
    assert any(name.startswith("suites/__pycache__/test_fake.") and "pytest" in name for name in compiled), compiled
    assert bytecode.keep(target, cache, key, 30) is True
    assert bytecode.keep(target, cache, key, 30) is False  # once per key
    assert (cache / "bytecode" / key / bytecode.ARCHIVE).is_file()

    runner.ship(target, 30)  # a fresh tree: no bytecode in it
    assert remote_pycs(target) == {}
    assert bytecode.restore(target, cache, key, 30) is True
    assert set(remote_pycs(target)) == set(compiled)
    restored = remote_pycs(target)
    run_suite(target, "fake", run_dir, 120)
    # Python and pytest took every restored file as it was: none was written again.
    assert remote_pycs(target) == restored


def test_a_source_changed_since_is_compiled_again_not_taken_from_the_old_bytecode(
        guest_tests: Path, target: LocalTarget, run_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    runner.ship(target, 30)
    run_suite(target, "fake", run_dir, 120)
    old_key = bytecode.cache_key(runner.default_tree(), IMAGE)
    bytecode.keep(target, cache, old_key, 30)
    suite = guest_tests / "suites" / "test_fake.py"
    suite.write_text(suite.read_text().replace('assert 1 == 2, "map is not empty"', "pass"))
    assert bytecode.cache_key(runner.default_tree(), IMAGE) != old_key
    assert bytecode.cache_key(runner.default_tree(), "cd" * 32) != bytecode.cache_key(runner.default_tree(), IMAGE)
    # Even the old bytecode shipped by mistake is checked against the source and not used.
    runner.ship(target, 30)
    assert bytecode.restore(target, cache, old_key, 30) is True
    result = run_suite(target, "fake", run_dir, 120)
    assert {r.name: r.outcome for r in result.records}["test_fake.py::test_three"] == PASSED


def test_only_the_newest_bytecode_sets_are_kept(guest_tests: Path, target: LocalTarget, run_dir: Path,
                                                tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    runner.ship(target, 30)
    run_suite(target, "fake", run_dir, 120)
    keys = [f"key{i:02d}" for i in range(bytecode.KEEP + 2)]
    for age, key in enumerate(keys):
        assert bytecode.keep(target, cache, key, 30)
        os.utime(cache / "bytecode" / key, (1_000_000 + age, 1_000_000 + age))
    bytecode.keep(target, cache, "newest", 30)
    kept = sorted(p.name for p in (cache / "bytecode").iterdir())
    assert kept == sorted(["newest", *keys[-(bytecode.KEEP - 1):]])


# --- run_suite ---------------------------------------------------------------------------------------


def test_run_suite_parses_the_report(guest_tests: Path, target: LocalTarget, run_dir: Path) -> None:
    runner.ship(target, 30)
    result = run_suite(target, "fake", run_dir, 120)
    assert result.name == "fake" and result.error == ""
    assert result.pytest_rc == 1
    outcomes = {r.name: r.outcome for r in result.records}
    assert outcomes == {"test_fake.py::test_one": PASSED, "test_fake.py::test_two": PASSED,
                        "test_fake.py::test_three": FAILED, "test_fake.py::test_four": SKIPPED}
    by_name = {r.name: r for r in result.records}
    assert by_name["test_fake.py::test_two"].properties == {"errno": "E2BIG"}
    assert result.properties == {"kernel_release": "6.1.0-fake"}  # record_testsuite_property
    assert by_name["test_fake.py::test_four"].skip_reason == "no BPF_MAP_TYPE_BLOOM_FILTER here"
    assert not result.ok
    assert (run_dir / "junit-fake.xml").is_file()
    log = (run_dir / "fake.log").read_text()
    assert "1 failed, 2 passed, 1 skipped" in log
    assert "SKIPPED" in log  # -rs lists skip reasons
    assert 0 < result.wall_seconds < 120


def test_run_suite_without_a_report(guest_tests: Path, target: LocalTarget, run_dir: Path) -> None:
    runner.ship(target, 30)
    result = run_suite(target, "dies", run_dir, 120)
    assert result.records == []
    assert result.pytest_rc == 3
    assert result.error.startswith("pytest wrote no report (exit 3)")
    assert not result.ok
    assert not (run_dir / "junit-dies.xml").exists()


def test_run_suite_without_pytest_says_why(guest_tests: Path, target: LocalTarget, run_dir: Path) -> None:
    runner.ship(target, 30)
    (target.bin_dir / "python3").write_text("#!/bin/sh\necho '/usr/bin/python3: No module named pytest' >&2\nexit 1\n")
    result = run_suite(target, "fake", run_dir, 60)
    assert result.pytest_rc == 1 and result.records == []
    assert result.error == ("the suite runner in the target exited 1 before the suite ended: "
                            "/usr/bin/python3: No module named pytest")
    assert "No module named pytest" in (run_dir / "fake.log").read_text()  # stderr goes to the log too


def test_a_report_that_is_no_regular_file_is_refused_and_the_finished_tests_kept(
        guest_tests: Path, target: LocalTarget, run_dir: Path) -> None:
    runner.ship(target, 30)
    result = run_suite(target, "links", run_dir, 60)
    assert result.error.startswith("report refused: ") and "not a regular file" in result.error
    assert [(r.name, r.outcome) for r in result.records] == [("test_links.py::test_links_its_report_to_dev_zero",
                                                              "passed")]
    assert not (run_dir / "junit-links.xml").exists()


def test_the_suites_of_one_series_are_each_their_own_pytest_session(guest_tests: Path, target: LocalTarget,
                                                                    run_dir: Path) -> None:
    """One command, one python: each suite still has its own log, report and exit status, and a
    suite that dies at collection does not take the next one with it."""
    runner.ship(target, 30)
    got: list[SuiteResult] = []
    series.run_series(target, ["dies", "fake"], run_dir, 60, lambda name: None, got.append)
    assert len([c for c in target.commands if "labsuites.py" in c]) == 1
    dies, fake = got
    assert dies.pytest_rc == 3 and dies.error.startswith("pytest wrote no report (exit 3)")
    assert fake.pytest_rc == 1 and len(fake.records) == 4 and fake.properties == {"kernel_release": "6.1.0-fake"}
    assert "1 failed, 2 passed, 1 skipped" in (run_dir / "fake.log").read_text()
    assert "1 failed" not in (run_dir / "dies.log").read_text()


def test_suites_run_side_by_side_each_with_its_own_log_and_report(guest_tests: Path, target: LocalTarget,
                                                                  run_dir: Path) -> None:
    """With two jobs the runner runs two suites at once (each waits for the other to have
    started); each still has its own log, report and exit status."""
    runner.ship(target, 30)
    got: list[SuiteResult] = []
    sinks: list[series.SeriesSink] = []
    series.run_series(target, ["meet_a", "meet_b", "fake"], run_dir, 60, lambda name: None, got.append,
                      watch=sinks.append, jobs=2)
    assert sorted(r.name for r in got) == ["fake", "meet_a", "meet_b"] and sinks[0].jobs == 2
    by_name = {r.name: r for r in got}
    assert by_name["meet_a"].ok and by_name["meet_b"].ok, [r.error or r.records for r in got]
    assert by_name["fake"].pytest_rc == 1 and len(by_name["fake"].records) == 4
    logs = {name: (run_dir / f"{name}.log").read_text() for name in by_name}
    assert "test_meet_a.py::" in logs["meet_a"] and "test_meet_b.py::" not in logs["meet_a"]
    assert "test_meet_b.py::" in logs["meet_b"] and "test_meet_a.py::" not in logs["meet_b"]
    assert "test_meet_" not in logs["fake"] and "1 failed, 2 passed, 1 skipped" in logs["fake"]


def test_one_job_runs_the_suites_one_after_the_other(guest_tests: Path, target: LocalTarget, run_dir: Path) -> None:
    runner.ship(target, 30)
    got: list[SuiteResult] = []
    series.run_series(target, ["meet_a", "fake"], run_dir, 60, lambda name: None, got.append, jobs=1)
    meet_a, fake = got
    assert "suite b never ran beside a" in meet_a.records[0].message  # alone: the other never came
    assert fake.pytest_rc == 1


def test_a_suite_timed_out_beside_others_leaves_them_whole(guest_tests: Path, target: LocalTarget,
                                                          run_dir: Path) -> None:
    runner.ship(target, 30)
    got: list[SuiteResult] = []
    series.run_series(target, ["slow", "fake", "dies"], run_dir, 4, lambda name: None, got.append, jobs=2)
    by_name = {r.name: r for r in got}
    assert sorted(by_name) == ["dies", "fake", "slow"]  # fake and dies ran in the other lane, one after the other
    assert by_name["fake"].pytest_rc == 1 and len(by_name["fake"].records) == 4
    assert by_name["dies"].pytest_rc == 3
    assert by_name["slow"].error.startswith("timed out: suite slow") and by_name["slow"].pytest_rc is None


def test_no_suite_starts_after_one_timed_out(guest_tests: Path, target: LocalTarget, run_dir: Path) -> None:
    runner.ship(target, 30)
    got: list[SuiteResult] = []
    series.run_series(target, ["slow", "meet_a", "fake"], run_dir, 3, lambda name: None, got.append, jobs=2)
    assert sorted(r.name for r in got) == ["meet_a", "slow"]  # both over their bound; fake never started
    assert all(r.error.startswith("timed out") for r in got)
    assert not (run_dir / "fake.log").exists()


def test_a_python_per_suite_gives_the_same_results_as_one_python(guest_tests: Path, target: LocalTarget,
                                                                  run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's comparison (series.ONE_PYTHON off: each suite's pytest in a new python)."""
    runner.ship(target, 30)
    one = run_suite(target, "fake", run_dir, 60)
    monkeypatch.setattr(series, "ONE_PYTHON", False)
    assert spec_of(series.series_command(["fake"], 60))["fresh_python"] is True
    fresh = run_suite(target, "fake", run_dir, 60)
    assert [(r.name, r.outcome) for r in fresh.records] == [(r.name, r.outcome) for r in one.records]
    assert (fresh.pytest_rc, fresh.properties) == (one.pytest_rc, one.properties) == (1, {"kernel_release": "6.1.0-fake"})


def test_run_suite_timeout_is_recorded_not_raised(guest_tests: Path, target: LocalTarget, run_dir: Path) -> None:
    runner.ship(target, 30)
    started = time.monotonic()
    result = run_suite(target, "slow", run_dir, 2)
    assert time.monotonic() - started < 30
    # The test that was running when time ran out is an error saying so (from the stream).
    assert [(r.name, r.outcome) for r in result.records] == [("test_slow.py::test_hangs", "error")]
    assert result.records[0].message.startswith("timed out:") and result.pytest_rc is None
    assert result.error.startswith("timed out:")
    assert "2 s" in result.error
    assert not result.ok
    assert 1.5 < result.wall_seconds < 30
    # The suite went with all it started (its process group), not only its pytest.
    left = int((target.local(runner.REMOTE_TESTS) / "slow-child.pid").read_text())
    assert not Path(f"/proc/{left}").exists() or "Z" in Path(f"/proc/{left}/stat").read_text().split()[2]


def test_run_suite_with_a_target_that_times_out(run_dir: Path) -> None:
    class Hung:
        def run(self, command: str, timeout: float, stdout_sink: Sink | None = None) -> CommandResult:
            raise CommandTimedOut(command, timeout, "partial")

        def put_tree(self, local_dir: Path, remote_dir: str, timeout: float) -> int:
            raise AssertionError

        def get(self, remote: str, local: Path, timeout: float) -> bool:
            raise AssertionError("no report is fetched after a timeout")

    result = run_suite(Hung(), "maps", run_dir, 300)
    assert result.error.startswith("timed out:") and "300 s" in result.error
    assert result.pytest_rc is None


def test_collect_dmesg(target: LocalTarget, run_dir: Path) -> None:
    runner.collect_dmesg(target, run_dir, 30)
    text = (run_dir / "dmesg.txt").read_text()
    assert text.splitlines() == ["[    0.000000] Linux version 6.1.0-fake", "[    2.125760] Run /init as init process"]
    assert target.commands == ["dmesg"]


def test_collect_dmesg_timeout_propagates(run_dir: Path) -> None:
    class Hung:
        def run(self, command: str, timeout: float, stdout_sink: Sink | None = None) -> CommandResult:
            raise CommandTimedOut(command, timeout, "")

    with pytest.raises(CommandTimedOut):
        runner.collect_dmesg(Hung(), run_dir, 1)  # type: ignore[arg-type]
    assert not (run_dir / "dmesg.txt").exists()


STREAM_LOG = '''\
@@lab-test {"event": "start", "nodeid": "suites/maps/test_a.py::test_ok"}
.@@lab-test {"duration": 0.1, "event": "end", "message": "", "nodeid": "suites/maps/test_a.py::test_ok", "outcome": "passed"}
@@lab-test {"event": "start", "nodeid": "suites/maps/test_a.py::test_skip[x/y]"}
s@@lab-test {"duration": 0.0, "event": "end", "message": "kernel lacks X", "nodeid": "suites/maps/test_a.py::test_skip[x/y]", "outcome": "skipped"}
@@lab-test {"event": "start", "nodeid": "suites/maps/test_a.py::test_bad"}
F@@lab-test {"duration": 0.2, "event": "end", "message": "assert 1 == 2", "nodeid": "suites/maps/test_a.py::test_bad", "outcome": "failed"}
@@lab-test {"event": "start", "nodeid": "suites/maps/test_a.py::test_dies"}
@@lab-test {"event": "end", "nodeid": "suites/maps/test_a.py::test_cut
'''


def test_records_from_stream_keep_finished_tests_and_blame_the_running_one() -> None:
    records = stream.records_from_stream(STREAM_LOG, "maps", "lost connection: guest died")
    got = [(r.name, r.outcome, r.message, r.skip_reason) for r in records]
    assert got == [
        ("test_a.py::test_ok", "passed", "", ""),
        ("test_a.py::test_skip[x/y]", "skipped", "", "kernel lacks X"),
        ("test_a.py::test_bad", "failed", "assert 1 == 2", ""),
        ("test_a.py::test_dies", "error", "lost connection: guest died", ""),
    ]
    assert all(r.suite == "maps" for r in records)


def test_records_from_stream_of_an_empty_log() -> None:
    assert stream.records_from_stream("collected 0 items\n", "pin", "why") == []


RECORDS_PROPERTIES = """def test_notes(record_property):
    record_property("pin_closed_fd", "EINVAL")
    record_property("seconds", 0.25)


def test_quiet():
    pass
"""


def test_streamed_records_carry_what_the_test_recorded_as_junit_does(tmp_path: Path) -> None:
    # Runs under LAVA have only the stream: kernel behaviour must not be lost there.
    shutil.copy(runner.GUEST_TESTS_DIR / "labstream.py", tmp_path / "labstream.py")
    (tmp_path / "test_props.py").write_text(RECORDS_PROPERTIES)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "labstream", "-q", "-p", "no:cacheprovider",
                           "-o", "junit_family=xunit1", f"--junitxml={tmp_path / 'j.xml'}", "test_props.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    streamed = {r.name: r.properties for r in stream.records_from_stream(done.stdout, "pin", "why")}
    from_junit = {r.name: r.properties for r in parse_junit((tmp_path / "j.xml").read_text(), "pin")}
    assert streamed == from_junit == {"test_props.py::test_notes": {"pin_closed_fd": "EINVAL", "seconds": "0.25"},
                                      "test_props.py::test_quiet": {}}
