"""What a guest can do to the lab's SSH side, and what the lab makes of it (issue 14): a guest that
freezes in the middle of a transfer, one that sends more than the lab keeps, and a host whose own
disk is full. Against test_lab_transport's in-process sshd, through a relay that can freeze (it
stops moving bytes but keeps both sockets open, as QEMU does for a hung guest). No VM.
"""
from __future__ import annotations

import base64
import json
import os
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from test_lab_transport import FakeSshd, lab_keys, sshd  # noqa: F401  (fixtures)

from lab.core.errors import InfraError
from lab.core.outcome import Outcome
from lab.guest import keys
from lab.results import layout
from lab.results.kernel_log import SplatPolicy
from lab.results.model import SuiteResult
from lab.run import series
from lab.run import suites as runner
from lab.run.verdict import verdict
from lab.target import ssh
from lab.target.base import (
    CommandResult,
    CommandTimedOut,
    ConnectionLost,
    Sink,
    TransferRefused,
    as_sink,
)
from lab.target.ssh import SshTarget

T = TypeVar("T")
TIMEOUT = 1.5  # the command bound every transfer here gets


def finishes_within(seconds: float, call: Callable[[], T]) -> T:
    """call() in a thread: a regression that blocks fails the test instead of hanging it."""
    box: dict[str, object] = {}

    def go() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


class FreezableRelay:
    """127.0.0.1:port -> the sshd; freeze() stops it moving bytes either way, sockets left open."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.frozen = threading.Event()
        self.stopped = threading.Event()
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, dest: socket.socket) -> None:
        while not self.stopped.is_set():
            if self.frozen.is_set():
                time.sleep(0.05)  # not reading: the sender's buffers fill, as with a hung guest
                continue
            try:
                if not select.select([source], [], [], 0.05)[0]:
                    continue
                data = source.recv(65536)
                if not data:
                    return
                while self.frozen.is_set() and not self.stopped.is_set():
                    time.sleep(0.05)
                dest.sendall(data)
            except OSError:
                return

    def freeze(self) -> None:
        self.frozen.set()

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def relay(sshd: FakeSshd) -> Iterator[FreezableRelay]:
    relay = FreezableRelay(sshd.port)
    yield relay
    relay.stop()


@pytest.fixture
def target(relay: FreezableRelay, lab_keys: keys.LabKeys) -> Iterator[SshTarget]:
    with SshTarget.connect("127.0.0.1", relay.port, "root", lab_keys.client_private, lab_keys.host_public, 10) as t:
        yield t


def _tree(root: Path, files: int = 3, size: int = 1 << 20) -> Path:
    """More than one SSH window (2 MiB) of data, so an upload cannot just vanish into buffers."""
    root.mkdir()
    for number in range(files):
        (root / f"test_{number}.py").write_bytes(os.urandom(size))
    return root


# --- item 4: a guest that freezes during a transfer ------------------------------------------------

BOUND = TIMEOUT + ssh.ABORT_GRACE + 3  # what the slowest way out (closing the connection) may take


def test_an_upload_to_a_guest_that_froze_before_sftp_times_out(target: SshTarget, relay: FreezableRelay,
                                                               tmp_path: Path) -> None:
    tree = _tree(tmp_path / "guest-tests")
    relay.freeze()  # the SFTP session itself is never answered
    started = time.monotonic()
    with pytest.raises(CommandTimedOut, match="upload of .*guest-tests.* within 2 s"):
        finishes_within(BOUND, lambda: target.put_tree(tree, "/root/lab/guest-tests", TIMEOUT))
    assert TIMEOUT - 0.1 <= time.monotonic() - started < BOUND


def test_an_upload_to_a_guest_that_freezes_mid_session_times_out(target: SshTarget, relay: FreezableRelay,
                                                                 tmp_path: Path) -> None:
    first = tmp_path / "first.txt"
    first.write_text("before the freeze\n")
    target.put(first, "/root/lab/first.txt", 10)  # the SFTP session is open and working
    tree = _tree(tmp_path / "guest-tests")
    relay.freeze()
    started = time.monotonic()
    with pytest.raises(CommandTimedOut):
        finishes_within(BOUND, lambda: target.put_tree(tree, "/root/lab/guest-tests", TIMEOUT))
    assert TIMEOUT - 0.1 <= time.monotonic() - started < BOUND


def test_a_download_from_a_guest_that_freezes_times_out_and_leaves_no_file(target: SshTarget, relay: FreezableRelay,
                                                                           sshd: FakeSshd, tmp_path: Path) -> None:
    (sshd.root / "root/lab/out/maps.xml").write_bytes(b"<testsuite>" + os.urandom(3 << 20))
    local = tmp_path / "junit-maps.xml"
    target.run("true", 10)
    relay.freeze()
    started = time.monotonic()
    with pytest.raises(CommandTimedOut, match="download of /root/lab/out/maps.xml"):
        finishes_within(BOUND, lambda: target.get("/root/lab/out/maps.xml", local, TIMEOUT))
    assert TIMEOUT - 0.1 <= time.monotonic() - started < BOUND
    assert not local.exists()


def test_a_command_on_a_frozen_guest_times_out(target: SshTarget, relay: FreezableRelay) -> None:
    relay.freeze()
    with pytest.raises(CommandTimedOut):
        finishes_within(BOUND, lambda: target.run("echo hi", TIMEOUT))


def test_a_transfer_that_overran_on_a_live_guest_leaves_the_connection_usable(target: SshTarget, sshd: FakeSshd,
                                                                              tmp_path: Path) -> None:
    # The guest's SFTP server blocks opening a FIFO nobody writes: only this transfer is stuck,
    # so only its channel is closed, and the suite's dmesg afterwards still gets an answer.
    fifo = sshd.root / "root/lab/out/maps.xml"
    os.mkfifo(fifo)
    try:
        with pytest.raises(CommandTimedOut):
            finishes_within(BOUND, lambda: target.get("/root/lab/out/maps.xml", tmp_path / "maps.xml", TIMEOUT))
        time.sleep(ssh.ABORT_GRACE + 0.5)  # past the point where a stuck transfer closes the connection
        assert target.run("echo still here", 10).out == "still here\n"
    finally:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # lets the fake server's open return


# --- item 9: what a guest sends is capped -----------------------------------------------------------


def test_stdout_past_the_cap_is_drained_and_dropped_and_said(target: SshTarget, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "STDOUT_CAP", 10_000)
    sink = tmp_path / "maps.log"
    result = target.run("head -c 3000000 /dev/zero | tr '\\0' x; echo finished >&2", 30, stdout_sink=sink)
    assert result.rc == 0 and result.err == "finished\n"  # the command ran to its end: nothing blocked
    assert result.out == "x" * 10_000
    assert "stdout past 10000 bytes" in result.truncated and "2990000 bytes dropped" in result.truncated
    logged = sink.read_text()
    assert logged.startswith("x" * 10_000) and len(logged) < 10_200
    assert "[lab: stdout truncated: more than 10000 bytes; the rest was read and dropped]" in logged


def test_stderr_past_its_cap_is_dropped(target: SshTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "STDERR_CAP", 1000)
    result = target.run("head -c 500000 /dev/zero | tr '\\0' e >&2; echo out", 30)
    assert result.out == "out\n" and result.err == "e" * 1000
    assert result.truncated.startswith("stderr past 1000 bytes")


def test_output_under_the_caps_is_not_marked(target: SshTarget) -> None:
    assert target.run("echo small", 10) == CommandResult(0, "small\n", "", "")


def test_a_report_larger_than_the_cap_is_refused_and_not_kept(target: SshTarget, sshd: FakeSshd, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "DOWNLOAD_CAP", 1000)
    (sshd.root / "root/lab/out/maps.xml").write_bytes(b"<" * 5000)
    local = tmp_path / "junit-maps.xml"
    with pytest.raises(TransferRefused, match="5000 bytes, more than the lab takes"):
        target.get("/root/lab/out/maps.xml", local, 10)
    assert not local.exists()
    (sshd.root / "root/lab/out/dump.xml").write_bytes(b"<" * 1000)  # at the cap: taken
    assert target.get("/root/lab/out/dump.xml", local, 10) and local.stat().st_size == 1000


def test_a_report_linked_to_dev_zero_is_refused_at_once(target: SshTarget, sshd: FakeSshd, tmp_path: Path) -> None:
    (sshd.root / "root/lab/out/maps.xml").symlink_to("/dev/zero")
    local = tmp_path / "junit-maps.xml"
    started = time.monotonic()
    with pytest.raises(TransferRefused, match="not a regular file"):
        target.get("/root/lab/out/maps.xml", local, 30)
    assert time.monotonic() - started < 5 and not local.exists()


def test_a_report_that_grows_past_the_cap_while_read_is_refused(target: SshTarget, sshd: FakeSshd, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A /proc file says it is a regular file of 0 bytes and then has more: the size is checked as it comes.
    monkeypatch.setattr(ssh, "DOWNLOAD_CAP", 100)
    (sshd.root / "root/lab/out/maps.xml").symlink_to("/proc/self/maps")
    local = tmp_path / "junit-maps.xml"
    with pytest.raises(TransferRefused, match="grew past 100 bytes"):
        target.get("/root/lab/out/maps.xml", local, 10)
    assert not local.exists()


# --- item 7: the lab's own disk full is the host's failure --------------------------------------------


def test_a_full_disk_under_the_suite_log_is_infra_error_not_lost_connection(target: SshTarget) -> None:
    full = Path("/dev/full")  # every write: ENOSPC
    with pytest.raises(InfraError, match=r"writing /dev/full: \[Errno 28\] No space left on device"):
        target.run("echo a line for the log", 10, stdout_sink=full)
    assert target.run("echo still connected", 10).out == "still connected\n"


def test_a_full_disk_under_a_download_is_infra_error(target: SshTarget, sshd: FakeSshd, tmp_path: Path) -> None:
    (sshd.root / "root/lab/out/maps.xml").write_text("<testsuite/>\n")
    local = tmp_path / "junit-maps.xml"
    local.symlink_to("/dev/full")  # the local file's writes fail as on a full disk
    with pytest.raises(InfraError, match=r"writing .*junit-maps.xml: \[Errno 28\] No space left on device"):
        target.get("/root/lab/out/maps.xml", local, 10)
    assert not local.is_symlink() and Path("/dev/full").exists()  # the partial (a link here) is gone, not its target


def test_an_unreadable_local_file_is_infra_error(target: SshTarget, tmp_path: Path) -> None:
    tree = tmp_path / "guest-tests"
    tree.mkdir()
    (tree / "test_gone.py").symlink_to(tmp_path / "nowhere")
    target.run("mkdir -p /root/lab/guest-tests", 10)
    with pytest.raises(InfraError, match=r"reading .*test_gone.py"):
        target.put_tree(tree, "/root/lab/guest-tests", 10)


def test_an_upload_the_live_target_refuses_is_not_a_lost_connection(target: SshTarget, tmp_path: Path) -> None:
    local = tmp_path / "a.txt"
    local.write_text("x\n")
    with pytest.raises(InfraError, match="the target refused the upload"):
        target.put(local, "/root/lab/no/such/dir/a.txt", 10)
    assert target.run("echo fine", 10).out == "fine\n"


# --- the runner: every one of these ends as an outcome, the finished tests kept ------------------------


JUNIT = ('<testsuites><testsuite name="pytest" tests="2"><properties><property name="kernel_release" value="6.1"/>'
         '</properties><testcase classname="suites.maps.test_a" name="test_ok" time="0.1"/>'
         '<testcase classname="suites.maps.test_a" name="test_more" time="0.1"/></testsuite></testsuites>')


def event(**fields: object) -> bytes:
    return b"\n@@lab-suite " + json.dumps(fields, sort_keys=True).encode() + b"\n"


def stream_line(nodeid: str, kind: str = "end") -> bytes:
    fields = {"event": kind, "nodeid": f"suites/maps/{nodeid}", "outcome": "passed", "duration": 0.1}
    return b"@@lab-test " + json.dumps(fields, sort_keys=True).encode() + b"\n"


def suite_stream(name: str, junit: str | None = JUNIT, *, timed_out: bool = False) -> bytes:
    """What labsuites.py prints for one suite that ran test_ok (and ended, unless junit is cut short)."""
    return (event(event="suite-start", suite=name) + stream_line("test_a.py::test_ok", "start")
            + stream_line("test_a.py::test_ok") + b"1 passed in 0.10s\n"
            + event(event="suite-end", suite=name, rc=None if timed_out else 0, timed_out=timed_out, seconds=0.5,
                    stderr="", junit=junit))


class ScriptedTarget:
    """A Target whose one command prints `stream` (in pieces of `chunk` bytes), then ends as told."""

    def __init__(self, stream: bytes = b"", ends: BaseException | None = None, chunk: int = 7) -> None:
        self.stream, self.ends, self.chunk = stream, ends, chunk
        self.timeouts: dict[str, float] = {}
        self.deadlines: list[float | None] = []

    def run(self, command: str, timeout: float, stdout_sink: Sink | None = None) -> CommandResult:
        self.timeouts["run"] = timeout
        sink = as_sink(stdout_sink)
        if sink is not None:
            for at in range(0, len(self.stream), self.chunk):
                sink.write(self.stream[at:at + self.chunk])
                self.deadlines.append(sink.deadline())
            sink.close()
        if self.ends is not None:
            raise self.ends
        return CommandResult(0, self.stream.decode(), "")

    def put_tree(self, local_dir: Path, remote_dir: str, timeout: float) -> int:
        self.timeouts["put_tree"] = timeout
        return 0

    def get(self, remote: str, local: Path, timeout: float) -> bool:
        raise AssertionError("the reports come in the stream; nothing is downloaded")


def series_of(target: ScriptedTarget, tmp_path: Path, names: list[str], suite_timeout: float = 300) -> list[SuiteResult]:
    got: list[SuiteResult] = []
    series.run_series(target, names, tmp_path, suite_timeout, lambda name: None, got.append)
    return got


def test_each_suite_has_its_log_and_report_from_the_one_stream(tmp_path: Path) -> None:
    target = ScriptedTarget(b"starting\n" + suite_stream("maps") + suite_stream("pin"))
    maps, pin = series_of(target, tmp_path, ["maps", "pin"])
    assert (maps.name, maps.error, maps.pytest_rc, maps.wall_seconds) == ("maps", "", 0, 0.5)
    assert [r.name for r in maps.records] == ["test_a.py::test_ok", "test_a.py::test_more"]  # from the JUnit
    assert maps.properties == {"kernel_release": "6.1"}
    assert (tmp_path / "junit-maps.xml").read_text() == JUNIT and (tmp_path / "junit-pin.xml").is_file()
    log = (tmp_path / "maps.log").read_text()
    assert "1 passed in 0.10s" in log and "@@lab-suite" not in log and "starting" not in log
    assert pin.name == "pin" and pin.ok
    assert target.timeouts["run"] == series.total_bound(2, 300)
    runner.ship(target, 45)
    assert target.timeouts["put_tree"] == 45


def test_the_deadline_is_one_suite_bound_from_the_start_of_the_running_suite(tmp_path: Path) -> None:
    sink = series.SeriesSink(tmp_path, ["maps", "pin"], 100, lambda name: None, lambda result: None)
    first = sink.deadline()
    assert first is not None and first <= time.monotonic() + 100 + series.HOST_SLACK
    time.sleep(0.05)
    sink.write(event(event="suite-start", suite="maps"))
    moved = sink.deadline()
    assert moved is not None and moved > first  # restarted when the suite started
    sink.write(stream_line("test_a.py::test_ok"))
    assert sink.deadline() == moved  # output alone does not move it: one bound per suite


def test_a_target_that_dies_in_the_second_suite_keeps_the_first_whole_and_the_finished_tests(tmp_path: Path) -> None:
    pin_so_far = event(event="suite-start", suite="pin") + stream_line("test_a.py::test_ok", "start") + \
        stream_line("test_a.py::test_ok") + stream_line("test_a.py::test_more", "start")
    died = suite_stream("maps") + pin_so_far
    maps, pin = series_of(ScriptedTarget(died, ConnectionLost("gone")), tmp_path, ["maps", "pin"])
    assert maps.ok and len(maps.records) == 2
    assert pin.lost and pin.error == "lost connection: gone"
    assert [(r.name, r.outcome) for r in pin.records] == [("test_a.py::test_ok", "passed"),
                                                          ("test_a.py::test_more", "error")]


def test_a_target_timed_out_here_blames_the_running_suite(tmp_path: Path) -> None:
    stuck = suite_stream("maps")[:-300]
    (maps,) = series_of(ScriptedTarget(stuck, CommandTimedOut("the suites", 300, "")), tmp_path, ["maps", "pin"])
    assert maps.error == "timed out: suite maps did not finish within 300 s"
    assert [r.name for r in maps.records] == ["test_a.py::test_ok"]
    assert verdict([maps], "", SplatPolicy()).outcome is Outcome.TIMED_OUT


def test_a_suite_the_target_timed_out_ends_the_series_with_its_finished_tests(tmp_path: Path) -> None:
    (maps,) = series_of(ScriptedTarget(suite_stream("maps", None, timed_out=True)), tmp_path, ["maps", "pin"], 20)
    assert maps.error == "timed out: suite maps did not finish within 20 s" and maps.pytest_rc is None
    assert [r.name for r in maps.records] == ["test_a.py::test_ok"]


def test_a_suite_without_its_report_says_so_and_the_next_one_runs(tmp_path: Path) -> None:
    maps, pin = series_of(ScriptedTarget(suite_stream("maps", None) + suite_stream("pin")), tmp_path, ["maps", "pin"])
    assert maps.error == "pytest wrote no report (exit 0): " and maps.records == []
    assert pin.ok


def test_a_line_without_its_newline_yet_is_in_the_log_at_once(tmp_path: Path) -> None:
    """pytest flushes a test's start line before its newline: a test that hangs (or a guest that
    dies under it) must still show as started in the log, as it runs."""
    sink = series.SeriesSink(tmp_path, ["maps"], 100, lambda name: None, lambda result: None)
    sink.write(event(event="suite-start", suite="maps") + stream_line("test_a.py::test_hangs", "start")[:-1])
    assert "test_a.py::test_hangs" in (tmp_path / "maps.log").read_text()
    sink.write(b"\n.")
    sink.write(b"@@lab-su")  # mid-line: text, not an event that may be starting
    assert (tmp_path / "maps.log").read_text().endswith("}\n.@@lab-su")
    sink.write(b"ite \n" + event(event="suite-end", suite="maps", rc=0, junit=JUNIT, stderr="")[:30])
    assert "maps" in sink.running  # the end line is held until it is whole
    sink.write(event(event="suite-end", suite="maps", rc=0, junit=JUNIT, stderr="")[30:])
    assert not sink.running and [r.name for r in sink.results] == ["maps"]


def output(suite: str, text: bytes) -> bytes:
    """An `output` event of the runner: a piece of what the suite's pytest printed."""
    return event(event="output", suite=suite, text=text.decode("utf-8", "surrogateescape"))[1:]


def test_suites_side_by_side_each_get_their_own_output_and_report(tmp_path: Path) -> None:
    """Two suites running at once in the target: their output, interleaved in the stream (even
    mid-line, even mid-character), is split back into each one's log exactly."""
    stream = (event(event="series-start", jobs=2)[1:] + event(event="suite-start", suite="maps")[1:]
              + event(event="suite-start", suite="pin")[1:]
              + output("maps", stream_line("test_a.py::test_ok", "start")[:-1]) + output("pin", b"pin says \xc3")
              + output("maps", b"\n" + stream_line("test_a.py::test_ok")) + output("pin", b"\xa9 \xff\n")
              + event(event="suite-end", suite="pin", rc=0, timed_out=False, seconds=0.5, stderr="", junit=JUNIT)[1:]
              + output("maps", b"1 passed in 0.10s\n")
              + event(event="suite-end", suite="maps", rc=0, timed_out=False, seconds=0.7, stderr="", junit=JUNIT)[1:])
    target = ScriptedTarget(stream, chunk=5)
    got: list[SuiteResult] = []
    sinks: list[series.SeriesSink] = []
    series.run_series(target, ["maps", "pin"], tmp_path, 300, lambda name: None, got.append, watch=sinks.append)
    assert [r.name for r in got] == ["pin", "maps"] and all(r.ok for r in got)  # in the order they ended
    assert (tmp_path / "pin.log").read_bytes() == b"pin says \xc3\xa9 \xff\n"
    maps_log = (tmp_path / "maps.log").read_text()
    assert "pin says" not in maps_log and "@@lab-suite" not in maps_log and maps_log.endswith("1 passed in 0.10s\n")
    assert sinks[0].jobs == 2 and not sinks[0].preamble


def test_the_deadline_of_suites_side_by_side_is_the_earliest_running_ones(tmp_path: Path) -> None:
    sink = series.SeriesSink(tmp_path, ["maps", "dump", "pin"], 100, lambda name: None, lambda result: None)
    sink.write(event(event="suite-start", suite="maps")[1:])
    first = sink.deadline()
    time.sleep(0.05)
    sink.write(event(event="suite-start", suite="dump")[1:])
    assert sink.deadline() == first  # maps' bound still decides
    sink.write(event(event="suite-end", suite="maps", rc=0, junit=JUNIT, stderr="")[1:])
    time.sleep(0.05)
    sink.write(event(event="suite-start", suite="pin")[1:])
    later = sink.deadline()
    assert later is not None and first is not None and later > first  # now dump's, started after maps
    assert later == sink.running["dump"].started + 100 + series.HOST_SLACK


def test_the_progress_line_shows_each_running_suite(tmp_path: Path) -> None:
    sink = series.SeriesSink(tmp_path, ["maps", "pin"], 100, lambda name: None, lambda result: None)
    shown = series.SeriesProgress()
    shown.watch(sink)
    assert shown() is None  # nothing running yet
    collected = b'@@lab-test {"count": 2, "event": "collected"}\n'
    sink.write(event(event="suite-start", suite="maps")[1:] + event(event="suite-start", suite="pin")[1:]
               + output("maps", collected + stream_line("test_a.py::test_ok")) + output("pin", collected))
    assert shown() == "suite maps: 1 of 2 tests; suite pin: 0 of 2 tests"
    sink.write(event(event="suite-end", suite="maps", rc=0, junit=JUNIT, stderr="")[1:])
    assert shown() == "suite pin: 0 of 2 tests"


def test_a_target_that_dies_with_two_suites_running_cuts_both(tmp_path: Path) -> None:
    stream = (event(event="suite-start", suite="maps")[1:] + event(event="suite-start", suite="dump")[1:]
              + output("maps", stream_line("test_a.py::test_ok", "start") + stream_line("test_a.py::test_ok"))
              + output("dump", stream_line("test_a.py::test_more", "start")))
    got = series_of(ScriptedTarget(stream, ConnectionLost("gone")), tmp_path, ["maps", "dump", "pin"])
    assert [(r.name, r.lost, r.error) for r in got] == [("maps", True, "lost connection: gone"),
                                                        ("dump", True, "lost connection: gone")]
    assert [(r.name, r.outcome) for r in got[0].records] == [("test_a.py::test_ok", "passed")]
    assert [(r.name, r.outcome) for r in got[1].records] == [("test_a.py::test_more", "error")]


def test_event_lines_of_no_requested_suite_are_only_output(tmp_path: Path) -> None:
    noise = event(event="suite-end", suite="other", rc=0) + b"@@lab-suite {not json\n"
    stream = suite_stream("maps").replace(b"1 passed", noise + b"1 passed")
    (maps,) = series_of(ScriptedTarget(stream, chunk=1), tmp_path, ["maps"])
    assert maps.ok and "@@lab-suite {not json" in (tmp_path / "maps.log").read_text()


def test_a_full_disk_under_dmesg_txt_is_infra_error(tmp_path: Path) -> None:
    (tmp_path / "dmesg.txt").symlink_to("/dev/full")
    with pytest.raises(InfraError, match=r"writing .*dmesg.txt: \[Errno 28\] No space left on device"):
        runner.collect_dmesg(ScriptedTarget(b"[    0.000000] Linux version 6.1.0\n"), tmp_path, 10)


def test_output_past_the_cap_is_a_warning_of_the_run(tmp_path: Path) -> None:
    """Say so in the record: a suite whose output the lab cut is a warning in metadata.json."""
    from lab.core.timeouts import Timeouts
    from lab.results.record import RunRecord
    from lab.run.lifecycle import run_suites_then_dmesg

    class Truncating(ScriptedTarget):
        def run(self, command: str, timeout: float, stdout_sink: Sink | None = None) -> CommandResult:
            done = super().run(command, timeout, stdout_sink)
            return CommandResult(done.rc, done.out, done.err, "stdout past 64 MiB, 1 GiB dropped")

    record = RunRecord.create(tmp_path, "k", {})
    said: list[str] = []
    run_suites_then_dmesg(Truncating(suite_stream("maps")), ["maps"], None, Timeouts(), record, [], lambda s: None,
                          said.append)
    warnings = record.metadata.recorded("warnings")
    assert warnings == ["suite output truncated (stdout past 64 MiB, 1 GiB dropped); see the suite logs"]
    assert said == ["warning: " + warnings[0]]


def test_a_coverage_suites_counters_are_kept_and_a_damaged_or_missing_one_said(tmp_path: Path) -> None:
    sink = series.SeriesSink(tmp_path, ["maps", "dump", "pin"], 100, lambda name: None, lambda result: None)
    sink.write(event(event="series-start", jobs=1, coverage_error="")[1:])
    packed = base64.b64encode(b"\x1f\x8b counters").decode()
    for name, extra in (("maps", {"coverage": packed}), ("dump", {"coverage": "not base64!"}),
                        ("pin", {"coverage_error": "reading /sys/kernel/debug/gcov: EIO"})):
        sink.write(event(event="suite-start", suite=name)[1:])
        sink.write(event(event="suite-end", suite=name, rc=0, junit=JUNIT, stderr="", **extra)[1:])
    assert layout.suite_counters(tmp_path, "maps").read_bytes() == b"\x1f\x8b counters"
    assert not layout.suite_counters(tmp_path, "dump").exists() and not layout.suite_counters(tmp_path, "pin").exists()
    assert sink.coverage_errors == ["suite dump: its gcov counters came damaged",
                                    "suite pin: reading /sys/kernel/debug/gcov: EIO"]
    assert [r.name for r in sink.results] == ["maps", "dump", "pin"] and all(r.ok for r in sink.results)


def test_a_kernel_without_gcov_is_said_once_at_the_series_start(tmp_path: Path) -> None:
    sink = series.SeriesSink(tmp_path, ["maps"], 100, lambda name: None, lambda result: None)
    sink.write(event(event="series-start", jobs=1, coverage_error="no /sys/kernel/debug/gcov on this kernel")[1:])
    assert sink.coverage_errors == ["no /sys/kernel/debug/gcov on this kernel"] and sink.jobs == 1


def test_a_coverage_series_asks_the_runner_for_counters_one_suite_at_a_time() -> None:
    spec = json.loads(shlex.split(series.series_command(["maps", "pin"], 60, coverage=True))[-1])
    assert spec["coverage"] is True
    assert "coverage" not in json.loads(shlex.split(series.series_command(["maps"], 60))[-1])
