"""`lab lava-job` (write a LAVA job for a kernel and suites) and `lab lava-run` (run one under
LAVA's own dispatcher on this host): the glue between the command line and lava/ (job, schema,
dispatch)."""
from __future__ import annotations

import argparse
import json
import urllib.parse
from pathlib import Path

from ..core.errors import UserError
from ..core.log import stderr as _log
from ..core.paths import cache_dir
from ..core.places import writable_directory
from ..guest import assets
from ..kernel import ident as kernelident
from ..kernel.spec import parse_kernel_spec
from ..lava import dispatch as lavarun
from ..lava import job as lavajob
from ..lava import schema as lavaschema
from ..run import reproducer
from ..run.suites import parse_suites
from . import options


def artifact_url(text: str) -> str:
    """Where a worker fetches the artifacts from: an http(s) or file URL with a place in it."""
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https", "file") or not (parsed.netloc or parsed.path):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http://, https:// or file:// URL")
    if any(not ch.isprintable() or ch.isspace() for ch in text):
        raise argparse.ArgumentTypeError(f"{text!r}: a URL has no spaces or control characters")
    return text


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    job = commands.add_parser("lava-job", help="write a LAVA job (QEMU device) that boots a kernel and runs suites")
    options.add_kernel(job)
    options.add_suite(job)
    job.add_argument("--output", required=True, help="directory for job.yaml, device.yaml and the artifacts")
    job.add_argument("--accel", choices=["tcg", "kvm"], default="tcg",
                     help="the QEMU accelerator the job asks the device for (default tcg: any worker can)")
    job.add_argument("--artifact-url", metavar="URL", type=artifact_url,
                     help="where the output directory will be published (default: file:// paths into it)")
    job.set_defaults(func=cmd_lava_job)

    run = commands.add_parser("lava-run", help="run a `lab lava-job` directory under LAVA's lava-run on this host")
    run.add_argument("job_dir", metavar="JOB_DIR", help="an output directory of `lab lava-job`")
    options.add_results(run)
    run.set_defaults(func=cmd_lava_run)


def cmd_lava_job(args: argparse.Namespace) -> int:
    suites = parse_suites(args.suite)
    spec = parse_kernel_spec(args.kernel, args.modules, args.config)
    output = writable_directory(Path(args.output).resolve(), "job", "--output")
    prepared = assets.prepare(spec, cache_dir(), _log)
    commit, dirty = reproducer.lab_revision()
    metadata = {
        "lab.kernel": args.kernel,
        "lab.kernel.release": prepared.kernel.release,
        "lab.kernel.identity": kernelident.describe({**prepared.kernel.identity, "release": prepared.kernel.release}),
        "lab.image": prepared.image.digest,
        "lab.suites": ",".join(suites),
        "lab.commit": f"{commit}{'-dirty' if dirty else ''}" if commit else "unknown",
    }
    record: dict[str, object] = {"request": {"kernel": args.kernel, "suites": suites, "accel": args.accel},
              "kernel": {"release": prepared.kernel.release, "image": str(prepared.kernel.image),
                         **prepared.kernel.identity},
              "image": {"path": str(prepared.image.path), "digest": prepared.image.digest}}
    inputs = lavajob.JobInputs(prepared.kernel.image, prepared.initramfs, prepared.image.path,
                               lavajob.recorded_rootfs_sha256(prepared.image.path), suites, args.accel,
                               f"bpf-kernel-lab {args.kernel} {','.join(suites)}", metadata, record)
    written = lavajob.write(inputs, output, args.artifact_url)
    verdict = lavaschema.check(written.job, written.device)
    if verdict is None:
        _log("lava-job: not checked against LAVA's schema: lava-common is not installed (`make setup` installs it)")
    elif not verdict.ok:
        raise UserError(f"LAVA's schema rejects {written.job}: {verdict.message}")
    else:
        _log("lava-job: job.yaml and device.yaml pass LAVA's schemas (lava-common)")
    print(written.job)
    return 0


JOB_RECORD_KEYS = ("job_name", "suites", "accel", "metadata")


def check_job_record(path: Path) -> None:
    """lava-job.json is what `lab lava-job` recorded of the job; a damaged one is bad input now,
    not a crash after lava-run has started."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a `lab lava-job` record ({exc}); write the job again with `lab lava-job`") from exc
    missing = [key for key in JOB_RECORD_KEYS if not isinstance(recorded, dict) or key not in recorded]
    if missing:
        raise UserError(f"{path}: has no {', '.join(missing)}; write the job again with `lab lava-job`")


def cmd_lava_run(args: argparse.Namespace) -> int:
    job_dir = Path(args.job_dir).resolve()
    results_root = options.results_root(args)
    if not (job_dir / "job.yaml").is_file() or not (job_dir / "device.yaml").is_file():
        raise UserError(f"{job_dir} is not a `lab lava-job` output directory (no job.yaml and device.yaml)")
    check_job_record(job_dir / "lava-job.json")
    missing = lavajob.missing_local_artifacts(job_dir / "job.yaml")
    if missing:
        raise UserError(f"the job's artifact {missing[0]} is missing ({len(missing)} in all); "
                        "write the job again with `lab lava-job`")
    return lavarun.run(job_dir, results_root, cache_dir(), _log)
