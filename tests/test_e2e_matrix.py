"""End to end: `lab matrix` over Debian 6.1 and 6.12 (suite maps, both VMs at once): the progress
lines, the table with the kernels' behaviour differences (a second MAP_FREEZE and a freeze through
a read-only fd), matrix.json and a report.html whose console links resolve; and the newest 6.1
twice (debian:6.1 and its exact ABI name, one package), which must differ in nothing at all."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from e2ehelpers import lab, no_qemu_left  # noqa: F401 (an autouse fixture)

pytestmark = pytest.mark.boot


def matrix(tmp_path: Path, *kernels: str) -> tuple[str, Path]:
    """`lab matrix` over these kernels with the maps suite, two VMs at once: its output and directory."""
    done = lab("matrix", *(a for k in kernels for a in ("--kernel", k)), "--suite", "maps", "--jobs", "2",
               "--results", str(tmp_path), timeout=2400)
    assert done.returncode in (0, 1), f"lab matrix exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    (directory,) = tmp_path.glob("matrix-*")
    return done.stdout, directory


def test_matrix_over_two_debian_kernels(tmp_path: Path) -> None:
    out, directory = matrix(tmp_path, "debian:6.1", "debian:6.12")
    # Progress: both kernels reached the maps suite, and both counted tests as they went.
    for kernel in ("debian:6.1", "debian:6.12"):
        assert f"[{kernel}] started" in out
        assert f"[{kernel}] suite:maps" in out
        assert re.search(rf"^\[{re.escape(kernel)}\] done: \w[\w-]*  [1-9]\d* tests done$", out, re.MULTILINE), out
    # The table: a header with both kernels, then the behaviour differences, then the counts and
    # one summary line per kernel.
    assert re.search(r"^test +debian:6\.1 +debian:6\.12$", out, re.MULTILINE), out
    assert "(no test differs between the kernels)" not in out
    assert re.search(r"^test / property +debian:6\.1 +debian:6\.12$", out, re.MULTILINE), out
    # 6.12 checks write access first, and a frozen map (or a read-only fd) has none: EPERM.
    assert re.search(r"^maps/test_maps_access\.py::test_freeze_twice +pass +pass$", out, re.MULTILINE), out
    assert re.search(r"^  second_freeze_errno +EBUSY +EPERM$", out, re.MULTILINE), out
    assert re.search(r"^  freeze_rdonly_fd +ok +EPERM$", out, re.MULTILINE), out
    assert re.search(r"^\d+ test\(s\) differ in outcome, [1-9]\d* in recorded behaviour \(\d+ tests\)$", out,
                     re.MULTILINE), out
    assert "walker_walks" not in out and "concurrency_seconds" not in out  # measurements are not compared
    for kernel in ("debian:6.1", "debian:6.12"):
        assert re.search(rf"^{re.escape(kernel)}: \S+ \(.*\)  \d+ pass \d+ FAIL \d+ skip \d+ ERR  \[\d+\.\d s\]$", out,
                         re.MULTILINE), out
    recorded = json.loads((directory / "matrix.json").read_text())
    assert [k["kernel"] for k in recorded["kernels"]] == ["debian:6.1", "debian:6.12"]
    assert all(k["run"] and (directory / k["run"] / "results.json").exists() for k in recorded["kernels"])
    behaviour = {(b["name"], p["key"]): p["values"] for b in recorded["differences"]["behaviour"] for p in b["properties"]}
    assert behaviour[("test_maps_access.py::test_freeze_twice", "second_freeze_errno")] == {
        "debian:6.1": "EBUSY", "debian:6.12": "EPERM"}
    assert behaviour[("test_maps_access.py::test_freeze_through_readonly_fd", "freeze_rdonly_fd")] == {
        "debian:6.1": "ok", "debian:6.12": "EPERM"}
    html = (directory / "report.html").read_text()
    links = re.findall(r'href="([^"]+console\.log)"', html)
    assert len(links) == 2 and all((directory / link).is_file() for link in links)
    assert html.count('class="cell pass"') >= 2 * 300  # the maps suite's ~400 tests, passing on both
    assert "<svg" in html and "maps · debian:6.12" in html
    assert re.search(r"<td class=\"name\">second_freeze_errno</td>\s*<td class=\"value\">EBUSY</td>\s*"
                     r"<td class=\"value\">EPERM</td>", html)


def newest_abi_spec(series: str) -> str:
    """The exact spec (ABI name) of the package `debian:<series>` means today, from `lab kernel list`."""
    done = lab("kernel", "list", timeout=300)
    assert done.returncode == 0, done.stderr
    match = re.search(rf"^  debian:\S+ +(debian:{re.escape(series)}\.\d+-\d+) .*newest \(debian:{re.escape(series)}\)\s*$",
                      done.stdout, re.MULTILINE)
    assert match, done.stdout
    return match[1]


def test_one_kernel_twice_differs_in_nothing(tmp_path: Path) -> None:
    exact = newest_abi_spec("6.1")  # debian:6.1.0-57 when written
    out, directory = matrix(tmp_path, "debian:6.1", exact)
    assert re.search(rf"^test +debian:6\.1 +{re.escape(exact)}$", out, re.MULTILINE), out
    assert "(no test differs between the kernels)" in out, out
    assert "behaviour differences" not in out
    assert re.search(r"^0 test\(s\) differ in outcome, 0 in recorded behaviour \([1-9]\d+ tests\)$", out, re.MULTILINE), out
    recorded = json.loads((directory / "matrix.json").read_text())
    runs = [json.loads((directory / k["run"] / "metadata.json").read_text())["kernel"] for k in recorded["kernels"]]
    assert runs[0]["package"] == runs[1]["package"] and runs[0]["version"] == runs[1]["version"], runs  # one kernel
    differences = recorded["differences"]
    assert (differences["outcome_differs"], differences["behaviour_differs"]) == (0, 0), differences
    assert differences["identical"] == differences["tests"] > 300
    # Measurements did change between the two runs: the rule that leaves them out was needed.
    results = [json.loads((directory / k["run"] / "results.json").read_text())["tests"] for k in recorded["kernels"]]
    walks = [[t["properties"].get("walker_walks") for t in tests if "walker_walks" in t.get("properties", {})]
             for tests in results]
    seconds = [[v for t in tests for k, v in t.get("properties", {}).items() if k.endswith("seconds")] for tests in results]
    assert walks[0] and seconds[0] and (walks[0] != walks[1] or seconds[0] != seconds[1])
