"""The suites on an existing machine (`lab run --target ssh://...`): no QEMU, no console.

Same runner, same run record and outcome rules as a guest, minus the boot: the tree goes to
a fresh `mktemp -d` directory there (removed afterwards), and the kernel log the suites
produced (dmesg after the run, from the line where it ended before) stands in for the
console when looking for splats.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..results import kernel_log as consolescan
from . import reproducer
from . import suites as runner
from ..core.errors import InfraError
from ..core.outcome import Outcome
from ..core.paths import cache_dir
from .guest import RunOutcome, RunTimedOut, run_deadline, run_suites_then_dmesg, verdict
from ..results.model import SuiteResult
from ..results.record import RunRecord
from ..target.remote import SshUrl
from ..target.checks import TargetFacts
from ..core.timeouts import Timeouts
from ..target.base import CommandResult, CommandTimedOut, ConnectionLost, quote_command

Log = Callable[[str], None]
KILL_GRACE = 5  # seconds between timeout's SIGTERM and its SIGKILL on the target
REMOTE_SLACK = 2  # the target's own bound fires this long after the lab's


@dataclass
class TargetRunRequest:
    url: SshUrl
    suites: list[str]
    results_root: Path
    timeouts: Timeouts = field(default_factory=Timeouts)
    run_timeout: float | None = None
    splats: consolescan.SplatPolicy = field(default_factory=consolescan.SplatPolicy)
    tree: runner.TestTree | None = None
    key: Path | None = None  # as given, for reproducer.sh
    known_hosts: Path | None = None


class BoundedTarget:
    """A Target whose commands the target also stops at their deadline.

    A guest that overran a suite dies with its QEMU; a real machine would keep the pytest
    (and whatever it started) running after the lab gave up on it. coreutils' timeout kills
    the command's whole process group a little after the lab's own bound, which stays the
    one that decides the outcome.
    """

    def __init__(self, inner: runner.Target) -> None:
        self.inner = inner

    def run(self, command: str, timeout: float, stdout_sink: Path | None = None) -> CommandResult:
        bound = str(math.ceil(timeout) + REMOTE_SLACK)
        wrapped = quote_command(["timeout", "-k", str(KILL_GRACE), bound, "sh", "-c", command])
        return self.inner.run(wrapped, timeout, stdout_sink)

    def put_tree(self, local_dir: Path, remote_dir: str) -> int:
        return self.inner.put_tree(local_dir, remote_dir)

    def get(self, remote: str, local: Path) -> bool:
        return self.inner.get(remote, local)


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


def _make_remote_dir(target: runner.Target, timeout: float) -> str:
    # -t: under the target's $TMPDIR or /tmp; mode 0700 and a fresh name, so nothing of
    # anyone else's is touched or can be swapped in.
    result = target.run("mktemp -d -t bpf-kernel-lab.XXXXXXXX", timeout)
    path = result.out.strip()
    if result.rc != 0 or not path.startswith("/") or "\n" in path:
        raise InfraError(f"mktemp -d failed on the target (exit {result.rc}): {(result.out + result.err).strip()[-200:]}")
    return path


def execute(request: TargetRunRequest, target: runner.Target, facts: TargetFacts, log: Log,
            on_suite: Callable[[SuiteResult], None]) -> RunOutcome:
    """Run the suites on a checked target; the record is kept whatever happens."""
    target = BoundedTarget(target)
    timeouts = request.timeouts
    record = RunRecord.create(request.results_root, facts.release, {"target": str(request.url),
                                                                     "suites": request.suites})
    record.set("target", str(request.url))
    kernel_identity = {"release": facts.release, "version": facts.version, "machine": facts.machine,
                       "origin": str(request.url)}
    record.set("kernel", kernel_identity)
    record.set("target_checks", facts.to_json())
    # No QEMU here: said explicitly, so a reader of metadata.json does not look for them.
    record.set("qemu_version", None)
    record.set("accelerator", None)
    record.set("timeouts", {"ssh": timeouts.ssh, "suite": timeouts.suite, "command": timeouts.command})
    reproducer.attach(record, reproducer.target_argv(request), request.results_root, cache_dir(), kernel_identity,
                      "none (an existing machine, no lab image)",
                      reproducer.target_caveats(request, facts.release, facts.version))
    run_dir = record.directory
    suites: list[SuiteResult] = []
    remote_dir: str | None = None

    def finish(outcome: Outcome, reason: str, excerpt: str = "") -> RunOutcome:
        record.finish(outcome, reason, excerpt)
        return RunOutcome(outcome, reason, record, suites)

    try:
        with run_deadline(request.run_timeout):
            # Machines have a history: only what the kernel logs from here on is the run's.
            anchor = target.run("dmesg | tail -n 1", timeouts.command).out.strip("\n")
            with record.stage("ship"):
                remote_dir = _make_remote_dir(target, timeouts.command)
                record.set("remote_dir", remote_dir)
                runner.ship(target, timeouts.command, request.tree, root=f"{remote_dir}/lab")
            run_suites_then_dmesg(target, request.suites, request.tree, timeouts, record, suites, on_suite, log,
                                  root=f"{remote_dir}/lab")
    except RunTimedOut as exc:
        return finish(Outcome.TIMED_OUT, str(exc))
    except CommandTimedOut as exc:
        return finish(Outcome.TIMED_OUT, str(exc))
    except ConnectionLost as exc:
        # No console to tell a crash from a network problem: a crashed machine looks the same.
        return finish(Outcome.LOST_CONNECTION, str(exc))
    except InfraError as exc:
        return finish(Outcome.INFRA_ERROR, str(exc))
    except KeyboardInterrupt:
        finish(Outcome.INTERRUPTED, "interrupted (SIGINT/SIGTERM)")
        raise
    finally:
        if remote_dir is not None:
            _remove(target, remote_dir, log)
    dmesg = run_dir / "dmesg.txt"
    run_log, first_line = lines_after(anchor, dmesg.read_text(errors="replace") if dmesg.exists() else "")
    record.set("dmesg_run_starts_at_line", first_line if dmesg.exists() else None)
    return finish(*verdict(suites, run_log, request.splats))


def _remove(target: runner.Target, remote_dir: str, log: Log) -> None:
    """Best effort: a machine that stopped answering keeps its temporary directory."""
    try:
        result = target.run(quote_command(["rm", "-rf", remote_dir]), 30)
        if result.rc != 0:
            log(f"warning: could not remove {remote_dir} on the target: {result.err.strip()[-200:]}")
    except (CommandTimedOut, ConnectionLost) as exc:
        log(f"warning: {remote_dir} is left on the target: {exc}")
