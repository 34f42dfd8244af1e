"""lab.vm.snapshot and lab.vm.qmp without QEMU: the key, the store, the checks, the command that
freshens a restored guest, QEMU's command line for each kind of boot, and the QMP client against a
fake monitor. (Real saves and restores: tests/test_e2e_snapshot.py.)"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from lab.vm import machine, snapshot
from lab.vm.machine import MachineSpec
from lab.vm.qmp import Qmp, QmpError


@pytest.fixture
def guest_files(tmp_path: Path) -> MachineSpec:
    for name, data in (("vmlinuz", b"kernel"), ("initrd.cpio", b"initramfs"), ("rootfs.ext4", b"image")):
        (tmp_path / name).write_bytes(data)
    return MachineSpec(tmp_path / "vmlinuz", tmp_path / "initrd.cpio", tmp_path / "rootfs.ext4", "tcg", tmp_path / "run",
                       sandbox=True)


def option(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == name]


# --- the key -----------------------------------------------------------------------------------------


def test_the_key_changes_with_everything_that_shapes_the_guest(guest_files: MachineSpec) -> None:
    spec = guest_files
    key = snapshot.snapshot_key(spec, "7.2.22")
    assert key == snapshot.snapshot_key(spec, "7.2.22")
    # Not what differs per run: the run directory, the disk mode, the sockets.
    assert key == snapshot.snapshot_key(replace(spec, run_dir=Path("/elsewhere"), overlay=Path("/x.qcow2"),
                                                monitor=True, incoming=True), "7.2.22")
    changed = {
        "qemu": snapshot.snapshot_key(spec, "8.0.0"),
        "accel": snapshot.snapshot_key(replace(spec, accel="kvm"), "7.2.22"),
        "cpus": snapshot.snapshot_key(replace(spec, cpus=1), "7.2.22"),
        "memory": snapshot.snapshot_key(replace(spec, memory_mb=2048), "7.2.22"),
        "cmdline": snapshot.snapshot_key(replace(spec, extra_cmdline="quiet"), "7.2.22"),
    }
    (spec.kernel_image).write_bytes(b"another kernel, same path")
    changed["kernel"] = snapshot.snapshot_key(spec, "7.2.22")
    (spec.initramfs).write_bytes(b"another initramfs")
    changed["initramfs"] = snapshot.snapshot_key(spec, "7.2.22")
    assert spec.rootfs is not None
    spec.rootfs.write_bytes(b"a rebuilt image")
    changed["image"] = snapshot.snapshot_key(spec, "7.2.22")
    assert len({key, *changed.values()}) == len(changed) + 1, changed
    spec.initramfs.unlink()  # QEMU will say what it makes of that: no snapshot for it
    assert snapshot.snapshot_key(spec, "7.2.22") is None


# --- the store ---------------------------------------------------------------------------------------


def saved(cache: Path, key: str, state: bytes = b"state", disk: bytes = b"disk", age: int = 0) -> snapshot.Snapshot:
    directory = snapshot.store(cache) / key
    directory.mkdir(parents=True)
    (directory / snapshot.STATE).write_bytes(state)
    (directory / snapshot.DISK).write_bytes(disk)
    (directory / snapshot.CONSOLE).write_text("Linux version 6.1\nlab-ready: sshd started\n")
    (directory / snapshot.META).write_text(json.dumps({"format": snapshot.FORMAT, "key": key,
                                                       "state_crc32": zlib.crc32(state), "disk_crc32": zlib.crc32(disk)}))
    os.utime(directory, (1_000_000 + age, 1_000_000 + age))
    return snapshot.Snapshot(directory)


def test_find_takes_only_a_complete_snapshot_and_marks_it_used(tmp_path: Path) -> None:
    assert snapshot.find(tmp_path, "k1") is None
    found = saved(tmp_path, "k1")
    assert snapshot.find(tmp_path, "k1") == found
    assert found.directory.stat().st_mtime > 1_000_000 + 10
    (found.directory / snapshot.META).unlink()  # killed while saving: incomplete
    assert snapshot.find(tmp_path, "k1") is None


def test_only_the_most_recently_used_snapshots_are_kept(tmp_path: Path) -> None:
    for age in range(snapshot.KEEP + 3):
        saved(tmp_path, f"k{age:02d}", age=age)
    snapshot.evict(tmp_path)
    kept = sorted(p.name for p in snapshot.store(tmp_path).iterdir())
    assert kept == [f"k{age:02d}" for age in range(3, snapshot.KEEP + 3)]


def test_a_damaged_disk_or_another_format_does_not_restore(tmp_path: Path) -> None:
    found = saved(tmp_path, "k1")
    snapshot.check_disk(found)
    found.disk.write_bytes(b"disK")
    with pytest.raises(snapshot.RestoreFailed, match="disk.qcow2 is damaged"):
        snapshot.check_disk(found)
    other = saved(tmp_path, "k2")
    meta = json.loads((other.directory / snapshot.META).read_text())
    (other.directory / snapshot.META).write_text(json.dumps({**meta, "format": snapshot.FORMAT + 1}))
    with pytest.raises(snapshot.RestoreFailed, match="format"):
        snapshot.check_disk(other)
    (other.directory / snapshot.META).write_text("{half")
    with pytest.raises(snapshot.RestoreFailed, match="unreadable"):
        snapshot.check_disk(other)


def test_a_restored_console_starts_with_the_saved_boot(tmp_path: Path) -> None:
    header = snapshot.restored_console_header(saved(tmp_path, "k1"))
    assert header.startswith("Linux version 6.1\nlab-ready: sshd started\n")
    assert header.rstrip().endswith("[lab: the boot above was saved as snapshot k1; this guest was restored from it here]")


def test_the_freshening_command_sets_the_clock_and_credits_host_bytes() -> None:
    command = snapshot.freshen_command(1_796_000_000.25, bytes(range(64)))
    script = snapshot.reseed_script(bytes(range(64)))
    assert command == f"date -u -s @1796000000.250000 >/dev/null && perl -e '{script}'"
    assert "'" not in script and bytes(range(64)).hex() in script  # one shell word, the bytes in it
    assert snapshot.freshen_command() != snapshot.freshen_command()  # new bytes every time


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("perl") is None,
                    reason="RNDADDENTROPY and RNDRESEEDCRNG need root (and perl) on the host")
def test_the_reseed_program_is_taken_by_a_real_kernel() -> None:
    """The guest's perl program as it is sent, on the host kernel: both ioctls succeed (a wrong
    number or argument layout fails with the kernel's errno, and the restore with it)."""
    done = subprocess.run(["perl", "-e", snapshot.reseed_script(secrets.token_bytes(64))],
                          capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stderr) == (0, "")
    wrong = snapshot.reseed_script(b"x" * 64).replace(f"ioctl(F,{snapshot.RNDRESEEDCRNG},", "ioctl(F,1,")
    refused = subprocess.run(["perl", "-e", wrong], capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and refused.stderr.startswith("RNDRESEEDCRNG: ")


# --- QEMU's command line per kind of boot ------------------------------------------------------------


def test_a_boot_that_may_be_saved_writes_its_overlay_and_has_a_monitor(guest_files: MachineSpec, tmp_path: Path) -> None:
    argv = machine.qemu_argv(replace(guest_files, overlay=tmp_path / "o,x.qcow2", monitor=True), 40022, tmp_path / "s")
    [drive] = option(argv, "-drive")
    assert drive == f"file={tmp_path}/o,,x.qcow2,format=qcow2,if=none,id=root"  # the image itself is not opened
    assert option(argv, "-qmp") == [f"unix:{tmp_path}/s/qmp,server=on,wait=off"]
    assert "-incoming" not in argv and option(argv, "-monitor") == ["none"]


def test_a_restored_boot_never_writes_the_snapshots_disk(guest_files: MachineSpec, tmp_path: Path) -> None:
    argv = machine.qemu_argv(replace(guest_files, restore_disk=tmp_path / "disk.qcow2", monitor=True, incoming=True),
                             40022, tmp_path / "s")
    [drive] = option(argv, "-drive")
    assert drive == f"file={tmp_path}/disk.qcow2,format=qcow2,if=none,id=root,snapshot=on"
    assert option(argv, "-incoming") == [f"unix:{tmp_path}/s/incoming"]
    # Everything else is the cold boot's command line: the device state must fit it.
    cold = machine.qemu_argv(guest_files, 40022)
    assert [w for w in argv if w not in (drive, "-qmp", "-incoming") and "/s/" not in w] == [
        w for w in cold if not w.startswith("file=")]


def test_a_monitor_needs_its_sockets_directory(guest_files: MachineSpec) -> None:
    with pytest.raises(ValueError):
        machine.qemu_argv(replace(guest_files, monitor=True), 40022)


# --- the QMP client -----------------------------------------------------------------------------------


class FakeMonitor:
    """A QMP server on a unix socket: greets, answers from a table, sends an event before each answer."""

    def __init__(self, path: Path, answers: dict[str, dict[str, object]]) -> None:
        self.path = path
        self.answers = answers
        self.received: list[dict[str, object]] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.server.accept()
        with connection, connection.makefile("rwb") as stream:
            stream.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
            stream.flush()
            while line := stream.readline():
                request = json.loads(line)
                self.received.append(request)
                stream.write(b'{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 0}}\n')
                stream.write(json.dumps(self.answers.get(str(request["execute"]), {"return": {}})).encode() + b"\n")
                stream.flush()


def test_qmp_negotiates_skips_events_and_returns_answers(tmp_path: Path) -> None:
    monitor = FakeMonitor(tmp_path / "qmp", {"query-status": {"return": {"status": "paused", "running": False}}})
    with Qmp(tmp_path / "qmp", 5) as qmp:
        assert qmp.execute("query-status") == {"status": "paused", "running": False}
        assert qmp.execute("migrate", uri="unix:/tmp/x") == {}
    assert monitor.received == [{"execute": "qmp_capabilities"}, {"execute": "query-status"},
                                {"execute": "migrate", "arguments": {"uri": "unix:/tmp/x"}}]


def test_qmp_errors_and_a_missing_monitor_are_qmp_errors(tmp_path: Path) -> None:
    FakeMonitor(tmp_path / "qmp", {"migrate": {"error": {"class": "GenericError", "desc": "no space"}}})
    with Qmp(tmp_path / "qmp", 5) as qmp, pytest.raises(QmpError, match="migrate: no space"):
        qmp.execute("migrate", uri="unix:/tmp/x")
    with pytest.raises(QmpError, match="no QMP monitor"):
        Qmp(tmp_path / "nothing-here", 0.2)
