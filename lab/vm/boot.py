"""A booted guest: QEMU up to the init's ready marker, then an SSH session into it."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..core.timeouts import Timeouts
from ..guest.assets import Prepared
from ..guest.init import READY_MARKER
from ..target.ssh import SshTarget
from .machine import BootFailed, Machine, MachineSpec

PORT_ATTEMPTS = 3


@contextmanager
def booted(prepared: Prepared, accel_name: str, run_dir: Path, timeouts: Timeouts,
           extra_cmdline: str = "") -> Iterator[tuple[Machine, SshTarget]]:
    """A running guest with an SSH session; QEMU is stopped however the block ends."""
    spec = MachineSpec(prepared.kernel.image, prepared.initramfs, prepared.image.path, accel_name, run_dir,
                       extra_cmdline=extra_cmdline)
    for attempt in range(PORT_ATTEMPTS):
        machine = Machine(spec)
        try:
            machine.start()
            machine.wait_for_marker(READY_MARKER, timeouts.boot, timeouts.boot_silence)
            break
        except BootFailed as exc:
            machine.stop()
            # Another process took the port between our check and QEMU's bind: pick another.
            if "forward the SSH port" in exc.reason and attempt + 1 < PORT_ATTEMPTS:
                continue
            raise
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
