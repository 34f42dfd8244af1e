"""The whole run: kernel -> image -> machine -> target -> runner -> run record -> outcome."""
from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from ..vm import accel
from ..results import kernel_log as consolescan
from ..guest import image
from ..guest import initramfs
from ..kernel import acquire as kernel
from ..guest import keys
from . import reproducer
from . import suites as runner
from ..core.errors import InfraError
from ..guest.init import READY_MARKER
from ..kernel.acquire import Kernel
from ..kernel.spec import KernelSpec
from ..vm.machine import BootFailed, BootTimedOut, Machine, MachineSpec, qemu_version
from ..core.outcome import Outcome
from ..results.model import SuiteResult
from ..results.record import RunRecord
from ..core.timeouts import Timeouts
from ..target.base import CommandTimedOut, ConnectionLost
from ..target.ssh import SshTarget

Log = Callable[[str], None]
PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class Prepared:
    kernel: Kernel
    image: image.Image
    initramfs: Path
    keys: keys.LabKeys
    seconds: dict[str, float]  # how long each preparation stage took (near 0 when cached)


@dataclass
class RunRequest:
    kernel: KernelSpec
    kernel_label: str
    suites: list[str]
    accel: str = "auto"  # auto | kvm | tcg
    results_root: Path = Path("results")
    suite_timeout: float | None = None
    extra_cmdline: str = ""
    timeouts: Timeouts = field(default_factory=Timeouts)
    tree: runner.TestTree | None = None  # None: guest-tests/ and its suites
    boot_timeout: float | None = None
    run_timeout: float | None = None  # the whole run, on top of each stage's own bound
    ssh_timeout: float | None = None
    command_timeout: float | None = None
    probe_timeout: float | None = None  # None: accel.PROBE_TIMEOUT
    splats: consolescan.SplatPolicy = field(default_factory=consolescan.SplatPolicy)


@dataclass
class RunOutcome:
    outcome: Outcome
    reason: str
    record: RunRecord
    suites: list[SuiteResult]


def prepare(spec: KernelSpec, cache: Path, log: Log) -> Prepared:
    """Everything a boot needs, from the cache where possible."""
    seconds: dict[str, float] = {}
    started = time.monotonic()
    lab_keys = keys.ensure_keys(cache)
    the_kernel = kernel.fetch(spec, cache, log)
    seconds["kernel"] = round(time.monotonic() - started, 3)
    started = time.monotonic()
    the_image = image.build(image.default_recipe(lab_keys), cache, log)
    seconds["image"] = round(time.monotonic() - started, 3)
    started = time.monotonic()
    the_initramfs = initramfs.build(the_kernel, cache)
    seconds["initramfs"] = round(time.monotonic() - started, 3)
    return Prepared(the_kernel, the_image, the_initramfs, lab_keys, seconds)


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


class RunTimedOut(Exception):
    """The whole run exceeded --run-timeout."""


@contextmanager
def run_deadline(seconds: float | None) -> Iterator[None]:
    """Raise RunTimedOut in the main thread when the run has taken `seconds`.

    A SIGALRM timer interrupts whatever the run waits on; the context managers on the way out
    still stop QEMU. Signals reach only the main thread, which is where `lab run` runs.
    """
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise RunTimedOut(f"the whole run exceeded {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_suites_then_dmesg(target: runner.Target, names: list[str], tree: runner.TestTree | None, timeouts: Timeouts,
                          record: RunRecord, suites: list[SuiteResult], on_suite: Callable[[SuiteResult], None],
                          log: Log, root: str = runner.REMOTE_ROOT) -> None:
    """Each suite in turn, saved and reported as it ends (into suites); a lost connection raises
    ConnectionLost, a timed-out suite ends the series; then the kernel log into dmesg.txt."""
    for name in names:
        with record.stage(f"suite:{name}"):
            result = runner.run_suite(target, name, record.directory, timeouts.suite, tree, root=root)
        suites.append(result)
        record.add_suite(result)  # saved before anything else can go wrong
        on_suite(result)
        if result.lost:
            raise ConnectionLost(result.error)
        if result.error.startswith("timed out"):
            break
    # A machine that just hung a suite may not answer at all: ask briefly then.
    dmesg_timeout = min(timeouts.command, 15.0) if any(s.error for s in suites) else timeouts.command
    try:
        runner.collect_dmesg(target, record.directory, dmesg_timeout)
    except CommandTimedOut as exc:
        log(f"warning: no dmesg: {exc}")


def classify_kernel_log(text: str, all_passed: bool,
                        policy: consolescan.SplatPolicy = consolescan.SplatPolicy()) -> tuple[Outcome, str, str] | None:
    """A crash in the kernel's log (console or dmesg) decides the run; a warning only a green one."""
    findings = consolescan.scan(text, policy)
    crashes = [f for f in findings if f.kind == "crash"]
    if crashes:
        return Outcome.KERNEL_CRASHED, crashes[0].title, consolescan.excerpt_around(text, crashes[0].line)
    warnings = [f for f in findings if f.kind == "warning"]
    if warnings and all_passed:
        return Outcome.KERNEL_WARNED, warnings[0].title, consolescan.excerpt_around(text, warnings[0].line)
    return None


def verdict(suites: list[SuiteResult], kernel_log: str, policy: consolescan.SplatPolicy) -> tuple[Outcome, str, str]:
    """The outcome of a run whose suites all ended: the kernel's log first, then timeouts, then failures."""
    all_passed = all(s.ok for s in suites)
    classified = classify_kernel_log(kernel_log, all_passed, policy)
    if classified:
        return classified
    timed_out = [s for s in suites if s.error.startswith("timed out")]
    if timed_out:
        return Outcome.TIMED_OUT, f"suite {timed_out[0].name}: {timed_out[0].error}", ""
    if not all_passed:
        return Outcome.FAILED, f"failures in suite(s): {', '.join(s.name for s in suites if not s.ok)}", ""
    return Outcome.PASSED, "every suite passed", ""


def execute(request: RunRequest, prepared: Prepared, cache: Path, log: Log,
            on_suite: Callable[[SuiteResult], None]) -> RunOutcome:
    """Run the suites on a prepared kernel; the record is kept whatever happens."""
    record = RunRecord.create(request.results_root, prepared.kernel.release, {
        "kernel": request.kernel_label, "suites": request.suites, "accel": request.accel,
    })
    kernel_identity = {"release": prepared.kernel.release, "image": str(prepared.kernel.image),
                       **prepared.kernel.identity}
    record.set("kernel", kernel_identity)
    record.set("image", {"path": str(prepared.image.path), "digest": prepared.image.digest})
    record.set("prepare_seconds", prepared.seconds)
    reproducer.attach(record, reproducer.run_argv(request), request.results_root, cache, kernel_identity,
                      prepared.image.digest, reproducer.caveats(request))
    run_dir = record.directory
    suites: list[SuiteResult] = []
    machine: Machine | None = None

    def finish(outcome: Outcome, reason: str, excerpt: str = "") -> RunOutcome:
        record.finish(outcome, reason, excerpt)
        return RunOutcome(outcome, reason, record, suites)

    try:
        with run_deadline(request.run_timeout):
            record.set("qemu_version", qemu_version())
            with record.stage("accelerator"):
                choice = accel.choose(request.accel, prepared.kernel.image, prepared.initramfs, run_dir, cache, log,
                                      request.probe_timeout or accel.PROBE_TIMEOUT)
            record.set("accelerator", {"name": choice.accel, "reason": choice.reason, "probed": choice.probed})
            timeouts = request.timeouts.scaled_for(choice.accel).with_suite(request.suite_timeout)
            overrides = {"boot": request.boot_timeout, "ssh": request.ssh_timeout, "command": request.command_timeout}
            timeouts = replace(timeouts, **{k: v for k, v in overrides.items() if v is not None})
            record.set("timeouts", timeouts.__dict__)
            boot_started = time.monotonic()
            with booted(prepared, choice.accel, run_dir, timeouts, request.extra_cmdline) as (m, target):
                machine = m
                record.set("boot_to_ssh_seconds", round(time.monotonic() - boot_started, 3))
                record.set("ssh_port", m.ssh_port)
                with record.stage("ship"):
                    runner.ship(target, timeouts.command, request.tree)
                run_suites_then_dmesg(target, request.suites, request.tree, timeouts, record, suites, on_suite, log)
    except RunTimedOut as exc:
        return finish(Outcome.TIMED_OUT, str(exc), machine.console.excerpt() if machine and machine.console else "")
    except BootFailed as exc:
        return finish(Outcome.BOOT_FAILED, exc.reason, exc.excerpt)
    except BootTimedOut as exc:
        return finish(Outcome.TIMED_OUT, f"boot: {exc.reason}", exc.excerpt)
    except (ConnectionLost, CommandTimedOut) as exc:
        text = (run_dir / "console.log").read_text(errors="replace") if (run_dir / "console.log").exists() else ""
        crash = classify_kernel_log(text, all_passed=False, policy=request.splats)
        if crash and crash[0] is Outcome.KERNEL_CRASHED:
            return finish(*crash)
        excerpt = machine.console.excerpt() if machine and machine.console else ""
        if isinstance(exc, CommandTimedOut):  # ship or another housekeeping command hung
            return finish(Outcome.TIMED_OUT, str(exc), excerpt)
        return finish(Outcome.LOST_CONNECTION, str(exc), excerpt)
    except InfraError as exc:
        return finish(Outcome.INFRA_ERROR, str(exc))
    except KeyboardInterrupt:
        finish(Outcome.INTERRUPTED, "interrupted (SIGINT/SIGTERM)")
        raise
    return finish(*verdict(suites, (run_dir / "console.log").read_text(errors="replace"), request.splats))
