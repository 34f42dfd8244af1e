"""End-to-end: real Debian kernels booted under QEMU, the suites run over SSH.

These are the lab as a user runs it (the `lab` command in a subprocess), with the user's
kernel and image cache, so a warm cache keeps them quick. Each checks that no QEMU
process outlives it.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from e2ehelpers import REPO, check_suite_records, lab, no_qemu_left, qemu_pids  # noqa: F401 (no_qemu_left: an autouse fixture)
from kcidbcheck import check_run_document
from kunitparser import check_ktap_counts
from test_results_schema import check_run

from lab.guest import image
from lab.guest import keys
from lab.core.errors import InfraError
from lab.kernel.spec import parse_kernel_spec
from lab.core.paths import cache_dir
from lab.core.timeouts import Timeouts
from lab.target.ssh import SshTarget
from lab.guest import assets
from lab.vm.boot import booted

pytestmark = pytest.mark.boot
SUITES = {"maps", "dump", "pin"}


def only_run_dir(results: Path) -> Path:
    runs = [p for p in results.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def check_passing_run(done: subprocess.CompletedProcess[str], results: Path, release_prefix: str,
                      suites: set[str] = SUITES) -> dict:
    assert done.returncode == 0, f"lab run failed:\n{done.stdout}\n{done.stderr}"
    assert "\x1b[K" not in done.stderr  # no terminal: no progress lines, only the lab's own
    for suite in suites:
        assert any(line.startswith(suite) for line in done.stdout.splitlines()), done.stdout
    assert "outcome: passed" in done.stdout
    run_dir = only_run_dir(results)
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["outcome"] == "passed"
    assert metadata["kernel"]["release"].startswith(release_prefix)
    assert metadata["accelerator"]["name"] in ("kvm", "tcg")
    assert metadata["qemu_version"]
    assert metadata["boot_to_ssh_seconds"] > 0
    check_suite_records(run_dir, suites)
    assert check_run(run_dir) == []  # results.json, metadata.json and junit.xml by their schema
    check_ktap_counts(run_dir)  # its KTAP, read by the kernel's own kunit_parser
    check_run_document(run_dir)  # its KCIDB document, by kcidb-io's schema
    console = (run_dir / "console.log").read_text(errors="replace")
    assert "lab-ready: sshd started on " + metadata["kernel"]["release"] in console
    assert "Linux version" in (run_dir / "dmesg.txt").read_text()
    return metadata


def test_run_debian_6_1_all_suites_then_cached(tmp_path: Path) -> None:
    first = lab("run", "--kernel", "debian:6.1", results=tmp_path / "first")
    check_passing_run(first, tmp_path / "first", "6.1.")
    # The second run must find everything in the cache and say so (one suite is enough to show it:
    # the three suites ran in the first).
    second = lab("run", "--kernel", "debian:6.1", "--suite", "pin", results=tmp_path / "second")
    metadata = check_passing_run(second, tmp_path / "second", "6.1.", {"pin"})
    assert "(cached, nothing downloaded)" in second.stderr
    assert "(cached, nothing rebuilt)" in second.stderr
    assert "downloading" not in second.stderr and "building" not in second.stderr


def test_run_debian_6_12_all_suites(tmp_path: Path) -> None:
    done = lab("run", "--kernel", "debian:6.12", results=tmp_path)
    check_passing_run(done, tmp_path, "6.12.")


def test_missing_kernel_file_is_one_line_exit_2(tmp_path: Path) -> None:
    done = lab("run", "--kernel", "/no/such/file", results=tmp_path, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "/no/such/file" in lines[0] and "no such file" in lines[0], done.stderr
    assert not (tmp_path.exists() and any(tmp_path.iterdir())), "a bad input must not start a run"


def test_guest_with_another_host_key_is_refused(tmp_path: Path) -> None:
    """The pinned host key is the only one accepted: a different pinned key makes the lab refuse."""
    cache = cache_dir()
    prepared = assets.prepare(parse_kernel_spec("debian:6.1"), cache, lambda message: None)
    other = keys.ensure_keys(tmp_path / "other-lab")
    timeouts = Timeouts().scaled_for("tcg")
    with booted(prepared, "tcg", tmp_path / "run", timeouts) as (machine, target):
        assert target.run("cat /proc/sys/kernel/osrelease", 60).out.strip() == prepared.kernel.release
        assert machine.ssh_port is not None
        with pytest.raises(InfraError, match="not the pinned one"):
            SshTarget.connect("127.0.0.1", machine.ssh_port, "root", prepared.keys.client_private,
                              other.host_public, timeout=30)
        # And a client key the guest does not know is refused by the guest.
        with pytest.raises(InfraError, match="refused the lab's client key"):
            SshTarget.connect("127.0.0.1", machine.ssh_port, "root", other.client_private,
                              prepared.keys.host_public, timeout=30)
        # Password logins are off and root's password is locked in the image.
        config = target.run("sshd -T", 60).out
        assert "passwordauthentication no" in config
        assert target.run("getent shadow root | cut -d: -f2", 60).out.strip() in ("*", "!", "!*")
    assert not machine.alive()


def test_image_recipe_is_cached_by_hash() -> None:
    cache = cache_dir()
    recipe = image.default_recipe(keys.ensure_keys(cache))
    first = image.build(recipe, cache, lambda message: None)
    built_at = first.path.stat().st_mtime_ns
    messages: list[str] = []
    again = image.build(recipe, cache, messages.append)
    assert again == first and again.digest == recipe.digest()
    assert again.path.stat().st_mtime_ns == built_at
    assert any("cached, nothing rebuilt" in m for m in messages), messages


def _start_lab_run(results: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "LAB_RESULTS": str(results)}
    return subprocess.Popen([sys.executable, "-m", "lab", "run", "--kernel", "debian:6.1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_stage(results: Path, stage: str, timeout: float = 300) -> Path:
    """Wait until the run's metadata.json shows the stage running (the guest is up by then)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for metadata in results.glob("*/metadata.json"):
            try:
                stages = json.loads(metadata.read_text())["stages"]
            except (ValueError, KeyError):
                continue
            if stage in stages:
                return metadata.parent
        time.sleep(0.2)
    raise AssertionError(f"stage {stage} never started")


@pytest.mark.parametrize("signum", [2, 15], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_stops_qemu_and_says_interrupted(tmp_path: Path, signum: int) -> None:
    process = _start_lab_run(tmp_path)
    try:
        run_dir = _wait_for_stage(tmp_path, "suite:maps")
        assert qemu_pids(), "the guest should be running during the suite"
        process.send_signal(signum)
        process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["outcome"] == "interrupted"
    assert (run_dir / "console.log").stat().st_size > 0


def test_lab_killed_with_sigkill_takes_qemu_with_it(tmp_path: Path) -> None:
    """QEMU runs on the lab's pty: when the lab dies, the pty closes and QEMU exits (SIGHUP)."""
    import time

    before = qemu_pids()
    process = _start_lab_run(tmp_path)
    _wait_for_stage(tmp_path, "suite:maps")
    ours = qemu_pids() - before
    assert ours
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while qemu_pids() & ours and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not qemu_pids() & ours, "QEMU outlived a SIGKILLed lab"


def test_lab_boot_runs_one_command_and_passes_its_exit_code(tmp_path: Path) -> None:
    done = lab("boot", "--kernel", "debian:6.1", "--workdir", str(tmp_path),
               "--command", "cat /proc/sys/kernel/osrelease; mountpoint /sys/fs/bpf; exit 3", results=tmp_path)
    assert done.returncode == 3, done.stderr
    release, mounted = done.stdout.strip().splitlines()
    assert release.startswith("6.1.") and mounted == "/sys/fs/bpf is a mountpoint"
    assert "lab-ready: sshd started on " + release in (tmp_path / "console.log").read_text()


def test_lab_boot_shell_logs_in_on_this_terminal_and_stops_the_guest_when_it_ends(tmp_path: Path) -> None:
    """`lab boot --shell` under a pty, as a user at a terminal: a root shell in the guest, then
    `exit 4` ends the shell, the guest and the lab with that status; the console log stays."""
    import pexpect

    child = pexpect.spawn(sys.executable, ["-m", "lab", "boot", "--shell", "--workdir", str(tmp_path)],
                          cwd=str(REPO), encoding="utf-8", timeout=300, echo=False)
    try:
        child.expect(r"(restored|booted) 6\.1\.\S+ \(\w+\) in [\d.]+ s; console: (\S+)")
        console = Path(child.match.group(2))
        child.sendline("echo shell-$((6*7)); cat /proc/sys/kernel/osrelease; tty")
        child.expect(r"shell-42\r?\n(6\.1\.\S+)\r?\n(/dev/pts/\d+)")
        release = child.match.group(1)
        child.sendline("exit 4")
        child.expect(r"shell ended \(exit 4\); stopping the guest; console: " + str(console))
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 4, child.before
    assert console == tmp_path / "console.log" and "lab-ready: sshd started on " + release in console.read_text()


def test_a_run_on_a_terminal_shows_each_suites_tests_done_of_collected(tmp_path: Path) -> None:
    """Under a pty (and not CI): `suite pin: N of M tests` redrawn while the suite runs, M the
    suite's collected tests; the lines are wiped, so the summary reads as without a terminal."""
    import pexpect

    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"TERM": "xterm", "LAB_RESULTS": str(tmp_path)}
    child = pexpect.spawn(sys.executable, ["-m", "lab", "run", "--suite", "pin"], cwd=str(REPO), env=env,
                          encoding="utf-8", timeout=600, echo=False)
    child.expect(pexpect.EOF)
    child.close()
    shown = child.before
    assert child.exitstatus == 0, shown
    frames = re.findall(r"\r\x1b\[Ksuite pin: (\d+) of (\d+) tests", shown)
    run_dir = only_run_dir(tmp_path)
    tests = json.loads((run_dir / "results.json").read_text())["tests"]
    assert frames and {int(total) for _, total in frames} == {len(tests)}, shown
    assert [int(done) for done, _ in frames] == sorted(int(done) for done, _ in frames)
    assert "outcome: passed" in shown
