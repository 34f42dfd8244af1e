"""lab.targetcheck: what a machine reached with --target must have, from canned answers."""
from __future__ import annotations

from pathlib import Path

import pytest

from lab.core.errors import UserError
from lab.target.checks import (TargetFacts, bpffs_mounted, check, has_bpf_filesystem, missing_capabilities,
                             parse_status, parse_version)
from lab.target.base import CommandResult, ConnectionLost

STATUS_ROOT = """Name:\tcat
Umask:\t0022
State:\tR (running)
Uid:\t0\t0\t0\t0
Gid:\t0\t0\t0\t0
CapInh:\t0000000000000000
CapPrm:\t000001ffffffffff
CapEff:\t000001ffffffffff
CapBnd:\t000001ffffffffff
"""

MOUNTS = """sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
bpf /sys/fs/bpf bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0
"""

FILESYSTEMS = "nodev\tsysfs\nnodev\tbpf\n\text4\n"

# What a healthy Debian 6.1 machine answers, command by command.
HEALTHY: dict[str, CommandResult] = {
    "uname -r; uname -v; uname -m": CommandResult(0, "6.1.0-41-cloud-amd64\n#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1\nx86_64\n", ""),
    "cat /proc/self/status": CommandResult(0, STATUS_ROOT, ""),
    "cat /proc/sys/kernel/cap_last_cap": CommandResult(0, "40\n", ""),
    "cat /proc/filesystems": CommandResult(0, FILESYSTEMS, ""),
    "cat /proc/self/mounts": CommandResult(0, MOUNTS, ""),
    "cat /proc/sys/kernel/unprivileged_bpf_disabled": CommandResult(0, "2\n", ""),
    "python3 --version": CommandResult(0, "Python 3.11.2\n", ""),
    "python3 -m pytest --version": CommandResult(0, "pytest 7.2.1\n", ""),
    "command -v timeout": CommandResult(0, "/usr/bin/timeout\n", ""),
    "dmesg >/dev/null": CommandResult(0, "", ""),
    "command -v bpftool": CommandResult(0, "/usr/sbin/bpftool\n", ""),
}


class CannedTarget:
    """Answers each command from a table; records what was asked."""

    def __init__(self, **changes: CommandResult) -> None:
        self.answers = dict(HEALTHY)
        for command, result in changes.items():
            self.answers[COMMANDS[command]] = result
        self.commands: list[str] = []

    def run(self, command: str, timeout: float, stdout_sink: Path | None = None) -> CommandResult:
        self.commands.append(command)
        return self.answers[command]

    def put_tree(self, local_dir: Path, remote_dir: str, timeout: float) -> int:
        raise AssertionError("the checks ship nothing")

    def get(self, remote: str, local: Path, timeout: float) -> bool:
        raise AssertionError("the checks fetch nothing")


# Short names for the commands, for CannedTarget(status=...).
COMMANDS = {"uname": "uname -r; uname -v; uname -m", "status": "cat /proc/self/status",
            "last_cap": "cat /proc/sys/kernel/cap_last_cap", "filesystems": "cat /proc/filesystems",
            "mounts": "cat /proc/self/mounts", "python": "python3 --version",
            "pytest": "python3 -m pytest --version", "timeout": "command -v timeout",
            "dmesg": "dmesg >/dev/null", "bpftool": "command -v bpftool"}


def failing_check(target: CannedTarget) -> str:
    with pytest.raises(UserError) as caught:
        check(target, "ssh://root@box:22", 30)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("ssh://root@box:22 cannot run the suites: ")
    return message


def test_a_healthy_machine_gives_its_facts() -> None:
    facts = check(CannedTarget(), "ssh://root@box:22", 30)
    assert facts == TargetFacts(release="6.1.0-41-cloud-amd64", version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1",
                                machine="x86_64", euid=0, cap_eff="000001ffffffffff", python="3.11", pytest="7.2",
                                bpftool="/usr/sbin/bpftool", bpffs_mounted=True, unprivileged_bpf_disabled="2",
                                warnings=[])


# --- parsing ---------------------------------------------------------------------------------------


def test_parse_status_reads_the_effective_uid_and_caps() -> None:
    assert parse_status(STATUS_ROOT) == (0, 0x1FFFFFFFFFF)
    assert parse_status("Uid:\t1000\t0\t1000\t1000\nCapEff:\t0000000000200000\n") == (0, 1 << 21)
    assert parse_status("Name:\tcat\n") == (None, None)


@pytest.mark.parametrize("cap_eff, last_cap, missing", [
    (0x1FFFFFFFFFF, 40, []),  # full root
    ((1 << 21) | (1 << 39), 40, []),  # just the two
    (1 << 21, 40, ["CAP_BPF"]),  # a 5.8+ kernel, CAP_BPF dropped
    (1 << 39, 40, ["CAP_SYS_ADMIN"]),  # bpf(2) yes, but no mounting the suites' bpffs
    (1 << 21, 37, []),  # before 5.8 there is no CAP_BPF to ask for
    (0xA80425FB, 40, ["CAP_SYS_ADMIN", "CAP_BPF"]),  # Docker's default set
])
def test_missing_capabilities(cap_eff: int, last_cap: int, missing: list[str]) -> None:
    assert missing_capabilities(cap_eff, last_cap) == missing


@pytest.mark.parametrize("text, program, version", [
    ("Python 3.11.2", "python", (3, 11)),
    ("pytest 7.2.1", "pytest", (7, 2)),
    ("This is pytest version 6.2.5, imported from /usr/lib/python3/dist-packages/pytest/__init__.py", "pytest", (6, 2)),
    ("/usr/bin/python3: No module named pytest", "pytest", None),
])
def test_parse_version(text: str, program: str, version: tuple[int, ...] | None) -> None:
    assert parse_version(text, program) == version


def test_bpffs_mount_and_filesystem_detection() -> None:
    assert bpffs_mounted(MOUNTS)
    assert not bpffs_mounted("sysfs /sys sysfs rw 0 0\nnone /sys/fs/bpf tmpfs rw 0 0\n")
    assert not bpffs_mounted("bpf /mnt/bpf bpf rw 0 0\n")
    assert has_bpf_filesystem(FILESYSTEMS)
    assert not has_bpf_filesystem("nodev\tsysfs\nnodev\tbpffoo\n")


# --- each problem, named ---------------------------------------------------------------------------


def test_pytest_missing_is_named() -> None:
    message = failing_check(CannedTarget(pytest=CommandResult(1, "", "/usr/bin/python3: No module named pytest\n")))
    assert message.endswith("no pytest for python3 (`python3 -m pytest --version`: /usr/bin/python3: No module named pytest)")


def test_an_old_pytest_is_named() -> None:
    message = failing_check(CannedTarget(pytest=CommandResult(0, "This is pytest version 6.2.5, imported from x\n", "")))
    assert "pytest is 6.2; the suites need 7.0 or later" in message


def test_no_python3_skips_the_pytest_question() -> None:
    target = CannedTarget(python=CommandResult(127, "", "sh: 1: python3: not found\n"))
    message = failing_check(target)
    assert "no python3 (sh: 1: python3: not found)" in message
    assert COMMANDS["pytest"] not in target.commands


def test_an_old_python_is_named() -> None:
    assert "python3 is 3.7; the client needs 3.9 or later" in failing_check(
        CannedTarget(python=CommandResult(0, "Python 3.7.3\n", "")))


def test_not_root_is_named_with_the_uid() -> None:
    status = STATUS_ROOT.replace("Uid:\t0\t0\t0\t0", "Uid:\t1000\t1000\t1000\t1000").replace("000001ffffffffff", "0" * 16)
    message = failing_check(CannedTarget(status=CommandResult(0, status, "")))
    assert "the suites need root (uid 1000)" in message


def test_root_without_capabilities_is_named() -> None:
    status = STATUS_ROOT.replace("CapEff:\t000001ffffffffff", "CapEff:\t00000000a80425fb")
    message = failing_check(CannedTarget(status=CommandResult(0, status, "")))
    assert "root without CAP_SYS_ADMIN and CAP_BPF (CapEff 00000000a80425fb; a container?)" in message


def test_every_problem_is_in_the_one_line() -> None:
    message = failing_check(CannedTarget(filesystems=CommandResult(0, "nodev\tsysfs\n", ""),
                                         timeout=CommandResult(1, "", ""),
                                         dmesg=CommandResult(1, "", "dmesg: read kernel buffer failed: Operation not permitted\n"),
                                         pytest=CommandResult(1, "", "No module named pytest\n")))
    assert "kernel 6.1.0-41-cloud-amd64 has no bpf filesystem" in message
    assert "no `timeout` (coreutils)" in message
    assert "cannot read the kernel log with dmesg (dmesg: read kernel buffer failed: Operation not permitted)" in message
    assert "no pytest for python3" in message
    assert message.count(";") >= 3


def test_missing_bpftool_and_unmounted_bpffs_are_warnings_not_errors() -> None:
    facts = check(CannedTarget(bpftool=CommandResult(1, "", ""), mounts=CommandResult(0, "sysfs /sys sysfs rw 0 0\n", "")),
                  "ssh://root@box:22", 30)
    assert facts.bpftool == "" and not facts.bpffs_mounted
    assert facts.warnings == [
        "no bpffs mounted at /sys/fs/bpf (left alone: the suites mount private ones)",
        "no bpftool: the bpftool comparisons (maps/test_cli_vs_bpftool.py and dump/test_dump_agree.py) will skip",
    ]


def test_a_target_that_stops_answering_is_a_user_error() -> None:
    class Dropping(CannedTarget):
        def run(self, command: str, timeout: float, stdout_sink: Path | None = None) -> CommandResult:
            raise ConnectionLost("the SSH connection broke")

    with pytest.raises(UserError, match="ssh://root@box:22: stopped answering during the checks"):
        check(Dropping(), "ssh://root@box:22", 30)


def test_a_broken_uname_stops_the_checks_at_once() -> None:
    target = CannedTarget(uname=CommandResult(127, "", "sh: uname: not found\n"))
    with pytest.raises(UserError, match="uname"):
        check(target, "ssh://root@box:22", 30)
    assert target.commands == [COMMANDS["uname"]]
