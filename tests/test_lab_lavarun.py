"""`lab lava-run`: the verdict from lava-run's log (golden logs of real jobs), the environment
LAVA needs here, and the whole command against a stand-in lava-run that replays a real log."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from lab.cli import main as cli
from lab.results import kernel_log as consolescan
from lab.lava import job as lavajob
from lab.lava import log as lavalog
from lab.lava import dispatch as lavarun
from lab.core.errors import InfraError
from lab.kernel.acquire import Kernel
from lab.core.outcome import USER_ERROR_EXIT, Outcome, exit_code
from test_results_schema import check_run

GOLDEN = Path(__file__).parent / "golden" / "lava"


def _verdict(name: str, exited: lavarun.LavaExit = lavarun.LavaExit(0, 40.0)) -> tuple[Outcome, str, str]:
    parsed = lavalog.parse((GOLDEN / name).read_text())
    suites = [lavalog.suite_result(parsed, d) for d in parsed.definitions()]
    return lavarun.lava_verdict(parsed, suites, exited, consolescan.SplatPolicy())


@pytest.mark.parametrize("name, outcome, reason", [
    ("pin-passed-6.1.192.log", Outcome.PASSED, "every suite passed"),
    ("pin-failed-6.1.192.log", Outcome.FAILED, "failures in suite(s): pin"),
    ("pin-panic-6.1.192.log", Outcome.KERNEL_CRASHED, "Kernel panic - not syncing: sysrq triggered crash"),
    ("boot-failed-6.1.192.log", Outcome.BOOT_FAILED, "lab-init-failure: cannot mount root /dev/vdz"),
    # A lab build from before CONFIG_EXT4_USE_FOR_EXT2 was in the base fragment: LAVA waited 10 minutes.
    ("no-ext2-built-6.1.192.log", Outcome.INFRA_ERROR, "LAVA's test disk did not mount in the guest: unknown "
     "filesystem type 'ext2' (the kernel needs CONFIG_EXT4_USE_FOR_EXT2=y or CONFIG_EXT2_FS)"),
])
def test_verdict_of_real_jobs(name: str, outcome: Outcome, reason: str) -> None:
    got, why, _ = _verdict(name)
    assert (got, why) == (outcome, reason)


def test_a_killed_lava_run_timed_out_and_one_without_a_job_result_is_infrastructure() -> None:
    assert _verdict("pin-passed-6.1.192.log", lavarun.LavaExit(None, 9.0, "lava-run overran the job's timeout"))[0] \
        == Outcome.TIMED_OUT
    parsed = lavalog.parse('{"dt": "x", "lvl": "error", "msg": "ConfigurationError: no device"}\n')
    outcome, reason, _ = lavarun.lava_verdict(parsed, [], lavarun.LavaExit(1, 1.0), consolescan.SplatPolicy())
    assert outcome == Outcome.INFRA_ERROR and "no device" in reason


def test_a_lava_configuration_error_is_infrastructure() -> None:
    # As lava-run answered a device configuration without boot_retry (seen while writing the device template).
    log = ('{"dt": "x", "lvl": "results", "msg": {"case": "job", "definition": "lava", "error_msg": '
           '"Constant boot_retry does not exist in the device config \'constants\' section.", '
           '"error_type": "Configuration", "result": "fail"}}\n')
    outcome, reason, _ = lavarun.lava_verdict(lavalog.parse(log), [], lavarun.LavaExit(0, 1.0), consolescan.SplatPolicy())
    assert outcome == Outcome.INFRA_ERROR and reason.startswith("LAVA Configuration error: Constant boot_retry")


def test_environment_forces_tcg_for_libguestfs_and_lends_it_a_kernel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fetched = []
    fake = Kernel(tmp_path / "vmlinuz", "6.1.0-test", None, tmp_path / "modules")
    monkeypatch.setattr(lavarun, "_host_has_kernel", lambda: False)
    monkeypatch.setattr(lavarun.kernel, "fetch", lambda spec, cache, log: fetched.append(spec) or fake)
    env = lavarun.lava_environment(tmp_path, print, base={"PATH": "/bin"})
    assert env["LIBGUESTFS_BACKEND_SETTINGS"] == "force_tcg"
    assert (env["SUPERMIN_KERNEL"], env["SUPERMIN_MODULES"]) == (str(fake.image), str(fake.modules))
    assert fetched == [lavarun.APPLIANCE_KERNEL]
    # What the user set stays.
    env = lavarun.lava_environment(tmp_path, print, base={"SUPERMIN_KERNEL": "/k", "LIBGUESTFS_BACKEND_SETTINGS": "x"})
    assert env["SUPERMIN_KERNEL"] == "/k" and env["LIBGUESTFS_BACKEND_SETTINGS"] == "x" and len(fetched) == 1


def _job_dir(tmp_path: Path) -> Path:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "job.yaml").write_text("job\n")
    (job_dir / "device.yaml").write_text("device\n")
    (job_dir / "lava-job.json").write_text(json.dumps({
        "job_name": "bpf-kernel-lab test", "suites": ["pin"], "accel": "tcg",
        "metadata": {"lab.kernel.release": "6.1.0-56-cloud-amd64", "lab.kernel.identity": "6.1.0-56 (debian:6.1)"},
        "request": {"kernel": "debian:6.1", "suites": ["pin"], "accel": "tcg"},
        "kernel": {"release": "6.1.0-56-cloud-amd64", "image": "/cache/vmlinuz", "origin": "debian", "spec": "debian:6.1",
                   "package": "linux-image-6.1.0-56-cloud-amd64-unsigned", "version": "6.1.192-2",
                   "config_sha256": "6d45c8c827f41623fa380a0410c6acdca1604c64305459e068d987e65df87dcc"},
        "image": {"path": "/cache/rootfs.ext4", "digest": "e6" * 32}}))
    return job_dir


def _fake_lava_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "lava-run"
    script.write_text("#!/bin/sh\necho \"$@\" > " + str(tmp_path / "argv.txt") + "\necho $$ > " + str(tmp_path / "pid.txt")
                      + "\n" + body)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(lavarun, "lava_environment", lambda cache, log: dict(os.environ))
    return script


def test_a_replayed_failing_job_is_a_lab_run_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _fake_lava_run(tmp_path, monkeypatch, f"cat {GOLDEN / 'pin-failed-6.1.192.log'}\nexit 0\n")
    job_dir = _job_dir(tmp_path)
    code = lavarun.run(job_dir, tmp_path / "results", tmp_path / "cache", print)
    assert code == exit_code(Outcome.FAILED)  # lava-run said 0; the cases said otherwise
    (run_dir,) = (tmp_path / "results").iterdir()
    argv = (tmp_path / "argv.txt").read_text().split()
    assert argv[argv.index("--device") + 1] == str(job_dir / "device.yaml") and argv[-1] == str(job_dir / "job.yaml")
    assert argv[argv.index("--output-dir") + 1] == str(run_dir / "lava-output")
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["outcome"] == "failed" and metadata["lava"]["exit_status"] == 0
    assert metadata["lava"]["job_result"]["result"] == "pass"
    assert metadata["cpus"] == {"given": 2, "possible": 2, "online": 2} and "warnings" not in metadata
    results = json.loads((run_dir / "results.json").read_text())
    assert results["suites"][0]["suite"] == "pin" and results["suites"][0]["failed"] == 1
    assert results["suites"][0]["skipped"] == 1 and results["suites"][0]["pytest_rc"] == 1
    assert any(t["name"] == "test_zz_golden.py::test_fails" and t["outcome"] == "failed" for t in results["tests"])
    lava_results = json.loads((run_dir / "lava-results.json").read_text())
    assert {"case": "job", "definition": "lava", "result": "pass"} in lava_results
    assert "Linux version" in (run_dir / "console.log").read_text()
    assert (run_dir / "junit.xml").is_file()
    assert check_run(run_dir) == []  # the documented record, as `lab run` writes it
    script = (run_dir / "reproducer.sh").read_text()
    assert f"lava-run {job_dir} --results" in script and "6.1.192-2" in script
    assert "outcome: failed" in capsys.readouterr().out


def test_lava_run_overrunning_its_job_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_lava_run(tmp_path, monkeypatch, "sleep 600 &\nwait\n")
    monkeypatch.setattr(lavarun, "job_seconds", lambda job_dir: 1.5)
    started = time.monotonic()
    code = lavarun.run(_job_dir(tmp_path), tmp_path / "results", tmp_path / "cache", print)
    assert code == exit_code(Outcome.TIMED_OUT) and time.monotonic() - started < 30
    pid = int((tmp_path / "pid.txt").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the process group went with it, not only lava-run
    (run_dir,) = (tmp_path / "results").iterdir()
    assert json.loads((run_dir / "metadata.json").read_text())["outcome"] == "timed-out"


def test_lava_run_is_stopped_once_its_test_shell_cannot_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Replay the no-ext2 job up to LAVA's last words, then wait as LAVA would (ten minutes).
    golden = (GOLDEN / "no-ext2-built-6.1.192.log").read_text().splitlines()
    upto = next(i for i, line in enumerate(golden) if "bin/lava-test-runner: No such file" in line)
    head = tmp_path / "head.log"
    head.write_text("\n".join(golden[: upto + 1]) + "\n")
    _fake_lava_run(tmp_path, monkeypatch, f"cat {head}\nsleep 600 &\nwait\n")
    started = time.monotonic()
    code = lavarun.run(_job_dir(tmp_path), tmp_path / "results", tmp_path / "cache", print)
    assert code == exit_code(Outcome.INFRA_ERROR) and time.monotonic() - started < 30
    (run_dir,) = (tmp_path / "results").iterdir()
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["reason"].startswith("LAVA's test disk did not mount in the guest: unknown filesystem type 'ext2'")
    assert metadata["lava"]["exit_status"] is None
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "pid.txt").read_text()), 0)


def test_no_lava_run_is_a_clear_infrastructure_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lavarun.shutil, "which", lambda name: None)
    with pytest.raises(InfraError, match="lava-run is not installed"):
        lavarun.run(_job_dir(tmp_path), tmp_path / "results", tmp_path / "cache", print)


def test_lava_run_of_a_directory_that_is_no_job_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lava-run", str(tmp_path)]) == USER_ERROR_EXIT
    assert "not a `lab lava-job` output directory" in capsys.readouterr().err


def test_job_seconds_follow_the_jobs_own_timeout(tmp_path: Path) -> None:
    job_dir = _job_dir(tmp_path)
    assert lavarun.job_seconds(job_dir) == lavajob.timeouts(1, "tcg")["job"] * 60 + lavarun.MARGIN_SECONDS


def test_lava_run_with_an_artifact_gone_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    written = lavajob.write(lavajob.JobInputs(*(_artifact(tmp_path, n) for n in ("bzImage", "initramfs", "rootfs")), None,
                                              ["pin"], "tcg", "job", {}), tmp_path / "job")
    assert lavajob.missing_local_artifacts(written.job) == []
    written.artifacts["rootfs"].path.unlink()
    assert lavajob.missing_local_artifacts(written.job) == [written.artifacts["rootfs"].path]
    assert cli.main(["lava-run", str(written.directory)]) == USER_ERROR_EXIT
    assert f"the job's artifact {written.artifacts['rootfs'].path} is missing" in capsys.readouterr().err


def test_a_job_lava_refuses_before_booting_is_the_labs_failure() -> None:
    # As lava-run answered a job whose artifacts were gone (before the lab checked them itself).
    log = ('{"dt": "x", "lvl": "results", "msg": {"case": "job", "definition": "lava", "error_msg": '
           '"Invalid job data: [\\"Image file \'/tmp/j/bzImage\' does not exist or is not readable\\"]", '
           '"error_type": "Job", "result": "fail"}}\n')
    outcome, reason, _ = lavarun.lava_verdict(lavalog.parse(log), [], lavarun.LavaExit(0, 1.0), consolescan.SplatPolicy())
    assert outcome == Outcome.INFRA_ERROR and "does not exist" in reason


def _artifact(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "cache" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(name.encode())
    return path


def test_a_job_whose_kernel_brought_up_one_cpu_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A lab build from before CONFIG_ACPI ran its LAVA job on one of its two vCPUs."""
    _fake_lava_run(tmp_path, monkeypatch, f"cat {GOLDEN / 'no-ext2-built-6.1.192.log'}\nexit 0\n")
    lavarun.run(_job_dir(tmp_path), tmp_path / "results", tmp_path / "cache", print)
    (run_dir,) = (tmp_path / "results").iterdir()
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["cpus"] == {"given": 2, "possible": 1, "online": 1}
    [warning] = metadata["warnings"]
    assert "of the 2 QEMU gave it" in warning and f"warning: {warning}" in capsys.readouterr().out
