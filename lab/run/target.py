"""The suites on an existing machine (`lab run --target ssh://...`): no QEMU, no console.

Same runner, same run lifecycle and outcome rules as a guest, minus the boot: the tree goes to
a fresh `mktemp -d` directory there (removed afterwards), and the kernel log the suites
produced (dmesg after the run, from the line where it ended before) stands in for the
console when looking for splats.
"""
from __future__ import annotations

from typing import Callable

from ..core.errors import InfraError
from ..core.log import Log
from ..core.outcome import Verdict
from ..core.paths import cache_dir
from ..results import layout
from ..results.model import SuiteResult
from ..results.record import RunRecord
from ..target.base import CommandTimedOut, ConnectionLost, Target, quote_command
from ..target.bounded import BoundedTarget
from ..target.checks import TargetFacts
from . import cpus, reproducer
from . import suites as suite_runner
from .lifecycle import RunOutcome, conduct, run_suites_then_dmesg
from .request import TargetRunRequest
from .verdict import verdict


def lines_after(anchor: str, log_text: str) -> tuple[str, int]:
    """The part of the kernel log after its last line `anchor` (the last line before the run;
    timestamped, so practically unique), and the 1-based line where that part starts. All of
    it when the anchor is empty or gone (the ring buffer wrapped or was cleared)."""
    lines = log_text.splitlines()
    if anchor:
        for index in range(len(lines) - 1, -1, -1):
            if lines[index] == anchor:
                return "\n".join(lines[index + 1:]), index + 2
    return "\n".join(lines), 1


def _make_remote_dir(target: Target, timeout: float) -> str:
    # -t: under the target's $TMPDIR or /tmp; mode 0700 and a fresh name, so nothing of
    # anyone else's is touched or can be swapped in.
    result = target.run("mktemp -d -t bpf-kernel-lab.XXXXXXXX", timeout)
    path = result.out.strip()
    if result.rc != 0 or not path.startswith("/") or "\n" in path:
        raise InfraError(f"mktemp -d failed on the target (exit {result.rc}): {(result.out + result.err).strip()[-200:]}")
    return path


def execute(request: TargetRunRequest, target: Target, facts: TargetFacts, log: Log,
            on_suite: Callable[[SuiteResult], None]) -> RunOutcome:
    """Run the suites on a checked target."""
    target = BoundedTarget(target)
    timeouts = request.timeouts
    record = RunRecord.create(request.results_root, facts.release, {"target": str(request.url),
                                                                     "suites": request.suites})
    kernel_identity = {"release": facts.release, "version": facts.version, "machine": facts.machine,
                       "origin": str(request.url)}
    # No QEMU here: said explicitly (null), so a reader of metadata.json does not look for them.
    record.update(target=str(request.url), kernel=kernel_identity, target_checks=facts.to_json(),
                  qemu_version=None, accelerator=None,
                  timeouts={"ssh": timeouts.ssh, "suite": timeouts.suite, "command": timeouts.command})
    reproducer.attach(record, reproducer.target_argv(request), request.results_root, cache_dir(), kernel_identity,
                      "none (an existing machine, no lab image)",
                      reproducer.target_caveats(request, facts.release, facts.version))
    run_dir = record.directory
    remote_dir: str | None = None

    def stages(suites: list[SuiteResult]) -> Verdict:
        nonlocal remote_dir
        # Machines have a history: only what the kernel logs from here on is the run's.
        anchor = target.run("dmesg | tail -n 1", timeouts.command).out.strip("\n")
        counted = cpus.read(target, timeouts.command, given=None)
        record.update(cpus=counted.to_json())
        if counted.warning:
            log(f"warning: {counted.warning}")
            record.warn(counted.warning)
        with record.stage("ship"):
            remote_dir = _make_remote_dir(target, timeouts.command)
            record.update(remote_dir=remote_dir)
            suite_runner.ship(target, timeouts.command, request.tree, root=f"{remote_dir}/lab")
        run_suites_then_dmesg(target, request.suites, request.tree, timeouts, record, suites, on_suite, log,
                              root=f"{remote_dir}/lab", selection=request.selection, repeat=request.repeat,
                              jobs=request.suite_jobs)
        dmesg = run_dir / layout.DMESG
        run_log, first_line = lines_after(anchor, dmesg.read_text(errors="replace") if dmesg.exists() else "")
        record.update(dmesg_run_starts_at_line=first_line if dmesg.exists() else None)
        return verdict(suites, run_log, request.splats)

    def cleanup() -> None:
        if remote_dir is not None:
            _remove(target, remote_dir, log)

    # No console: a crashed machine and a broken network look the same (lost-connection).
    return conduct(record, stages, policy=request.splats, run_timeout=request.run_timeout, cleanup=cleanup)


def _remove(target: Target, remote_dir: str, log: Log) -> None:
    """Best effort: a machine that stopped answering keeps its temporary directory."""
    try:
        result = target.run(quote_command(["rm", "-rf", remote_dir]), 30)
        if result.rc != 0:
            log(f"warning: could not remove {remote_dir} on the target: {result.err.strip()[-200:]}")
    except (CommandTimedOut, ConnectionLost) as exc:
        log(f"warning: {remote_dir} is left on the target: {exc}")
