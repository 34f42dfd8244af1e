"""`lab lava-run JOB_DIR`: run a `lab lava-job` job under LAVA's own dispatcher (lava-run) on
this host, with no lava-server, and keep what it did as a lab run record.

lava-run exits 0 even when test cases fail, so the outcome comes from its log: LAVA's job
result, each case's result, and the console it saw (scanned for kernel splats like any run).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import InfraError
from ..core.log import Log
from ..core.outcome import Outcome, Verdict, exit_code
from ..guest.init import FAILURE_MARKER
from ..kernel import acquire as kernel
from ..kernel.spec import DebianSpec
from ..report import table as report
from ..results import kernel_log as consolescan
from ..results import layout
from ..results.model import SuiteResult
from ..results.record import RunRecord
from ..run import cpus, reproducer
from ..run.lifecycle import conduct
from ..run.verdict import classify_kernel_log, verdict
from ..vm.machine import qemu_version
from . import job as lavajob
from . import log as lavalog

LAVA_RUN = "lava-run"
# Beyond the job's own timeout, which lava-run enforces: for its start and clean-up.
MARGIN_SECONDS = 300
# libguestfs (LAVA's overlay disk) builds its appliance from a host kernel in /boot. Where
# there is none, the lab's cached Debian kernel serves (SUPERMIN_KERNEL/SUPERMIN_MODULES).
APPLIANCE_KERNEL = DebianSpec("6.1")
POLL_SECONDS = 0.5
# Lines after which LAVA would only wait for its test shell's timeout (10 minutes and more):
# its test disk did not mount in the guest, so its test runner is not there.
HOPELESS = [re.compile(r"bash: /lava-\d+/bin/lava-test-runner: No such file or directory")]
# The guest's answer to LAVA's `mount /dev/disk/by-uuid/... -t ext2 /lava-N`.
_OVERLAY_MOUNT_FAILED = re.compile(r"mount: /lava-\d+: (.+?)\.?$")


def _host_has_kernel() -> bool:
    return any(Path("/boot").glob("vmlinuz-*")) or any(Path("/lib/modules").glob("*/vmlinuz"))


def lava_environment(cache: Path, log: Log, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    # libguestfs tries KVM first; here /dev/kvm exists but cannot run it (see accel.py).
    env.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
    if "SUPERMIN_KERNEL" not in env and not _host_has_kernel():
        appliance = kernel.fetch(APPLIANCE_KERNEL, cache, log)
        if appliance.modules is None:
            raise InfraError(f"the kernel for libguestfs's appliance ({appliance.image}) has no modules")
        env["SUPERMIN_KERNEL"] = str(appliance.image)
        env["SUPERMIN_MODULES"] = str(appliance.modules)
    return env


def job_seconds(job_dir: Path) -> float:
    """The job's own timeout plus a margin: lava-run is killed only if it overruns its job."""
    recorded = json.loads((job_dir / "lava-job.json").read_text())
    minutes = lavajob.timeouts(len(recorded["suites"]), recorded["accel"])["job"]
    return minutes * 60 + MARGIN_SECONDS


@dataclass(frozen=True)
class LavaExit:
    rc: int | None  # None: the lab stopped lava-run
    seconds: float
    stopped: str = ""  # why the lab stopped it ("": it ended by itself)


def _watch(log_path: Path, offset: int) -> tuple[str, int]:
    """A line of lava-run's log since offset that means the job cannot go on, and the new offset."""
    with log_path.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    complete = text[: text.rfind("\n") + 1]
    for pattern in HOPELESS:
        match = pattern.search(complete)
        if match:
            return match[0], offset + len(complete.encode())
    return "", offset + len(complete.encode())


def _run_lava(job_dir: Path, run_dir: Path, env: dict[str, str], seconds: float) -> LavaExit:
    argv = [LAVA_RUN, "--job-id", str(os.getpid()), "--output-dir", str(run_dir / layout.LAVA_OUTPUT),
            "--device", str(job_dir / "device.yaml"), str(job_dir / "job.yaml")]
    (run_dir / layout.LAVA_CMDLINE).write_text(" ".join(argv) + "\n")
    started = time.monotonic()
    log_path = run_dir / layout.LAVA_LOG
    with log_path.open("wb") as out:
        # Its own session, so the deadline or Ctrl-C stops lava-run and the QEMU it started.
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        offset, stopped = 0, ""
        try:
            while child.poll() is None:
                if time.monotonic() - started > seconds:
                    stopped = f"lava-run overran the job's timeout ({seconds:.0f} s) and was stopped"
                    break
                hopeless, offset = _watch(log_path, offset)
                if hopeless:
                    stopped = f"stopped lava-run, the job cannot go on: {hopeless}"
                    break
                time.sleep(POLL_SECONDS)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()
    return LavaExit(None if stopped else child.returncode, time.monotonic() - started, stopped)


def _overlay_mount_failure(parsed: lavalog.LavaLog) -> str | None:
    for line in parsed.console:
        match = _OVERLAY_MOUNT_FAILED.search(line.strip())
        if match:
            hint = " (the kernel needs CONFIG_EXT4_USE_FOR_EXT2=y or CONFIG_EXT2_FS)" if "ext2" in match[1] else ""
            return f"LAVA's test disk did not mount in the guest: {match[1]}{hint}"
    return None


def lava_verdict(parsed: lavalog.LavaLog, suites: list[SuiteResult], exited: LavaExit,
                 policy: consolescan.SplatPolicy) -> Verdict:
    """LAVA's failures of the job first (a crash on the console, a test disk the guest cannot
    mount, its infrastructure, a boot that never gave the shell, a timeout, a lost console),
    then the same verdict as a lab run: the kernel's console, timeouts, test failures."""
    job = parsed.job_result
    console = "\n".join(parsed.console)
    mount_failure = _overlay_mount_failure(parsed)
    if mount_failure and (exited.rc is None or (job or {}).get("result") != "pass"):
        return Verdict(Outcome.INFRA_ERROR, mount_failure)
    if exited.rc is None:
        return Verdict(Outcome.TIMED_OUT if "timeout" in exited.stopped else Outcome.INFRA_ERROR, exited.stopped)
    rc = exited.rc
    if job is None:
        return Verdict(Outcome.INFRA_ERROR, f"lava-run exited {rc} without a job result: {(parsed.errors or ['no log'])[-1]}")
    if job.get("result") == "pass":
        return verdict(suites, console, policy)
    error_type, message = str(job.get("error_type", "")), str(job.get("error_msg", ""))
    reason = f"LAVA {error_type or 'job'} error: {message}"
    # The lab's init said why it gave up (and powered off, which the console scan would call a crash).
    init_failure = next((line for line in parsed.console if FAILURE_MARKER in line), None)
    if init_failure and not parsed.booted:
        return Verdict(Outcome.BOOT_FAILED, init_failure.strip(), "\n".join(parsed.console[-20:]))
    classified = classify_kernel_log(console, False, policy)
    if classified:
        return classified
    lowered = message.lower()
    if error_type in ("Configuration", "Bug") or (error_type == "Job" and not parsed.console):
        # LAVA refused the job or its device before any boot: the lab wrote them, so it is the lab's failure.
        return Verdict(Outcome.INFRA_ERROR, reason)
    if not parsed.booted and parsed.console:
        return Verdict(Outcome.BOOT_FAILED, reason, "\n".join(parsed.console[-20:]))
    # LAVA files a console that ended (QEMU gone) under Infrastructure; for the lab it is the guest's.
    if "connection closed" in lowered and parsed.console:
        return Verdict(Outcome.LOST_CONNECTION, reason, "\n".join(parsed.console[-20:]))
    if "timed out" in lowered or "timeout" in lowered:
        return Verdict(Outcome.TIMED_OUT, reason)
    if error_type == "Infrastructure":
        return Verdict(Outcome.INFRA_ERROR, reason)
    return Verdict(Outcome.FAILED, reason)


def _new_record(job_dir: Path, results_root: Path, cache: Path, recorded: dict[str, Any]) -> RunRecord:
    """The same record as `lab run` writes (README, Results), so `lab report` and `lab compare` read it."""
    request = recorded.get("request") or {"kernel": "unknown", "suites": recorded["suites"], "accel": recorded["accel"]}
    record = RunRecord.create(results_root, f"lava-{recorded.get('kernel', {}).get('release', 'job')}", request)
    record.update(**{key: recorded[key] for key in ("kernel", "image") if key in recorded}, prepare_seconds={})
    reproducer.attach(record, ["lava-run", str(job_dir)], results_root, cache, recorded.get("kernel", {}),
                      recorded.get("image", {}).get("digest", "unknown"),
                      [f"the job, its kernel, image and suites bundle are the files in {job_dir}"])
    record.update(qemu_version=qemu_version(),
                  accelerator={"name": recorded["accel"], "reason": "as the LAVA job asks its device", "probed": False},
                  lava={"job": str(job_dir / "job.yaml"), "metadata": recorded["metadata"]})
    return record


def _read_back(record: RunRecord, recorded: dict[str, Any], exited: LavaExit, policy: consolescan.SplatPolicy,
               suites: list[SuiteResult], table: report.SuiteTable) -> tuple[Verdict, lavalog.LavaLog]:
    """lava-run's log into the record's files and suites, and the run's verdict."""
    parsed = lavalog.parse((record.directory / layout.LAVA_LOG).read_text(errors="replace"))
    (record.directory / layout.CONSOLE).write_text("\n".join(parsed.console) + "\n")
    (record.directory / layout.LAVA_RESULTS).write_text(json.dumps(parsed.results, indent=1) + "\n")
    for definition in parsed.definitions():
        suite = lavalog.suite_result(parsed, definition)
        suites.append(suite)
        record.add_suite(suite)
        table.add(suite)
    if parsed.console:
        counted = cpus.from_console("\n".join(parsed.console), given=lavajob.GUEST_CPUS)
        record.update(cpus=counted.to_json())
        if counted.warning:
            record.warn(counted.warning)
    found = lava_verdict(parsed, suites, exited, policy)
    missing = [name for name in recorded["suites"] if name not in {s.name for s in suites}]
    if missing and found.outcome == Outcome.PASSED:
        found = Verdict(Outcome.FAILED, f"LAVA reported nothing for suite(s) {', '.join(missing)}")
    return found, parsed


def run(job_dir: Path, results_root: Path, cache: Path, log: Log,
        policy: consolescan.SplatPolicy = consolescan.SplatPolicy()) -> int:
    if shutil.which(LAVA_RUN) is None:
        raise InfraError("lava-run is not installed (`make setup` installs Debian's lava-dispatcher)")
    recorded = json.loads((job_dir / "lava-job.json").read_text())
    record = _new_record(job_dir, results_root, cache, recorded)
    table = report.SuiteTable(log)
    started = time.monotonic()

    def stages(suites: list[SuiteResult]) -> Verdict:
        with record.stage("lava-run"):
            env = lava_environment(cache, log)
            log(f"lava-run: {recorded['job_name']} ({record.directory / layout.LAVA_LOG})")
            exited = _run_lava(job_dir, record.directory, env, job_seconds(job_dir))
        found, parsed = _read_back(record, recorded, exited, policy, suites, table)
        record.update(lava={**record.metadata.lava, "exit_status": exited.rc, "seconds": round(exited.seconds, 1),
                            "job_result": parsed.job_result})
        return found

    ended = conduct(record, stages, policy=policy)
    table.close(ended.outcome, ended.reason, record.directory, time.monotonic() - started, ended.verdict.excerpt or None,
                warnings=record.metadata.recorded("warnings"))
    return exit_code(ended.outcome)
