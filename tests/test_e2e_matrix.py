"""End to end: `lab matrix` over Debian 6.1 and 6.12 (suite pin, both VMs at once): the progress
lines, the table, matrix.json and a report.html whose console links resolve."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from e2ehelpers import lab, no_qemu_left  # noqa: F401 (an autouse fixture)

pytestmark = pytest.mark.boot


def test_matrix_over_two_debian_kernels(tmp_path: Path) -> None:
    done = lab("matrix", "--kernel", "debian:6.1", "--kernel", "debian:6.12", "--suite", "pin", "--jobs", "2",
               "--results", str(tmp_path), timeout=1800)
    assert done.returncode in (0, 1), f"lab matrix exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    out = done.stdout
    # Progress: both kernels reached the pin suite, and both counted tests as they went.
    for kernel in ("debian:6.1", "debian:6.12"):
        assert f"[{kernel}] started" in out
        assert f"[{kernel}] suite:pin" in out
        assert re.search(rf"^\[{re.escape(kernel)}\] done: \w[\w-]*  [1-9]\d* tests done$", out, re.MULTILINE), out
    # The table: a header with both kernels, then one summary line per kernel.
    assert re.search(r"^test +debian:6\.1 +debian:6\.12$", out, re.MULTILINE), out
    assert re.search(r"identical row\(s\) across all kernels|^pin/", out, re.MULTILINE)
    for kernel in ("debian:6.1", "debian:6.12"):
        assert re.search(rf"^{re.escape(kernel)}: \S+ \(.*\)  \d+ pass \d+ FAIL \d+ skip \d+ ERR  \[\d+\.\d s\]$", out,
                         re.MULTILINE), out
    (directory,) = tmp_path.glob("matrix-*")
    recorded = json.loads((directory / "matrix.json").read_text())
    assert [k["kernel"] for k in recorded["kernels"]] == ["debian:6.1", "debian:6.12"]
    assert all(k["run"] and (directory / k["run"] / "results.json").exists() for k in recorded["kernels"])
    html = (directory / "report.html").read_text()
    links = re.findall(r'href="([^"]+console\.log)"', html)
    assert len(links) == 2 and all((directory / link).is_file() for link in links)
    assert html.count('class="cell pass"') >= 2 * 30  # the pin suite's ~40 tests, passing on both
    assert "<svg" in html and "pin · debian:6.12" in html
