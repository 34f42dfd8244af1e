"""`lab kernel fetch`, `lab kernel build`, `lab image build` and `lab boot`: kernels, the image,
and a guest to poke at."""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..core.errors import UserError
from ..core.log import stderr as log
from ..core.paths import cache_dir
from ..core.places import writable_directory
from ..core.timeouts import Timeouts
from ..guest import assets, image, keys
from ..guest.keys import LabKeys
from ..kernel import acquire, debugsyms
from ..kernel import build as kernel_build
from ..kernel import listing as kernel_listing
from ..kernel import source as kernel_source
from ..kernel.spec import parse_kernel_spec
from ..target.base import quote_command
from ..vm import accel
from ..vm.boot import booted
from ..vm.machine import free_port
from . import options


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    kernel_parser = commands.add_parser("kernel", help="kernel acquisition")
    kernel_commands = kernel_parser.add_subparsers(dest="kernel_command", required=True)
    fetch = kernel_commands.add_parser("fetch", help="fetch a Debian kernel (or check a local one) into the cache")
    fetch.add_argument("spec", help=options.KERNEL_HELP)
    options.add_kernel_files(fetch)
    fetch.set_defaults(func=cmd_kernel_fetch)

    listing = kernel_commands.add_parser(
        "list", help="every Debian kernel and kernel source version the host's apt lists hold, newest first")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(func=cmd_kernel_list)

    build = kernel_commands.add_parser(
        "build", help="build a kernel from source with the lab's base fragment, your fragments and patches")
    options.add_source(build)
    build.add_argument("--coverage", action="store_true",
                       help="gcov profiling of kernel/bpf (kernel-configs/coverage.config; its own build id): "
                            "`lab run --coverage` on it says which lines the suites ran")
    build.set_defaults(func=cmd_kernel_build)

    image_parser = commands.add_parser("image", help="guest image")
    image_commands = image_parser.add_subparsers(dest="image_command", required=True)
    image_build = image_commands.add_parser("build", help="build the guest root filesystem (cached by recipe hash)")
    image_build.add_argument("--force", action="store_true", help="rebuild even if cached")
    image_build.set_defaults(func=cmd_image_build)

    boot = commands.add_parser("boot", help="boot a kernel and keep it up (or run one --command)")
    options.add_kernel(boot)
    options.add_accel(boot)
    options.add_cmdline(boot)
    options.add_snapshot(boot)
    what = boot.add_mutually_exclusive_group()
    what.add_argument("--command", help="run this shell command in the guest, print its output, exit with its code")
    what.add_argument("--shell", action="store_true",
                      help="log into the guest here (ssh on this terminal); exiting the shell stops the guest")
    boot.add_argument("--gdb", nargs="?", const=0, type=_port, metavar="PORT",
                      help="QEMU's gdb stub on 127.0.0.1:PORT (a free one if omitted), the kernel booted with "
                           "nokaslr and cold; prints the gdb line to attach with the build's vmlinux")
    boot.add_argument("--symbols", action="store_true",
                      help="with --gdb on a Debian kernel: fetch its -dbg package (about 280 MB, cached) for vmlinux")
    boot.add_argument("--workdir", help="where the console log goes (default: a new directory under /tmp, "
                                         "removed after --command)")
    boot.set_defaults(func=cmd_boot)


def cmd_kernel_fetch(args: argparse.Namespace) -> int:
    spec = parse_kernel_spec(args.spec, args.modules, args.config)
    fetched = acquire.fetch(spec, cache_dir(), log)
    print(f"{fetched.release} {fetched.image}")
    return 0


def cmd_kernel_list(args: argparse.Namespace) -> int:
    listed = kernel_listing.list_all(cache_dir())
    if args.json:
        print(json.dumps([item.to_json() for item in listed], indent=2))
    else:
        print(kernel_listing.render(listed))
    return 0


def build_request(args: argparse.Namespace) -> kernel_build.BuildRequest:
    return kernel_build.BuildRequest(
        kernel_source.parse_source_spec(args.source),
        tuple(Path(p).expanduser() for p in args.config),
        tuple(Path(p).expanduser() for p in args.patch),
        coverage=bool(getattr(args, "coverage", False)),
    )


def cmd_kernel_build(args: argparse.Namespace) -> int:
    built = kernel_build.build(build_request(args), cache_dir(), log, jobs=args.jobs)
    print(f"build:{built.build_id} {built.kernel.image}")
    return 0


def cmd_image_build(args: argparse.Namespace) -> int:
    cache = cache_dir()
    built = image.build(image.default_recipe(keys.ensure_keys(cache)), cache, log, force=args.force)
    print(built.path)
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def _symbols(kernel: acquire.Kernel, cache: Path) -> tuple[Path | None, str]:
    """The vmlinux gdb reads the kernel's symbols from, or why there is none."""
    beside = kernel.image.parent / "vmlinux"
    if beside.is_file():
        return beside, ""
    if kernel.identity.get("origin") == "build":
        return None, (f"build:{kernel.identity.get('build_id')} was built before the lab kept vmlinux; "
                      "build it again (remove its directory from the cache) for symbols")
    if kernel.identity.get("origin") == "debian":
        fetched = debugsyms.cached(cache, kernel)
        why = "a Debian kernel's symbols are in its -dbg package: add --symbols to fetch it (about 280 MB, cached)"
        return (fetched, "") if fetched else (None, why)
    return None, f"no vmlinux beside {kernel.image}"


def _gdb_line(port: int, kernel: acquire.Kernel, cache: Path) -> str:
    symbols, missing = _symbols(kernel, cache)
    line = quote_command(["gdb", "-ex", f"target remote 127.0.0.1:{port}", *([str(symbols)] if symbols else [])])
    return f"gdb stub on 127.0.0.1:{port} (nokaslr); attach with:\n  {line}" + (f"\n  ({missing})" if missing else "")


def _ssh_argv(lab_keys: LabKeys, port: int, known_hosts: Path) -> list[str]:
    return ["ssh", "-i", str(lab_keys.client_private), "-p", str(port), "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "root@127.0.0.1"]


def cmd_boot(args: argparse.Namespace) -> int:
    spec = parse_kernel_spec(args.kernel, args.modules, args.config)
    if args.workdir:
        writable_directory(Path(args.workdir), "console log", "--workdir")
    if args.shell and shutil.which("ssh") is None:
        raise UserError("--shell needs the ssh client (apt-get install openssh-client, or make setup)")
    if args.symbols and (args.gdb is None or not args.kernel.startswith("debian:")):
        raise UserError("--symbols goes with --gdb on a Debian kernel (a lab build keeps its own vmlinux)")
    cache = cache_dir()
    prepared = assets.prepare(spec, cache, log)
    if args.symbols:
        debugsyms.vmlinux(prepared.kernel, cache, log)
    # Kept after the guest stops (the console log is where the lab said), except for one --command.
    run_dir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="lab-boot-"))
    try:
        return _boot(args, prepared, cache, run_dir)
    finally:
        if args.command and not args.workdir:
            shutil.rmtree(run_dir, ignore_errors=True)


def _boot(args: argparse.Namespace, prepared: assets.Prepared, cache: Path, run_dir: Path) -> int:
    choice = accel.choose(args.accel, prepared.kernel.image, prepared.initramfs, run_dir, cache, log)
    timeouts = Timeouts().scaled_for(choice.accel)
    started = time.monotonic()
    snapshots = None if args.no_snapshot else cache
    gdb_port = None if args.gdb is None else (args.gdb or free_port())
    cmdline = " ".join(filter(None, [args.cmdline, "nokaslr" if gdb_port is not None else ""]))
    with booted(prepared, choice.accel, run_dir, timeouts, cmdline, snapshots, gdb_port) as (machine, target):
        if "warning" in machine.boot:
            log(f"warning: {machine.boot['warning']}")
        how = "restored" if machine.boot["mode"] == "restored" else "booted"
        kept = " (removed at exit; --workdir keeps it)" if args.command and not args.workdir else ""
        log(f"{how} {prepared.kernel.release} ({choice.accel}) in {time.monotonic() - started:.1f} s; "
            f"console: {machine.console_log}{kept}")
        if gdb_port is not None:
            log(_gdb_line(gdb_port, prepared.kernel, cache))
        if args.command:
            result = target.run(args.command, timeouts.suite)
            sys.stdout.write(result.out)
            sys.stderr.write(result.err)
            return result.rc
        assert machine.ssh_port is not None
        known_hosts = run_dir / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{machine.ssh_port} {prepared.keys.host_public}\n")
        ssh = _ssh_argv(prepared.keys, machine.ssh_port, known_hosts)
        if args.shell:
            # ssh on this terminal; the guest stops when the shell ends, whatever its status.
            status = subprocess.run(ssh, check=False).returncode
            log(f"shell ended (exit {status}); stopping the guest; console: {machine.console_log}")
            return status
        print(f"guest is up; log in with:\n  {quote_command(ssh)}\nCtrl-C stops it.", flush=True)
        while machine.alive():
            time.sleep(1)
        log("QEMU exited")
    return 0
