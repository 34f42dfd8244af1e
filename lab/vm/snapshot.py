"""Boot once, restore many times: a guest saved where SSH is ready, and later runs started from it.

The first boot of a guest configuration writes its own qcow2 over the untouched image; when the
ready marker appears it is paused, migrated into a file (QMP `migrate` to a unix socket the lab
drains: `-sandbox` forbids QEMU spawning `exec:` helpers) and its disk copied while paused, then
it goes on with its run. Later runs start QEMU with `-incoming`, feed it the file, open the saved
disk with snapshot=on (never written) and resume: the guest is exactly as it was at the marker.

What a restored guest must not inherit, the lab gives it fresh right after SSH connects: the wall
clock (set from the host's) and the kernel's random state (host bytes credited with RNDADDENTROPY,
then RNDRESEEDCRNG), so hash seeds differ between runs as after a boot. Its uptime says it was
restored; nothing else should.

Keyed by everything that shapes the guest: QEMU's version and its whole command line (machine,
accelerator, CPUs, memory, kernel command line, the kernel, initramfs and image files) with the
kernel's and initramfs's contents and the image file's size and mtime. A snapshot that does not
restore is discarded with one warning and the guest boots cold, saving a fresh one.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.errors import InfraError
from ..core.files import keep_newest, local_file, sha256_file, write_json_atomic
from ..target.base import quote_command
from .machine import Machine, MachineSpec, qemu_argv
from .qmp import Qmp, QmpError

SNAPSHOTS = "snapshots"
KEEP = 8  # snapshots kept, most recently used first; each is the guest's used memory (~120 MB)
STATE, DISK, CONSOLE, META = "state", "disk.qcow2", "console.log", "snapshot.json"
FORMAT = 2  # bump when what a snapshot holds changes (2: its console ends with the whole ready line)
MIGRATION_TIMEOUT = 120.0
# RNDADDENTROPY (_IOW('R', 0x03, int[2])) and RNDRESEEDCRNG (_IO('R', 0x07)), from <linux/random.h>.
RNDADDENTROPY, RNDRESEEDCRNG = 0x40085203, 0x5207
FRESH_BYTES = 64


class RestoreFailed(Exception):
    """A snapshot that did not come back as a running guest."""


class SaveFailed(Exception):
    """The snapshot could not be saved; the run goes on without one."""


def snapshot_key(spec: MachineSpec, qemu_version: str) -> str | None:
    """Everything that shapes the guest at its ready marker, as one digest; None when one of its
    files cannot be read (the cold boot then says what QEMU makes of that)."""
    shape = replace(spec, run_dir=Path("/run-dir"), overlay=None, restore_disk=None, monitor=False, incoming=False)
    assert spec.rootfs is not None, "only a guest with a disk has a snapshot"
    try:
        rootfs = spec.rootfs.stat()
        described = {
            "format": FORMAT, "qemu": qemu_version, "argv": qemu_argv(shape, 0),
            "kernel": sha256_file(spec.kernel_image), "initramfs": sha256_file(spec.initramfs),
            "rootfs": [str(spec.rootfs), rootfs.st_size, rootfs.st_mtime_ns],
        }
    except OSError:
        return None
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Snapshot:
    directory: Path

    @property
    def key(self) -> str:
        return self.directory.name

    @property
    def state(self) -> Path:
        return self.directory / STATE

    @property
    def disk(self) -> Path:
        return self.directory / DISK

    @property
    def console(self) -> Path:
        return self.directory / CONSOLE

    def complete(self) -> bool:
        return all((self.directory / name).is_file() for name in (STATE, DISK, CONSOLE, META))


def _crc32(path: Path) -> int:
    crc = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


def _meta(snapshot: Snapshot) -> dict[str, object]:
    try:
        meta: dict[str, object] = json.loads(snapshot.directory.joinpath(META).read_text())
        return meta
    except (OSError, ValueError) as exc:
        raise RestoreFailed(f"its {META} is unreadable: {exc}") from exc


def check_disk(snapshot: Snapshot) -> None:
    """Neither migration nor qcow2 checks data: the saved disk is checked against its checksum."""
    meta = _meta(snapshot)
    if meta.get("format") != FORMAT:
        raise RestoreFailed(f"it was saved in format {meta.get('format')}, not {FORMAT}")
    try:
        crc = _crc32(snapshot.disk)
    except OSError as exc:  # evicted by another lab since it was found
        raise RestoreFailed(f"its {DISK} is gone: {exc}") from exc
    if crc != meta.get("disk_crc32"):
        raise RestoreFailed(f"its {DISK} is damaged (checksum)")


def store(cache: Path) -> Path:
    return cache / SNAPSHOTS


def find(cache: Path, key: str) -> Snapshot | None:
    found = Snapshot(store(cache) / key)
    if not found.complete():
        return None
    try:
        os.utime(found.directory)  # recently used: the last to be evicted
    except OSError:
        return None  # evicted by another lab just now
    return found


def discard(snapshot: Snapshot) -> None:
    shutil.rmtree(snapshot.directory, ignore_errors=True)


def evict(cache: Path, keep: int = KEEP) -> None:
    """Only the `keep` most recently used snapshots stay (a run restoring from an evicted one
    still has its files open, which is all it needs)."""
    root = store(cache)
    if not root.is_dir():
        return
    keep_newest(root, keep)
    for leftover in root.glob(".saving-*"):  # a lab killed while saving
        if time.time() - leftover.stat().st_mtime > 3600:
            shutil.rmtree(leftover, ignore_errors=True)


# --- the boot that saves ---------------------------------------------------------------------------


def new_overlay(cache: Path) -> Path:
    """A fresh qcow2 over the image for a boot that may be saved, in a directory of its own."""
    with local_file(store(cache), "writing"):
        store(cache).mkdir(parents=True, exist_ok=True)
        scratch = store(cache) / f".saving-{os.getpid()}-{secrets.token_hex(4)}"
        scratch.mkdir()
    return scratch / DISK


def make_overlay(overlay: Path, rootfs: Path) -> None:
    done = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(rootfs), "-F", "raw", str(overlay)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InfraError(f"qemu-img could not create {overlay}: {done.stderr.strip() or done.returncode}")


def _drain_into(server: socket.socket, path: Path, failures: list[BaseException]) -> None:
    try:
        connection, _ = server.accept()
        with connection, path.open("wb") as out:
            while chunk := connection.recv(1 << 20):
                out.write(chunk)
    except BaseException as exc:  # noqa: BLE001 - reported by save()
        failures.append(exc)


def save(machine: Machine, cache: Path, key: str, boot_console: str) -> Snapshot:
    """Pause the guest, migrate it into a file, copy its disk, resume it; the snapshot is in the
    cache under `key` once this returns (SaveFailed: the guest runs on, without one)."""
    overlay = machine.spec.overlay
    assert overlay is not None and machine.sockets_dir is not None
    scratch = overlay.parent
    saving = scratch / "snapshot"
    saving.mkdir()
    listening = machine.sockets_dir / "outgoing"
    failures: list[BaseException] = []
    try:
        with Qmp(machine.monitor_socket, 10.0) as qmp:
            qmp.execute("stop")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
                    server.bind(str(listening))
                    server.listen(1)
                    server.settimeout(MIGRATION_TIMEOUT)
                    drain = threading.Thread(target=_drain_into, args=(server, saving / STATE, failures), daemon=True)
                    drain.start()
                    qmp.execute("migrate", uri=f"unix:{listening}")
                    status = _wait_for_migration(qmp)
                    drain.join(MIGRATION_TIMEOUT)
                if status != "completed" or failures or drain.is_alive():
                    raise SaveFailed(f"the migration into a file ended {status}"
                                     + (f" ({failures[0]})" if failures else ""))
                # Paused and its disk inactive after the migration: this copy is the disk of that moment.
                shutil.copyfile(overlay, saving / DISK)
            finally:
                qmp.execute("cont")
    except (QmpError, OSError) as exc:
        shutil.rmtree(saving, ignore_errors=True)
        raise SaveFailed(str(exc)) from exc
    except SaveFailed:
        shutil.rmtree(saving, ignore_errors=True)
        raise
    (saving / CONSOLE).write_text(boot_console)
    write_json_atomic(saving / META, {"format": FORMAT, "key": key, "saved": time.time(),
                                      "state_bytes": (saving / STATE).stat().st_size,
                                      "state_crc32": _crc32(saving / STATE), "disk_crc32": _crc32(saving / DISK)})
    final = store(cache) / key
    try:
        saving.rename(final)
    except OSError:
        shutil.rmtree(saving, ignore_errors=True)  # another run saved the same guest first
    evict(cache)
    return Snapshot(final)


def _wait_for_migration(qmp: Qmp) -> str:
    deadline = time.monotonic() + MIGRATION_TIMEOUT
    while time.monotonic() < deadline:
        status = str(qmp.execute("query-migrate").get("status", ""))
        if status in ("completed", "failed", "cancelled"):
            return status
        time.sleep(0.05)
    return "timed out"


# --- the boot that restores -----------------------------------------------------------------------


def feed(machine: Machine, snapshot: Snapshot, timeout: float) -> None:
    """Give a QEMU started with -incoming the saved state and resume the guest (RestoreFailed)."""
    deadline = time.monotonic() + timeout
    expected = _meta(snapshot).get("state_crc32")
    try:
        with Qmp(machine.monitor_socket, timeout) as qmp:
            crc = 0
            with _connected(machine.incoming_socket, deadline) as sender, snapshot.state.open("rb") as state:
                # Checked as it is sent: the guest loads paused and is resumed only if it matches.
                while chunk := state.read(1 << 20):
                    crc = zlib.crc32(chunk, crc)
                    sender.sendall(chunk)
            while True:
                status = str(qmp.execute("query-status").get("status", ""))
                if status != "inmigrate":
                    break
                if time.monotonic() >= deadline:
                    raise RestoreFailed(f"the saved state did not load within {timeout:.0f} s")
                time.sleep(0.02)
            if crc != expected:
                raise RestoreFailed(f"its {STATE} is damaged (checksum)")
            if status != "paused":
                raise RestoreFailed(f"the guest was {status} after the saved state loaded, not paused")
            qmp.execute("cont")
    except (QmpError, OSError) as exc:
        raise RestoreFailed(f"QEMU did not take the saved state: {exc}") from exc


def _connected(path: Path, deadline: float) -> socket.socket:
    """A connection to QEMU's incoming socket, which it opens a moment after its monitor."""
    while True:
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sender.connect(str(path))
            sender.settimeout(max(1.0, deadline - time.monotonic()))
            return sender
        except (FileNotFoundError, ConnectionRefusedError):
            sender.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def reseed_script(fresh: bytes) -> str:
    """A perl program (perl-base is Essential in Debian, and starts in a fraction of python's time
    under TCG) crediting `fresh` to the kernel's pool and forcing a CRNG reseed."""
    return (f'open(F,">","/dev/urandom")||die"urandom: $!";$b=pack("H*","{fresh.hex()}");'
            f'ioctl(F,{RNDADDENTROPY},pack("ii",8*length($b),length($b)).$b)||die"RNDADDENTROPY: $!";'
            f'ioctl(F,{RNDRESEEDCRNG},0)||die"RNDRESEEDCRNG: $!"')


def freshen_command(now: float | None = None, fresh: bytes | None = None) -> str:
    """The first command in a restored guest: the host's time, and random state of its own."""
    now = time.time() if now is None else now
    fresh = secrets.token_bytes(FRESH_BYTES) if fresh is None else fresh
    return f"date -u -s @{now:.6f} >/dev/null && " + quote_command(["perl", "-e", reseed_script(fresh)])


def restored_console_header(snapshot: Snapshot) -> str:
    """The run's console.log starts with the boot the snapshot saved, then says where it resumed."""
    return (snapshot.console.read_text(errors="replace")
            + f"\n[lab: the boot above was saved as snapshot {snapshot.key}; this guest was restored from it here]\n")
