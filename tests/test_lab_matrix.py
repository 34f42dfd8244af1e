"""`lab matrix` without QEMU: the matrix model and table, progress read from a run's files,
how many VMs at once, the child scheduler (fake children), and the command end to end with
children that write a synthetic run instead of booting."""
from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest
from matrixfakes import DIFFERING, matrix_dir

from lab.cli import main as cli
from lab.core import progress
from lab.core.errors import UserError
from lab.matrix import children as matrixrun
from lab.matrix import progress as matrixprogress
from lab.matrix import table as matrix


def test_table_puts_differences_first_and_counts_the_rest(tmp_path: Path) -> None:
    m = matrix.load(matrix_dir(tmp_path, identical=30))
    table = matrix.render_table(m)
    lines = table.splitlines()
    assert lines[0].split() == ["test", "debian:6.1", "debian:6.12"]
    assert lines[1].split() == [f"maps/{DIFFERING}", "pass", "FAIL"]
    assert "31 identical row(s) across all kernels (--all prints them)" in table
    assert "test_same[07]" not in table
    assert "debian:6.12: failed (failures in suite(s): maps)  30 pass 1 FAIL 1 skip 0 ERR  [61.0 s]" in table
    assert not matrix.passed(m)


def test_all_prints_identical_rows_after_the_differing_ones(tmp_path: Path) -> None:
    table = matrix.render_table(matrix.load(matrix_dir(tmp_path, identical=3)), show_all=True)
    names = [line.split()[0] for line in table.splitlines()[1:6]]
    assert names == [f"maps/{DIFFERING}", "maps/test_maps.py::test_same[00]", "maps/test_maps.py::test_same[01]",
                     "maps/test_maps.py::test_same[02]", "pin/test_pin.py::test_old_flag"]


def test_a_kernel_without_a_run_is_a_column_of_dashes(tmp_path: Path) -> None:
    directory = matrix_dir(tmp_path, identical=1)
    data = json.loads((directory / "matrix.json").read_text())
    data["kernels"].append({"kernel": "debian:9.9", "run": None, "seconds": 1.0})
    (directory / "matrix.json").write_text(json.dumps(data))
    m = matrix.load(directory)
    assert all(row.texts[2] == matrix.MISSING for row in m.rows)
    assert all(row.differs for row in m.rows)  # "—" against a result is a difference
    assert "debian:9.9: no outcome (no results directory" in matrix.render_table(m)


def test_unreadable_matrix_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="matrix.json"):
        matrix.load(tmp_path)


def test_progress_reads_stage_and_tests_done(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert matrixprogress.read(root) == matrixprogress.Progress("prepare", 0)
    run = root / "20260101-000000-x-abcd"
    run.mkdir(parents=True)
    (run / "metadata.json").write_text(json.dumps({"stages": {"ship": {"status": "done"},
                                                              "suite:maps": {"status": "done"},
                                                              "suite:pin": {"status": "running"}}, "outcome": None}))
    (run / "results.json").write_text(json.dumps({"suites": [{"suite": "maps"}], "tests": [{}] * 7}))
    (run / "pin.log").write_text('@@lab-test {"event": "start"}\n.@@lab-test {"duration": 0.1, "event": "end"}\n' * 3
                                 + '@@lab-test {"event": "start"}\n')
    assert matrixprogress.read(root) == matrixprogress.Progress("suite:pin", 10)
    assert matrixprogress.read(root).line("debian:6.12") == "[debian:6.12] suite:pin  10 tests done"
    (run / "metadata.json").write_text(json.dumps({"stages": {}, "outcome": "passed"}))
    assert matrixprogress.read(root).stage == "done: passed"
    (run / "metadata.json").write_text("{half a fi")  # mid-rewrite never raises
    assert matrixprogress.read(root).stage == "start"


@pytest.mark.parametrize("cpus, mem, jobs", [(2, 23000, 2), (16, 4000, 2), (8, 100, 1), (None, None, 1), (4, None, 4)])
def test_default_jobs_is_bounded_by_cores_and_memory(cpus: int | None, mem: int | None, jobs: int) -> None:
    assert matrixrun.default_jobs(cpus, mem, guest_mb=1024) == jobs


def test_mem_available_is_read_from_meminfo() -> None:
    assert matrixrun.mem_available_mb("MemTotal: 1 kB\nMemAvailable:   23414628 kB\n") == 22865


def _fake(root: Path, seconds: float, stamp_file: Path) -> matrixrun.Child:
    script = ("import sys, time, pathlib; p = pathlib.Path(sys.argv[1]); "
              "open(sys.argv[3], 'a').write(f'start {time.monotonic()}\\n'); time.sleep(float(sys.argv[2])); "
              "open(sys.argv[3], 'a').write(f'end {time.monotonic()}\\n')")
    return matrixrun.Child(root.name, root, [sys.executable, "-c", script, str(root), str(seconds), str(stamp_file)])


def test_scheduler_keeps_to_jobs_and_reports_exits(tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    children = [_fake(tmp_path / f"k{i}", 0.3, stamps) for i in range(3)]
    shown: list[str] = []
    matrixrun.run_children(children, 2, {}, shown.append, poll_seconds=0.05)
    events = sorted((float(t), kind) for kind, t in (line.split() for line in stamps.read_text().splitlines()))
    live = peak = 0
    for _, kind in events:
        live += 1 if kind == "start" else -1
        peak = max(peak, live)
    assert peak == 2
    assert all(c.returncode == 0 and c.seconds is not None for c in children)
    assert sum(1 for line in shown if " exited 0 after " in line) == 3
    assert "[k0] prepare  0 tests done" in shown


def test_on_a_terminal_the_lines_go_above_the_redrawn_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    children = [_fake(tmp_path / f"k{i}", 2 * progress.INTERVAL + 0.2, tmp_path / "stamps") for i in range(2)]
    shown: list[str] = []
    matrixrun.run_children(children, 2, {}, shown.append, poll_seconds=0.05)
    out = terminal.getvalue()
    assert shown == []  # on a terminal every line goes through the progress display
    assert "\r\x1b[K[k0] started" in out and "\r\x1b[Kmatrix: [k0] prepare  0 tests done  [k1] prepare  0 tests done" in out
    assert sum(1 for line in out.split("\n") if " exited 0 after " in line) == 2 and out.endswith("\r\x1b[K")


def test_interrupt_stops_every_running_child(tmp_path: Path) -> None:
    children = [_fake(tmp_path / f"k{i}", 60, tmp_path / "stamps") for i in range(2)]

    def show(line: str) -> None:
        if "prepare" in line and all(c.proc for c in children):
            raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        matrixrun.run_children(children, 2, {}, show, poll_seconds=0.05)
    assert time.monotonic() - started < 10
    assert all(c.proc is not None and c.proc.poll() is not None for c in children)


def test_same_kernel_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="twice"):
        matrixrun.make_children(["debian:6.1", "debian:6.1"], "pin", tmp_path, [])


FAKE_RUN = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from matrixfakes import suites
from lab.core.outcome import Outcome, Verdict
from lab.results.record import RunRecord
kernel, root = sys.argv[1], Path(sys.argv[2])
record = RunRecord.create(root, kernel, {{"kernel": kernel, "suites": ["maps", "pin"], "accel": "auto"}})
for suite in suites(kernel, 4):
    record.add_suite(suite)
ok = kernel == "debian:6.1"
record.finish(Verdict(Outcome.PASSED if ok else Outcome.FAILED, "every suite passed" if ok else "failures in suite(s): maps"))
sys.exit(0 if ok else 1)
"""


def test_matrix_command_prints_the_table_and_writes_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "fake_run.py"
    script.write_text(FAKE_RUN.format(tests=str(Path(__file__).parent)))
    monkeypatch.setattr(matrixrun, "prepare_cache", lambda log: None)
    monkeypatch.setattr(matrixrun, "child_argv",
                        lambda kernel, suites, root, extra: [sys.executable, str(script), kernel, str(root)])
    monkeypatch.setattr(matrixrun, "POLL_SECONDS", 0.05)
    rc = cli.main(["matrix", "--kernel", "debian:6.1", "--kernel", "debian:6.12", "--suite", "maps,pin",
                   "--results", str(tmp_path / "results")])
    out = capsys.readouterr().out
    assert rc == 1  # one kernel failed
    assert f"maps/{DIFFERING}" in out and "5 identical row(s)" in out
    assert "[debian:6.12] done: failed  6 tests done" in out
    (directory,) = (tmp_path / "results").glob("matrix-*")
    recorded = json.loads((directory / "matrix.json").read_text())
    assert [k["kernel"] for k in recorded["kernels"]] == ["debian:6.1", "debian:6.12"]
    assert [k["exit_code"] for k in recorded["kernels"]] == [0, 1]
    html = (directory / "report.html").read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script" not in html
    assert "assert &#39;EPERM&#39; == &#39;EBUSY&#39;" in html  # the FAIL's message, escaped
    assert 'class="cell fail"' in html and "<svg" in html


def test_bad_suite_fails_before_anything_runs(tmp_path: Path) -> None:
    assert cli.main(["matrix", "--kernel", "debian:6.1", "--suite", "nope", "--results", str(tmp_path)]) == 2
    assert not list(tmp_path.iterdir())


def test_interrupted_matrix_still_leaves_matrix_json_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(matrixrun, "prepare_cache", lambda log: None)
    monkeypatch.setattr(matrixrun, "run_children", interrupted)
    assert cli.main(["matrix", "--kernel", "debian:6.1", "--suite", "pin", "--results", str(tmp_path)]) == 130
    (directory,) = tmp_path.glob("matrix-*")
    assert json.loads((directory / "matrix.json").read_text())["kernels"][0]["run"] is None
    assert "debian:6.1" in (directory / "report.html").read_text()


def test_progress_names_the_boot_between_accelerator_and_ship(tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "metadata.json").write_text(json.dumps({"stages": {"accelerator": {"status": "done"}}, "outcome": None}))
    assert matrixprogress.read(tmp_path).stage == "boot"
    (run / "metadata.json").write_text(json.dumps({"stages": {"accelerator": {"status": "done"},
                                                              "ship": {"status": "done"}}, "outcome": None}))
    assert matrixprogress.read(tmp_path).stage == "after ship"


def _with_coverage(run_dir: Path, coverage: dict[str, object], report: bool) -> None:
    """A run's metadata.json as a `lab run --coverage` leaves it, with its gcovr report or not."""
    metadata = json.loads((run_dir / "metadata.json").read_text())
    metadata["coverage"] = coverage
    (run_dir / "metadata.json").write_text(json.dumps(metadata))
    if report:
        (run_dir / "coverage" / "html").mkdir(parents=True)
        (run_dir / "coverage" / "html" / "index.html").write_text("<html>gcovr</html>")


def test_a_coverage_matrix_shows_each_kernels_figures_and_links_its_report(tmp_path: Path) -> None:
    directory = matrix_dir(tmp_path, identical=2)
    runs = [directory / entry["run"] for entry in json.loads((directory / "matrix.json").read_text())["kernels"]]
    figures = "kernel/bpf: lines 27.8% (4624 of 16623), functions 36.9% (458 of 1241)"
    _with_coverage(runs[0], {"summary": figures, "report": "coverage/html/index.html"}, report=True)
    _with_coverage(runs[1], {"error": "no suite brought the kernel's gcov counters back"}, report=False)
    m = matrix.load(directory)
    lines = matrix.render_table(m).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("debian:6.1: passed"))
    assert lines[at + 1] == f"  coverage: {figures} (report: {runs[0] / 'coverage' / 'html' / 'index.html'})"
    assert "  coverage: none (no suite brought the kernel's gcov counters back)" in lines
    report = (directory / "report.html")
    from lab.matrix import html as matrixhtml
    html = matrixhtml.write(m, report).read_text()
    link = (runs[0] / "coverage" / "html" / "index.html").relative_to(directory).as_posix()
    assert f'<a href="{link}">coverage report</a>' in html and f"coverage: {figures}" in html
    assert html.count("coverage report</a>") == 1  # the kernel without coverage has no link
    assert "coverage: none (no suite brought the kernel&#39;s gcov counters back)" in html


def test_a_matrix_without_coverage_says_nothing_of_it(tmp_path: Path) -> None:
    m = matrix.load(matrix_dir(tmp_path, identical=2))
    assert "coverage" not in matrix.render_table(m)
    from lab.matrix import html as matrixhtml
    assert "coverage" not in matrixhtml.render(m, tmp_path)


def test_matrix_coverage_refuses_a_debian_kernel_before_anything_runs(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["matrix", "--kernel", "debian:6.1", "--coverage", "--suite", "pin",
                     "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "lab: error: --coverage: debian:6.1 is a Debian kernel, built without gcov profiling")
    assert not list(tmp_path.iterdir())


def test_matrix_coverage_makes_every_kernels_run_a_coverage_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.cli import matrix as matrix_cli
    checked: list[str] = []
    monkeypatch.setattr(matrix_cli.coverage_material, "required", lambda spec, cache: checked.append(spec.build_id))
    monkeypatch.setattr(matrix_cli.acquire, "check", lambda spec, cache: None)
    monkeypatch.setattr(matrixrun, "prepare_cache", lambda log: None)
    argvs: list[list[str]] = []

    def no_children(children: list[matrixrun.Child], *args: object) -> None:
        argvs.extend(child.argv for child in children)

    monkeypatch.setattr(matrixrun, "run_children", no_children)
    cli.main(["matrix", "--kernel", "build:6.1.192-aaaa", "--kernel", "build:6.12.9-bbbb", "--coverage",
              "--suite", "pin", "--results", str(tmp_path)])
    assert checked == ["6.1.192-aaaa", "6.12.9-bbbb"]
    assert len(argvs) == 2 and all("--coverage" in argv for argv in argvs)
