"""`lab lava-job` then `lab lava-run`: the three suites on Debian's 6.1 under LAVA's own
dispatcher (lava-run from Debian's lava-dispatcher), results read back in LAVA's form."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from e2ehelpers import lab, no_qemu_left  # noqa: F401 (autouse fixture)
from lab.lava import schema as lavaschema
from lab.run import suites as runner
from lab.core.paths import GUEST_TESTS_DIR

pytestmark = [
    pytest.mark.boot,
    pytest.mark.skipif(lavaschema.lava_python() is None, reason="lava-dispatcher is not installed (make setup installs it)"),
]


def _collected(suite_dir: str) -> set[str]:
    """The suite's test ids as pytest collects them on the host: what LAVA must have reported."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", suite_dir],
                          cwd=GUEST_TESTS_DIR, capture_output=True, text=True, timeout=300, check=False)
    return {line.split("/")[-1] for line in done.stdout.splitlines() if "::" in line}


def test_the_three_suites_run_under_lava_run(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    written = lab("lava-job", "--kernel", "debian:6.1", "--output", str(job_dir), timeout=1800)
    assert written.returncode == 0, written.stderr
    assert "pass LAVA's schemas" in written.stderr
    job = yaml.safe_load((job_dir / "job.yaml").read_text())
    assert [d["name"] for d in job["actions"][2]["test"]["definitions"]] == list(runner.SUITES)

    ran = lab("lava-run", str(job_dir), results=tmp_path / "results", timeout=2400)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (run_dir,) = (tmp_path / "results").iterdir()
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["outcome"] == "passed" and metadata["lava"]["job_result"]["result"] == "pass"

    # LAVA's form: one case per test and pytest's exit status, per suite's test definition.
    lava_results = json.loads((run_dir / "lava-results.json").read_text())
    results = json.loads((run_dir / "results.json").read_text())
    for index, suite in enumerate(runner.SUITES):
        definition = f"{index}_{suite}"
        cases = {r["case"]: r["result"] for r in lava_results if r["definition"] == definition}
        assert cases.pop("pytest-exit") == "pass"
        tests = {t["name"]: t["outcome"] for t in results["tests"] if t["suite"] == suite}
        assert set(tests) == _collected(runner.SUITES[suite]), suite
        assert len(cases) == len(tests)
        assert sorted(cases.values()) == sorted({"passed": "pass", "skipped": "skip"}[o] for o in tests.values())
        assert {"case": definition, "result": "pass"}.items() <= next(
            r for r in lava_results if r["definition"] == "lava" and r["case"] == definition).items()
    summary = {s["suite"]: s for s in results["suites"]}
    assert all(s["passed"] > 0 and s["failed"] == 0 and s["errors"] == 0 and s["pytest_rc"] == 0 for s in summary.values())
    assert (run_dir / "junit.xml").is_file()
    assert "lab-ready: root shell on the console for LAVA" in (run_dir / "console.log").read_text()


def test_a_lab_built_kernel_runs_under_lava_run(tmp_path: Path) -> None:
    # The base build of tests/test_e2e_build.py (the same request: built once, then cached). Built
    # kernels have no modules and an allnoconfig base, so this checks what LAVA needs of them:
    # virtio and udev's uevents built in, and ext2 served by ext4 for LAVA's test disk.
    built = lab("kernel", "build", "--source", "debian:6.1", timeout=3600)
    assert built.returncode == 0, built.stderr
    build_id = re.search(r"^(build:\S+) \S+$", built.stdout, re.MULTILINE)[1]  # type: ignore[index]
    job_dir = tmp_path / "job"
    written = lab("lava-job", "--kernel", build_id, "--suite", "pin", "--output", str(job_dir), timeout=1800)
    assert written.returncode == 0, written.stderr
    ran = lab("lava-run", str(job_dir), results=tmp_path / "results", timeout=1800)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (run_dir,) = (tmp_path / "results").iterdir()
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["kernel"]["origin"] == "build" and metadata["kernel"]["build_id"] == build_id.removeprefix("build:")
    results = json.loads((run_dir / "results.json").read_text())
    assert [(s["suite"], s["failed"], s["errors"]) for s in results["suites"]] == [("pin", 0, 0)]
    assert {t["name"] for t in results["tests"]} == _collected(runner.SUITES["pin"])
    # The same kernel and suite under `lab run`: the two records compare equal, kernel behaviour included.
    direct = lab("run", "--kernel", build_id, "--suite", "pin", results=tmp_path / "direct", timeout=1800)
    assert direct.returncode == 0, direct.stdout + direct.stderr
    (direct_dir,) = (tmp_path / "direct").iterdir()
    compared = lab("compare", str(direct_dir), str(run_dir))
    assert compared.returncode == 0, compared.stdout
    assert "0 newly failing, 0 newly passing, 0 newly skipped, 0 behaviour changed, 0 added, 0 removed" in compared.stdout
