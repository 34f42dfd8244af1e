"""`lab run --target ssh://user@host[:port] [--key FILE] [--known-hosts FILE]`: the options,
what they exclude, and the run (connect, check, then the same suites as in a guest)."""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from ..core.errors import UserError
from ..core.log import Log
from ..core.timeouts import Timeouts
from ..report.table import SuiteTable
from ..results.kernel_log import SplatPolicy
from ..run import target as target_run
from ..run.lifecycle import RunOutcome
from ..run.request import TargetRunRequest
from ..target import checks as targetcheck
from ..target import remote as sshremote
from . import options

# Options of `lab run` that only mean something for a kernel the lab boots itself.
BOOT_ONLY = {"kernel": "--kernel", "modules": "--modules", "config": "--config", "accel": "--accel",
             "cmdline": "--cmdline", "boot_timeout": "--boot-timeout", "probe_timeout": "--probe-timeout"}


def add_target_args(run: argparse.ArgumentParser) -> None:
    run.add_argument("--target", metavar="ssh://USER@HOST[:PORT]",
                     help="run on this machine over SSH instead of booting a kernel (user: default the local one)")
    run.add_argument("--key", help="with --target: the private key to log in with (default: ssh-agent, ~/.ssh/id_*)")
    run.add_argument("--known-hosts", help="with --target: where the host's key must be (default ~/.ssh/known_hosts)")


def check_options(args: argparse.Namespace) -> None:
    """One line for an option that does not fit the other ones given; before anything starts."""
    if args.target is None:
        extra = [flag for flag, value in (("--key", args.key), ("--known-hosts", args.known_hosts)) if value is not None]
        if extra:
            raise UserError(f"{' and '.join(extra)} {'needs' if len(extra) == 1 else 'need'} --target")
        return
    if args.key is not None and not Path(args.key).expanduser().is_file():
        raise UserError(f"--key {args.key}: no such file")
    # The parser leaves these None (cmdline "") unless given, so a given default is caught too.
    given = [flag for dest, flag in BOOT_ONLY.items() if getattr(args, dest, None) not in (None, "")]
    given += ["--coverage"] if getattr(args, "coverage", False) else []
    if given:
        raise UserError(f"{', '.join(given)} cannot be combined with --target (only for a kernel the lab boots)")


def request_timeouts(args: argparse.Namespace) -> Timeouts:
    # Unscaled: a real machine is not emulated. The boot bounds do not apply.
    timeouts = Timeouts().with_suite(args.suite_timeout)
    overrides = {"ssh": args.ssh_timeout, "command": args.command_timeout}
    return replace(timeouts, **{k: v for k, v in overrides.items() if v is not None})


def run_on_target(args: argparse.Namespace, log: Log, planned: options.Planned, repeat: int | None) -> RunOutcome:
    check_options(args)
    url = sshremote.parse_ssh_url(args.target)
    timeouts = request_timeouts(args)
    results_root = options.results_root(args, resolve=False)
    key = Path(args.key).expanduser() if args.key else None
    known_hosts = Path(args.known_hosts or sshremote.DEFAULT_KNOWN_HOSTS).expanduser()
    started = time.monotonic()
    with sshremote.connect(url, key, known_hosts, timeouts.ssh) as target:
        facts = targetcheck.check(target, str(url), timeouts.command)
        log(f"target {url}: kernel {facts.release} ({facts.machine}), python {facts.python}, pytest {facts.pytest}")
        for warning in facts.warnings:
            log(f"warning: {warning}")
        request = TargetRunRequest(url, planned.suites, results_root, timeouts, args.run_timeout,
                                   SplatPolicy(tuple(args.allow_splat), tuple(args.deny_splat)),
                                   tree=planned.tree, key=key,
                                   known_hosts=Path(args.known_hosts) if args.known_hosts else None,
                                   selection=planned.selection, repeat=repeat, tree_given=planned.tree is not None,
                                   suite_jobs=args.suite_jobs)
        table = SuiteTable(log)
        outcome = target_run.execute(request, target, facts, log, table.add)
    table.close(outcome.outcome, outcome.reason, outcome.record.directory, time.monotonic() - started,
                outcome.record.metadata.recorded("console_excerpt"), "kernel log excerpt",
                warnings=outcome.record.metadata.recorded("warnings"))
    return outcome
