"""Can this machine run the suites? Asked over the Target contract before anything is shipped.

A QEMU guest is the lab's own image, so it needs no such check; a machine reached with
`--target` is whatever someone installed. Everything the suites cannot do without is a
problem (all of them reported in one line, exit 2, nothing shipped); what only makes some
tests skip is a warning, recorded in the run's metadata.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from ..core.errors import UserError
from .base import CommandTimedOut, ConnectionLost, Target

CAP_SYS_ADMIN = 21
CAP_BPF = 39  # Linux 5.8+; before it, CAP_SYS_ADMIN alone gates bpf(2)
MIN_PYTHON = (3, 9)  # the client uses str.removeprefix; the lab's guest has 3.11
MIN_PYTEST = (7, 0)  # guest-tests/pytest.ini's `pythonpath` option is pytest 7.0's
BPFTOOL_TESTS = "maps/test_cli_vs_bpftool.py and dump/test_dump_agree.py"


@dataclass
class TargetFacts:
    """What the checks learnt; recorded as the run's `target_checks`."""

    release: str = ""
    version: str = ""  # uname -v: the build, e.g. "#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1"
    machine: str = ""
    euid: int | None = None
    cap_eff: str = ""  # hex, as /proc/self/status shows it
    python: str = ""
    pytest: str = ""
    bpftool: str = ""  # its path, or "" when absent
    bpffs_mounted: bool = False  # at /sys/fs/bpf; the suites mount their own, so only recorded
    unprivileged_bpf_disabled: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def parse_status(text: str) -> tuple[int | None, int | None]:
    """(effective uid, effective capability mask) from /proc/<pid>/status."""
    euid: int | None = None
    cap_eff: int | None = None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        words = value.split()
        if name == "Uid" and len(words) >= 2:
            euid = int(words[1])  # real, effective, saved, filesystem
        elif name == "CapEff" and words:
            cap_eff = int(words[0], 16)
    return euid, cap_eff


def missing_capabilities(cap_eff: int, cap_last_cap: int) -> list[str]:
    needed = {"CAP_SYS_ADMIN": CAP_SYS_ADMIN}  # bpf(2) on every kernel, and mounting the suites' bpffs
    if cap_last_cap >= CAP_BPF:
        needed["CAP_BPF"] = CAP_BPF
    return [name for name, bit in needed.items() if not cap_eff >> bit & 1]


def parse_version(text: str, program: str) -> tuple[int, ...] | None:
    """`Python 3.11.2` / `pytest 7.2.1` (pytest 6 printed "This is pytest version 6.2.5")."""
    match = re.search(rf"{program}(?: version)? (\d+)\.(\d+)", text, re.IGNORECASE)
    return (int(match[1]), int(match[2])) if match else None


def bpffs_mounted(mounts: str, where: str = "/sys/fs/bpf") -> bool:
    return any(line.split()[1:3] == [where, "bpf"] for line in mounts.splitlines() if len(line.split()) >= 3)


def has_bpf_filesystem(filesystems: str) -> bool:
    return any(line.split()[-1:] == ["bpf"] for line in filesystems.splitlines())


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def check(target: Target, where: str, timeout: float) -> TargetFacts:
    """Raise UserError naming everything missing; otherwise the facts and warnings."""

    def run(command: str) -> tuple[int, str]:
        try:
            result = target.run(command, timeout)
        except (CommandTimedOut, ConnectionLost) as exc:
            raise UserError(f"{where}: stopped answering during the checks: {exc}") from None
        return result.rc, (result.out + result.err).strip()

    facts = TargetFacts()
    problems: list[str] = []
    rc, out = run("uname -r; uname -v; uname -m")
    lines = out.splitlines()
    if rc != 0 or len(lines) != 3:
        raise UserError(f"{where}: `uname -r -v -m` failed (exit {rc}): {out[-200:]}")
    facts.release, facts.version, facts.machine = lines

    _, status = run("cat /proc/self/status")
    _, last_cap = run("cat /proc/sys/kernel/cap_last_cap")
    euid, cap_eff = parse_status(status)
    facts.euid = euid
    facts.cap_eff = f"{cap_eff:016x}" if cap_eff is not None else ""
    if euid != 0:
        problems.append(f"the suites need root (uid {euid}): guest-tests skip every test for any other user")
    elif cap_eff is None:
        problems.append("no CapEff in /proc/self/status")
    else:
        missing = missing_capabilities(cap_eff, int(last_cap) if last_cap.isdigit() else CAP_BPF)
        if missing:
            problems.append(f"root without {' and '.join(missing)} (CapEff {facts.cap_eff}; a container?)")

    _, filesystems = run("cat /proc/filesystems")
    if not has_bpf_filesystem(filesystems):
        problems.append(f"kernel {facts.release} has no bpf filesystem (CONFIG_BPF_SYSCALL not set?)")
    _, mounts = run("cat /proc/self/mounts")
    facts.bpffs_mounted = bpffs_mounted(mounts)
    if not facts.bpffs_mounted:
        facts.warnings.append("no bpffs mounted at /sys/fs/bpf (left alone: the suites mount private ones)")
    rc, value = run("cat /proc/sys/kernel/unprivileged_bpf_disabled")
    facts.unprivileged_bpf_disabled = value if rc == 0 else ""

    rc, out = run("python3 --version")
    python = parse_version(out, "python") if rc == 0 else None
    if python is None:
        problems.append(f"no python3 ({out[-120:] or f'exit {rc}'})")
    else:
        facts.python = _dotted(python)
        if python < MIN_PYTHON:
            problems.append(f"python3 is {facts.python}; the client needs {_dotted(MIN_PYTHON)} or later")
        rc, out = run("python3 -m pytest --version")
        pytest = parse_version(out, "pytest") if rc == 0 else None
        if pytest is None:
            problems.append(f"no pytest for python3 (`python3 -m pytest --version`: {out.splitlines()[-1] if out else f'exit {rc}'})")
        else:
            facts.pytest = _dotted(pytest)
            if pytest < MIN_PYTEST:
                problems.append(f"pytest is {facts.pytest}; the suites need {_dotted(MIN_PYTEST)} or later")

    rc, out = run("command -v timeout")
    if rc != 0:
        problems.append("no `timeout` (coreutils): needed so a suite that overruns is stopped there too")
    rc, out = run("dmesg >/dev/null")
    if rc != 0:  # the run's splat check reads it, as the console is read for a guest
        problems.append(f"cannot read the kernel log with dmesg ({out[-120:] or f'exit {rc}'})")
    rc, out = run("command -v bpftool")
    facts.bpftool = out if rc == 0 else ""
    if not facts.bpftool:
        facts.warnings.append(f"no bpftool: the bpftool comparisons ({BPFTOOL_TESTS}) will skip")

    if problems:
        raise UserError(f"{where} cannot run the suites: {'; '.join(problems)}")
    return facts
