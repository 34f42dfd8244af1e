"""Kernel coverage on the host: a coverage build's profiling and kept notes, the guest's counters
laid beside them, gcovr's traces and coverage.json, and the refusals of kernels without gcov.

The gcov data here is real: a small "kernel/bpf" compiled by the host's gcc with the flags kbuild
gives a profiled directory, run, its .gcda packed as the guest's runner packs debugfs's."""
from __future__ import annotations

import base64
import importlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lab.core.errors import InfraError, UserError
from lab.coverage import collect, counters, summary, tracing
from lab.coverage import material as coverage_material
from lab.kernel import profiling
from lab.kernel.spec import BuildSpec, DebianSpec, PathSpec
from lab.results import layout

GUEST_TESTS = Path(__file__).resolve().parent.parent / "guest-tests"

MAPS_C = """\
int lookup(int key)
{
\tif (key < 0)
\t\treturn -1;
\treturn key * 2;
}

int only_programs_call_this(int key)
{
\treturn key + 40;
}
"""
PIN_C = """\
int pin(int fd)
{
\treturn fd + 1;
}

int unpin(int fd)
{
\treturn fd - 1;
}
"""
MAIN_C = """\
int lookup(int key);
int pin(int fd);
int unpin(int fd);

int main(int argc, char **argv)
{
\tif (argv[1][0] == 'm')
\t\treturn lookup(argc) == 4 ? 0 : 1;
\treturn pin(argc) + unpin(argc) == 4 ? 0 : 1;
}
"""


def build_tree(tree: Path) -> Path:
    """kernel/bpf/{maps,pin}.c and a main, compiled from lab-obj/ as kbuild does (../ sources)."""
    bpf = tree / "kernel" / "bpf"
    bpf.mkdir(parents=True)
    (bpf / "maps.c").write_text(MAPS_C)
    (bpf / "pin.c").write_text(PIN_C)
    (tree / "main.c").write_text(MAIN_C)
    obj = tree / profiling.OBJ
    (obj / "kernel" / "bpf").mkdir(parents=True)
    for name in ("maps", "pin"):
        subprocess.run(["gcc", "-O2", "-fprofile-arcs", "-ftest-coverage", "-fno-tree-loop-im", "-c",
                        f"../kernel/bpf/{name}.c", "-o", f"kernel/bpf/{name}.o"], cwd=obj, check=True)
    subprocess.run(["gcc", "-O2", "-c", "../main.c", "-o", "main.o"], cwd=obj, check=True)
    subprocess.run(["gcc", "-fprofile-arcs", "main.o", "kernel/bpf/maps.o", "kernel/bpf/pin.o", "-o", "prog"],
                   cwd=obj, check=True)
    return obj


def run_and_pack(obj: Path, argument: str, packed: Path) -> None:
    """Run the program once, then pack its counters named as debugfs names them (the object
    directory's absolute path under /sys/kernel/debug/gcov), and clear them (the guest's reset)."""
    subprocess.run([str(obj / "prog"), argument], cwd=obj, check=True)
    packed.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(packed, "w:gz") as tar:
        for gcda in sorted(obj.rglob("*.gcda")):
            tar.add(gcda, arcname=str(gcda).lstrip("/"))
            gcda.unlink()


@pytest.fixture
def coverage_run(tmp_path: Path) -> tuple[Path, Path]:
    """A build's coverage material and a run directory holding two suites' counters."""
    obj = build_tree(tmp_path / "work" / "src")
    entry = tmp_path / "builds" / "6.1.192-abc"
    entry.mkdir(parents=True)
    assert profiling.keep_material(tmp_path / "work" / "src", obj, entry) == 2
    run_dir = tmp_path / "run"
    run_and_pack(obj, "maps", layout.suite_counters(run_dir, "maps"))
    run_and_pack(obj, "pin", layout.suite_counters(run_dir, "pin"))
    material = profiling.material(entry)
    assert material is not None
    return material, run_dir


def test_a_counters_file_goes_where_the_build_left_its_notes() -> None:
    member = "root/.cache/bpf-kernel-lab/work/85eb/src/lab-obj/kernel/bpf/syscall.gcda"
    assert str(counters.object_path(member)) == "kernel/bpf/syscall.gcda"
    assert counters.object_path("root/x/lab-obj/../../etc/passwd.gcda") is None
    assert counters.object_path("root/x/lab-obj/kernel/bpf/syscall.gcno") is None
    assert counters.object_path("elsewhere/kernel/bpf/syscall.gcda") is None


def test_each_suite_gets_its_own_coverage_and_the_run_their_sum(coverage_run: tuple[Path, Path]) -> None:
    material, run_dir = coverage_run
    data = collect.analyse(run_dir, material, ["maps", "dump", "pin"], "test")  # dump brought no counters
    assert json.loads((run_dir / layout.COVERAGE).read_text()) == json.loads(json.dumps(data))
    assert set(data["suites"]) == {"maps", "pin"}
    maps = data["suites"]["maps"]["files"]
    pin = data["suites"]["pin"]["files"]
    # maps ran lookup (not its error path) and never the function only programs call; pin ran both of its.
    assert maps["kernel/bpf/maps.c"]["functions"] == {"hit": 1, "total": 2, "percent": 50.0}
    assert maps["kernel/bpf/pin.c"]["functions"]["hit"] == 0
    assert pin["kernel/bpf/pin.c"]["functions"] == {"hit": 2, "total": 2, "percent": 100.0}
    assert pin["kernel/bpf/maps.c"]["lines"]["hit"] == 0
    whole = data["files"]
    assert whole["kernel/bpf/pin.c"]["functions"]["hit"] == 2 and whole["kernel/bpf/maps.c"]["functions"]["hit"] == 1
    assert 0 < whole["kernel/bpf/maps.c"]["lines"]["hit"] < whole["kernel/bpf/maps.c"]["lines"]["total"]
    assert "main.c" not in whole  # only the profiled directories
    assert data["total"]["lines"]["hit"] == sum(f["lines"]["hit"] for f in whole.values())
    counts = summary.line_counts(summary.load_trace(collect.run_trace(run_dir)))["kernel/bpf/maps.c"]
    assert counts[3] > 0 and counts[5] > 0 and counts[10] == 0  # the test, the return, the function never called
    page = collect.html_index(run_dir)
    assert page.is_file() and "maps.c" in page.read_text()
    assert summary.headline(data).startswith("kernel/bpf: lines ")


def test_the_run_figures_are_gcovrs_own(coverage_run: tuple[Path, Path], tmp_path: Path) -> None:
    material, run_dir = coverage_run
    data = collect.analyse(run_dir, material, ["maps", "pin"], "test")
    written = tmp_path / "summary.json"
    subprocess.run([sys.executable, "-m", "gcovr", "--root", ".", "--add-tracefile", str(collect.run_trace(run_dir)),
                    "--json-summary", str(written)], cwd=material, check=True, capture_output=True)
    theirs = json.loads(written.read_text())
    assert (data["total"]["lines"]["hit"], data["total"]["lines"]["total"]) == (theirs["line_covered"], theirs["line_total"])
    assert (data["total"]["functions"]["hit"], data["total"]["functions"]["total"]) == (
        theirs["function_covered"], theirs["function_total"])


def test_suites_traced_as_they_end_give_the_same_coverage_as_traced_at_the_end(
        coverage_run: tuple[Path, Path], tmp_path: Path) -> None:
    """SuiteTraces makes each suite's trace on its own thread while the next suite runs; the
    run's coverage.json is the same as when every trace is made after the run."""
    material, run_dir = coverage_run
    at_the_end = collect.analyse(run_dir, material, ["maps", "dump", "pin"], "test")
    for suite in ("maps", "pin"):
        collect.suite_trace(run_dir, suite).unlink()
    with tracing.SuiteTraces(run_dir, material) as traces:
        for suite in ("maps", "dump", "pin"):  # dump brought no counters: no trace, no error
            traces.submit(suite)
        traced = traces.finished()
        assert traced == {suite: collect.suite_trace(run_dir, suite) for suite in ("maps", "pin")}
        assert all(path.is_file() for path in traced.values())
        scratch = Path(traces._scratch.name)
    assert not scratch.exists()  # the laid-out trees go with the run
    assert collect.analyse(run_dir, material, ["maps", "dump", "pin"], "test", traced) == at_the_end


def test_a_suite_whose_counters_cannot_be_traced_is_the_hosts_failure(coverage_run: tuple[Path, Path]) -> None:
    material, run_dir = coverage_run
    layout.suite_counters(run_dir, "pin").write_bytes(b"not a tar")
    with tracing.SuiteTraces(run_dir, material) as traces:
        traces.submit("maps")
        traces.submit("pin")
        with pytest.raises(InfraError, match="cannot be read"):
            traces.finished()


def test_counters_that_are_not_a_tar_are_the_hosts_failure_not_a_crash(coverage_run: tuple[Path, Path]) -> None:
    material, run_dir = coverage_run
    layout.suite_counters(run_dir, "maps").write_bytes(b"not a tar")
    with pytest.raises(InfraError, match="cannot be read"):
        collect.analyse(run_dir, material, ["maps"], "test")


def test_no_counters_at_all_is_said(tmp_path: Path, coverage_run: tuple[Path, Path]) -> None:
    material, _ = coverage_run
    with pytest.raises(InfraError, match="no suite brought"):
        collect.analyse(tmp_path / "empty", material, ["maps"], "test")


def test_profiling_writes_the_builds_copy_only(tmp_path: Path) -> None:
    cached = tmp_path / "cached" / "kernel" / "bpf"
    cached.mkdir(parents=True)
    (cached / "Makefile").write_text("obj-y += syscall.o\n")
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-al", str(tmp_path / "cached"), str(copy)], check=True)
    profiling.profile(copy, lambda line: None)
    assert (cached / "Makefile").read_text() == "obj-y += syscall.o\n"
    assert (copy / "kernel" / "bpf" / "Makefile").read_text().endswith("GCOV_PROFILE := y\n")
    with pytest.raises(UserError, match="no kernel/bpf/Makefile"):
        profiling.profile(tmp_path / "nothing", lambda line: None)


def test_kernels_without_gcov_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="debian:6.1 is a Debian kernel, built without gcov"):
        coverage_material.required(DebianSpec("6.1"), tmp_path)
    with pytest.raises(UserError, match="not a path"):
        coverage_material.required(PathSpec(tmp_path / "bzImage"), tmp_path)
    plain = tmp_path / "builds" / "6.1.192-plain"
    plain.mkdir(parents=True)
    (plain / "kernel.json").write_text("{}")
    with pytest.raises(UserError, match="build:6.1.192-plain was built without --coverage"):
        coverage_material.required(BuildSpec("6.1.192-plain"), tmp_path)


def load_runner(monkeypatch: pytest.MonkeyPatch, gcov: Path) -> object:
    monkeypatch.syspath_prepend(str(GUEST_TESTS))
    labsuites = importlib.import_module("labsuites")
    monkeypatch.setattr(labsuites, "GCOV", str(gcov))
    return labsuites


def test_the_guest_runner_packs_every_counters_file_and_resets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gcov = tmp_path / "gcov"
    where = gcov / "root" / "work" / "src" / "lab-obj" / "kernel" / "bpf"
    where.mkdir(parents=True)
    (where / "syscall.gcda").write_bytes(b"adcg\x00\x01")
    os.symlink("/nowhere/syscall.gcno", where / "syscall.gcno")  # debugfs links the notes files
    (gcov / "reset").write_text("")
    labsuites = load_runner(monkeypatch, gcov)
    assert labsuites.coverage_ready() == ""  # type: ignore[attr-defined]
    packed = base64.b64decode(labsuites.counters())  # type: ignore[attr-defined]
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
        assert tar.getnames() == ["root/work/src/lab-obj/kernel/bpf/syscall.gcda"]
        extracted = tar.extractfile("root/work/src/lab-obj/kernel/bpf/syscall.gcda")
        assert extracted is not None and extracted.read() == b"adcg\x00\x01"
    labsuites.reset_counters()  # type: ignore[attr-defined]
    assert (gcov / "reset").read_text() == "1"
