"""`lab kcidb`: runs, a validation and bad input, on directories written by the lab's own
RunRecord; every document is checked by kcidb-io's schema (tests/kcidbcheck.py). Real runs and a
real validation are checked in test_e2e_boot and test_e2e_build."""
from __future__ import annotations

import json
from pathlib import Path

from e2ehelpers import lab
from kcidbcheck import kcidb_document, schema_patchset_hash
from test_lab_ktap import MAPS, PIN_CUT_SHORT

from lab.core.outcome import Outcome, Verdict
from lab.report import kcidb
from lab.results.record import RunRecord

SOURCE = {"origin": "debian", "package": "linux-source-6.1", "spec": "debian:6.1", "version": "6.1.192-3"}


def a_run(root: Path, kernel: dict[str, str], outcome: Outcome = Outcome.FAILED, suites=(MAPS, PIN_CUT_SHORT)) -> Path:
    record = RunRecord.create(root, "6.1.192", {"kernel": kernel.get("spec", "?"), "suites": ["maps", "pin"]})
    record.update(kernel=kernel)
    for suite in suites:
        record.add_suite(suite)
    record.finish(Verdict(outcome, "why"))
    return record.directory


def built_kernel(series: list[dict[str, str]]) -> dict[str, str]:
    return {"origin": "build", "spec": "build:6.1.192-abc", "build_id": "6.1.192-abc", "release": "6.1.192",
            "source": json.dumps(SOURCE), "patches": json.dumps(series), "fragments": "[]", "config_sha256": "0" * 64}


def test_each_test_and_suite_has_its_status_and_path(tmp_path: Path) -> None:
    run = a_run(tmp_path, {"origin": "debian", "spec": "debian:6.1", "package": "linux-image-6.1.0-57-cloud-amd64-unsigned",
                           "version": "6.1.192-3", "release": "6.1.0-57-cloud-amd64"}, Outcome.TIMED_OUT)
    for name in ("maps.log", "console.log"):
        (run / name).write_text("...\n")
    data = kcidb_document(run, origin="my_ci")
    tests = {t["path"]: t for t in data["tests"]}
    assert {p: t["status"] for p, t in tests.items()} == {
        "bpf_kernel_lab.boot": "PASS",  # suites ran
        "bpf_kernel_lab.maps": "FAIL", "bpf_kernel_lab.pin": "ERROR",  # pin timed out: the kernel's doing
        "bpf_kernel_lab.maps.test_a.test_passes": "PASS", "bpf_kernel_lab.maps.test_a.test_fails.x_1": "FAIL",
        "bpf_kernel_lab.maps.test_a.test_skips": "SKIP", "bpf_kernel_lab.maps.test_a.test_errors": "ERROR",
        "bpf_kernel_lab.pin.test_p.test_first": "PASS"}
    failed = tests["bpf_kernel_lab.maps.test_a.test_fails.x_1"]
    assert failed["misc"]["name"] == "test_a.py::test_fails[x#1]" and "'EPERM' == 'EBUSY'" in failed["log_excerpt"]
    assert "did not finish" not in tests["bpf_kernel_lab.pin"]["log_excerpt"] and "timed out" in tests["bpf_kernel_lab.pin"]["log_excerpt"]
    assert all(t["id"].startswith("my_ci:") and t["origin"] == "my_ci" for t in data["tests"])
    (checkout,), (build,) = data["checkouts"], data["builds"]
    assert checkout["patchset_hash"] == "" and "linux-image-6.1.0-57-cloud-amd64-unsigned 6.1.192-3" in checkout["comment"]
    assert build["checkout_id"] == checkout["id"] and all(t["build_id"] == build["id"] for t in data["tests"])
    # The files that exist, each by a URL that reaches it.
    assert tests["bpf_kernel_lab.maps.test_a.test_passes"]["output_files"] == [
        {"name": "maps.log", "url": (run / "maps.log").as_uri()}, {"name": "console.log", "url": (run / "console.log").as_uri()}]
    assert [f["name"] for f in tests["bpf_kernel_lab.pin"]["output_files"]] == ["console.log"]


def test_a_host_failure_is_miss_not_error(tmp_path: Path) -> None:
    run = a_run(tmp_path, built_kernel([]), Outcome.INFRA_ERROR)
    pin = next(t for t in kcidb_document(run)["tests"] if t["path"] == "bpf_kernel_lab.pin")
    assert pin["status"] == "MISS"


def test_a_kernel_that_did_not_boot_is_a_failed_boot_test_with_the_reason(tmp_path: Path) -> None:
    record = RunRecord.create(tmp_path, "6.1.192", {"kernel": "build:6.1.192-abc", "suites": ["maps"]})
    record.update(kernel=built_kernel([]))
    record.finish(Verdict(Outcome.BOOT_FAILED, "lab-init-failure: cannot mount root /dev/nosuchdisk"))
    (boot,) = kcidb_document(record.directory)["tests"]
    assert boot["path"] == "bpf_kernel_lab.boot" and boot["status"] == "FAIL"
    assert boot["log_excerpt"] == "lab-init-failure: cannot mount root /dev/nosuchdisk"


def test_a_patched_build_has_the_schemas_patchset_hash_and_ids_that_do_not_change(tmp_path: Path) -> None:
    patches = []
    for name, text in (("0001-a.patch", "--- a\n+++ b\n"), ("0002-b.patch", "--- c\n+++ d\n")):
        (tmp_path / name).write_text(text)
        patches.append(tmp_path / name)
    series = [{"name": p.name, "sha256": kcidb.hashlib.sha256(p.read_bytes()).hexdigest()} for p in patches]
    first = a_run(tmp_path / "one", built_kernel(series))
    again = a_run(tmp_path / "two", built_kernel(series))  # another run of the same build
    data = kcidb_document(first, again)
    (checkout,), (build,) = data["checkouts"], data["builds"]  # one source + series, one build
    assert checkout["patchset_hash"] == schema_patchset_hash(patches)
    assert build["id"] == "bpf_kernel_lab:6.1.192-abc" and build["status"] == "PASS"
    assert len({t["id"] for t in data["tests"]}) == len(data["tests"]) == 2 * 8
    assert kcidb_document(first, again) == data  # written twice: the same ids, the same document


def test_a_validation_gives_its_versions_checkouts_even_without_runs(tmp_path: Path) -> None:
    series = [{"name": "0001-x.patch", "sha256": "1" * 64}]
    root = tmp_path / "validate"
    run = a_run(root / "1-debian-6.1" / "patched", built_kernel(series), Outcome.PASSED, suites=())
    source_612 = {**SOURCE, "package": "linux-source-6.12", "version": "6.12.117-1", "spec": "debian:6.12"}
    (root / "validate.json").write_text(json.dumps({"versions": [
        {"source": "debian:6.1", "resolved": SOURCE, "series": series, "port": None,
         "applies": {"status": "clean", "failure": None},
         "builds": {"base": {"build_id": None, "cached": False, "seconds": 12.5, "error": "fs/x.c:1: error: boom",
                             "log": "1-debian-6.1/base-build.log"},
                    "patched": {"build_id": "6.1.192-abc", "cached": True, "seconds": 0.0, "error": None, "log": None}},
         "runs": {"patched": {"run": str(run.relative_to(root))}}},
        {"source": "debian:6.12", "resolved": source_612, "series": series, "port": None,
         "applies": {"status": "does not apply", "failure": "1/1 0001-x.patch: a.c hunk #1 (at line 3)"},
         "builds": {}, "runs": {}}]}))
    data = kcidb_document(root)
    checkouts = {(c["misc"]["source"]["package"], bool(c["patchset_hash"])): c for c in data["checkouts"]}
    assert set(checkouts) == {("linux-source-6.1", False), ("linux-source-6.1", True),
                              ("linux-source-6.12", False), ("linux-source-6.12", True)}
    assert checkouts["linux-source-6.12", True]["valid"] is False
    assert checkouts["linux-source-6.12", True]["log_excerpt"] == "1/1 0001-x.patch: a.c hunk #1 (at line 3)"
    builds = {b["checkout_id"]: b for b in data["builds"]}
    failed = builds[checkouts["linux-source-6.1", False]["id"]]
    assert failed["status"] == "FAIL" and failed["log_excerpt"] == "fs/x.c:1: error: boom" and failed["duration"] == 12.5
    assert builds[checkouts["linux-source-6.1", True]["id"]]["id"] == "bpf_kernel_lab:6.1.192-abc"


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    run = a_run(tmp_path, built_kernel([]))
    for args, words in ((["--origin", "Bad-Name", str(run)], "lowercase letters, digits and _"),
                        (["--origin", "ok", str(tmp_path / "nothing")], "nothing"),
                        (["--origin", "ok", "--output", "/proc/no/such/doc.json", str(run)], "--output")):
        done = lab("kcidb", *args)
        assert done.returncode == 2 and done.stdout == "", done
        (line,) = done.stderr.strip().splitlines()
        assert words in line, line
