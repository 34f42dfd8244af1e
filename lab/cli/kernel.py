"""`lab kernel fetch`, `lab kernel build`, `lab image build` and `lab boot`: kernels, the image,
and a guest to poke at."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from ..core.log import stderr as log
from ..core.paths import cache_dir
from ..core.places import writable_directory
from ..core.timeouts import Timeouts
from ..guest import assets, image, keys
from ..kernel import acquire
from ..kernel import build as kernel_build
from ..kernel import listing as kernel_listing
from ..kernel import source as kernel_source
from ..kernel.spec import parse_kernel_spec
from ..target.base import quote_command
from ..vm import accel
from ..vm.boot import booted
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
    boot.add_argument("--command", help="run this shell command in the guest, print its output, exit with its code")
    boot.add_argument("--workdir", help="where the console log goes (default: a temporary directory)")
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


def cmd_boot(args: argparse.Namespace) -> int:
    spec = parse_kernel_spec(args.kernel, args.modules, args.config)
    if args.workdir:
        writable_directory(Path(args.workdir), "console log", "--workdir")
    cache = cache_dir()
    prepared = assets.prepare(spec, cache, log)
    with tempfile.TemporaryDirectory(prefix="lab-boot-") as tmp:
        run_dir = Path(args.workdir) if args.workdir else Path(tmp)
        choice = accel.choose(args.accel, prepared.kernel.image, prepared.initramfs, run_dir, cache, log)
        timeouts = Timeouts().scaled_for(choice.accel)
        started = time.monotonic()
        snapshots = None if args.no_snapshot else cache
        with booted(prepared, choice.accel, run_dir, timeouts, args.cmdline, snapshots) as (machine, target):
            if "warning" in machine.boot:
                log(f"warning: {machine.boot['warning']}")
            how = "restored" if machine.boot["mode"] == "restored" else "booted"
            log(f"{how} {prepared.kernel.release} ({choice.accel}) in {time.monotonic() - started:.1f} s; "
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
