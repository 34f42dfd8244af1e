"""`lab run --target`: the options it excludes, and the whole command against an in-process sshd
that serves this machine's own filesystem (test_lab_transport's FakeSshd rooted at /)."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Iterator

import paramiko
import pytest
from test_lab_transport import FakeSshd

from lab.cli import main as cli
from lab.guest import keys
from lab.run import suites as runner
from lab.target import checks as targetcheck
from lab.target.checks import TargetFacts


def run_lab(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["run", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("extra, named", [
    (["--kernel", "debian:6.1"], "--kernel"),  # the default value, given: still refused
    (["--kernel", "/boot/vmlinuz", "--modules", "m", "--config", "c"], "--kernel, --modules, --config"),
    (["--accel", "auto"], "--accel"),
    (["--cmdline", "quiet"], "--cmdline"),
    (["--boot-timeout", "30", "--probe-timeout", "5"], "--boot-timeout, --probe-timeout"),
])
def test_boot_options_with_target_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                      extra: list[str], named: str) -> None:
    code, out, err = run_lab(capsys, "--target", "ssh://root@192.0.2.1", "--results", str(tmp_path / "r"), *extra)
    assert code == 2
    assert err == f"lab: error: {named} cannot be combined with --target (only for a kernel the lab boots)\n"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("extra, message", [
    (["--key", "k"], "--key needs --target"),
    (["--key", "k", "--known-hosts", "f"], "--key and --known-hosts need --target"),
])
def test_target_options_without_target_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                            extra: list[str], message: str) -> None:
    code, _, err = run_lab(capsys, "--results", str(tmp_path / "r"), *extra)
    assert code == 2 and err == f"lab: error: {message}\n"


def test_a_bad_url_or_suite_is_exit_2_before_connecting(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_lab(capsys, "--target", "root@host")
    assert code == 2 and "expected ssh://user@host[:port]" in err
    code, _, err = run_lab(capsys, "--target", "ssh://root@192.0.2.1", "--suite", "nope")
    assert code == 2 and "unknown suite nope" in err


# --- the whole command over SSH to this machine ---------------------------------------------------


@pytest.fixture
def lab_keys(tmp_path: Path) -> keys.LabKeys:
    return keys.ensure_keys(tmp_path / "cache")


@pytest.fixture
def sshd(lab_keys: keys.LabKeys) -> Iterator[FakeSshd]:
    server = FakeSshd(Path("/"), paramiko.Ed25519Key.from_private_key_file(str(lab_keys.host_private)),
                      paramiko.Ed25519Key.from_private_key_file(str(lab_keys.client_private)))
    yield server
    server.stop()


@pytest.fixture
def remote_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What the sshd's commands see: python3 is this interpreter, $TMPDIR is ours; the suites
    are a small stand-in tree; the checks answer as a healthy machine would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n")
    (bin_dir / "dmesg").write_text("#!/bin/sh\necho '[    1.000000] Linux version 6.1.0-here'\n")
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TMPDIR", str(remote_tmp))
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    tree = tmp_path / "guest-tests"
    (tree / "suites").mkdir(parents=True)
    (tree / "pytest.ini").write_text("[pytest]\njunit_family = xunit1\n")
    shutil.copy(runner.GUEST_TESTS_DIR / "labstream.py", tree / "labstream.py")
    shutil.copy(runner.GUEST_TESTS_DIR / "labsuites.py", tree / "labsuites.py")
    for suite in runner.SUITES:
        (tree / "suites" / f"test_{suite}.py").write_text("def test_it():\n    pass\n")
    monkeypatch.setattr(runner, "GUEST_TESTS_DIR", tree)
    monkeypatch.setattr(runner, "SUITES", {suite: f"suites/test_{suite}.py" for suite in runner.SUITES})
    facts = TargetFacts(release="6.1.0-here", version="#1", machine="x86_64", euid=0, python="3.11", pytest="7.2",
                        bpftool="/usr/sbin/bpftool", bpffs_mounted=True)
    monkeypatch.setattr(targetcheck, "check", lambda target, where, timeout: facts)
    return remote_tmp


def test_run_on_a_target_over_ssh(capsys: pytest.CaptureFixture[str], tmp_path: Path, sshd: FakeSshd,
                                  lab_keys: keys.LabKeys, remote_env: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {lab_keys.host_public}\n")
    code, out, err = run_lab(capsys, "--target", f"ssh://root@127.0.0.1:{sshd.port}", "--key",
                             str(lab_keys.client_private), "--known-hosts", str(known), "--results",
                             str(tmp_path / "results"))
    assert code == 0, err
    # The live table prints a suite when it ends; side by side, any of them may end first.
    assert sorted(line.split()[0] for line in out.splitlines()[1:4]) == sorted(runner.SUITES)
    assert "outcome: passed (every suite passed)" in out
    assert f"target ssh://root@127.0.0.1:{sshd.port}: kernel 6.1.0-here (x86_64), python 3.11, pytest 7.2" in err
    (run_dir,) = (tmp_path / "results").iterdir()
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["outcome"] == "passed" and metadata["target"] == f"ssh://root@127.0.0.1:{sshd.port}"
    # The record keeps the asked order, whichever suite ended first.
    assert [s["suite"] for s in json.loads((run_dir / "results.json").read_text())["suites"]] == list(runner.SUITES)
    assert list(remote_env.iterdir()) == []  # the per-run directory is gone


def test_a_wrong_known_hosts_key_is_exit_2_and_nothing_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                            sshd: FakeSshd, lab_keys: keys.LabKeys,
                                                            remote_env: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {keys.ensure_keys(tmp_path / 'other').host_public}\n")
    code, out, err = run_lab(capsys, "--target", f"ssh://root@127.0.0.1:{sshd.port}", "--key",
                             str(lab_keys.client_private), "--known-hosts", str(known), "--results",
                             str(tmp_path / "results"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "not its key" in err
    assert out == "" and sshd.commands == []
    assert not (tmp_path / "results").exists()
