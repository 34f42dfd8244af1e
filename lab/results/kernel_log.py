"""Find kernel crashes and warnings in a kernel log (a console, or dmesg), so a broken kernel is
never reported green.

The patterns below are the kernel's own report headers, matched after the line's prefix.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# (kind, pattern). "crash" ends the kernel or the task; "warning" is a splat the kernel survived.
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("crash", re.compile(r"Kernel panic - not syncing.*")),
    ("crash", re.compile(r"BUG: (?!soft lockup).*")),
    ("crash", re.compile(r"Oops: .*")),
    ("crash", re.compile(r"kernel BUG at .*")),  # BUG_ON(); before 6.9 not followed by "Oops:"
    ("crash", re.compile(r"\S.*: [0-9a-f]{4} \[#\d+\].*")),  # any x86 die() header: "invalid opcode: 0000 [#1] ..."
    ("crash", re.compile(r"general protection fault.*")),
    ("crash", re.compile(r"(KASAN|KFENCE|UBSAN): .*")),
    ("crash", re.compile(r"watchdog: BUG: soft lockup.*")),
    ("crash", re.compile(r"INFO: task \S+ blocked for more than.*")),
    ("crash", re.compile(r"rcu: INFO: \S+ (self-)?detected stalls?.*")),
    # The lab's init never reboots or powers off, so either on the console is unexpected.
    ("crash", re.compile(r"reboot: (Restarting system|Power down).*")),
    # Also lockdep: every report of it starts with "WARNING: possible ..." or "WARNING: inconsistent ...".
    ("warning", re.compile(r"WARNING: .*")),
]


# What the kernel and the tools that read its log put before the message, each part optional, in
# the order they come: a /dev/kmsg record header ("4,1234,5678901,-;" or "...,-,caller=T1;"), a
# syslog level ("<4>", as `dmesg -r` prints), the printk timestamp ("[    1.234567]"), and with
# CONFIG_PRINTK_CALLER the caller ("[    T1]" a task's PID, "[    C0]" a CPU outside a task; also
# without a timestamp under printk.time=0; util-linux dmesg puts a space between the two). The
# blanks after a bracket go too; a line without brackets keeps its indent (a stack trace's lines).
PREFIX = re.compile(r"""
    ^(?:\d+,\d+,\d+,[^;]*;)?
    (?:<\d+>)?
    (?:(?:\[\s*\d+\.\d+\])?(?:\s*\[\s*[TC]\d+(?:@C\d+)?\])?(?<=\])\s*)?
    """, re.VERBOSE)


@dataclass(frozen=True)
class KernelLog:
    """One source of the kernel's log lines, named for the reader: "console", "dmesg.txt"."""
    source: str
    text: str


@dataclass(frozen=True)
class Finding:
    kind: str  # crash | warning
    title: str
    line: int  # 1-based line in the console log


@dataclass(frozen=True)
class SplatPolicy:
    """Which splats count: `allow` patterns drop a finding (a known, accepted warning);
    `deny` patterns add lines that fail a run like a warning does."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


def scan(text: str, policy: SplatPolicy = SplatPolicy()) -> list[Finding]:
    allowed = [re.compile(p) for p in policy.allow]
    patterns = PATTERNS + [("warning", re.compile(rf"(?:{p}).*")) for p in policy.deny]
    findings = []
    for number, line in enumerate(text.replace("\r", "").splitlines(), start=1):
        body = PREFIX.sub("", line, count=1)
        for kind, pattern in patterns:
            match = pattern.match(body)
            if match:
                if not any(allow.search(body) for allow in allowed):
                    findings.append(Finding(kind, match[0].strip(), number))
                break
    return findings


def excerpt_around(text: str, line: int, before: int = 5, after: int = 20) -> str:
    lines = text.replace("\r", "").splitlines()
    return "\n".join(lines[max(0, line - 1 - before) : line - 1 + after])
