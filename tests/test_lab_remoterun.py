"""lab.remoterun against this machine as the "remote": commands run with bash, paths are real.

The suites are small stand-ins run by this interpreter; `dmesg` prints a file the tests (and
the suites) append kernel lines to.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest

from labfakes import copy_tree, run_in_bash, unpack_archive

from lab.run import target as target_run
from lab.run import suites as runner
from lab.core.outcome import Outcome
from lab.run.request import TargetRunRequest
from lab.run.target import lines_after
from lab.target.bounded import BoundedTarget
from lab.results.model import SuiteResult
from lab.target.remote import SshUrl
from lab.target.checks import TargetFacts
from lab.core.timeouts import Timeouts
from lab.target.base import CommandResult
from lab.run.lifecycle import RunOutcome


class HereTarget:
    """The Target contract on this machine, paths as they are; $TMPDIR and PATH of its own."""

    def __init__(self, tmpdir: Path, bin_dir: Path, klog: Path, enforce_timeout: bool = True) -> None:
        self.env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(tmpdir),
                    "KLOG": str(klog)}
        self.env.pop("PYTEST_ADDOPTS", None)
        self.enforce_timeout = enforce_timeout
        self.commands: list[str] = []

    def run(self, command: str, timeout: float, stdout_sink: Path | None = None) -> CommandResult:
        self.commands.append(command)
        return run_in_bash(command, command, timeout if self.enforce_timeout else 60, self.env,
                           stdout_sink=stdout_sink)

    def put_tree(self, local_dir: Path, remote_dir: str, timeout: float) -> int:
        return copy_tree(local_dir, Path(remote_dir))

    def put_archive(self, archive: Path, remote_dir: str, timeout: float) -> bool:
        return unpack_archive(archive, Path(remote_dir))

    def get(self, remote: str, local: Path, timeout: float) -> bool:
        if not Path(remote).is_file():
            return False
        shutil.copyfile(remote, local)
        return True


SUITE_FILES = {
    "good": "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n",
    "bad": "def test_fails():\n    assert 1 == 2\n",
    "warns": ("import os\n\n\ndef test_logs_a_warning():\n    with open(os.environ['KLOG'], 'a') as log:\n"
              "        log.write('[  200.000001] WARNING: CPU: 1 PID: 9 at kernel/bpf/syscall.c:1 map_update\\n')\n"),
    "crashes": ("import os\n\n\ndef test_logs_an_oops():\n    with open(os.environ['KLOG'], 'a') as log:\n"
                "        log.write('[  200.000002] BUG: kernel NULL pointer dereference, address: 0000000000000008\\n')\n"),
    "slow": "import time\n\n\ndef test_hangs():\n    time.sleep(60)\n",
}
OLD_LOG = ("[    0.000000] Linux version 6.1.0-fake\n"
           "[   50.000000] WARNING: CPU: 0 PID: 1 at drivers/gpu/thing.c:9 from last week\n"
           "[   60.000000] eth0: link up\n")


@pytest.fixture
def tree(tmp_path: Path) -> runner.TestTree:
    root = tmp_path / "guest-tests"
    (root / "suites").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\njunit_family = xunit1\n")
    shutil.copy(runner.GUEST_TESTS_DIR / "labstream.py", root / "labstream.py")
    shutil.copy(runner.GUEST_TESTS_DIR / "labsuites.py", root / "labsuites.py")
    for name, body in SUITE_FILES.items():
        (root / "suites" / f"test_{name}.py").write_text(body)
    return runner.TestTree(root, {name: f"suites/test_{name}.py" for name in SUITE_FILES})


@pytest.fixture
def klog(tmp_path: Path) -> Path:
    path = tmp_path / "kernel.log"
    path.write_text(OLD_LOG)
    return path


@pytest.fixture
def here(tmp_path: Path, klog: Path) -> HereTarget:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n")
    (bin_dir / "dmesg").write_text('#!/bin/sh\nexec cat "$KLOG"\n')
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    (tmp_path / "remote-tmp").mkdir()
    return HereTarget(tmp_path / "remote-tmp", bin_dir, klog)


FACTS = TargetFacts(release="6.1.0-fake", version="#1 SMP fake", machine="x86_64", euid=0, cap_eff="000001ffffffffff",
                    python="3.11", pytest="7.2", bpftool="", bpffs_mounted=False,
                    warnings=["no bpftool: the bpftool comparisons (x) will skip"])


def execute(tmp_path: Path, here: HereTarget, tree: runner.TestTree, suites: list[str],
            suite_timeout: float = 60, suite_jobs: int | None = None) -> RunOutcome:
    request = TargetRunRequest(SshUrl("root", "box", 2222), suites, tmp_path / "results",
                               Timeouts().with_suite(suite_timeout), tree=tree, suite_jobs=suite_jobs)
    seen: list[SuiteResult] = []
    outcome = target_run.execute(request, here, FACTS, lambda message: None, seen.append)
    assert sorted(s.name for s in seen) == sorted(s.name for s in outcome.suites)  # seen as they ended
    assert [s.name for s in outcome.suites] == [name for name in suites if name in {s.name for s in seen}]
    return outcome


def test_a_passing_run_is_recorded_like_a_guest_run_without_qemu(tmp_path: Path, here: HereTarget,
                                                                  tree: runner.TestTree) -> None:
    outcome = execute(tmp_path, here, tree, ["good"])
    assert outcome.outcome is Outcome.PASSED, outcome.reason
    run_dir = outcome.record.directory
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["outcome"] == "passed"
    assert metadata["target"] == "ssh://root@box:2222"
    assert metadata["request"] == {"target": "ssh://root@box:2222", "suites": ["good"]}
    assert metadata["kernel"] == {"release": "6.1.0-fake", "version": "#1 SMP fake", "machine": "x86_64",
                                  "origin": "ssh://root@box:2222"}
    assert metadata["qemu_version"] is None and metadata["accelerator"] is None
    assert "boot_to_ssh_seconds" not in metadata
    assert metadata["target_checks"]["warnings"] == FACTS.warnings
    assert set(metadata["stages"]) == {"ship", "suites", "suite:good"}
    assert run_dir.name.split("-", 2)[2].startswith("6.1.0-fake")
    results = json.loads((run_dir / "results.json").read_text())
    assert [(t["name"], t["outcome"]) for t in results["tests"]] == [("test_good.py::test_one", "passed"),
                                                                    ("test_good.py::test_two", "passed")]
    assert (run_dir / "junit-good.xml").is_file() and (run_dir / "good.log").is_file()
    assert (run_dir / "dmesg.txt").read_text() == OLD_LOG
    assert not (run_dir / "console.log").exists()
    # The per-run directory was a fresh mktemp one, and it is gone.
    remote_dir = metadata["remote_dir"]
    assert Path(remote_dir).parent == tmp_path / "remote-tmp" and Path(remote_dir).name.startswith("bpf-kernel-lab.")
    assert not Path(remote_dir).exists()
    assert list((tmp_path / "remote-tmp").iterdir()) == []
    # Every command ran under the target's own bound.
    assert all(command.startswith("timeout -k 5 ") for command in here.commands), here.commands
    # reproducer.sh reruns `lab run --target` with the same suites and bounds.
    assert metadata["reproducer"] == "reproducer.sh"
    script = (run_dir / "reproducer.sh").read_text()
    assert 'exec "$@" run --target=ssh://root@box:2222 --suite=good --suite-timeout=60.0' in script
    assert "# note: a machine changes between runs: this one ran kernel 6.1.0-fake" in script


def test_an_old_warning_in_the_log_is_not_the_runs(tmp_path: Path, here: HereTarget, tree: runner.TestTree) -> None:
    outcome = execute(tmp_path, here, tree, ["good"])
    assert outcome.outcome is Outcome.PASSED
    assert json.loads((outcome.record.directory / "metadata.json").read_text())["dmesg_run_starts_at_line"] == 4


def test_a_warning_logged_during_the_run_makes_it_kernel_warned(tmp_path: Path, here: HereTarget,
                                                                tree: runner.TestTree) -> None:
    outcome = execute(tmp_path, here, tree, ["good", "warns"])
    assert outcome.outcome is Outcome.KERNEL_WARNED
    assert outcome.reason.startswith("WARNING: CPU: 1 PID: 9 at kernel/bpf/syscall.c:1")
    metadata = json.loads((outcome.record.directory / "metadata.json").read_text())
    assert "map_update" in metadata["console_excerpt"] and "from last week" not in metadata["console_excerpt"]


def test_a_crash_logged_during_the_run_makes_it_kernel_crashed(tmp_path: Path, here: HereTarget,
                                                               tree: runner.TestTree) -> None:
    outcome = execute(tmp_path, here, tree, ["crashes"])
    assert outcome.outcome is Outcome.KERNEL_CRASHED
    assert outcome.reason.startswith("BUG: kernel NULL pointer dereference")


def test_a_failing_test_fails_the_run(tmp_path: Path, here: HereTarget, tree: runner.TestTree) -> None:
    outcome = execute(tmp_path, here, tree, ["good", "bad"])
    assert outcome.outcome is Outcome.FAILED
    assert outcome.reason == "failures in suite(s): bad"


def test_a_suite_over_its_bound_times_out_and_the_directory_still_goes(tmp_path: Path, here: HereTarget,
                                                                       tree: runner.TestTree) -> None:
    started = time.monotonic()
    outcome = execute(tmp_path, here, tree, ["slow", "good"], suite_timeout=3, suite_jobs=1)
    assert time.monotonic() - started < 30
    assert outcome.outcome is Outcome.TIMED_OUT
    assert outcome.reason.startswith("suite slow: timed out")
    assert [s.name for s in outcome.suites] == ["slow"]  # nothing runs after a suite that hung
    assert outcome.record.metadata.suites_at_once == 1
    assert list((tmp_path / "remote-tmp").iterdir()) == []


def test_a_suite_beside_one_that_hangs_is_whole_and_the_record_keeps_the_asked_order(
        tmp_path: Path, here: HereTarget, tree: runner.TestTree) -> None:
    outcome = execute(tmp_path, here, tree, ["slow", "good"], suite_timeout=3, suite_jobs=2)
    assert outcome.outcome is Outcome.TIMED_OUT and outcome.reason.startswith("suite slow: timed out")
    slow, good = outcome.suites  # good ended first; the record lists them as asked
    assert good.ok and slow.error.startswith("timed out")
    assert outcome.record.metadata.suites_at_once == 2
    results = json.loads((outcome.record.directory / "results.json").read_text())
    assert [s["suite"] for s in results["suites"]] == ["slow", "good"]


def test_the_target_itself_stops_a_command_past_its_bound(tmp_path: Path, klog: Path) -> None:
    """Should the lab's side not end it (a frozen connection), the target's `timeout` does."""
    lenient = HereTarget(tmp_path, tmp_path, klog, enforce_timeout=False)
    started = time.monotonic()
    result = BoundedTarget(lenient).run("echo started; sleep 30", timeout=1)
    elapsed = time.monotonic() - started
    assert result.rc == 124 and result.out == "started\n"
    assert 2.5 <= elapsed < 10  # the lab's bound plus REMOTE_SLACK
    assert lenient.commands == ["timeout -k 5 3 sh -c 'echo started; sleep 30'"]


@pytest.mark.parametrize("anchor, text, part, first", [
    ("[ 2.0] b", "[ 1.0] a\n[ 2.0] b\n[ 3.0] c\n[ 4.0] d\n", "[ 3.0] c\n[ 4.0] d", 3),
    ("[ 4.0] d", "[ 1.0] a\n[ 4.0] d\n", "", 3),  # nothing new
    ("[ 0.5] gone", "[ 9.0] x\n[ 9.5] y\n", "[ 9.0] x\n[ 9.5] y", 1),  # wrapped: all of it
    ("", "[ 1.0] a\n", "[ 1.0] a", 1),
    ("[ 1.0] same", "[ 1.0] same\n[ 2.0] z\n[ 1.0] same\n[ 3.0] w\n", "[ 3.0] w", 4),  # the last occurrence
])
def test_lines_after(anchor: str, text: str, part: str, first: int) -> None:
    assert lines_after(anchor, text) == (part, first)
