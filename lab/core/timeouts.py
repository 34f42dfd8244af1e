"""Every wait in the lab has a bound; the bounds scale with the accelerator."""
from __future__ import annotations

from dataclasses import dataclass, replace

# TCG emulates every instruction: measured here, a boot takes ~5 s under TCG.
TCG_FACTOR = 4.0


@dataclass(frozen=True)
class Timeouts:
    boot: float = 30.0  # QEMU start to the init's ready marker
    boot_silence: float = 20.0  # no console output at all during boot
    ssh: float = 15.0  # ready marker to an SSH session
    suite: float = 150.0  # one suite inside the guest
    command: float = 30.0  # a housekeeping command (upload, dmesg)

    def scaled_for(self, accel: str) -> "Timeouts":
        if accel == "kvm":
            return self
        return replace(
            self,
            boot=self.boot * TCG_FACTOR,
            boot_silence=self.boot_silence * TCG_FACTOR,
            ssh=self.ssh * TCG_FACTOR,
            suite=self.suite * TCG_FACTOR,
            command=self.command * TCG_FACTOR,
        )

    def with_suite(self, seconds: float | None) -> "Timeouts":
        return self if seconds is None else replace(self, suite=seconds)
