"""Capture the golden console logs in tests/golden/console/ from real guests.

Not part of `make test` (the logs are committed); run it again to refresh them:

    apt-get install linux-headers-$(release)   # to build labsplat.ko for the 6.1 kernel
    .venv/bin/python tests/golden/capture.py [--kernel debian:6.1] [KIND ...]

Each kind boots a fresh guest, makes the kernel print one kind of report (sysrq,
fsfreeze, the reboot syscall, or the labsplat test module), and keeps the whole console.

The KASAN, UBSAN and lockdep kinds need a debug kernel built by the lab, where LKDTM
(built in) provokes the reports through debugfs:

    .venv/bin/lab kernel build --source debian:6.1 --config kernel-configs/debug.config \
        --patch kernel-configs/patches/debug-splats          # prints build:<id>
    .venv/bin/python tests/golden/capture.py --kernel build:<id> [kasan ubsan lockdep]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lab.kernel import kconfig
from lab.run import guest as guest_run  # noqa: E402
from lab.kernel.spec import parse_kernel_spec  # noqa: E402
from lab.core.paths import cache_dir  # noqa: E402
from lab.core.timeouts import Timeouts  # noqa: E402
from lab.target.base import CommandTimedOut, ConnectionLost  # noqa: E402
from lab.guest import assets
from lab.vm.boot import booted
from lab.guest.assets import Prepared

HERE = Path(__file__).resolve().parent
MODULE = "/root/labsplat.ko"


def lkdtm(crashtype: str) -> str:
    """Provoke an LKDTM crash type (CONFIG_LKDTM=y) through debugfs."""
    return ("grep -q ' /sys/kernel/debug debugfs ' /proc/mounts || mount -t debugfs debugfs /sys/kernel/debug; "
            f"echo {crashtype} > /sys/kernel/debug/provoke-crash/DIRECT")


# kind -> shell command run in the guest to provoke it
KINDS: dict[str, str] = {
    "clean": "true",
    "panic": "echo c > /proc/sysrq-trigger",
    "warning": f"insmod {MODULE} kind=warn",
    "bug": f"insmod {MODULE} kind=bug",
    "null-deref": f"insmod {MODULE} kind=null",
    "gpf": f"insmod {MODULE} kind=gpf",
    "soft-lockup": f"echo 1 > /proc/sys/kernel/watchdog_thresh; insmod {MODULE} kind=softlockup",
    "rcu-stall": ("echo 60 > /proc/sys/kernel/watchdog_thresh; "
                  "echo 3 > /sys/module/rcupdate/parameters/rcu_cpu_stall_timeout; "
                  f"insmod {MODULE} kind=rcustall"),
    "hung-task": ("echo 2 > /proc/sys/kernel/hung_task_timeout_secs; fsfreeze -f /; "
                  "(touch /frozen-write &); sleep 10; fsfreeze -u /"),
    "reboot": "python3 -c 'import ctypes; ctypes.CDLL(None).reboot(0x01234567)'",
    # kernel-configs/debug.config + kernel-configs/patches/debug-splats (LOCKDEP_AB_BA)
    "kasan": lkdtm("SLAB_LINEAR_OVERFLOW"),  # a 4-byte write just past a 1020-byte kmalloc
    "ubsan": lkdtm("ARRAY_BOUNDS"),  # an index one past a fixed-size array member
    "lockdep": lkdtm("LOCKDEP_AB_BA"),  # two mutexes taken A->B, then B->A
}
NEEDS_MODULE = {"warning", "bug", "null-deref", "gpf", "soft-lockup", "rcu-stall"}
# kind -> the config symbols its kernel must have
NEEDS_DEBUG_KERNEL = {
    "kasan": ("CONFIG_LKDTM", "CONFIG_KASAN"),
    "ubsan": ("CONFIG_LKDTM", "CONFIG_UBSAN_BOUNDS", "CONFIG_UBSAN_SANITIZE_ALL"),
    "lockdep": ("CONFIG_LKDTM", "CONFIG_PROVE_LOCKING"),
}
DEBUG_BUILD = ("lab kernel build --source debian:6.1 --config kernel-configs/debug.config "
               "--patch kernel-configs/patches/debug-splats")


def kernel_config(prepared: Prepared) -> dict[str, str]:
    config = prepared.kernel.config
    return kconfig.parse_config(config.read_text()) if config and config.is_file() else {}


def default_kinds(config: dict[str, str]) -> list[str]:
    """A debug kernel (LKDTM built in) captures the debug kinds; any other kernel the rest."""
    if config.get("CONFIG_LKDTM") == "y":
        return [kind for kind, needs in NEEDS_DEBUG_KERNEL.items() if all(config.get(s) == "y" for s in needs)]
    return [kind for kind in KINDS if kind not in NEEDS_DEBUG_KERNEL]


def check_debug_kernel(kinds: list[str], config: dict[str, str]) -> None:
    for kind in kinds:
        missing = [s for s in NEEDS_DEBUG_KERNEL.get(kind, ()) if config.get(s) != "y"]
        if missing:
            raise SystemExit(f"{kind} needs a debug kernel ({', '.join(missing)} not set): "
                             f"{DEBUG_BUILD}, then --kernel build:<id>")


def build_module(release: str, workdir: Path) -> Path:
    headers = Path(f"/usr/src/linux-headers-{release}")
    if not headers.is_dir():
        raise SystemExit(f"no {headers}: apt-get install linux-headers-{release}")
    source = workdir / "labsplat"
    shutil.copytree(HERE / "labsplat", source)
    subprocess.run(["make", "-s", "-C", str(headers), f"M={source}", "modules"], check=True)
    return source / "labsplat.ko"


def capture(prepared: Prepared, kind: str, module: Path | None, out_dir: Path, workdir: Path) -> Path:
    run_dir = workdir / kind
    with booted(prepared, "tcg", run_dir, Timeouts().scaled_for("tcg")) as (machine, target):
        if module is not None:
            target.put(module, MODULE)
        try:
            target.run(KINDS[kind], timeout=90)
            time.sleep(3)  # let the report finish printing
        except (ConnectionLost, CommandTimedOut):
            pass  # the kinds that take the kernel down end the connection
        machine.console.wait_closed(5) if machine.console else None
    out = out_dir / f"{kind}-{prepared.kernel.release}.log"
    out.write_bytes((run_dir / "console.log").read_bytes())
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel", default="debian:6.1", help="debian:X.Y, build:<id> or a bzImage path")
    parser.add_argument("kinds", nargs="*", metavar="KIND",
                        help=f"default: what the kernel can provoke; one of {', '.join(KINDS)}")
    args = parser.parse_args()
    if unknown := [kind for kind in args.kinds if kind not in KINDS]:
        parser.error(f"unknown kind {unknown[0]!r}: one of {', '.join(KINDS)}")
    prepared = assets.prepare(parse_kernel_spec(args.kernel), cache_dir(), print)
    config = kernel_config(prepared)
    kinds = args.kinds or default_kinds(config)
    check_debug_kernel(kinds, config)
    out_dir = HERE / "console"
    out_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        module = build_module(prepared.kernel.release, workdir) if NEEDS_MODULE & set(kinds) else None
        for kind in kinds:
            print(f"{kind}: {capture(prepared, kind, module if kind in NEEDS_MODULE else None, out_dir, workdir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
