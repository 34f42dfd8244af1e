"""The `lab` command line: kernel fetch, image build, boot, run."""
from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from ..vm import accel
from ..report import compare
from ..report import compare_text as comparereport
from ..results import kernel_log as consolescan
from ..guest import image
from ..kernel import build as kbuild
from ..kernel import acquire as kernel
from ..guest import keys
from ..kernel import source as ksource
from . import lava as lavacli
from . import matrix as matrixcli
from ..run import guest as pipeline
from ..report import table as report
from ..run import suites as runner
from ..report import show as runreport
from . import target as targetcli
from ..core.errors import InfraError, UserError
from .matrix import cmd_matrix  # noqa: F401 (`lab matrix`; its parser is matrixcli.add_parser)
from ..kernel.spec import DEFAULT_KERNEL, BuildSpec, KernelSpec, parse_kernel_spec
from ..core.outcome import USER_ERROR_EXIT, Outcome, exit_code
from ..core.paths import cache_dir, results_dir
from ..core.timeouts import Timeouts
from ..target.base import quote_command


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C, so every context manager stops its QEMU.
    raise KeyboardInterrupt(f"signal {signum}")


def _kernel_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kernel", default=DEFAULT_KERNEL, help="debian:6.1, debian:6.12, build:<id> or a bzImage path")
    parser.add_argument("--modules", help="modules directory (lib/modules/RELEASE) for a kernel path")
    parser.add_argument("--config", help="config file for a kernel path")
    parser.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto",
                        help="auto probes KVM with a short boot and falls back to TCG")
    parser.add_argument("--cmdline", default="", help="extra kernel command line")


def _build_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="debian:6.1, debian:6.12, a kernel tree or a source tarball")
    parser.add_argument("--config", action="append", default=[], metavar="FRAGMENT",
                        help="Kconfig fragment merged over kernel-configs/base.config (repeatable, later wins)")
    parser.add_argument("--patch", action="append", default=[], metavar="FILE",
                        help="patch (or directory of *.patch) applied in order with patch -p1 (repeatable)")


def cmd_kernel_fetch(args: argparse.Namespace) -> int:
    spec = parse_kernel_spec(args.spec, args.modules, args.config)
    fetched = kernel.fetch(spec, cache_dir(), log)
    print(f"{fetched.release} {fetched.image}")
    return 0


def build_request(args: argparse.Namespace) -> kbuild.BuildRequest:
    return kbuild.BuildRequest(
        ksource.parse_source_spec(args.source),
        tuple(Path(p).expanduser() for p in args.config),
        tuple(Path(p).expanduser() for p in args.patch),
    )


def cmd_kernel_build(args: argparse.Namespace) -> int:
    built = kbuild.build(build_request(args), cache_dir(), log, jobs=args.jobs)
    print(f"build:{built.build_id} {built.kernel.image}")
    return 0


def cmd_image_build(args: argparse.Namespace) -> int:
    cache = cache_dir()
    built = image.build(image.default_recipe(keys.ensure_keys(cache)), cache, log, force=args.force)
    print(built.path)
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    spec = parse_kernel_spec(args.kernel, args.modules, args.config)
    cache = cache_dir()
    prepared = pipeline.prepare(spec, cache, log)
    with tempfile.TemporaryDirectory(prefix="lab-boot-") as tmp:
        run_dir = Path(args.workdir) if args.workdir else Path(tmp)
        choice = accel.choose(args.accel, prepared.kernel.image, prepared.initramfs, run_dir, cache, log)
        timeouts = Timeouts().scaled_for(choice.accel)
        started = time.monotonic()
        with pipeline.booted(prepared, choice.accel, run_dir, timeouts, args.cmdline) as (machine, target):
            log(f"booted {prepared.kernel.release} ({choice.accel}) in {time.monotonic() - started:.1f} s; "
                f"console: {machine.console_log}")
            if args.command:
                result = target.run(args.command, timeouts.suite)
                sys.stdout.write(result.out)
                sys.stderr.write(result.err)
                return result.rc
            known_hosts = run_dir / "known_hosts"
            known_hosts.write_text(f"[127.0.0.1]:{machine.ssh_port} {prepared.keys.host_public}\n")
            ssh = quote_command(["ssh", "-i", str(prepared.keys.client_private), "-p", str(machine.ssh_port),
                                 "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
                                 "root@127.0.0.1"])
            print(f"guest is up; log in with:\n  {ssh}\nCtrl-C stops it.", flush=True)
            while machine.alive():
                time.sleep(1)
            log("QEMU exited")
    return 0


def run_suites(args: argparse.Namespace, spec: KernelSpec, label: str) -> pipeline.RunOutcome:
    """Boot one kernel, run the requested suites, print the table; the run's outcome and record."""
    suites = runner.parse_suites(args.suite)
    cache = cache_dir()
    started = time.monotonic()
    prepared = pipeline.prepare(spec, cache, log)
    request = pipeline.RunRequest(spec, label, suites, args.accel,
                                  Path(args.results) if args.results else results_dir(),
                                  args.suite_timeout, args.cmdline, boot_timeout=args.boot_timeout, run_timeout=args.run_timeout,
                                  ssh_timeout=args.ssh_timeout, command_timeout=args.command_timeout,
                                  probe_timeout=args.probe_timeout,
                                  splats=consolescan.SplatPolicy(tuple(args.allow_splat), tuple(args.deny_splat)))
    table = report.SuiteTable(log)
    outcome = pipeline.execute(request, prepared, cache, log, table.add)
    table.close(outcome.outcome, outcome.reason, outcome.record.directory, time.monotonic() - started,
                outcome.record.metadata.get("console_excerpt"))
    return outcome


def cmd_run(args: argparse.Namespace) -> int:
    targetcli.check_options(args)
    if args.target is not None:
        return targetcli.run_on_target(args, log)
    # `run` leaves --kernel and --accel None unless given, so --target can tell them apart.
    args.kernel = args.kernel or DEFAULT_KERNEL
    args.accel = args.accel or "auto"
    outcome = run_suites(args, parse_kernel_spec(args.kernel, args.modules, args.config), args.kernel)
    return exit_code(outcome.outcome)


def cmd_validate(args: argparse.Namespace) -> int:
    """Build the source without and with the patches, run the suites on both, compare."""
    if not args.patch:
        raise UserError("validate needs at least one --patch (the base is the source without them)")
    runner.parse_suites(args.suite)  # a bad suite name fails before two builds, not after
    request = build_request(args)
    base = kbuild.build(kbuild.BuildRequest(request.source, request.fragments), cache_dir(), log, jobs=args.jobs)
    patched = kbuild.build(request, cache_dir(), log, jobs=args.jobs)
    runs = []
    for name, built in (("base", base), ("patched", patched)):
        print(f"== {name}: build:{built.build_id}", flush=True)
        runs.append(run_suites(args, BuildSpec(built.build_id), f"build:{built.build_id}"))
    result = compare.compare(compare.load_run(runs[0].record.directory), compare.load_run(runs[1].record.directory))
    print(f"== base build:{base.build_id} vs patched build:{patched.build_id}")
    print(comparereport.render(result))
    return 1 if result.regressions else 0


def cmd_compare(args: argparse.Namespace) -> int:
    result = compare.compare(compare.load_run(args.run_a, results_dir()), compare.load_run(args.run_b, results_dir()))
    print(comparereport.render_json(result) if args.json else comparereport.render(result))
    return 1 if result.regressions else 0


def cmd_report(args: argparse.Namespace) -> int:
    # Every run is read before any is printed: a bad one is exit 2 with nothing half-printed.
    runs = [runreport.load(arg, results_dir()) for arg in args.runs]
    print("\n\n".join(runreport.render(run) for run in runs))
    return 0 if all(run.passed for run in runs) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab", description="Boot kernels under QEMU and run bpf(2) map suites.")
    commands = parser.add_subparsers(dest="command", required=True)

    kernel_parser = commands.add_parser("kernel", help="kernel acquisition")
    kernel_commands = kernel_parser.add_subparsers(dest="kernel_command", required=True)
    fetch = kernel_commands.add_parser("fetch", help="fetch a Debian kernel (or check a local one) into the cache")
    fetch.add_argument("spec", help="debian:6.1, debian:6.12, build:<id> or a bzImage path")
    fetch.add_argument("--modules")
    fetch.add_argument("--config")
    fetch.set_defaults(func=cmd_kernel_fetch)

    kbuild_parser = kernel_commands.add_parser(
        "build", help="build a kernel from source with the lab's base fragment, your fragments and patches")
    _build_args(kbuild_parser)
    kbuild_parser.add_argument("--jobs", type=int, help="make -j (default: all cores)")
    kbuild_parser.set_defaults(func=cmd_kernel_build)

    image_parser = commands.add_parser("image", help="guest image")
    image_commands = image_parser.add_subparsers(dest="image_command", required=True)
    build = image_commands.add_parser("build", help="build the guest root filesystem (cached by recipe hash)")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.set_defaults(func=cmd_image_build)

    boot = commands.add_parser("boot", help="boot a kernel and keep it up (or run one --command)")
    _kernel_args(boot)
    boot.add_argument("--command", help="run this shell command in the guest, print its output, exit with its code")
    boot.add_argument("--workdir", help="where the console log goes (default: a temporary directory)")
    boot.set_defaults(func=cmd_boot)

    run = commands.add_parser("run", help="boot a kernel and run suites in it")
    _kernel_args(run)
    _run_args(run)
    targetcli.add_target_args(run)
    run.set_defaults(func=cmd_run, kernel=None, accel=None)

    validate = commands.add_parser("validate", help="build without and with patches, run the suites on both, compare")
    _build_args(validate)
    validate.add_argument("--jobs", type=int, help="make -j (default: all cores)")
    validate.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    validate.add_argument("--cmdline", default="", help="extra kernel command line")
    _run_args(validate)
    validate.set_defaults(func=cmd_validate)

    compare_parser = commands.add_parser("compare", help="compare two runs test by test; exit 1 if B regressed")
    compare_parser.add_argument("run_a", metavar="RUN_A", help="results directory (or run id under the results root)")
    compare_parser.add_argument("run_b", metavar="RUN_B", help="results directory (or run id under the results root)")
    compare_parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare_parser.set_defaults(func=cmd_compare)

    report_parser = commands.add_parser("report", help="print runs again as `lab run` did; exit 1 unless all passed")
    report_parser.add_argument("runs", nargs="+", metavar="RUN", help="results directory (or run id under the results root)")
    report_parser.set_defaults(func=cmd_report)

    matrixcli.add_parser(commands)
    lavacli.add_parsers(commands)
    return parser


def _run_args(run: argparse.ArgumentParser) -> None:
    run.add_argument("--suite", default=",".join(runner.SUITES), help="comma-separated: " + ",".join(runner.SUITES))
    run.add_argument("--results", help="results root (default: $LAB_RESULTS or ./results)")
    run.add_argument("--suite-timeout", type=float, help="seconds per suite (default 150, x4 under TCG)")
    run.add_argument("--allow-splat", action="append", default=[], metavar="REGEX",
                     help="a console splat matching this is accepted (repeatable)")
    run.add_argument("--deny-splat", action="append", default=[], metavar="REGEX",
                     help="a console line matching this fails the run like a WARNING (repeatable)")
    run.add_argument("--run-timeout", type=float, help="seconds for the whole run, boot to last suite (default: none beyond each stage's bound)")
    run.add_argument("--boot-timeout", type=float, help="seconds from QEMU start to init's ready marker (default 30, x4 under TCG)")
    run.add_argument("--ssh-timeout", type=float, help="seconds from the ready marker to an SSH session (default 15, x4 under TCG)")
    run.add_argument("--command-timeout", type=float,
                     help="seconds for a housekeeping command: upload, dmesg (default 30, x4 under TCG)")
    run.add_argument("--probe-timeout", type=float,
                     help=f"seconds the KVM probe boot may take to reach init (default {accel.PROBE_TIMEOUT:.0f})")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    except InfraError as exc:
        print(f"lab: infrastructure error: {exc}", file=sys.stderr)
        return exit_code(Outcome.INFRA_ERROR)
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return exit_code(Outcome.INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
