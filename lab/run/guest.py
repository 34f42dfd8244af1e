"""A run in a QEMU guest: kernel -> accelerator -> boot -> ship -> suites -> dmesg -> verdict,
in the one run lifecycle (lifecycle.conduct); the record is kept whatever happens."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..core.errors import InfraError
from ..core.log import Log
from ..core.outcome import Verdict
from ..core.timeouts import Timeouts
from ..coverage import collect
from ..coverage.summary import headline
from ..coverage.tracing import SuiteTraces
from ..guest.assets import Prepared
from ..kernel import profiling
from ..kernel.build import builds_dir
from ..results import layout
from ..results.kernel_log import KernelLog
from ..results.model import SuiteResult
from ..results.record import RunRecord
from ..target.base import CommandTimedOut, ConnectionLost, Target, TransferRefused
from ..vm import accel
from ..vm.boot import booted
from ..vm.machine import Machine, qemu_version
from . import bytecode, cpus, reproducer
from . import suites as suite_runner
from .lifecycle import RunOutcome, conduct, run_suites_then_dmesg
from .request import RunRequest
from .verdict import Evidence, verdict


def run_timeouts(request: RunRequest, accel_name: str) -> Timeouts:
    """The request's bounds, scaled for the accelerator, with the ones the user gave on top."""
    timeouts = request.timeouts.scaled_for(accel_name).with_suite(request.suite_timeout)
    overrides = {"boot": request.boot_timeout, "ssh": request.ssh_timeout, "command": request.command_timeout}
    return replace(timeouts, **{k: v for k, v in overrides.items() if v is not None})


def _console_text(run_dir: Path) -> str:
    console = run_dir / layout.CONSOLE
    return console.read_text(errors="replace") if console.exists() else ""


def _kernel_logs(run_dir: Path) -> list[KernelLog]:
    """The console, then dmesg.txt: the whole ring buffer of this boot, with the lines the
    console's loglevel kept off the console (`quiet` hides every WARNING)."""
    dmesg = run_dir / layout.DMESG
    return [KernelLog(layout.CONSOLE, _console_text(run_dir)),
            KernelLog(layout.DMESG, dmesg.read_text(errors="replace") if dmesg.exists() else "")]


def keep_bytecode(target: Target, cache: Path, key: str, timeout: float, record: RunRecord, log: Log) -> None:
    """What the guest compiled, for the next run; only an optimisation, so a failure is a warning."""
    try:
        with record.stage("bytecode"):
            kept = bytecode.keep(target, cache, key, timeout)
    except (CommandTimedOut, ConnectionLost, TransferRefused, InfraError) as exc:
        log(f"warning: the guest's bytecode was not kept for the next run: {exc}")
        return
    record.update(bytecode={"restored": False, "kept": kept})


def coverage_material(cache: Path, prepared: Prepared) -> Path | None:
    """The build's notes and sources a coverage run reads its counters with; None: it has none."""
    return profiling.material(builds_dir(cache) / str(prepared.kernel.identity.get("build_id")))


def coverage_stage(record: RunRecord, names: list[str], prepared: Prepared, material: Path | None,
                   traces: SuiteTraces | None, log: Log) -> None:
    """The suites' gcov counters into coverage.json and the HTML report (the suites' traces made
    as they ended, by `traces`); a run whose counters cannot be read keeps its suites' outcomes and
    says why it has no coverage."""
    try:
        if material is None:
            raise InfraError(f"{prepared.kernel.release} has no coverage notes in the build cache")
        with record.stage("coverage"):
            traced = traces.finished() if traces is not None else {}
            data = collect.analyse(record.directory, material, names, f"kernel/bpf coverage: {prepared.kernel.release}",
                                   traced)
    except InfraError as exc:
        log(f"warning: no coverage: {exc}")
        record.warn(f"no coverage: {exc}")
        record.update(coverage={"error": str(exc)})
        return
    record.update(coverage={"summary": headline(data), "report": str(data["html"])})


def execute(request: RunRequest, prepared: Prepared, cache: Path, log: Log,
            on_suite: Callable[[SuiteResult], None]) -> RunOutcome:
    """Run the suites on a prepared kernel."""
    record = RunRecord.create(request.results_root, prepared.kernel.release, {
        "kernel": request.kernel_label, "suites": request.suites, "accel": request.accel,
    })
    kernel_identity = {"release": prepared.kernel.release, "image": str(prepared.kernel.image),
                       **prepared.kernel.identity}
    record.update(kernel=kernel_identity, image={"path": str(prepared.image.path), "digest": prepared.image.digest},
                  prepare_seconds=prepared.seconds)
    reproducer.attach(record, reproducer.run_argv(request, kernel_identity), request.results_root, cache, kernel_identity,
                      prepared.image.digest, reproducer.caveats(request))
    run_dir = record.directory
    machine: Machine | None = None
    material = coverage_material(cache, prepared) if request.coverage else None
    traces = SuiteTraces(run_dir, material) if material is not None else None

    def suite_ended(result: SuiteResult) -> None:
        if traces is not None:
            traces.submit(result.name)  # traced while the next suite runs
        on_suite(result)

    def stages(suites: list[SuiteResult]) -> Verdict:
        nonlocal machine
        record.update(qemu_version=qemu_version())
        with record.stage("accelerator"):
            choice = accel.choose(request.accel, prepared.kernel.image, prepared.initramfs, run_dir, cache, log,
                                  request.probe_timeout or accel.PROBE_TIMEOUT)
        record.update(accelerator={"name": choice.accel, "reason": choice.reason, "probed": choice.probed})
        timeouts = run_timeouts(request, choice.accel)
        record.update(timeouts=timeouts.__dict__)
        boot_started = time.monotonic()
        snapshots = cache if request.snapshot else None
        with booted(prepared, choice.accel, run_dir, timeouts, request.extra_cmdline, snapshots) as (m, target):
            machine = m
            record.update(boot_to_ssh_seconds=round(time.monotonic() - boot_started, 3), ssh_port=m.ssh_port,
                          boot=m.boot)
            if "warning" in m.boot:
                log(f"warning: {m.boot['warning']}")
                record.warn(str(m.boot["warning"]))
            counted = cpus.read(target, timeouts.command, given=m.spec.cpus)
            record.update(cpus=counted.to_json())
            if counted.warning:
                log(f"warning: {counted.warning}")
                record.warn(counted.warning)
            tree = request.tree or suite_runner.default_tree()
            bytecode_key = bytecode.cache_key(tree, prepared.image.digest)
            with record.stage("ship"):
                suite_runner.ship(target, timeouts.command, tree)
                restored = bytecode.restore(target, cache, bytecode_key, timeouts.command)
            record.update(bytecode={"restored": restored})
            run_suites_then_dmesg(target, request.suites, tree, timeouts, record, suites, suite_ended, log,
                                  selection=request.selection, repeat=request.repeat, jobs=request.suite_jobs,
                                  coverage=request.coverage)
            if not restored and not any(s.error for s in suites):
                keep_bytecode(target, cache, bytecode_key, timeouts.command, record, log)
        # QEMU has stopped: the console log is complete (or says where not; unwritable: InfraError).
        if m.console:
            m.console.check_log(record.warn)
        if request.coverage:
            coverage_stage(record, request.suites, prepared, material, traces, log)
        return verdict(suites, _kernel_logs(run_dir), request.splats)

    def evidence() -> Evidence:
        excerpt = machine.console.excerpt() if machine and machine.console else ""
        return Evidence(_console_text(run_dir), excerpt)

    try:
        return conduct(record, stages, policy=request.splats, run_timeout=request.run_timeout, evidence=evidence)
    finally:
        if traces is not None:
            traces.close()
