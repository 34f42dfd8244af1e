"""lab.machine: the QEMU command line, free ports, and a Machine driven by a fake QEMU script."""
from __future__ import annotations

import os
import shlex
import socket
import time
from pathlib import Path

import pytest

from labfakes import fake_qemu  # noqa: F401 (a fixture)
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


def test_qemu_exiting_is_a_boot_failure(tmp_path: Path, fake_qemu) -> None:
    fake_qemu('echo "[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs"; exit 0')
    with Machine(spec(tmp_path)) as vm:
        vm.start()
        with pytest.raises(BootFailed) as caught:
            vm.wait_for_marker(guestinit.READY_MARKER, timeout=10)
    assert caught.value.reason == "QEMU exited before init was ready"
    assert "Kernel panic" in caught.value.excerpt


def test_a_taken_port_is_reported_as_such(tmp_path: Path, fake_qemu) -> None:
    fake_qemu('echo "qemu-system-x86_64: -netdev user,id=net0: Could not set up host forwarding rule'
              " 'tcp:127.0.0.1:4000-:22'\"; exit 1")
    with Machine(spec(tmp_path)) as vm:
        vm.start()
        with pytest.raises(BootFailed) as caught:
            vm.wait_for_marker(guestinit.READY_MARKER, timeout=10)
    assert caught.value.reason == "QEMU could not forward the SSH port"


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
