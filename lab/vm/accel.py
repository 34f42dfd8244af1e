"""Choose the accelerator by probing: KVM only if a short boot really reaches init.

/dev/kvm existing proves nothing (on some hosts it is a paravirtual flavour on which stock
kernels hang after "Probing EDD", or QEMU aborts in kvm_buf_set_msrs), so the lab boots the
kernel to the initramfs init once under KVM and uses TCG otherwise.

Whose fault a failed probe is decides how far its verdict reaches (cache/accel.json, for one
host boot and QEMU version):
- the host's: QEMU could not run a KVM guest at all and said so about KVM (KVM_CREATE_VM,
  "failed to initialize kvm", the kvm_buf_set_msrs assertion) before the guest printed a line.
  No kernel can do better, so the verdict is host-wide: no kernel is probed again.
- a kernel's: the guest ran under KVM and then hung or died. Another kernel may well boot, so
  the verdict (like a success) is kept for that kernel image only, keyed by its sha256 (a
  rebuilt image at the same path is a different kernel); each new kernel is probed once.
- neither: QEMU refused to start for a reason that is not KVM's (a missing file, no memory).
  This run uses TCG, whose boot then reports the real problem; nothing is cached.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..core.errors import InfraError
from ..core.files import write_json_atomic
from ..core.log import Log
from ..guest import init as guestinit
from .machine import (
    BootFailed,
    BootTimedOut,
    Machine,
    MachineSpec,
    QemuDidNotStart,
    qemu_version,
    sandbox_supported,
)

PROBE_TIMEOUT = 20.0  # a KVM boot to the initramfs takes ~1 s; a hung one never gets there
KERNELS_KEPT = 32  # per-kernel verdicts kept in accel.json, newest last

Scope = Literal["host", "kernel", "none"]


@dataclass(frozen=True)
class AccelChoice:
    accel: str  # "kvm" or "tcg"
    reason: str
    probed: bool  # False: forced by the user or taken from the cache


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str
    scope: Scope  # how far the verdict holds: the whole host, this kernel image, or this run only


def _host_boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def kvm_usable_device() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def kernel_identity(kernel_image: Path) -> str | None:
    """The image's sha256 (~10 ms for a bzImage), or None if it cannot be read."""
    try:
        return "sha256:" + hashlib.sha256(kernel_image.read_bytes()).hexdigest()
    except OSError:
        return None


def probe_kvm(kernel_image: Path, initramfs: Path, run_dir: Path, timeout: float = PROBE_TIMEOUT) -> ProbeResult:
    spec = MachineSpec(kernel_image, initramfs, None, "kvm", run_dir, cpus=1, memory_mb=512,
                       extra_cmdline="lab.accel_probe", console_name="kvm-probe-console.log",
                       sandbox=sandbox_supported())
    with Machine(spec) as machine:
        machine.start(with_network=False)
        try:
            machine.wait_for_marker(guestinit.PROBE_MARKER, timeout)
        except BootTimedOut:
            return ProbeResult(False, f"a KVM boot did not reach init within {timeout:.0f} s", "kernel")
        except BootFailed as exc:
            last = exc.excerpt.strip().splitlines()[-1:] or [""]
            return ProbeResult(False, f"a KVM boot failed: {exc.reason}: {last[0].strip()}", "kernel")
        except QemuDidNotStart as exc:
            about_kvm = any("kvm" in line.lower() for line in exc.qemu_lines)
            return ProbeResult(False, f"QEMU could not start a KVM guest: {exc.reason}",
                               "host" if about_kvm else "none")
    return ProbeResult(True, "a KVM boot reached init", "kernel")


def _verdict(entry: object) -> tuple[str, str] | None:
    if isinstance(entry, dict) and entry.get("accel") in ("kvm", "tcg") and isinstance(entry.get("reason"), str):
        return entry["accel"], entry["reason"]
    return None


def _load(verdict_file: Path, host_key: str) -> dict:
    """The cache for this host boot and QEMU; anything unreadable, stale or malformed is empty."""
    try:
        cached = json.loads(verdict_file.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(cached, dict) or cached.get("host_key") != host_key:
        return {}
    if not isinstance(cached.get("kernels"), dict):
        cached["kernels"] = {}
    return cached


def _store(verdict_file: Path, cached: dict, host_key: str, result: ProbeResult, kernel: str | None,
           accel: str) -> None:
    entry = {"accel": accel, "reason": result.reason}
    kernels = {k: v for k, v in cached.get("kernels", {}).items() if _verdict(v)}
    data: dict[str, object] = {"host_key": host_key, "host": cached.get("host") if _verdict(cached.get("host")) else None}
    if result.scope == "host":
        data["host"] = entry
    elif result.scope == "kernel" and kernel is not None:
        kernels.pop(kernel, None)
        kernels[kernel] = entry
    else:
        return
    data["kernels"] = dict(list(kernels.items())[-KERNELS_KEPT:])
    try:
        write_json_atomic(verdict_file, data)
    except (OSError, InfraError):
        pass  # a cache that cannot be written costs a probe next time, nothing more


def choose(requested: str, kernel_image: Path, initramfs: Path, run_dir: Path, cache: Path, log: Log,
           probe_timeout: float = PROBE_TIMEOUT) -> AccelChoice:
    """requested: auto, kvm or tcg."""
    if requested in ("kvm", "tcg"):
        return AccelChoice(requested, f"--accel {requested}", probed=False)
    if not kvm_usable_device():
        log("warning: /dev/kvm is not usable; using TCG (software emulation, slower)")
        return AccelChoice("tcg", "/dev/kvm is not usable", probed=False)
    verdict_file = cache / "accel.json"
    host_key = f"{_host_boot_id()} qemu-{qemu_version()}"
    cached = _load(verdict_file, host_key)
    kernel = kernel_identity(kernel_image)
    known = _verdict(cached.get("host")) or (_verdict(cached.get("kernels", {}).get(kernel)) if kernel else None)
    if known:
        accel, reason = known
        if accel == "tcg":
            log(f"warning: KVM is unusable here ({reason}, cached probe); using TCG")
        return AccelChoice(accel, f"{reason} (cached probe)", probed=False)
    result = probe_kvm(kernel_image, initramfs, run_dir, probe_timeout)
    accel = "kvm" if result.ok else "tcg"
    if result.scope == "none":
        log(f"warning: the KVM probe failed ({result.reason}); using TCG for this run")
    elif not result.ok:
        whose = "on this host" if result.scope == "host" else "for this kernel"
        log(f"warning: KVM is unusable {whose} ({result.reason}); using TCG, timeouts scaled for it")
    _store(verdict_file, cached, host_key, result, kernel, accel)
    return AccelChoice(accel, result.reason, probed=True)
