"""One running QEMU: accelerator, console log, forwarded SSH port; stopped on every exit path.

It knows nothing of tests. QEMU runs on a pty owned by the lab (pexpect), so if the lab
itself dies, even by SIGKILL, the pty closes and QEMU gets SIGHUP and exits.
"""
from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import pexpect

from ..core.errors import InfraError
from ..guest import init as guestinit
from ..results import layout
from .console import Console, ConsoleClosed, ConsoleTimeout

QEMU = "qemu-system-x86_64"
BASE_CMDLINE = "console=ttyS0,115200 panic=-1 net.ifnames=0"
_PORT_IN_USE = re.compile(rb"Could not set up host forwarding rule")


class BootFailed(Exception):
    """Init never came up: QEMU exited, or the init scripts reported a failure."""

    def __init__(self, reason: str, excerpt: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.excerpt = excerpt


class BootTimedOut(Exception):
    def __init__(self, reason: str, excerpt: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.excerpt = excerpt


@dataclass(frozen=True)
class MachineSpec:
    kernel_image: Path
    initramfs: Path
    rootfs: Path | None  # None: no disk, no network (the accelerator probe)
    accel: str  # "kvm" or "tcg"
    run_dir: Path
    cpus: int = 2
    memory_mb: int = 1024
    extra_cmdline: str = ""
    console_name: str = layout.CONSOLE


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def qemu_argv(spec: MachineSpec, ssh_port: int | None) -> list[str]:
    """The whole QEMU command line. Pure, so the security-relevant parts are unit-tested."""
    cpu = "host" if spec.accel == "kvm" else "max"
    accel = "kvm" if spec.accel == "kvm" else "tcg,thread=multi"
    argv = [
        QEMU,
        "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
        "-machine", "q35", "-accel", accel, "-cpu", cpu,
        "-smp", str(spec.cpus), "-m", str(spec.memory_mb),
        "-serial", "stdio", "-monitor", "none",
        "-no-reboot",  # panic=-1 reboots at once; -no-reboot turns that into QEMU exiting
        "-kernel", str(spec.kernel_image), "-initrd", str(spec.initramfs),
        "-append", " ".join(filter(None, [BASE_CMDLINE, spec.extra_cmdline])),
    ]
    if spec.rootfs is not None:
        argv += [
            # snapshot=on: the shared image is never written; every boot starts clean.
            # QEMU splits option values at single commas; a comma in the path is written twice.
            "-drive", f"file={str(spec.rootfs).replace(',', ',,')},format=raw,if=none,id=root,snapshot=on",
            "-device", "virtio-blk-pci,drive=root",
        ]
    if ssh_port is not None:
        argv += [
            # restrict=on: the guest reaches nothing, only the forwarded port reaches it.
            "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
            "-device", "virtio-net-pci,netdev=net0",
        ]
    return argv


def qemu_version() -> str:
    if shutil.which(QEMU) is None:
        raise InfraError(f"{QEMU} is not installed (run `make setup`)")
    out = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"version (\S+)", out)
    return match[1] if match else out.strip()


@dataclass
class Machine:
    spec: MachineSpec
    ssh_port: int | None = None
    console: Console | None = None
    _child: pexpect.spawn | None = field(default=None, repr=False)
    started_at: float = 0.0

    @property
    def console_log(self) -> Path:
        return self.spec.run_dir / self.spec.console_name

    def start(self, with_network: bool = True) -> None:
        if shutil.which(QEMU) is None:
            raise InfraError(f"{QEMU} is not installed (run `make setup`)")
        self.spec.run_dir.mkdir(parents=True, exist_ok=True)
        self.ssh_port = free_port() if with_network else None
        argv = qemu_argv(self.spec, self.ssh_port)
        (self.spec.run_dir / layout.QEMU_CMDLINE).write_text(shlex.join(argv) + "\n")
        self.started_at = time.monotonic()
        self._child = pexpect.spawn(argv[0], argv[1:], timeout=None, echo=False)
        self.console = Console(self._child, self.console_log)

    def wait_for_marker(self, marker: str, timeout: float, silence: float | None = None) -> None:
        """Wait for an init marker; BootFailed/BootTimedOut carry a console excerpt."""
        assert self.console is not None
        # A failure line counts once it is complete: the console arrives in chunks.
        wanted = re.compile(re.escape(marker.encode()) + rb"|" + re.escape(guestinit.FAILURE_MARKER.encode())
                            + rb"[^\r\n]*[\r\n]")
        try:
            match = self.console.wait_for(wanted, timeout, silence)
        except ConsoleClosed:
            self.console.wait_closed(2)
            text = self.console.text().encode()
            reason = "QEMU could not forward the SSH port" if _PORT_IN_USE.search(text) else "QEMU exited before init was ready"
            raise BootFailed(reason, self.console.excerpt()) from None
        except ConsoleTimeout as exc:
            raise BootTimedOut(str(exc), self.console.excerpt()) from None
        if match[0].startswith(guestinit.FAILURE_MARKER.encode()):
            raise BootFailed(match[0].decode(errors="replace").strip(), self.console.excerpt())

    def alive(self) -> bool:
        return self._child is not None and self._child.isalive()

    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def stop(self) -> None:
        """Stop QEMU for sure: SIGHUP/SIGINT, then SIGKILL (pexpect escalates)."""
        if self._child is not None:
            if self._child.isalive():
                self._child.terminate(force=True)
            try:
                self._child.close(force=True)
            except Exception:  # noqa: BLE001 - closing must never mask the real outcome
                pass
        if self.console is not None:
            self.console.close()

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
