"""lab.machine: the QEMU command line, free ports, and a Machine driven by a fake QEMU script."""
from __future__ import annotations

import os
import shlex
import shutil
import socket
import time
from pathlib import Path

import pytest

from labfakes import fake_qemu, make_bzimage  # noqa: F401 (a fixture)
from lab.guest import init as guestinit
from lab.vm import machine
from lab.core.errors import InfraError
from lab.vm.machine import BootFailed, BootTimedOut, Machine, MachineSpec


def spec(tmp_path: Path, **overrides: object) -> MachineSpec:
    values: dict[str, object] = dict(kernel_image=tmp_path / "vmlinuz", initramfs=tmp_path / "initrd.cpio",
                                     rootfs=tmp_path / "rootfs.ext4", accel="kvm", run_dir=tmp_path / "run")
    values.update(overrides)
    return MachineSpec(**values)  # type: ignore[arg-type]


def option(argv: list[str], name: str) -> list[str]:
    """Every value given to a QEMU option."""
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == name]


# --- qemu_argv -----------------------------------------------------------------------------------


def test_network_is_restricted_and_forwarded_on_loopback_only(tmp_path: Path) -> None:
    argv = machine.qemu_argv(spec(tmp_path), 40022)
    [netdev] = option(argv, "-netdev")
    parts = netdev.split(",")
    assert parts[0] == "user"
    assert "restrict=on" in parts
    forwards = [p for p in parts if p.startswith("hostfwd=")]
    assert forwards == ["hostfwd=tcp:127.0.0.1:40022-:22"]
    assert "virtio-net-pci,netdev=net0" in option(argv, "-device")
    assert "id=net0" in parts


def test_the_gdb_stub_listens_on_loopback_only_and_only_when_asked(tmp_path: Path) -> None:
    assert option(machine.qemu_argv(spec(tmp_path, gdb_port=41234), 40022), "-gdb") == ["tcp:127.0.0.1:41234"]
    argv = machine.qemu_argv(spec(tmp_path), 40022)
    assert "-gdb" not in argv and "-s" not in argv


def test_the_root_disk_is_never_written(tmp_path: Path) -> None:
    argv = machine.qemu_argv(spec(tmp_path), 40022)
    [drive] = option(argv, "-drive")
    parts = drive.split(",")
    assert parts[0] == f"file={tmp_path / 'rootfs.ext4'}"
    assert "snapshot=on" in parts
    assert "format=raw" in parts
    assert "virtio-blk-pci,drive=root" in option(argv, "-device")


def test_a_rootfs_path_with_a_comma_cannot_add_drive_options(tmp_path: Path) -> None:
    # QEMU splits -drive at single commas; a comma in the path must be doubled.
    rootfs = tmp_path / "cache,snapshot=off" / "rootfs.ext4"
    [drive] = option(machine.qemu_argv(spec(tmp_path, rootfs=rootfs), 40022), "-drive")
    assert drive.startswith("file=" + str(rootfs).replace(",", ",,") + ",")


def test_panic_exits_instead_of_rebooting(tmp_path: Path) -> None:
    argv = machine.qemu_argv(spec(tmp_path), 40022)
    assert "-no-reboot" in argv
    [append] = option(argv, "-append")
    assert "panic=-1" in append.split()
    assert "console=ttyS0,115200" in append.split()


def test_extra_cmdline_is_appended(tmp_path: Path) -> None:
    [append] = option(machine.qemu_argv(spec(tmp_path, extra_cmdline="lab.root=/dev/nope quiet"), 40022), "-append")
    assert append.split()[-2:] == ["lab.root=/dev/nope", "quiet"]
    assert append.startswith(machine.BASE_CMDLINE)
    [plain] = option(machine.qemu_argv(spec(tmp_path), 40022), "-append")
    assert plain == machine.BASE_CMDLINE  # no trailing space


def test_kvm_and_tcg(tmp_path: Path) -> None:
    kvm = machine.qemu_argv(spec(tmp_path, accel="kvm"), None)
    tcg = machine.qemu_argv(spec(tmp_path, accel="tcg"), None)
    assert option(kvm, "-accel") == ["kvm"] and option(kvm, "-cpu") == ["host"]
    assert option(tcg, "-accel") == ["tcg,thread=multi"] and option(tcg, "-cpu") == ["max"]


def test_the_basics(tmp_path: Path) -> None:
    argv = machine.qemu_argv(spec(tmp_path, cpus=3, memory_mb=777), 40022)
    assert argv[0] == machine.QEMU
    assert option(argv, "-kernel") == [str(tmp_path / "vmlinuz")]
    assert option(argv, "-initrd") == [str(tmp_path / "initrd.cpio")]
    assert option(argv, "-smp") == ["3"] and option(argv, "-m") == ["777"]
    assert option(argv, "-serial") == ["stdio"]
    assert option(argv, "-monitor") == ["none"]  # no monitor on stdio next to the console
    assert "-nodefaults" in argv and "-no-user-config" in argv
    assert option(argv, "-display") == ["none"]


def test_the_probe_has_neither_disk_nor_network(tmp_path: Path) -> None:
    argv = machine.qemu_argv(spec(tmp_path, rootfs=None, cpus=1, memory_mb=512, extra_cmdline="lab.accel_probe"), None)
    assert "-drive" not in argv
    assert "-netdev" not in argv
    assert option(argv, "-device") == []
    assert "lab.accel_probe" in option(argv, "-append")[0].split()
    assert not any("hostfwd" in word for word in argv)


def test_free_port_is_bindable_on_loopback() -> None:
    port = machine.free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


# --- Machine with a fake qemu-system-x86_64 -------------------------------------------------------




def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_start_records_the_command_line_and_stop_kills_qemu(tmp_path: Path, fake_qemu) -> None:
    fake_qemu(f'echo "args: $*"; echo "{guestinit.READY_MARKER} 6.1.0-fake"; exec sleep 60')
    the_spec = spec(tmp_path)
    with Machine(the_spec) as vm:
        vm.start()
        assert vm.ssh_port is not None
        vm.wait_for_marker(guestinit.READY_MARKER, timeout=10)
        assert vm.alive()
        pid = vm.pid()
        assert pid is not None
        recorded = (the_spec.run_dir / "qemu-cmdline.txt").read_text()
        assert recorded.startswith(machine.QEMU + " ") and str(the_spec.kernel_image) in recorded
    assert not vm.alive()
    assert _gone(pid)
    logged = (the_spec.run_dir / "console.log").read_text()
    assert f"hostfwd=tcp:127.0.0.1:{vm.ssh_port}-:22" in logged  # the fake echoed its arguments
    assert guestinit.READY_MARKER in logged


def test_the_recorded_command_line_can_be_pasted_into_a_shell(tmp_path: Path, fake_qemu) -> None:
    # qemu-cmdline.txt is there to reproduce a boot by hand; -append has spaces in it.
    fake_qemu("sleep 60")
    the_spec = spec(tmp_path, extra_cmdline="lab.root=/dev/nope quiet")
    with Machine(the_spec) as vm:
        vm.start()
        recorded = (the_spec.run_dir / "qemu-cmdline.txt").read_text()
        assert shlex.split(recorded) == machine.qemu_argv(the_spec, vm.ssh_port)


def test_start_without_network_has_no_port(tmp_path: Path, fake_qemu) -> None:
    fake_qemu('echo "args: $*"; sleep 60')
    with Machine(spec(tmp_path, rootfs=None)) as vm:
        vm.start(with_network=False)
        assert vm.ssh_port is None
        assert "-netdev" not in (tmp_path / "run" / "qemu-cmdline.txt").read_text().split()


def test_a_failure_marker_is_a_boot_failure_with_its_reason(tmp_path: Path, fake_qemu) -> None:
    fake_qemu(f'echo "lab-stage1: initramfs init running"; echo "{guestinit.FAILURE_MARKER} cannot mount root /dev/vda";'
              " sleep 60")
    with Machine(spec(tmp_path)) as vm:
        vm.start()
        with pytest.raises(BootFailed) as caught:
            vm.wait_for_marker(guestinit.READY_MARKER, timeout=10)
    assert caught.value.reason == f"{guestinit.FAILURE_MARKER} cannot mount root /dev/vda"
    assert "initramfs init running" in caught.value.excerpt


def test_a_failure_line_arriving_in_two_pieces_is_read_whole(tmp_path: Path, fake_qemu) -> None:
    # Seen in CI: the reason was cut at the chunk boundary ("... cannot mount").
    fake_qemu(f'printf "{guestinit.FAILURE_MARKER} cannot mount"; sleep 1; echo " root /dev/nosuchdisk"; sleep 60')
    with Machine(spec(tmp_path)) as vm:
        vm.start()
        with pytest.raises(BootFailed) as caught:
            vm.wait_for_marker(guestinit.READY_MARKER, timeout=10)
    assert caught.value.reason == f"{guestinit.FAILURE_MARKER} cannot mount root /dev/nosuchdisk"


def test_the_ready_line_is_on_the_console_whole_when_the_wait_ends(tmp_path: Path, fake_qemu) -> None:
    # Seen in make test: a snapshot's saved console ended "sshd started on 6.12.117+deb12-cloud-".
    fake_qemu(f'printf "{guestinit.READY_MARKER} 6.12.117+deb12-cloud-"; sleep 1; echo "amd64"; sleep 60')
    with Machine(spec(tmp_path)) as vm:
        vm.start()
        vm.wait_for_marker(guestinit.READY_MARKER, timeout=10)
        console = vm.console_log.read_text()
    assert f"{guestinit.READY_MARKER} 6.12.117+deb12-cloud-amd64\n" in console.replace("\r\n", "\n")


def test_qemu_exiting_is_a_boot_failure(tmp_path: Path, fake_qemu) -> None:
    fake_qemu('echo "[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs"; exit 0')
    with Machine(spec(tmp_path)) as vm:
        vm.start()
        with pytest.raises(BootFailed) as caught:
            vm.wait_for_marker(guestinit.READY_MARKER, timeout=10)
    assert caught.value.reason == "QEMU exited before init was ready"
    assert "Kernel panic" in caught.value.excerpt


def test_a_taken_port_is_the_hosts_failure_and_says_so(tmp_path: Path, fake_qemu) -> None:
    line = ("qemu-system-x86_64: -netdev user,id=net0: Could not set up host forwarding rule"
            " 'tcp:127.0.0.1:4000-:22'")
    fake_qemu(f'echo "{line}"; exit 1')
    with Machine(spec(tmp_path)) as vm:
        vm.start()
        with pytest.raises(machine.PortTaken) as caught:
            vm.wait_for_marker(guestinit.READY_MARKER, timeout=10)
    assert isinstance(caught.value, InfraError) and not isinstance(caught.value, BootFailed)
    assert caught.value.reason == line


def test_silence_is_a_boot_timeout(tmp_path: Path, fake_qemu) -> None:
    fake_qemu('echo "Probing EDD (edd=off to disable)... ok"; sleep 60')
    with Machine(spec(tmp_path)) as vm:
        vm.start()
        started = time.monotonic()
        with pytest.raises(BootTimedOut) as caught:
            vm.wait_for_marker(guestinit.READY_MARKER, timeout=30, silence=1)
        assert time.monotonic() - started < 10
    assert "Probing EDD" in caught.value.excerpt
    assert "silent" in caught.value.reason


def test_stop_is_safe_when_never_started(tmp_path: Path) -> None:
    vm = Machine(spec(tmp_path))
    vm.stop()
    assert not vm.alive() and vm.pid() is None


def test_missing_qemu_is_an_infra_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(InfraError, match="not installed"):
        Machine(spec(tmp_path)).start()
    with pytest.raises(InfraError, match="not installed"):
        machine.qemu_version()


def test_qemu_version_parses_the_banner(fake_qemu) -> None:
    fake_qemu('echo "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)"; '
              'echo "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers"')
    assert machine.qemu_version() == "7.2.22"


# --- QEMU that did not start is the host's failure (issue 14 item 8) -----------------------------

REFUSALS = [
    "qemu-system-x86_64: -kernel /cache/vmlinuz: Could not open '/cache/vmlinuz': No such file or directory",
    "qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory",
    "qemu-system-x86_64: -sandbox on,obsolete=deny: failed to install seccomp syscall filter in the kernel",
    "qemu: could not open kernel file '/cache/vmlinuz': No such file or directory",
    "qemu: error reading initrd /cache/initrd.cpio: Failed to open file: No such file or directory",
]


@pytest.mark.parametrize("line", REFUSALS)
def test_qemu_refusing_to_start_is_an_infra_error_with_its_own_line(line: str, tmp_path: Path, fake_qemu) -> None:
    fake_qemu(f'echo "{line}" >&2; exit 1')  # QEMU's stderr is on the pty too
    with Machine(spec(tmp_path)) as vm:
        vm.start()
        with pytest.raises(machine.QemuDidNotStart) as caught:
            vm.wait_for_marker(guestinit.READY_MARKER, timeout=10)
    assert isinstance(caught.value, InfraError) and not isinstance(caught.value, BootFailed)
    assert caught.value.reason == line and str(caught.value) == line
    assert line in caught.value.excerpt
    assert not isinstance(caught.value, machine.PortTaken)


def test_a_warning_before_the_error_is_not_the_reason(tmp_path: Path, fake_qemu) -> None:
    fake_qemu('echo "qemu-system-x86_64: warning: host doesn\'t support requested feature: CPUID.01H:ECX.vmx"; '
              'echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69"; '
              'echo "qemu-system-x86_64: ../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed."; '
              "kill -ABRT $$")
    with Machine(spec(tmp_path)) as vm:
        vm.start()
        with pytest.raises(machine.QemuDidNotStart) as caught:
            vm.wait_for_marker(guestinit.READY_MARKER, timeout=10)
    assert caught.value.reason == "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69"
    assert len(caught.value.qemu_lines) == 3 and "kvm_buf_set_msrs" in caught.value.qemu_lines[2]


def test_qemu_killed_before_the_guest_printed_anything_is_an_infra_error(tmp_path: Path, fake_qemu) -> None:
    fake_qemu("kill -KILL $$")  # the OOM killer, say
    with Machine(spec(tmp_path)) as vm:
        vm.start()
        with pytest.raises(machine.QemuDidNotStart) as caught:
            vm.wait_for_marker(guestinit.READY_MARKER, timeout=10)
    assert caught.value.reason == "QEMU was killed by signal 9 before the guest printed anything"


@pytest.mark.parametrize("body", [
    # The kernel ran and died; QEMU's own line at the end does not make it QEMU's failure.
    'echo "[    0.000000] Linux version 6.1.0-fake"; echo "qemu-system-x86_64: terminating on signal 15"; exit 0',
    'echo "Probing EDD (edd=off to disable)... ok"; kill -KILL $$',  # the guest had started
    "exit 0",  # nothing at all and a clean exit: a kernel that reset before printing (-no-reboot)
])
def test_a_guest_that_started_or_said_nothing_stays_boot_failed(body: str, tmp_path: Path, fake_qemu) -> None:
    fake_qemu(body)
    with Machine(spec(tmp_path)) as vm:
        vm.start()
        with pytest.raises(BootFailed) as caught:
            vm.wait_for_marker(guestinit.READY_MARKER, timeout=10)
    assert caught.value.reason == "QEMU exited before init was ready"


def test_qemu_that_cannot_be_executed_is_an_infra_error(tmp_path: Path, fake_qemu) -> None:
    script = fake_qemu("echo never")
    script.write_text("#!/nonexistent/interpreter\n")  # which() finds it; exec fails
    with pytest.raises(machine.QemuDidNotStart, match="could not be started"):
        Machine(spec(tmp_path)).start()


def test_qemu_refusal_reads_qemus_lines_and_nothing_else() -> None:
    guest = "\r\n[    0.000000] Linux version 6.1.0\r\n"
    assert machine.qemu_refusal("qemu-system-x86_64: oops\r\n", None).reason == "qemu-system-x86_64: oops"
    assert machine.qemu_refusal("/usr/bin/qemu-system-x86_64: oops\n", None) is not None
    assert machine.qemu_refusal("qemu-system-x86_64: oops" + guest, None) is None
    assert machine.qemu_refusal("", None) is None
    assert machine.qemu_refusal("not qemu-system-x86_64: a guest line\n", None) is None
    assert isinstance(machine.qemu_refusal("qemu-system-x86_64: Could not set up host forwarding rule 'x'\n", None),
                      machine.PortTaken)


# --- -sandbox (issue 14 item 13a) ------------------------------------------------------------------


def test_the_sandbox_is_on_only_when_asked(tmp_path: Path) -> None:
    assert option(machine.qemu_argv(spec(tmp_path, sandbox=True), 40022), "-sandbox") == [machine.SANDBOX]
    assert "-sandbox" not in machine.qemu_argv(spec(tmp_path), 40022)
    parts = machine.SANDBOX.split(",")
    assert parts[0] == "on"
    assert {"obsolete=deny", "elevateprivileges=deny", "spawn=deny", "resourcecontrol=deny"} <= set(parts)


def test_sandbox_support_is_probed_once_per_qemu(tmp_path: Path, fake_qemu, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "_sandbox_verdicts", {})
    calls = tmp_path / "calls"
    fake_qemu(f'echo "$*" >> {calls}\n'
              'case "$*" in *--version*) echo "QEMU emulator version 9.9.9"; exit 0;; esac\n'
              f'case "$*" in *"-sandbox {machine.SANDBOX} -machine none"*) read cmd; [ "$cmd" = quit ] && exit 0;; esac\n'
              "exit 1")
    assert machine.sandbox_supported() is True
    assert machine.sandbox_supported() is True
    probes = [line for line in calls.read_text().splitlines() if "-sandbox" in line]
    assert len(probes) == 1


def test_a_qemu_without_seccomp_gets_no_sandbox(tmp_path: Path, fake_qemu, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "_sandbox_verdicts", {})
    fake_qemu('case "$*" in *--version*) echo "QEMU emulator version 9.9.8"; exit 0;; esac\n'
              f'echo "{machine.QEMU}: -sandbox on: There is no option group \'sandbox\'" >&2; exit 1')
    assert machine.sandbox_supported() is False


def test_no_qemu_means_no_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert machine.sandbox_supported() is False


needs_real_qemu = pytest.mark.skipif(shutil.which(machine.QEMU) is None, reason=f"{machine.QEMU} is not installed")


@needs_real_qemu
def test_this_hosts_qemu_supports_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "_sandbox_verdicts", {})
    assert machine.sandbox_supported() is True  # Debian's QEMU is built with seccomp


# --- the real QEMU refusing to start (no guest boots: each takes well under a second) ---------------


def _real_refusal(the_spec: MachineSpec) -> machine.QemuDidNotStart:
    with Machine(the_spec) as vm:
        vm.start(with_network=False)
        with pytest.raises(machine.QemuDidNotStart) as caught:
            vm.wait_for_marker(guestinit.READY_MARKER, timeout=30)
    return caught.value


@needs_real_qemu
def test_real_qemu_without_the_memory_asked_for_did_not_start(tmp_path: Path) -> None:
    kernel = make_bzimage(tmp_path / "vmlinuz", "6.1.0-fake")
    (tmp_path / "initrd.cpio").write_bytes(b"07070100")
    refused = _real_refusal(spec(tmp_path, kernel_image=kernel, rootfs=None, accel="tcg", memory_mb=10**9))
    assert "cannot set up guest memory" in refused.reason and refused.reason.startswith(machine.QEMU + ": ")


@needs_real_qemu
def test_real_qemu_with_a_missing_initramfs_did_not_start(tmp_path: Path) -> None:
    kernel = make_bzimage(tmp_path / "vmlinuz", "6.1.0-fake")
    refused = _real_refusal(spec(tmp_path, kernel_image=kernel, initramfs=tmp_path / "gone.cpio", rootfs=None,
                                 accel="tcg", sandbox=True))
    assert str(tmp_path / "gone.cpio") in refused.reason
