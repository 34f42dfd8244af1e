"""End-to-end kernel builds: Debian's 6.1 source with the lab's base fragment, built, booted
and run; the BPF_MAP_DUMP port validated A/B (on 6.1, and over 6.1 and 6.12 where it does not apply
to 6.12 without its port); and the build's bad inputs.

Builds use the user's cache (sources, ccache, builds), like every other e2e test, so the
second run of these tests costs a few seconds per build. From a cold cache: about 6 min for
the base build and 3 min for the patched one on 2 cores (README, "Measured").
"""
from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2ehelpers import REPO, lab, no_qemu_left  # noqa: F401 (an autouse fixture)
from kcidbcheck import kcidb_document, schema_patchset_hash

from lab.bench.build import one_line_patch
from lab.core.paths import cache_dir
from lab.kernel import source

pytestmark = pytest.mark.boot

MAP_DUMP_PORT = REPO / "kernel-configs" / "patches" / "bpf-map-dump"
BROKEN_PERCPU_COPY = REPO / "tests" / "patches" / "broken-percpu-copy.patch"
SUITES = ("maps", "dump", "pin")


def build_id_of(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"lab kernel build failed:\n{done.stdout}\n{done.stderr}"
    match = re.search(r"^build:(\S+) (\S+)$", done.stdout, re.MULTILINE)
    assert match, done.stdout
    assert Path(match[2]).is_file()
    return match[1]


@pytest.fixture(scope="module")
def base_build() -> str:
    return build_id_of(lab("kernel", "build", "--source", "debian:6.1"))


def test_same_request_builds_once(base_build: str) -> None:
    again = lab("kernel", "build", "--source", "debian:6.1")
    assert build_id_of(again) == base_build
    assert "cached, same request" in again.stderr
    assert "make -j" not in again.stderr


def test_build_records_its_identity(base_build: str) -> None:
    entry = cache_dir() / "builds" / base_build
    kernel = json.loads((entry / "kernel.json").read_text())
    identity = kernel["identity"]
    assert identity["origin"] == "build" and identity["build_id"] == base_build
    assert json.loads(identity["source"])["package"] == "linux-source-6.1"
    assert json.loads(identity["patches"]) == []
    config = (entry / "config").read_text()
    for wanted in ("CONFIG_BPF_SYSCALL=y", "CONFIG_VIRTIO_BLK=y", "CONFIG_EXT4_FS=y", "CONFIG_SERIAL_8250_CONSOLE=y"):
        assert wanted in config.splitlines()
    assert "# CONFIG_MODULES is not set" in config.splitlines()  # everything the guest needs is built in
    assert (entry / "build.log").stat().st_size > 0


def validation(results: Path) -> tuple[Path, dict]:
    """The one validate-<stamp>/ directory a `lab validate` left under results, and its validate.json."""
    found = sorted(results.glob("validate-*"))
    assert len(found) == 1, found
    return found[0], json.loads((found[0] / "validate.json").read_text())


def runs_of(directory: Path, row: dict) -> tuple[Path, Path]:
    """A version's base and patched run directories, as validate.json names them."""
    return directory / row["runs"]["base"]["run"], directory / row["runs"]["patched"]["run"]


PROFILED_FILES = ("syscall.c", "hashtab.c", "arraymap.c", "inode.c", "queue_stack_maps.c", "lpm_trie.c")


def changed_line(row: dict, text: str) -> dict:
    """The one changed line of syscall.c with this text, as validate.json's diff coverage has it."""
    (syscall,) = [f for f in row["diff_coverage"]["files"] if f["file"] == "kernel/bpf/syscall.c"]
    (line,) = [line for line in syscall["lines"] if line["text"].strip() == text]
    return line


def test_validate_map_dump_port_with_coverage(tmp_path: Path, base_build: str) -> None:
    """`lab validate --coverage` of the BPF_MAP_DUMP port on 6.1. Base and patched both pass the
    three suites; exactly the BPF_MAP_DUMP tests change. The patched kernel is a coverage build of
    kernel/bpf: of the port's changed lines, the command's entry ran (the dump suite calls it) and
    the offloaded-map branch did not (no test has an offloaded map); the patched run's own coverage
    is per file, per function and per suite, and plausible: map_create ran, the helper only BPF
    programs call did not, and only the dump suite reached map_dump. One validation for both
    questions: a plain one of the three suites would cost two more runs, and the tests below
    validate without coverage (the over-two-versions one builds the plain patched kernel)."""
    done = lab("validate", "--source", "debian:6.1", "--patch", str(MAP_DUMP_PORT), "--coverage", results=tmp_path)
    assert done.returncode == 0, f"lab validate failed:\n{done.stdout}\n{done.stderr}"
    assert f"base build: build:{base_build}" in done.stdout
    assert "no regression" in done.stdout
    assert "changed lines run" in done.stdout and "diff coverage: " in done.stdout
    directory, data = validation(tmp_path)
    (row,) = data["versions"]
    assert row["verdict"] == "no regression" and row["applies"]["status"] == "clean" and row["port"] is None
    assert row["builds"]["base"]["build_id"] == base_build
    runs = runs_of(directory, row)
    assert [run.parent.name for run in runs] == ["base", "patched"]
    for run in runs:
        assert json.loads((run / "metadata.json").read_text())["outcome"] == "passed"
    compared = lab("compare", "--json", str(runs[0]), str(runs[1]))
    assert compared.returncode == 0, compared.stderr
    result = json.loads(compared.stdout)
    assert result["counts"] == row["comparison"]["counts"]  # validate.json holds the same comparison
    counts = result["counts"]
    assert counts["compared"] > 500
    for category in ("newly_failing", "newly_skipped", "added", "removed", "failing_in_both"):
        assert counts[category] == 0, result.get(category, counts)
    # Every BPF_MAP_DUMP test goes from skipped (no such command) to passed, and nothing else does.
    assert counts["newly_passing"] == 21
    for change in result["newly_passing"]:
        assert change["suite"] == "dump" and change["name"].startswith("test_dump_rfc.py::"), change
        assert (change["a"], change["b"]) == ("skipped", "passed")
    # The agreement tests now compare BPF_MAP_DUMP too; no other test records other behaviour.
    for change in result["behaviour_changed"]:
        assert change["name"].startswith("test_dump_agree.py::"), change
        assert [p["key"] for p in change["properties"]] == ["compared"]
        assert "map_dump" in change["properties"][0]["b"] and "map_dump" not in change["properties"][0]["a"]
    # Diff coverage: which of the port's changed lines ran.
    assert row["coverage_problem"] is None
    measured = row["diff_coverage"]
    assert 0 < measured["run"] < measured["code"]
    assert changed_line(row, "static int map_dump(union bpf_attr *attr)")["count"] > 0
    assert changed_line(row, "if (CHECK_ATTR(BPF_MAP_DUMP))")["count"] > 0
    assert changed_line(row, "err = bpf_map_offload_get_next_key(map, prev_key, key);")["count"] == 0
    assert changed_line(row, "return PTR_ERR(map);")["count"] > 0  # a pipe and a closed fd (test_dump_rfc.py)
    base_run, patched_run = runs
    assert "coverage" not in json.loads((base_run / "metadata.json").read_text())  # the base is a plain build
    metadata = json.loads((patched_run / "metadata.json").read_text())
    assert metadata["outcome"] == "passed" and metadata["suites_at_once"] == 1  # per-suite counters: one at a time
    assert metadata["kernel"]["build_id"] != base_build and "warnings" not in metadata
    assert metadata["coverage"]["summary"].startswith("kernel/bpf: lines ")
    assert (patched_run / metadata["coverage"]["report"]).is_file()
    coverage = json.loads((patched_run / "coverage.json").read_text())
    for name in PROFILED_FILES:
        figures = coverage["files"][f"kernel/bpf/{name}"]
        assert 0 < figures["lines"]["hit"] < figures["lines"]["total"], (name, figures)
        assert 0 < figures["functions"]["hit"] <= figures["functions"]["total"], (name, figures)
    assert set(coverage["suites"]) == set(SUITES)
    from lab.coverage.summary import functions_run, load_trace
    calls = {suite: functions_run(load_trace(patched_run / "coverage" / f"{suite}.json.gz"))
             for suite in ("all", *SUITES)}
    assert calls["all"]["kernel/bpf/syscall.c"]["map_create"] > 0
    assert calls["all"]["kernel/bpf/helpers.c"]["bpf_map_lookup_elem"] == 0  # BPF programs' helper only
    assert calls["dump"]["kernel/bpf/syscall.c"]["map_dump"] > 0
    assert calls["pin"]["kernel/bpf/syscall.c"]["map_dump"] == 0 and calls["maps"]["kernel/bpf/syscall.c"]["map_dump"] == 0
    assert calls["all"]["kernel/bpf/syscall.c"]["map_dump"] == calls["dump"]["kernel/bpf/syscall.c"]["map_dump"]
    report = lab("report", str(patched_run))
    assert report.returncode == 0 and "coverage: kernel/bpf: lines " in report.stdout, report.stdout


def test_validate_catches_a_broken_per_cpu_copy(tmp_path: Path, base_build: str) -> None:
    """A one-line bug in kernel/bpf/arraymap.c (every slot gets CPU 0's value) is a regression,
    because the built guest brings up both vCPUs and the layout tests compare distinct slots."""
    done = lab("validate", "--source", "debian:6.1", "--patch", str(BROKEN_PERCPU_COPY), "--suite", "maps",
               results=tmp_path)
    assert done.returncode == 1, f"lab validate did not report the regression:\n{done.stdout}\n{done.stderr}"
    directory, data = validation(tmp_path)
    (row,) = data["versions"]
    assert row["verdict"] == "regressed" and row["reason"].startswith("regressed: ")
    base_run, patched_run = runs_of(directory, row)
    base = json.loads((base_run / "metadata.json").read_text())
    assert base["outcome"] == "passed" and base["kernel"]["build_id"] == base_build
    assert base["cpus"] == {"given": 2, "possible": 2, "online": 2} and "warnings" not in base
    results = json.loads((base_run / "results.json").read_text())
    layout = [t for t in results["tests"] if t["name"].startswith("test_maps_percpu_layout.py::")]
    assert layout and all(t["outcome"] == "passed" for t in layout)  # run with two slots, not skipped
    compared = json.loads(lab("compare", "--json", str(base_run), str(patched_run)).stdout)
    failing = [c["name"] for c in compared["newly_failing"]]
    # Exactly the per-CPU array's lookups broke, the layout tests among them; its hash cousins did not.
    assert failing and all("PERCPU_ARRAY" in name for name in failing), failing
    assert any(name.startswith("test_maps_percpu_layout.py::test_lookup_fills_one_slot_per_possible_cpu")
               for name in failing), failing
    assert compared["regression"]
    assert row["comparison"]["regression"] and row["comparison"]["counts"] == compared["counts"]


def test_validate_over_two_versions_where_one_does_not_apply(tmp_path: Path, base_build: str) -> None:
    """The BPF_MAP_DUMP patch alone (no 6.12 port beside it): on 6.1 it applies, builds (a plain
    build, ccache serving it what the coverage build above compiled alike) and only adds passing
    dump tests; on 6.12 it does not apply, which is that row's verdict, with nothing built for it;
    no version regressed, so exit 0."""
    patch = tmp_path / "series" / "0001-bpf-add-BPF_MAP_DUMP-command.patch"
    patch.parent.mkdir()
    patch.write_bytes(next(MAP_DUMP_PORT.glob("0001-*.patch")).read_bytes())
    results = tmp_path / "results"
    done = lab("validate", "--source", "debian:6.1", "--source", "debian:6.12", "--patch", str(patch),
               "--suite", "dump", results=results)
    assert done.returncode == 0, f"lab validate failed:\n{done.stdout}\n{done.stderr}"
    directory, data = validation(results)
    old, new = data["versions"]
    assert (old["source"], new["source"]) == ("debian:6.1", "debian:6.12")
    assert old["resolved"]["package"] == "linux-source-6.1" and new["resolved"]["package"] == "linux-source-6.12"
    assert old["applies"]["status"] == "clean" and old["verdict"] == "no regression"
    assert old["builds"]["base"]["build_id"] == base_build and old["builds"]["base"]["cached"]
    assert old["comparison"]["counts"]["newly_passing"] == 21 and not old["comparison"]["regression"]
    assert all(c["name"].startswith("test_dump_rfc.py::") for c in old["comparison"]["newly_passing"])
    assert new["verdict"] == "does not apply" and new["builds"] == {} and new["runs"] == {}
    assert re.fullmatch(r"1/1 0001-bpf-add-BPF_MAP_DUMP-command\.patch: include/uapi/linux/bpf\.h hunk #2 \(at line \d+\)",
                        new["applies"]["failure"]), new["applies"]
    assert not (directory / new["directory"]).exists()  # no run root: nothing ran for 6.12
    assert re.search(r"^2\s+debian:6\.12\s+linux-source-6\.12 \S+ \(6\.12\.\d+\)\s+does not apply\s+—", done.stdout, re.MULTILINE)
    assert re.search(r"^1\s+debian:6\.1\s+.*\s+clean\s+both\s+passed \(\d+\)\s+passed \(\d+\)\s+21 newly passing",
                     done.stdout, re.MULTILINE), done.stdout
    assert ("applies: does not apply: 1/1 0001-bpf-add-BPF_MAP_DUMP-command.patch: include/uapi/linux/bpf.h hunk #2"
            in done.stdout)
    assert "validate: 2 version(s): 1 no regression, 1 does not apply" in done.stdout
    assert (directory / "report.html").is_file()
    # As KCIDB: each version's base and patched checkout, the series by the schema's own patchset
    # hash, the 6.12 one not valid (it does not apply), builds and tests only where they happened.
    document = kcidb_document(directory)
    patched = sorted((c["misc"]["source"]["package"], c["valid"], c["patchset_hash"]) for c in document["checkouts"]
                     if c["patchset_hash"])
    assert patched == [("linux-source-6.1", True, schema_patchset_hash([patch])),
                       ("linux-source-6.12", False, schema_patchset_hash([patch]))]
    assert len(document["checkouts"]) == 4 and len(document["builds"]) == 2
    assert {b["id"].split(":", 1)[1] for b in document["builds"]} == {old["builds"]["base"]["build_id"],
                                                                      old["builds"]["patched"]["build_id"]}


def test_dropped_symbol_is_one_line(tmp_path: Path) -> None:
    fragment = tmp_path / "lsm.config"
    fragment.write_text("CONFIG_BPF_LSM=y\n")
    done = lab("kernel", "build", "--source", "debian:6.1", "--config", str(fragment))
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("lab: error: config: CONFIG_BPF_LSM=y (lsm.config:1) is n in the final config")
    assert "depends on" in error and "CONFIG_BPF_EVENTS" in error
    assert "make -j" not in done.stderr


def test_unknown_symbol_is_one_line(tmp_path: Path) -> None:
    fragment = tmp_path / "typo.config"
    fragment.write_text("CONFIG_BPF_SYSCAL=y\n")
    done = lab("kernel", "build", "--source", "debian:6.1", "--config", str(fragment))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "lab: error: config: CONFIG_BPF_SYSCAL (typo.config:1) is not a Kconfig symbol of this tree")


def test_patch_that_does_not_apply(tmp_path: Path) -> None:
    patch = tmp_path / "0001-stale.patch"
    patch.write_text(
        "--- a/kernel/bpf/syscall.c\n+++ b/kernel/bpf/syscall.c\n@@ -1,3 +1,3 @@\n"
        " this context\n-does not exist\n+in any kernel\n anywhere\n")
    done = lab("kernel", "build", "--source", "debian:6.1", "--patch", str(patch))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "lab: error: patch 1/1 0001-stale.patch does not apply: kernel/bpf/syscall.c hunk #1 (at line 1) does not apply")
    assert "make -j" not in done.stderr and "config:" not in done.stderr


def test_compiler_error_is_one_line(tmp_path: Path, base_build: str) -> None:
    source = cache_dir() / "sources"
    tree = next(source.glob("linux-source-6.1_*/tree"))
    lines = (tree / "kernel/bpf/syscall.c").read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("#include")) + 1
    patch = tmp_path / "0001-typo.patch"
    patch.write_text("".join(difflib.unified_diff(
        lines, lines[:at] + ["static int lab_typo = undeclared_symbol;\n"] + lines[at:],
        "a/kernel/bpf/syscall.c", "b/kernel/bpf/syscall.c")))
    done = lab("kernel", "build", "--source", "debian:6.1", "--patch", str(patch))
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()[-1]
    assert re.match(r"lab: error: build failed: kernel/bpf/syscall\.c:\d+:\d+: error: 'undeclared_symbol' undeclared", error), error
    log = Path(re.search(r"\(log: (\S+)\)$", error)[1])  # type: ignore[index]
    assert log.is_file() and "undeclared_symbol" in log.read_text()


def test_lab_boot_gdb_attaches_reads_linux_banner_and_the_guest_runs_on(tmp_path: Path, base_build: str) -> None:
    """`lab boot --gdb` on a lab-built kernel: the gdb line it prints, run in batch mode, attaches,
    reads linux_banner by its symbol from the build's vmlinux and detaches; the guest then still
    answers over SSH, and Ctrl-C stops it cleanly. The kernel is the base build, which keeps its
    vmlinux since builds do; a cache whose base build is older gets the base plus a one-line patch
    (a build of its own with vmlinux, and a rebuild of one file by ccache)."""
    if shutil.which("gdb") is None:
        if os.environ.get("CI"):
            pytest.fail("gdb is not installed (make setup installs it): the gdb test must run under CI")
        pytest.skip("gdb is not installed (apt-get install gdb, or make setup)")
    build_id = base_build
    if not (cache_dir() / "builds" / build_id / "vmlinux").is_file():
        tree = source.acquire(source.parse_source_spec("debian:6.1"), cache_dir(), lambda line: None)
        patch = one_line_patch(tree.root, tmp_path / "0001-one-line.patch")
        build_id = build_id_of(lab("kernel", "build", "--source", "debian:6.1", "--patch", str(patch)))
    assert (cache_dir() / "builds" / build_id / "vmlinux").is_file()
    boot = subprocess.Popen([sys.executable, "-m", "lab", "boot", "--kernel", f"build:{build_id}", "--gdb",
                             "--workdir", str(tmp_path / "boot")], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        said = ""
        while "attach with:" not in said:
            line = boot.stderr.readline()  # type: ignore[union-attr]
            assert line, f"lab boot ended before the gdb line:\n{said}"
            said += line
        gdb_line = shlex.split(boot.stderr.readline())  # type: ignore[union-attr]
        assert gdb_line[:2] == ["gdb", "-ex"] and gdb_line[2].startswith("target remote 127.0.0.1:")
        assert gdb_line[3] == str(cache_dir() / "builds" / build_id / "vmlinux") and "(nokaslr)" in said
        ssh_line = ""
        while not ssh_line.startswith("  ssh "):
            ssh_line = boot.stdout.readline()  # type: ignore[union-attr]
            assert ssh_line, "lab boot printed no ssh line"
        gdb = subprocess.run([gdb_line[0], "-batch", "-nx", *gdb_line[1:], "-ex", "x/s &linux_banner", "-ex", "detach"],
                             capture_output=True, text=True, timeout=300, check=False)
        assert re.search(r"<linux_banner>:\s+\"Linux version 6\.1\.\d+", gdb.stdout), gdb.stdout + gdb.stderr
        assert "[Inferior 1 (process 1) detached]" in gdb.stdout, gdb.stdout + gdb.stderr
        answered = subprocess.run([*shlex.split(ssh_line), "cat /proc/cmdline"], capture_output=True, text=True,
                                  timeout=120, check=False)
        assert answered.returncode == 0 and "nokaslr" in answered.stdout.split(), answered.stderr
    finally:
        boot.send_signal(signal.SIGINT)
        _, rest = boot.communicate(timeout=120)
    assert boot.returncode in (0, 130), rest
    assert "lab-ready: sshd started on " in (tmp_path / "boot" / "console.log").read_text()


# --- bisection over a tree's commits, and a flaky test told apart from a regression (issue 16) ---

PERCPU_TEST = "maps/test_maps_percpu_layout.py::test_lookup_fills_one_slot_per_possible_cpu[PERCPU_ARRAY-v4]"
ARRAYMAP = "kernel/bpf/arraymap.c"


def _git(repo: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, text=True, check=False,
                          env={**os.environ, "GIT_AUTHOR_NAME": "lab", "GIT_AUTHOR_EMAIL": "lab@localhost",
                               "GIT_COMMITTER_NAME": "lab", "GIT_COMMITTER_EMAIL": "lab@localhost", **(env or {})})
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def _commit(repo: Path, path: str, text: str, message: str) -> str:
    """A commit changing one file, made in the index alone (the repository has no checkout)."""
    blob = _git(repo, "hash-object", "-w", "--stdin", stdin=text)
    _git(repo, "update-index", "--cacheinfo", f"100644,{blob},{path}")
    tree = _git(repo, "write-tree")
    commit = _git(repo, "commit-tree", tree, "-p", "HEAD", "-m", message)
    _git(repo, "update-ref", "HEAD", commit)
    return commit


@pytest.fixture(scope="module")
def release_repository(tmp_path_factory: pytest.TempPathFactory, base_build: str) -> Iterator[tuple[Path, list[str]]]:
    """A git repository of Debian's 6.1 source (the files the base build used) and three commits on top:
    one that does not build, one that undoes it, one that breaks the per-CPU array's lookup."""
    tree = source.acquire(source.parse_source_spec("debian:6.1"), cache_dir(), lambda line: None).root
    repo = tmp_path_factory.mktemp("linux") / "linux"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "stable")
    # Every file of the tarball (-f: its .gitignore files do not apply to sources), without a copy of them.
    _git(repo, "--work-tree", str(tree), "-c", "core.looseCompression=0", "add", "-f", "-A", ".")
    release = _git(repo, "commit-tree", _git(repo, "write-tree"), "-m", "Linux 6.1 as Debian's linux-source-6.1 has it")
    _git(repo, "update-ref", "HEAD", release)
    original = (tree / ARRAYMAP).read_text()
    lines = original.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("#include")) + 1
    broken = "".join(lines[:at] + ["this line does not compile;\n"] + lines[at:])
    unbuildable = _commit(repo, ARRAYMAP, broken, "bpf: a commit that does not build")
    undone = _commit(repo, ARRAYMAP, original, "bpf: undo the commit that does not build")
    patched = subprocess.run(["patch", "-p1", "-o", "-", "--quiet", str(tree / ARRAYMAP)],
                             input=BROKEN_PERCPU_COPY.read_text(), capture_output=True, text=True, check=False)
    assert patched.returncode == 0 and patched.stdout != original, patched.stderr
    changing = _commit(repo, ARRAYMAP, patched.stdout, "bpf: copy CPU 0's value into every per-CPU array slot")
    yield repo, [release, unbuildable, undone, changing]
    from lab.bisect.candidates import clone_path
    shutil.rmtree(clone_path(repo, cache_dir()), ignore_errors=True)  # its checkout: 1.3 GB
    shutil.rmtree(repo, ignore_errors=True)  # its objects: as much again


def test_bisect_over_commits_finds_the_breaking_one_and_skips_the_unbuildable(
        tmp_path: Path, release_repository: tuple[Path, list[str]]) -> None:
    """`lab bisect --source TREE`: the release is good (the per-CPU test passes), the last commit bad;
    the commit that does not build is skipped as `git bisect skip` does, the breaking commit is the
    answer, and the user's repository (its HEAD, branch and index) is as it was."""
    repo, (release, unbuildable, undone, changing) = release_repository
    before = [_git(repo, "rev-parse", "HEAD"), _git(repo, "symbolic-ref", "HEAD"), _git(repo, "write-tree")]
    done = lab("bisect", "--source", str(repo), "--good", release, "--bad", "HEAD", "--test", PERCPU_TEST,
               "--results", str(tmp_path / "results"))
    assert done.returncode == 0, f"lab bisect failed:\n{done.stdout}\n{done.stderr}"
    assert f"{unbuildable[:12]} bpf: a commit that does not build: skipped (does not build: build failed: " in done.stdout
    assert f"{undone[:12]} bpf: undo the commit that does not build: good (pass)" in done.stdout
    assert f"bisect: first changed: {changing[:12]} bpf: copy CPU 0's value" in done.stdout
    assert f"{PERCPU_TEST} outcome 'fail' (last good {undone[:12]}" in done.stdout
    assert [_git(repo, "rev-parse", "HEAD"), _git(repo, "symbolic-ref", "HEAD"), _git(repo, "write-tree")] == before
    (directory,) = (tmp_path / "results").glob("bisect-*")
    data = json.loads((directory / "bisect.json").read_text())
    steps = data["phases"]["commits"]["steps"]
    assert set(steps) == {release, changing, unbuildable, undone}  # 4 candidates, each tried once
    assert steps[unbuildable]["verdict"] == "skipped" and steps[unbuildable]["runs"] == []
    for sha in (release, undone, changing):
        (run,) = steps[sha]["runs"]
        metadata = json.loads((directory / run / "metadata.json").read_text())
        assert metadata["kernel"]["origin"] == "build" and steps[sha]["kernel"] == f"build:{metadata['kernel']['build_id']}"
        tests = json.loads((directory / run / "results.json").read_text())["tests"]
        assert [t["name"] for t in tests] == [PERCPU_TEST.split("/", 1)[1]]  # the test alone ran
    script = (directory / "reproducer.sh").read_text()
    assert steps[undone]["kernel"] in script and steps[changing]["kernel"] in script
    # The same command again decides nothing anew: every step is reused, nothing is built or booted.
    again = lab("bisect", "--source", str(repo), "--good", release, "--bad", "HEAD", "--test", PERCPU_TEST,
                "--results", str(tmp_path / "results"))
    assert again.returncode == 0 and "(4 reused)" in again.stdout and "make -j" not in again.stderr, again.stderr


FLAKY_SUITE = '''"""Made flaky on purpose (tests/test_e2e_build.py): what --repeat must tell apart from a regression."""
import os

from bpfmap.mapdump import probe_map_dump


def patched() -> bool:
    return probe_map_dump().available  # the BPF_MAP_DUMP series is the patch


def test_fails_once_on_the_patched_kernel() -> None:
    assert not (patched() and os.environ.get("LAB_REPEAT") == "1"), "the first repetition on the patched kernel"


def test_fails_on_the_patched_kernel() -> None:
    assert not patched(), "every repetition on the patched kernel"
'''


def test_validate_repeat_tells_a_flaky_test_from_a_regression(tmp_path: Path, base_build: str) -> None:
    """`lab validate --repeat 3` with the BPF_MAP_DUMP series (both kernels built above) and a suite of
    two tests: one fails only in the patched kernel's first repetition — a single run each would call
    that a regression — and is reported flaky with its counts; the other fails in every patched run
    and is the regression. The runs are interleaved, base and patched, each a repetition of its own."""
    tree = tmp_path / "guest-tests"
    shutil.copytree(REPO / "guest-tests", tree, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "suites" / "flaky").mkdir()
    (tree / "suites" / "flaky" / "test_flaky.py").write_text(FLAKY_SUITE)
    done = lab("validate", "--source", "debian:6.1", "--patch", str(MAP_DUMP_PORT), "--guest-tests", str(tree),
               "--suite", "flaky", "--repeat", "3", results=tmp_path / "results")
    assert done.returncode == 1, f"lab validate did not report the regression:\n{done.stdout}\n{done.stderr}"
    directory, data = validation(tmp_path / "results")
    (row,) = data["versions"]
    assert row["verdict"] == "regressed" and data["repeat"] == 3
    comparison = row["comparison"]
    assert [c["name"] for c in comparison["newly_failing"]] == ["test_flaky.py::test_fails_on_the_patched_kernel"]
    assert comparison["flaky"] == [{"suite": "flaky", "name": "test_flaky.py::test_fails_once_on_the_patched_kernel",
                                    "a": None, "b": "2 pass, 1 fail"}]
    assert comparison["runs"] == {"a": 3, "b": 3}
    for side in ("base", "patched"):
        repetitions = row["runs"][side]["repetitions"]
        assert len(repetitions) == 3
        for number, run in enumerate(repetitions, 1):
            metadata = json.loads((directory / run / "metadata.json").read_text())
            assert Path(run).parent.name == f"r{number}" and metadata["kernel"]["origin"] == "build"
            assert "--repetition=" not in (directory / run / "reproducer.sh").read_text()
    assert "flaky (outcome or behaviour differs between runs of one kernel; not counted): 1" in done.stdout
