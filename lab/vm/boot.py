"""A booted guest: QEMU up to the init's ready marker, then an SSH session into it."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.timeouts import Timeouts
from ..guest.assets import Prepared
from ..guest.init import READY_MARKER
from ..target.ssh import SshTarget
from .machine import Machine, MachineSpec, PortTaken, sandbox_supported

PORT_ATTEMPTS = 3


@contextmanager
def booted(prepared: Prepared, accel_name: str, run_dir: Path, timeouts: Timeouts,
           extra_cmdline: str = "") -> Iterator[tuple[Machine, SshTarget]]:
    """A running guest with an SSH session; QEMU is stopped however the block ends.

    QEMU that did not start raises QemuDidNotStart (infra-error); a lost port race is retried
    on another port, and only when every attempt lost it is that an infra-error too."""
    spec = MachineSpec(prepared.kernel.image, prepared.initramfs, prepared.image.path, accel_name, run_dir,
                       extra_cmdline=extra_cmdline, sandbox=sandbox_supported())
    for attempt in range(1, PORT_ATTEMPTS + 1):
        machine = Machine(spec)
        try:
            machine.start()
            machine.wait_for_marker(READY_MARKER, timeouts.boot, timeouts.boot_silence)
            break
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
    try:
        assert machine.ssh_port is not None
        target = SshTarget.connect("127.0.0.1", machine.ssh_port, "root", prepared.keys.client_private,
                                   prepared.keys.host_public, timeouts.ssh)
        try:
            yield machine, target
        finally:
            target.close()
    finally:
        machine.stop()
