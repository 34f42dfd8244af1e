"""lab.run.verdict and lab.run.guest: console classification, and execute() deciding outcomes with the boot faked."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import pytest

from lab.vm import accel
from lab.guest import image
from lab.run import bytecode
from lab.run import guest as guest_run
from lab.run import series
from lab.run import suites as runner
from lab.core.errors import InfraError
from lab.kernel.acquire import Kernel
from lab.kernel.spec import DebianSpec
from lab.guest.keys import LabKeys
from lab.vm.machine import BootFailed, BootTimedOut
from lab.core.outcome import Outcome
from lab.results.model import FAILED, PASSED, SuiteResult
from lab.results.model import TestRecord as Record
from lab.core.timeouts import Timeouts
from lab.target.base import CommandResult, CommandTimedOut, ConnectionLost
from lab.run.lifecycle import run_deadline
from lab.run.lifecycle import RunOutcome
from lab.run.verdict import classify_kernel_log
from lab.guest.assets import Prepared
from lab.run.request import RunRequest

CLEAN = "[    2.1] Run /init as init process\r\nlab-ready: sshd started on 6.1.0-fake\r\n"
WARN_LINE = "[   30.1] WARNING: CPU: 1 PID: 345 at kernel/bpf/hashtab.c:1234 htab_map_free+0x12/0x40"
PANIC_LINE = "[   31.0] Kernel panic - not syncing: Fatal exception in interrupt"
LOCKUP_LINE = "[   60.1] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [python3:345]"


# --- classify_kernel_log ------------------------------------------------------------------------------


def test_classify_clean_console() -> None:
    assert classify_kernel_log(CLEAN, all_passed=True) is None
    assert classify_kernel_log(CLEAN, all_passed=False) is None


def test_classify_crash_wins_whatever_the_tests_said() -> None:
    text = CLEAN + WARN_LINE + "\r\n" + "filler\r\n" * 3 + PANIC_LINE + "\r\n"
    for all_passed in (True, False):
        outcome, reason, excerpt = classify_kernel_log(text, all_passed)  # type: ignore[misc]
        assert outcome is Outcome.KERNEL_CRASHED
        assert reason == "Kernel panic - not syncing: Fatal exception in interrupt"
        assert PANIC_LINE in excerpt and "\r" not in excerpt


def test_classify_warning_only_when_everything_passed() -> None:
    text = CLEAN + WARN_LINE + "\r\n"
    outcome, reason, excerpt = classify_kernel_log(text, all_passed=True)  # type: ignore[misc]
    assert outcome is Outcome.KERNEL_WARNED
    assert reason.startswith("WARNING: CPU: 1 PID: 345")
    assert WARN_LINE in excerpt
    # With failing tests, the failures are the outcome; the warning is in the console log.
    assert classify_kernel_log(text, all_passed=False) is None


def test_classify_reports_the_first_crash() -> None:
    text = CLEAN + LOCKUP_LINE + "\n" + PANIC_LINE + "\n"
    result = classify_kernel_log(text, all_passed=True)
    assert result is not None and result[1].startswith("watchdog: BUG: soft lockup")


# --- execute ------------------------------------------------------------------------------------------


def ok_suite(name: str) -> SuiteResult:
    return SuiteResult(name, [Record(name, f"test_{name}.py::t", PASSED, 0.1)], 1.0, 0)


def failed_suite(name: str) -> SuiteResult:
    return SuiteResult(name, [Record(name, f"test_{name}.py::t", FAILED, 0.1, "assert 0")], 1.0, 1)


def timed_out_suite(name: str) -> SuiteResult:
    return SuiteResult(name, [], 600.0, None, "timed out: 'cd /root/lab/guest-tests && ...' did not finish within 600 s")


class World:
    """Everything execute() talks to, faked; tests set the attributes they care about."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.console = CLEAN
        self.boot_error: BaseException | None = None
        self.accel_error: BaseException | None = None
        self.ship_error: BaseException | None = None
        self.dmesg_error: BaseException | None = None
        self.suite_results: dict[str, SuiteResult | BaseException] = {}
        self.suite_timeouts: list[float] = []
        self.ran: list[str] = []
        self.coverage: list[bool] = []  # whether each series was asked to keep the kernel's counters
        self.selected: list[tuple[tuple[str, ...], int | None]] = []  # (only, repeat) each suite was run with
        self.logged: list[str] = []
        self.reported: list[SuiteResult] = []
        self.cpu_lists = "0-1\n0-1\n"  # what the guest's sysfs says: possible, then online
        self.boot: dict[str, object] = {"mode": "cold", "snapshot": "k" * 24, "saved": True, "save_seconds": 1.5}
        self.snapshots: Path | None = None
        self.bytecode_kept = False  # whether an earlier run left bytecode for this tree and image
        self.bytecode_calls: list[str] = []
        self.keep_error: BaseException | None = None
        self.target = SimpleNamespace(name="fake target", run=self._run)
        monkeypatch.setattr(guest_run, "qemu_version", lambda: "7.2.22")
        monkeypatch.setattr(accel, "choose", self._choose)
        monkeypatch.setattr(guest_run, "booted", self._booted)
        monkeypatch.setattr(runner, "ship", self._ship)
        monkeypatch.setattr(series, "run_series", self._run_series)
        monkeypatch.setattr(runner, "collect_dmesg", self._dmesg)
        monkeypatch.setattr(bytecode, "restore", self._restore_bytecode)
        monkeypatch.setattr(bytecode, "keep", self._keep_bytecode)

    def _restore_bytecode(self, target: object, cache: Path, key: str, timeout: float) -> bool:
        assert target is self.target
        self.bytecode_calls.append(f"restore {key}")
        return self.bytecode_kept

    def _keep_bytecode(self, target: object, cache: Path, key: str, timeout: float) -> bool:
        self.bytecode_calls.append(f"keep {key}")
        if self.keep_error:
            raise self.keep_error
        return True

    def _choose(self, requested: str, *args: object) -> accel.AccelChoice:
        if self.accel_error:
            raise self.accel_error
        return accel.AccelChoice("tcg", "a KVM boot failed", probed=True)

    @contextmanager
    def _booted(self, prepared: Prepared, accel_name: str, run_dir: Path, timeouts: Timeouts,
                extra_cmdline: str = "", snapshots: Path | None = None) -> Iterator[tuple[object, object]]:
        self.snapshots = snapshots
        (run_dir / "console.log").write_text(self.console)
        if self.boot_error:
            raise self.boot_error
        yield SimpleNamespace(ssh_port=40022, console=None, spec=SimpleNamespace(cpus=2), boot=self.boot), self.target

    def _run(self, command: str, timeout: float, stdout_sink: Path | None = None) -> CommandResult:
        assert command == "cat /sys/devices/system/cpu/possible /sys/devices/system/cpu/online"
        return CommandResult(0, self.cpu_lists, "")

    def _ship(self, target: object, timeout: float, tree: object = None) -> int:
        assert target is self.target
        if self.ship_error:
            raise self.ship_error
        return 10

    def _run_suite(self, target: object, name: str, run_dir: Path, timeout: float, tree: object = None,
                   root: str = runner.REMOTE_ROOT, transfer_timeout: float | None = None, only: tuple[str, ...] = (),
                   repeat: int | None = None) -> SuiteResult:
        assert root == runner.REMOTE_ROOT  # a guest run ships to the guest's fixed place
        self.ran.append(name)
        self.selected.append((only, repeat))
        self.suite_timeouts.append(timeout)
        result = self.suite_results.get(name, ok_suite(name))
        if isinstance(result, BaseException):
            raise result
        return result

    def _run_series(self, target: object, names: list[str], run_dir: Path, timeout: float,
                    started: Callable[[str], None], finished: Callable[[SuiteResult], None], tree: object = None,
                    root: str = runner.REMOTE_ROOT, only: Callable[[str], tuple[str, ...]] = lambda name: (),
                    repeat: int | None = None, watch: object = None, jobs: int | None = None,
                    coverage: bool = False) -> str:
        """As the series runner: each suite started, run (by _run_suite) and finished in turn; a
        timed-out suite ends the series. The runner said it runs them one at a time."""
        self.coverage.append(coverage)
        if callable(watch):
            sink = series.SeriesSink(run_dir, names, timeout, started, finished)
            sink.jobs = jobs or 1
            watch(sink)
        for name in names:
            started(name)
            result = self._run_suite(target, name, run_dir, timeout, tree, root, only=only(name), repeat=repeat)
            finished(result)
            if result.error.startswith("timed out"):
                break
        return ""

    def _dmesg(self, target: object, run_dir: Path, timeout: float) -> None:
        if self.dmesg_error:
            raise self.dmesg_error
        (run_dir / "dmesg.txt").write_text("dmesg\n")

    def execute(self, suites: list[str] = ["maps", "dump", "pin"], suite_timeout: float | None = None,
                run_timeout: float | None = None, coverage: bool = False, **bounds: float) -> RunOutcome:
        kernel = Kernel(self.tmp_path / "vmlinuz", "6.1.0-fake", None, None, {"origin": "debian"})
        keys = LabKeys(self.tmp_path / "c", "ssh-ed25519 AAAA c", self.tmp_path / "h", "ssh-ed25519 BBBB")
        prepared = Prepared(kernel, image.Image(self.tmp_path / "rootfs.ext4", "ab" * 32),
                                     self.tmp_path / "initrd", keys, {"kernel": 0.1})
        request = RunRequest(DebianSpec("6.1"), "debian:6.1", suites, "auto", self.tmp_path / "results",
                                      suite_timeout, run_timeout=run_timeout, coverage=coverage,
                                      **bounds)  # type: ignore[arg-type]
        return guest_run.execute(request, prepared, self.tmp_path / "cache", self.logged.append, self.reported.append)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(tmp_path, monkeypatch)


def metadata(outcome: RunOutcome) -> dict:
    return json.loads((outcome.record.directory / "metadata.json").read_text())


def test_everything_passes(world: World) -> None:
    result = world.execute()
    assert result.outcome is Outcome.PASSED and result.reason == "every suite passed"
    assert world.ran == ["maps", "dump", "pin"]
    assert [s.name for s in world.reported] == ["maps", "dump", "pin"]
    data = metadata(result)
    assert data["outcome"] == "passed"
    assert data["accelerator"] == {"name": "tcg", "reason": "a KVM boot failed", "probed": True}
    assert data["kernel"]["release"] == "6.1.0-fake" and data["kernel"]["origin"] == "debian"
    assert data["ssh_port"] == 40022
    assert [data["stages"][s]["status"] for s in ("accelerator", "ship", "suite:maps", "suite:dump", "suite:pin")] == [
        "done"] * 5
    results = json.loads((result.record.directory / "results.json").read_text())
    assert [s["suite"] for s in results["suites"]] == ["maps", "dump", "pin"]
    assert (result.record.directory / "dmesg.txt").is_file()
    assert data["cpus"] == {"given": 2, "possible": 2, "online": 2} and "warnings" not in data


def test_a_coverage_run_whose_kernel_has_no_notes_keeps_its_outcome_and_says_why(world: World) -> None:
    """The counters are asked for (the series runs with coverage), but the build cache holds no
    notes for this kernel: the suites' verdict stands, with one warning and the reason recorded."""
    result = world.execute(coverage=True)
    assert world.coverage == [True]
    assert result.outcome is Outcome.PASSED
    data = metadata(result)
    reason = "6.1.0-fake has no coverage notes in the build cache"
    assert data["coverage"] == {"error": reason} and data["warnings"] == [f"no coverage: {reason}"]
    assert f"warning: no coverage: {reason}" in world.logged


def test_a_run_without_coverage_asks_for_no_counters(world: World) -> None:
    result = world.execute()
    assert world.coverage == [False] and "coverage" not in metadata(result)


def test_the_boot_is_recorded_and_a_snapshot_that_did_not_restore_is_a_warning_of_the_run(world: World) -> None:
    warning = "snapshot kkkk did not restore (its state is damaged (checksum)); booted cold and saved a fresh one"
    world.boot = {"mode": "cold", "snapshot": "k" * 24, "saved": True, "save_seconds": 1.5, "warning": warning}
    result = world.execute()
    assert result.outcome is Outcome.PASSED
    assert world.snapshots == world.tmp_path / "cache"  # the run's cache holds the snapshots
    data = metadata(result)
    assert data["boot"] == world.boot and data["warnings"] == [warning]
    assert f"warning: {warning}" in world.logged


def test_no_snapshot_boots_without_the_snapshot_store(world: World) -> None:
    world.boot = {"mode": "cold", "snapshot": None}
    data = metadata(world.execute(snapshot=False))
    assert world.snapshots is None and data["boot"] == {"mode": "cold", "snapshot": None}
    assert "--no-snapshot" in (world.tmp_path / "results" / data["run_id"] / "reproducer.sh").read_text()


def test_bytecode_is_kept_after_a_run_whose_suites_all_finished_and_restored_in_the_next(world: World) -> None:
    first = metadata(world.execute())
    [restore, keep] = world.bytecode_calls
    assert restore.startswith("restore ") and keep == "keep " + restore.split()[1]
    assert first["bytecode"] == {"restored": False, "kept": True} and first["stages"]["bytecode"]["status"] == "done"
    world.bytecode_kept, world.bytecode_calls = True, []
    second = metadata(world.execute())
    assert world.bytecode_calls == [restore] and second["bytecode"] == {"restored": True}


def test_bytecode_is_not_kept_from_a_suite_that_did_not_finish(world: World) -> None:
    world.suite_results["dump"] = timed_out_suite("dump")
    result = world.execute()
    assert result.outcome is Outcome.TIMED_OUT
    assert [call.split()[0] for call in world.bytecode_calls] == ["restore"]


def test_a_failure_to_keep_bytecode_is_a_warning_not_the_runs_outcome(world: World) -> None:
    world.keep_error = CommandTimedOut("tar", 120, "")
    result = world.execute()
    assert result.outcome is Outcome.PASSED
    assert any(line.startswith("warning: the guest's bytecode was not kept") for line in world.logged)
    assert metadata(result)["bytecode"] == {"restored": False}


@pytest.mark.parametrize("lists, possible, online", [("0\n0\n", 1, 1), ("0-1\n0\n", 2, 1)])
def test_a_guest_with_fewer_cpus_than_given_is_a_warning(world: World, lists: str, possible: int, online: int) -> None:
    world.cpu_lists = lists
    result = world.execute()
    assert result.outcome is Outcome.PASSED  # the tests decide; the record says what they could prove
    data = metadata(result)
    assert data["cpus"] == {"given": 2, "possible": possible, "online": online}
    [warning] = data["warnings"]
    assert f"brought up {online} CPU(s) ({possible} possible) of the 2 QEMU gave it" in warning
    assert any(line == f"warning: {warning}" for line in world.logged)


def test_timeouts_are_scaled_and_the_suite_timeout_applies(world: World) -> None:
    result = world.execute(suite_timeout=42)
    assert world.suite_timeouts == [42, 42, 42]
    recorded = metadata(result)["timeouts"]
    assert recorded["suite"] == 42
    assert recorded["boot"] == Timeouts().scaled_for("tcg").boot


def test_every_stage_bound_can_be_set(world: World) -> None:
    """--boot-timeout, --ssh-timeout and --command-timeout replace the scaled defaults; the
    probe bound reaches the accelerator choice."""
    probe_bounds: list[object] = []
    chosen = world._choose
    world.monkeypatch.setattr(accel, "choose", lambda *args: probe_bounds.append(args[-1]) or chosen(*args))
    result = world.execute(boot_timeout=11, ssh_timeout=7, command_timeout=9, probe_timeout=3)
    recorded = metadata(result)["timeouts"]
    assert (recorded["boot"], recorded["ssh"], recorded["command"]) == (11, 7, 9)
    assert recorded["suite"] == Timeouts().scaled_for("tcg").suite
    assert probe_bounds == [3]


def test_a_failing_suite_is_failed(world: World) -> None:
    world.suite_results["dump"] = failed_suite("dump")
    result = world.execute()
    assert result.outcome is Outcome.FAILED
    assert result.reason == "failures in suite(s): dump"
    assert world.ran == ["maps", "dump", "pin"]  # a failure does not stop the run


def test_a_warning_with_green_suites_is_kernel_warned(world: World) -> None:
    world.console = CLEAN + WARN_LINE + "\r\n"
    result = world.execute()
    assert result.outcome is Outcome.KERNEL_WARNED
    assert metadata(result)["console_excerpt"].count("WARNING: CPU: 1") == 1


def test_a_warning_with_failing_suites_is_failed(world: World) -> None:
    world.console = CLEAN + WARN_LINE + "\r\n"
    world.suite_results["maps"] = failed_suite("maps")
    assert world.execute().outcome is Outcome.FAILED


def test_a_crash_on_the_console_is_never_green(world: World) -> None:
    world.console = CLEAN + PANIC_LINE + "\r\n"
    result = world.execute()
    assert result.outcome is Outcome.KERNEL_CRASHED
    assert result.reason == "Kernel panic - not syncing: Fatal exception in interrupt"
    assert PANIC_LINE in metadata(result)["console_excerpt"]


def test_a_suite_timeout_stops_the_run(world: World) -> None:
    world.suite_results["dump"] = timed_out_suite("dump")
    result = world.execute()
    assert result.outcome is Outcome.TIMED_OUT
    assert result.reason.startswith("suite dump: timed out")
    assert world.ran == ["maps", "dump"]  # pin did not run on a guest that may be hung
    assert [s.name for s in result.suites] == ["maps", "dump"]


def test_a_suite_timeout_with_a_lockup_on_the_console_is_a_crash(world: World) -> None:
    world.suite_results["maps"] = timed_out_suite("maps")
    world.console = CLEAN + LOCKUP_LINE + "\r\n"
    assert world.execute().outcome is Outcome.KERNEL_CRASHED


def test_a_suite_timeout_on_a_hung_guest_still_ends_with_an_outcome(world: World) -> None:
    # The guest that did not finish the suite does not answer dmesg either.
    world.suite_results["maps"] = timed_out_suite("maps")
    world.dmesg_error = CommandTimedOut("dmesg", 120, "")
    result = world.execute()
    assert result.outcome is Outcome.TIMED_OUT
    assert result.reason.startswith("suite maps: timed out")
    assert metadata(result)["outcome"] == "timed-out"


def test_a_hung_upload_ends_with_an_outcome(world: World) -> None:
    world.ship_error = CommandTimedOut("rm -rf /root/lab", 120, "")
    result = world.execute()
    assert result.outcome is Outcome.TIMED_OUT
    assert metadata(result)["outcome"] == "timed-out"
    assert metadata(result)["stages"]["ship"]["status"] == "failed"
    assert world.ran == []


def test_boot_failure(world: World) -> None:
    world.boot_error = BootFailed("QEMU exited before init was ready", "Kernel panic - not syncing: VFS")
    result = world.execute()
    assert result.outcome is Outcome.BOOT_FAILED
    assert result.reason == "QEMU exited before init was ready"
    assert metadata(result)["console_excerpt"] == "Kernel panic - not syncing: VFS"
    assert world.ran == [] and result.suites == []


def test_boot_timeout(world: World) -> None:
    world.boot_error = BootTimedOut("the console was silent for 80 s", "Probing EDD (edd=off to disable)... ok")
    result = world.execute()
    assert result.outcome is Outcome.TIMED_OUT
    assert result.reason == "boot: the console was silent for 80 s"


def test_lost_connection_with_a_crash_on_the_console_is_a_crash(world: World) -> None:
    world.console = CLEAN + "[   12.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\r\n"
    world.suite_results["dump"] = ConnectionLost("the SSH connection broke during 'pytest'")
    result = world.execute()
    assert result.outcome is Outcome.KERNEL_CRASHED
    assert result.reason == "BUG: kernel NULL pointer dereference, address: 0000000000000008"
    assert metadata(result)["stages"]["suite:dump"]["status"] == "failed"


def test_lost_connection_with_a_clean_console(world: World) -> None:
    world.console = CLEAN + WARN_LINE + "\r\n"  # a warning alone does not explain a lost connection
    world.suite_results["dump"] = ConnectionLost("the SSH connection broke during 'pytest'")
    result = world.execute()
    assert result.outcome is Outcome.LOST_CONNECTION
    assert "connection broke" in result.reason
    assert [s.name for s in result.suites] == ["maps"]


def test_infra_error(world: World) -> None:
    world.accel_error = InfraError("qemu-system-x86_64 is not installed (run `make setup`)")
    result = world.execute()
    assert result.outcome is Outcome.INFRA_ERROR
    assert "not installed" in result.reason
    assert metadata(result)["stages"]["accelerator"]["status"] == "failed"


def test_interrupt_is_recorded_then_raised(world: World) -> None:
    world.suite_results["dump"] = KeyboardInterrupt("signal 15")
    with pytest.raises(KeyboardInterrupt):
        world.execute()
    [run] = list((world.tmp_path / "results").iterdir())
    data = json.loads((run / "metadata.json").read_text())
    assert data["outcome"] == "interrupted"
    assert data["stages"]["suite:dump"]["status"] == "failed"


def test_the_record_exists_even_when_everything_fails_early(world: World) -> None:
    world.boot_error = BootFailed("QEMU could not forward the SSH port", "")
    result = world.execute()
    assert (result.record.directory / "results.json").is_file()
    assert metadata(result)["image"]["digest"] == "ab" * 32


def test_the_whole_run_bound_ends_a_run_that_would_go_on(world: World) -> None:
    """--run-timeout: a SIGALRM deadline interrupts whatever the run is waiting on."""
    import time as time_module

    world.suite_results["dump"] = ok_suite("dump")
    real_run_suite = world._run_suite

    def hangs_in_dump(target: object, name: str, run_dir: Path, timeout: float, tree: object = None,
                      root: str = runner.REMOTE_ROOT, transfer_timeout: float | None = None, only: tuple[str, ...] = (),
                      repeat: int | None = None) -> SuiteResult:
        if name == "dump":
            time_module.sleep(30)
        return real_run_suite(target, name, run_dir, timeout, tree, root)

    world.monkeypatch.setattr(world, "_run_suite", hangs_in_dump)
    started = time_module.monotonic()
    result = world.execute(run_timeout=1.5)
    assert time_module.monotonic() - started < 10
    assert result.outcome is Outcome.TIMED_OUT
    assert result.reason == "the whole run exceeded 2 s"
    assert [s.name for s in result.suites] == ["maps"]  # what finished is kept
    assert json.loads((result.record.directory / "metadata.json").read_text())["outcome"] == "timed-out"


def test_no_run_bound_leaves_no_timer_behind() -> None:
    import signal as signal_module

    with run_deadline(5):
        assert signal_module.getitimer(signal_module.ITIMER_REAL)[0] > 0
    assert signal_module.getitimer(signal_module.ITIMER_REAL) == (0.0, 0.0)
    with run_deadline(None):
        assert signal_module.getitimer(signal_module.ITIMER_REAL) == (0.0, 0.0)


def test_a_selection_and_a_repetition_reach_the_suites_and_the_reproducer(world: World) -> None:
    from lab.run.selection import Selection

    chosen = Selection({"maps": ("test_maps_hash.py::test_update_noexist[HASH]",)})
    result = world.execute(suites=["maps"], selection=chosen, repeat=2)  # type: ignore[arg-type]
    assert world.selected == [(("test_maps_hash.py::test_update_noexist[HASH]",), 2)]
    script = (result.record.directory / "reproducer.sh").read_text()
    assert "--test=maps/test_maps_hash.py::test_update_noexist[HASH]" in script and "--suite=" not in script
    assert "repetition 2 of --repeat (the guest saw LAB_REPEAT=2)" in script
