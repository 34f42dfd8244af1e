"""One running QEMU: accelerator, console log, forwarded SSH port; stopped on every exit path.

It knows nothing of tests. QEMU runs on a pty owned by the lab (pexpect), so if the lab
itself dies, even by SIGKILL, the pty closes and QEMU gets SIGHUP and exits.

QEMU exiting before the ready marker is the kernel's failure (BootFailed) only if the guest
got to run: QEMU that refused to start (its own error line and nothing from the guest: no
memory, a missing file, the port taken, a sandbox it cannot install) is the host's
(QemuDidNotStart, an InfraError).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
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
_PORT_IN_USE = re.compile(r"Could not set up host forwarding rule")
# QEMU's own messages: "qemu-system-x86_64: ..." (error_report) or "qemu: ..." (the x86 loader's
# "qemu: could not open kernel file"), at the start of a line of the pty it shares with the guest.
_QEMU_LINE = re.compile(r"^(?:\S*/)?qemu(?:-system-[\w-]+)?: .*$", re.MULTILINE)
# Seccomp: no process spawning, no privilege changes, no obsolete syscalls, no scheduler/affinity calls.
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
SANDBOX_PROBE_TIMEOUT = 10.0


class BootFailed(Exception):
    """Init never came up: QEMU exited, or the init scripts reported a failure."""

    def __init__(self, reason: str, excerpt: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.excerpt = excerpt


class QemuDidNotStart(InfraError):
    """QEMU refused to start or died before the guest printed anything: the host's failure.
    reason is QEMU's own (first) line; qemu_lines are all it said."""

    def __init__(self, reason: str, excerpt: str = "", qemu_lines: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.excerpt = excerpt
        self.qemu_lines = qemu_lines


class PortTaken(QemuDidNotStart):
    """QEMU could not bind the forwarded SSH port: another process took it after free_port()."""


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
    sandbox: bool = False  # -sandbox SANDBOX: only where this QEMU supports it (sandbox_supported())
    # Snapshots (vm/snapshot.py): a boot that may be saved writes its own qcow2 over the rootfs
    # (overlay) and has a QMP monitor; a restored one opens the snapshot's disk with snapshot=on
    # and takes its state from the incoming socket.
    overlay: Path | None = None
    restore_disk: Path | None = None
    monitor: bool = False
    incoming: bool = False
    gdb_port: int | None = None  # QEMU's gdb stub on 127.0.0.1 (`lab boot --gdb`)


def _option_path(path: Path | str) -> str:
    """A path inside a QEMU option value: QEMU splits values at single commas, so each is doubled."""
    return str(path).replace(",", ",,")


def monitor_socket(sockets_dir: Path) -> Path:
    return sockets_dir / "qmp"


def incoming_socket(sockets_dir: Path) -> Path:
    return sockets_dir / "incoming"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def qemu_argv(spec: MachineSpec, ssh_port: int | None, sockets_dir: Path | None = None) -> list[str]:
    """The whole QEMU command line. Pure, so the security-relevant parts are unit-tested.
    sockets_dir holds the QMP and incoming-migration sockets (a short path: unix socket names
    are limited to 108 bytes)."""
    cpu = "host" if spec.accel == "kvm" else "max"
    accel = "kvm" if spec.accel == "kvm" else "tcg,thread=multi"
    argv = [
        QEMU,
        "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
        *(["-sandbox", SANDBOX] if spec.sandbox else []),
        "-machine", "q35", "-accel", accel, "-cpu", cpu,
        "-smp", str(spec.cpus), "-m", str(spec.memory_mb),
        "-serial", "stdio", "-monitor", "none",
        "-no-reboot",  # panic=-1 reboots at once; -no-reboot turns that into QEMU exiting
        "-kernel", str(spec.kernel_image), "-initrd", str(spec.initramfs),
        "-append", " ".join(filter(None, [BASE_CMDLINE, spec.extra_cmdline])),
    ]
    if spec.restore_disk is not None:
        # The disk as it was when the snapshot was saved, never written (snapshot=on) either.
        argv += ["-drive", f"file={_option_path(spec.restore_disk)},format=qcow2,if=none,id=root,snapshot=on",
                 "-device", "virtio-blk-pci,drive=root"]
    elif spec.overlay is not None:
        # This boot's own writes, over the untouched image: what the snapshot keeps as its disk.
        argv += ["-drive", f"file={_option_path(spec.overlay)},format=qcow2,if=none,id=root",
                 "-device", "virtio-blk-pci,drive=root"]
    elif spec.rootfs is not None:
        argv += [
            # snapshot=on: the shared image is never written; every boot starts clean.
            "-drive", f"file={_option_path(spec.rootfs)},format=raw,if=none,id=root,snapshot=on",
            "-device", "virtio-blk-pci,drive=root",
        ]
    if ssh_port is not None:
        argv += [
            # restrict=on: the guest reaches nothing, only the forwarded port reaches it.
            "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
            "-device", "virtio-net-pci,netdev=net0",
        ]
    if (spec.monitor or spec.incoming) and sockets_dir is None:
        raise ValueError("a monitor or an incoming migration needs a sockets directory")
    if spec.monitor and sockets_dir is not None:
        argv += ["-qmp", f"unix:{_option_path(monitor_socket(sockets_dir))},server=on,wait=off"]
    if spec.incoming and sockets_dir is not None:
        argv += ["-incoming", f"unix:{_option_path(incoming_socket(sockets_dir))}"]
    if spec.gdb_port is not None:
        # Loopback only, as the SSH forward: `-s` would listen on every interface.
        argv += ["-gdb", f"tcp:127.0.0.1:{spec.gdb_port}"]
    return argv


def qemu_version() -> str:
    if shutil.which(QEMU) is None:
        raise InfraError(f"{QEMU} is not installed (run `make setup`)")
    out = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"version (\S+)", out)
    return match[1] if match else out.strip()


_sandbox_verdicts: dict[tuple[str, str], bool] = {}


def sandbox_supported() -> bool:
    """Whether this QEMU runs under -sandbox SANDBOX (built with seccomp, and the kernel lets it
    install the filter): a machine-less QEMU started with it must quit cleanly when told to.
    Asked once per QEMU binary and version in this process (it takes ~50 ms)."""
    path = shutil.which(QEMU)
    if path is None:
        return False  # Machine.start reports the missing QEMU
    key = (os.path.realpath(path), qemu_version())
    if key not in _sandbox_verdicts:
        argv = [path, "-sandbox", SANDBOX, "-machine", "none", "-nodefaults", "-no-user-config",
                "-display", "none", "-monitor", "stdio"]
        try:
            done = subprocess.run(argv, input="quit\n", capture_output=True, text=True,
                                  timeout=SANDBOX_PROBE_TIMEOUT, check=False)
            _sandbox_verdicts[key] = done.returncode == 0
        except (OSError, subprocess.SubprocessError):
            _sandbox_verdicts[key] = False
    return _sandbox_verdicts[key]


def qemu_refusal(console_text: str, killed_by: int | None, excerpt: str = "") -> QemuDidNotStart | None:
    """QemuDidNotStart if QEMU exited before the guest printed a single line (QEMU said why, or a
    signal killed it), else None: the guest ran, so its end is the kernel's (BootFailed)."""
    qemu_lines = tuple(match.strip() for match in _QEMU_LINE.findall(console_text))
    guest_lines = [line for line in console_text.replace("\r", "\n").splitlines()
                   if line.strip() and not _QEMU_LINE.match(line)]
    if guest_lines or not (qemu_lines or killed_by is not None):
        return None
    if qemu_lines:
        # A warning ("host doesn't support requested feature") may come before the real error.
        errors = [line for line in qemu_lines if ": warning: " not in line]
        reason = (errors or list(qemu_lines))[0]
    else:
        reason = f"QEMU was killed by signal {killed_by} before the guest printed anything"
    kind = PortTaken if _PORT_IN_USE.search(console_text) else QemuDidNotStart
    return kind(reason, excerpt, qemu_lines)


@dataclass
class Machine:
    spec: MachineSpec
    ssh_port: int | None = None
    console: Console | None = None
    _child: pexpect.spawn | None = field(default=None, repr=False)
    started_at: float = 0.0
    sockets_dir: Path | None = None  # the QMP and incoming sockets (a private temporary directory)
    # How this guest came up, for the record: {"mode": "cold"} or what vm/snapshot.py says.
    boot: dict[str, object] = field(default_factory=lambda: {"mode": "cold"})

    @property
    def monitor_socket(self) -> Path:
        assert self.sockets_dir is not None
        return monitor_socket(self.sockets_dir)

    @property
    def incoming_socket(self) -> Path:
        assert self.sockets_dir is not None
        return incoming_socket(self.sockets_dir)

    @property
    def console_log(self) -> Path:
        return self.spec.run_dir / self.spec.console_name

    def start(self, with_network: bool = True) -> None:
        if shutil.which(QEMU) is None:
            raise InfraError(f"{QEMU} is not installed (run `make setup`)")
        self.spec.run_dir.mkdir(parents=True, exist_ok=True)
        self.ssh_port = free_port() if with_network else None
        if (self.spec.monitor or self.spec.incoming) and self.sockets_dir is None:
            self.sockets_dir = Path(tempfile.mkdtemp(prefix="lab-qemu-"))
        argv = qemu_argv(self.spec, self.ssh_port, self.sockets_dir)
        (self.spec.run_dir / layout.QEMU_CMDLINE).write_text(shlex.join(argv) + "\n")
        self.started_at = time.monotonic()
        try:
            self._child = pexpect.spawn(argv[0], argv[1:], timeout=None, echo=False)
        except (pexpect.ExceptionPexpect, OSError) as exc:  # e.g. a QEMU whose interpreter is gone
            raise QemuDidNotStart(f"{QEMU} could not be started: {exc}") from exc
        self.console = Console(self._child, self.console_log)

    def wait_for_marker(self, marker: str, timeout: float, silence: float | None = None) -> None:
        """Wait for an init marker; BootFailed/BootTimedOut/QemuDidNotStart carry a console excerpt."""
        assert self.console is not None
        # A marker counts once its line is complete: the console arrives in chunks, and what the
        # line goes on to say (the ready line's release) belongs to it, in a snapshot's console too.
        wanted = re.compile(rb"(?:" + re.escape(marker.encode()) + rb"|" + re.escape(guestinit.FAILURE_MARKER.encode())
                            + rb")[^\r\n]*[\r\n]")
        try:
            match = self.console.wait_for(wanted, timeout, silence)
        except ConsoleClosed:
            self.console.wait_closed(2)
            refused = qemu_refusal(self.console.text(), self._killed_by(), self.console.excerpt())
            if refused is not None:
                raise refused from None
            raise BootFailed("QEMU exited before init was ready", self.console.excerpt()) from None
        except ConsoleTimeout as exc:
            raise BootTimedOut(str(exc), self.console.excerpt()) from None
        if match[0].startswith(guestinit.FAILURE_MARKER.encode()):
            raise BootFailed(match[0].decode(errors="replace").strip(), self.console.excerpt())

    def _killed_by(self, timeout: float = 2.0) -> int | None:
        """The signal that ended QEMU, once it has exited (the pty may close a moment before)."""
        assert self._child is not None
        deadline = time.monotonic() + timeout
        while self._child.isalive():
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        return self._child.signalstatus

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
        if self.sockets_dir is not None:
            shutil.rmtree(self.sockets_dir, ignore_errors=True)

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
