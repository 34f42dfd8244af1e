"""lab.consolescan: kernel crashes and warnings found in realistic console snippets."""
from __future__ import annotations

import pytest

from lab.results import kernel_log as consolescan
from lab.results.kernel_log import Finding

# Trimmed from a real debian:6.1 boot under the lab (serial console: "\r\r\n" line ends).
CLEAN_BOOT = "\r\r\n".join([
    "[    0.000000] Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1)"
    " 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)",
    "[    0.000000] Command line: console=ttyS0,115200 panic=-1 net.ifnames=0",
    "[    0.000000] random: crng init done",
    "[    0.000852] tsc: Marking TSC unstable due to TSCs unsynchronized",
    "[    0.415569] rcu: Hierarchical SRCU implementation.",
    "[    0.415894] rcu: \tMax phase no-delay instances is 1000.",
    "[    0.426484] NMI watchdog: Perf NMI watchdog permanently disabled",
    "[    0.886949] PCI: Using host bridge windows from ACPI; if necessary, use \"pci=nocrs\" and report a bug",
    "[    1.850179] RAS: Correctable Errors collector initialized.",
    "[    1.918747] Unstable clock detected, switching default tracing clock to \"global\"",
    "[    2.125132] x86/mm: Checked W+X mappings: passed, no W+X pages found.",
    "[    2.125760] Run /init as init process",
    "lab-stage1: initramfs init running",
    "[    2.423610] virtio_blk virtio0: 2/0/0 default/read/poll queues",
    "[    2.602376] EXT4-fs (vda): mounted filesystem with ordered data mode. Quota mode: none.",
    "lab-ready: sshd started on 6.1.0-56-cloud-amd64",
    "Server listening on 0.0.0.0 port 22.",
    "kex_exchange_identification: read: Connection reset by peer",
    "Accepted publickey for root from 10.0.2.2 port 57504 ssh2: ED25519 SHA256:+9k7XJyqQDzJMkigwfsNc3ajD0pz16QGrNIvRU/iM4w",
    "qemu-system-x86_64: terminating on signal 1 from pid 18170 (/tmp/venv/bin/python3)",
    "",
])


def lines(*text: str, ending: str = "\r\n") -> str:
    return ending.join(text) + ending


def test_a_clean_boot_has_no_findings() -> None:
    assert consolescan.scan(CLEAN_BOOT) == []
    assert consolescan.scan("") == []


def test_panic() -> None:
    text = lines(
        "[    2.345678] VFS: Cannot open root device \"vda\" or unknown-block(0,0): error -6",
        "[    2.347000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
        "[    2.348000] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2",
        "[    2.349000] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0) ]---",
    )
    assert consolescan.scan(text) == [
        Finding("crash", "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)", 2)]


def test_null_pointer_bug_and_oops() -> None:
    text = lines(
        "[   12.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008",
        "[   12.000001] #PF: supervisor read access in kernel mode",
        "[   12.000002] #PF: error_code(0x0000) - not-present page",
        "[   12.000003] PGD 0 P4D 0 ",
        "[   12.000004] Oops: 0000 [#1] PREEMPT SMP NOPTI",
        "[   12.000005] CPU: 1 PID: 345 Comm: python3 Not tainted 6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2",
    )
    assert consolescan.scan(text) == [
        Finding("crash", "BUG: kernel NULL pointer dereference, address: 0000000000000008", 1),
        Finding("crash", "Oops: 0000 [#1] PREEMPT SMP NOPTI", 5),
    ]


def test_general_protection_fault() -> None:
    text = lines("[   15.100000] general protection fault, probably for non-canonical address 0xdead000000000122: 0000 [#1]"
                 " PREEMPT SMP NOPTI")
    [finding] = consolescan.scan(text)
    assert finding.kind == "crash" and finding.title.startswith("general protection fault, probably")


def test_newer_kernels_prefix_the_fault_with_oops() -> None:
    text = lines("[    9.000000] Oops: general protection fault, probably for non-canonical address 0xdffffc0000000001:"
                 " 0000 [#1] PREEMPT SMP KASAN NOPTI")
    assert [f.kind for f in consolescan.scan(text)] == ["crash"]


def test_kernel_bug_at_on_a_6_1_kernel() -> None:
    # BUG_ON() on 6.1: neither line starts with "BUG:" or "Oops:". Hit in a kworker, it kills
    # no test, so the suites pass: only the console tells.
    text = lines(
        "[   40.000000] ------------[ cut here ]------------",
        "[   40.000001] kernel BUG at kernel/bpf/hashtab.c:812!",
        "[   40.000002] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI",
        "[   40.000003] CPU: 1 PID: 77 Comm: kworker/1:2 Not tainted 6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2",
        "[   40.000004] Workqueue: events bpf_map_free_deferred",
        "[   40.000005] RIP: 0010:htab_map_free+0x1f/0x40",
    )
    findings = consolescan.scan(text)
    assert findings, "a kernel BUG was not found"
    assert findings[0].kind == "crash"
    assert findings[0].title == "kernel BUG at kernel/bpf/hashtab.c:812!"
    assert findings[0].line == 2


def test_kasan() -> None:
    text = lines(
        "[   20.100000] ==================================================================",
        "[   20.100001] BUG: KASAN: slab-use-after-free in htab_map_update_elem+0x3c/0x5a0",
        "[   20.100002] Read of size 8 at addr ffff888003a1c6c8 by task python3/345",
        "[   21.000000] KASAN: null-ptr-deref in range [0x0000000000000008-0x000000000000000f]",
        "[   22.000000] UBSAN: array-index-out-of-bounds in kernel/bpf/arraymap.c:170:15",
    )
    findings = consolescan.scan(text)
    assert [(f.kind, f.line) for f in findings] == [("crash", 2), ("crash", 4), ("crash", 5)]
    assert findings[0].title == "BUG: KASAN: slab-use-after-free in htab_map_update_elem+0x3c/0x5a0"
    assert findings[1].title.startswith("KASAN: null-ptr-deref")


def test_warning_is_a_warning_not_a_crash() -> None:
    text = lines(
        "[   30.000000] ------------[ cut here ]------------",
        "[   30.100000] WARNING: CPU: 1 PID: 345 at kernel/bpf/hashtab.c:1234 htab_map_free+0x12/0x40",
        "[   30.100001] Modules linked in: virtio_net net_failover failover virtio_blk",
        "[   30.100002] ---[ end trace 0000000000000000 ]---",
    )
    assert consolescan.scan(text) == [
        Finding("warning", "WARNING: CPU: 1 PID: 345 at kernel/bpf/hashtab.c:1234 htab_map_free+0x12/0x40", 2)]


def test_lockdep_splat_is_a_warning() -> None:
    text = lines(
        "[    5.000000] ======================================================",
        "[    5.000001] WARNING: possible circular locking dependency detected",
        "[    5.000002] 6.1.0-lab #1 Not tainted",
    )
    assert [(f.kind, f.line) for f in consolescan.scan(text)] == [("warning", 2)]


@pytest.mark.parametrize("line, title", [
    ("[   60.100000] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [python3:345]",
     "watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [python3:345]"),
    ("[  245.000000] INFO: task kworker/u4:2:87 blocked for more than 120 seconds.",
     "INFO: task kworker/u4:2:87 blocked for more than 120 seconds."),
    ("[   81.000000] rcu: INFO: rcu_preempt self-detected stall on CPU",
     "rcu: INFO: rcu_preempt self-detected stall on CPU"),
    ("[   81.000000] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:",
     "rcu: INFO: rcu_sched detected stalls on CPUs/tasks:"),
])
def test_lockups_stalls_and_hung_tasks_are_crashes(line: str, title: str) -> None:
    assert consolescan.scan(lines(line)) == [Finding("crash", title, 1)]


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r\r\n"])
def test_line_endings_and_numbers(ending: str) -> None:
    text = lines("[    0.000000] Linux version 6.1.0", "lab-stage1: initramfs init running",
                 "[    3.000000] BUG: unable to handle page fault for address: ffffffffc0201000", ending=ending)
    assert consolescan.scan(text) == [
        Finding("crash", "BUG: unable to handle page fault for address: ffffffffc0201000", 3)]


@pytest.mark.parametrize("prefix", ["", "[    1.234567] ", "[12345.678901] ", "[    1.234567]"])
def test_printk_timestamps_are_optional(prefix: str) -> None:
    assert [f.title for f in consolescan.scan(prefix + "Kernel panic - not syncing: Fatal exception\n")] == [
        "Kernel panic - not syncing: Fatal exception"]


def test_titles_have_no_trailing_whitespace() -> None:
    [finding] = consolescan.scan("[    1.0] Oops: 0002 [#1] SMP   \r\n")
    assert finding.title == "Oops: 0002 [#1] SMP"


@pytest.mark.parametrize("text", [
    "[    0.886949] PCI: Using host bridge windows from ACPI; if necessary, use \"pci=nocrs\" and report a bug",
    "ACPI BIOS Warning (bug): Incorrect checksum in table [BGRT]",
    "lab-init-failure: cannot mount root /dev/nope",
    "[    1.0] bpf: Unprivileged eBPF is disabled due to Spectre v2 BHI mitigation",
    "python3: warning: something userland",
])
def test_ordinary_lines_are_not_findings(text: str) -> None:
    assert consolescan.scan(text + "\n") == []


def test_every_finding_in_order() -> None:
    text = CLEAN_BOOT + lines("[   30.1] WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1", "[   31.0] Kernel panic - not syncing: x")
    findings = consolescan.scan(text)
    assert [f.kind for f in findings] == ["warning", "crash"]
    assert findings[0].line < findings[1].line
    assert CLEAN_BOOT.replace("\r", "").splitlines()[-1].startswith("qemu-system")  # the snippet ends cleanly
    all_lines = text.replace("\r", "").splitlines()
    assert all_lines[findings[1].line - 1].endswith("Kernel panic - not syncing: x")


def test_excerpt_around() -> None:
    text = "\r\n".join(f"line {i}" for i in range(1, 101))
    excerpt = consolescan.excerpt_around(text, 50, before=2, after=3)
    assert excerpt.splitlines() == ["line 48", "line 49", "line 50", "line 51", "line 52"]
    assert consolescan.excerpt_around(text, 1, before=5, after=2).splitlines() == ["line 1", "line 2"]
    assert "\r" not in consolescan.excerpt_around(text, 10)


def test_allow_list_drops_a_known_splat_and_deny_list_adds_one() -> None:
    from lab.results.kernel_log import SplatPolicy, scan

    text = ("[    1.0] WARNING: CPU: 0 PID: 1 at drivers/known.c:5 known_quirk+0x1/0x2\n"
            "[    2.0] WARNING: CPU: 1 PID: 9 at kernel/bpf/syscall.c:10 map_create+0x1/0x2\n"
            "[    3.0] bpf: lab-specific complaint\n")
    assert [f.line for f in scan(text)] == [1, 2]
    allowed = scan(text, SplatPolicy(allow=(r"drivers/known\.c",)))
    assert [f.line for f in allowed] == [2]
    denied = scan(text, SplatPolicy(deny=(r"bpf: lab-specific",)))
    assert [(f.kind, f.line) for f in denied] == [("warning", 1), ("warning", 2), ("warning", 3)]


# --- prefixes other than a bare timestamp (issue 14 item 6) -------------------------------------------

@pytest.mark.parametrize("prefix", [
    "[    1.234567][    T1] ",  # CONFIG_PRINTK_CALLER, a task (PID 1)
    "[  123.456789][  T345] ",
    "[    1.234567][    C0] ",  # CONFIG_PRINTK_CALLER, a CPU outside task context (an interrupt)
    "[    T1] ",  # printk.time=0 with the caller
    "[    C1] ",
    "[    1.234567] [    T1] ",  # util-linux dmesg reading a caller kernel: a blank between
    "<4>",  # syslog level, as `dmesg -r` prints
    "<4>[    1.234567] ",
    "<4>[    1.234567][    T1] ",
    "4,321,1234567,-;",  # a /dev/kmsg record
    "4,321,1234567,-,caller=T1;",
])
def test_caller_syslog_and_kmsg_prefixes(prefix: str) -> None:
    text = lines(prefix + "WARNING: CPU: 0 PID: 1 at kernel/bpf/hashtab.c:1 f+0x0/0x1",
                 prefix + "BUG: kernel NULL pointer dereference, address: 0000000000000008",
                 prefix + "Oops: 0000 [#1] PREEMPT SMP NOPTI")
    assert [(f.kind, f.title.split(":")[0], f.line) for f in consolescan.scan(text)] == [
        ("warning", "WARNING", 1), ("crash", "BUG", 2), ("crash", "Oops", 3)]
    assert consolescan.scan(text)[0].title == "WARNING: CPU: 0 PID: 1 at kernel/bpf/hashtab.c:1 f+0x0/0x1"


@pytest.mark.parametrize("text", [
    "  WARNING: an indented line is a report's body, not its header",
    "[    1.0] [foo] WARNING: a bracket that is no caller",
    "WARNING[    T1] the caller goes before the message",
])
def test_prefixes_are_only_taken_where_the_kernel_puts_them(text: str) -> None:
    assert consolescan.scan(text + "\n") == []
