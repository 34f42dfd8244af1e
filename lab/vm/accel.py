"""Choose the accelerator by probing: KVM only if a short boot really reaches init.

/dev/kvm existing proves nothing (on some hosts it is a paravirtual flavour on which stock
kernels hang after "Probing EDD"), so the lab boots the kernel to the initramfs init once
under KVM and uses TCG otherwise. The verdict is cached per host boot and QEMU version.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..core.log import Log
from ..guest import init as guestinit
from .machine import BootFailed, BootTimedOut, Machine, MachineSpec, qemu_version

PROBE_TIMEOUT = 20.0  # a KVM boot to the initramfs takes ~1 s; a hung one never gets there


@dataclass(frozen=True)
class AccelChoice:
    accel: str  # "kvm" or "tcg"
    reason: str
    probed: bool  # False: forced by the user or taken from the cache


def _host_boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def kvm_usable_device() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def probe_kvm(kernel_image: Path, initramfs: Path, run_dir: Path, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    spec = MachineSpec(kernel_image, initramfs, None, "kvm", run_dir, cpus=1, memory_mb=512,
                       extra_cmdline="lab.accel_probe", console_name="kvm-probe-console.log")
    with Machine(spec) as machine:
        machine.start(with_network=False)
        try:
            machine.wait_for_marker(guestinit.PROBE_MARKER, timeout)
        except BootTimedOut:
            return False, f"a KVM boot did not reach init within {timeout:.0f} s"
        except BootFailed as exc:
            last = exc.excerpt.strip().splitlines()[-1:] or [""]
            return False, f"a KVM boot failed: {exc.reason}: {last[0].strip()}"
    return True, "a KVM boot reached init"


def choose(requested: str, kernel_image: Path, initramfs: Path, run_dir: Path, cache: Path, log: Log,
           probe_timeout: float = PROBE_TIMEOUT) -> AccelChoice:
    """requested: auto, kvm or tcg."""
    if requested in ("kvm", "tcg"):
        return AccelChoice(requested, f"--accel {requested}", probed=False)
    if not kvm_usable_device():
        log("warning: /dev/kvm is not usable; using TCG (software emulation, slower)")
        return AccelChoice("tcg", "/dev/kvm is not usable", probed=False)
    verdict_file = cache / "accel.json"
    key = f"{_host_boot_id()} qemu-{qemu_version()}"
    try:
        cached = json.loads(verdict_file.read_text())
    except (OSError, ValueError):
        cached = {}
    if cached.get("key") == key:
        accel, reason = cached["accel"], cached["reason"]
        if accel == "tcg":
            log(f"warning: KVM is unusable on this host ({reason}, cached probe); using TCG")
        return AccelChoice(accel, f"{reason} (cached probe)", probed=False)
    ok, reason = probe_kvm(kernel_image, initramfs, run_dir, probe_timeout)
    accel = "kvm" if ok else "tcg"
    if not ok:
        log(f"warning: KVM is unusable on this host ({reason}); using TCG, timeouts scaled for it")
    verdict_file.write_text(json.dumps({"key": key, "accel": accel, "reason": reason}) + "\n")
    return AccelChoice(accel, reason, probed=True)
