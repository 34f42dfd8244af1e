"""A booted guest: QEMU up to the init's ready marker (or restored from a snapshot of that
moment), then an SSH session into it."""
from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from ..core.files import local_file
from ..core.timeouts import Timeouts
from ..guest.assets import Prepared
from ..guest.init import READY_MARKER
from ..target.base import CommandTimedOut, ConnectionLost
from ..target.ssh import SshTarget
from . import snapshot
from .machine import (
    Machine,
    MachineSpec,
    PortTaken,
    qemu_refusal,
    qemu_version,
    sandbox_supported,
)

PORT_ATTEMPTS = 3
# A restored guest answers SSH within a second or two; one that does not within this is broken,
# and booting it cold is quicker than waiting the whole SSH bound.
RESTORE_TIMEOUT = 30.0


def _start_until_ready(spec: MachineSpec, timeouts: Timeouts) -> Machine:
    """QEMU started and its init at the ready marker; a lost port race is retried on another port,
    and only when every attempt lost it is that an infra-error (PortTaken)."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        machine = Machine(spec)
        try:
            machine.start()
            machine.wait_for_marker(READY_MARKER, timeouts.boot, timeouts.boot_silence)
            return machine
        except PortTaken as exc:
            machine.stop()
            # Another process took the port between our check and QEMU's bind: pick another.
            if attempt < PORT_ATTEMPTS:
                continue
            raise PortTaken(f"QEMU could not forward the SSH port in {PORT_ATTEMPTS} attempts: {exc.reason}",
                            exc.excerpt, exc.qemu_lines) from None
        except BaseException:
            machine.stop()
            raise
    raise AssertionError("unreachable")


def _connect(machine: Machine, prepared: Prepared, timeout: float, listening: bool = False) -> SshTarget:
    assert machine.ssh_port is not None
    return SshTarget.connect("127.0.0.1", machine.ssh_port, "root", prepared.keys.client_private,
                             prepared.keys.host_public, timeout, listening)


def _restore(spec: MachineSpec, found: snapshot.Snapshot, prepared: Prepared,
             timeouts: Timeouts) -> tuple[Machine, SshTarget]:
    """A guest resumed from the snapshot, connected, its clock and random state its own
    (RestoreFailed: stopped again, nothing left running)."""
    restoring = replace(spec, restore_disk=found.disk, monitor=True, incoming=True)
    bound = min(timeouts.ssh, RESTORE_TIMEOUT)
    started = time.monotonic()
    snapshot.check_disk(found)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        machine = Machine(restoring)
        try:
            machine.start()
            snapshot.feed(machine, found, bound)
            target = _connect(machine, prepared, bound, listening=True)
        except (snapshot.RestoreFailed, ConnectionLost) as exc:
            machine.stop()
            refused = qemu_refusal(machine.console.text() if machine.console else "", None)
            if isinstance(refused, PortTaken) and attempt < PORT_ATTEMPTS:
                continue  # the port, not the snapshot
            raise snapshot.RestoreFailed(str(exc)) from exc
        except BaseException:
            machine.stop()
            raise
        try:
            done = target.run(snapshot.freshen_command(), min(timeouts.command, bound))
            if done.rc != 0:
                raise snapshot.RestoreFailed(f"setting its clock and random state failed: {done.err.strip()[-200:]}")
        except (snapshot.RestoreFailed, CommandTimedOut, ConnectionLost) as exc:
            target.close()
            machine.stop()
            raise snapshot.RestoreFailed(str(exc)) from exc
        except BaseException:
            target.close()
            machine.stop()
            raise
        machine.boot = {"mode": "restored", "snapshot": found.key, "seconds": round(time.monotonic() - started, 3)}
        return machine, target
    raise AssertionError("unreachable")


def _cold_saving(spec: MachineSpec, cache: Path, key: str, timeouts: Timeouts) -> Machine:
    """A cold boot that writes its own overlay, saved as snapshot `key` at the ready marker."""
    overlay = snapshot.new_overlay(cache)
    console = spec.run_dir / spec.console_name
    this_boot_from = console.stat().st_size if console.exists() else 0  # after a failed restore's lines
    try:
        assert spec.rootfs is not None
        snapshot.make_overlay(overlay, spec.rootfs)
        machine = _start_until_ready(replace(spec, overlay=overlay, monitor=True), timeouts)
    except BaseException:
        shutil.rmtree(overlay.parent, ignore_errors=True)
        raise
    started = time.monotonic()
    try:
        with console.open("rb") as handle:
            handle.seek(this_boot_from)
            boot_console = handle.read().decode(errors="replace")
        snapshot.save(machine, cache, key, boot_console)
        machine.boot = {"mode": "cold", "snapshot": key, "saved": True,
                        "save_seconds": round(time.monotonic() - started, 3)}
    except snapshot.SaveFailed as exc:
        machine.boot = {"mode": "cold", "snapshot": key, "saved": False,
                        "warning": f"the booted guest could not be saved as a snapshot: {exc}"}
    except BaseException:
        machine.stop()
        shutil.rmtree(overlay.parent, ignore_errors=True)
        raise
    return machine


@contextmanager
def booted(prepared: Prepared, accel_name: str, run_dir: Path, timeouts: Timeouts,
           extra_cmdline: str = "", snapshots: Path | None = None,
           gdb_port: int | None = None) -> Iterator[tuple[Machine, SshTarget]]:
    """A running guest with an SSH session; QEMU is stopped however the block ends.

    With `snapshots` (the cache), the guest is restored from a snapshot of this configuration
    if there is one, else booted cold and saved as one; without, booted cold as always.
    `gdb_port`: QEMU's gdb stub listens there (a cold boot: a stub is no snapshot's).
    QEMU that did not start raises QemuDidNotStart (infra-error)."""
    spec = MachineSpec(prepared.kernel.image, prepared.initramfs, prepared.image.path, accel_name, run_dir,
                       extra_cmdline=extra_cmdline, sandbox=sandbox_supported(), gdb_port=gdb_port)
    if gdb_port is not None:
        snapshots = None
    if snapshots is None:
        machine = _start_until_ready(spec, timeouts)
        machine.boot = {"mode": "cold", "snapshot": None}
        target = None
    else:
        machine, target = _restore_or_boot_saving(spec, prepared, snapshots, timeouts)
    try:
        if target is None:
            target = _connect(machine, prepared, timeouts.ssh)
        try:
            yield machine, target
        finally:
            target.close()
    finally:
        machine.stop()
        if machine.spec.overlay is not None:
            shutil.rmtree(machine.spec.overlay.parent, ignore_errors=True)


def _restore_or_boot_saving(spec: MachineSpec, prepared: Prepared, cache: Path,
                            timeouts: Timeouts) -> tuple[Machine, SshTarget | None]:
    key = snapshot.snapshot_key(spec, qemu_version())
    if key is None:
        machine = _start_until_ready(spec, timeouts)
        machine.boot = {"mode": "cold", "snapshot": None}
        return machine, None
    found = snapshot.find(cache, key)
    if found is None:
        return _cold_saving(spec, cache, key, timeouts), None
    console = spec.run_dir / spec.console_name
    with local_file(console, "writing"):  # a full results disk is the host's failure
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        console.write_text(snapshot.restored_console_header(found))
    try:
        return _restore(spec, found, prepared, timeouts)
    except snapshot.RestoreFailed as exc:
        snapshot.discard(found)
        warning = f"snapshot {key} did not restore ({exc}); booted cold and saved a fresh one"
        with local_file(console, "writing"), console.open("a") as handle:
            handle.write(f"\n[lab: {warning}]\n")
    machine = _cold_saving(spec, cache, key, timeouts)
    machine.boot["warning"] = warning + (f"; {machine.boot['warning']}" if "warning" in machine.boot else "")
    return machine, None
