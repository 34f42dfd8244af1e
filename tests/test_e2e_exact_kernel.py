"""End to end, as a new user would: `lab kernel list` on the host's real apt lists, then `lab run`
of an older 6.1 package than the newest, pinned by its ABI name; its record names that package,
and its reproducer.sh reruns exactly that package (not "the newest 6.1 again")."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from e2ehelpers import REPO, lab, no_qemu_left  # noqa: F401 (an autouse fixture)

pytestmark = pytest.mark.boot


def listed_6_1_kernels() -> list[dict[str, object]]:
    done = lab("kernel", "list", "--json")
    assert done.returncode == 0, done.stderr
    return [item for item in json.loads(done.stdout) if item["kind"] == "kernel" and item["series"] == "6.1"]


def test_kernel_list_names_the_newest_and_the_older_packages() -> None:
    kernels = listed_6_1_kernels()
    assert len(kernels) >= 2, "the apt lists hold one 6.1 kernel only: nothing older to pin"
    assert [item["newest"] for item in kernels] == [True] + [False] * (len(kernels) - 1)
    shown = lab("kernel", "list")
    assert shown.returncode == 0 and f"{kernels[1]['spec']}" in shown.stdout and "newest (debian:6.1)" in shown.stdout


def test_an_older_package_by_its_abi_name_runs_and_is_reproduced_exactly(tmp_path: Path) -> None:
    older = listed_6_1_kernels()[1]  # the second newest: never what debian:6.1 names
    package, version, spec = older["package"], older["version"], str(older["abi_spec"])
    done = lab("run", "--kernel", spec, "--suite", "pin", results=tmp_path / "first")
    assert done.returncode == 0, f"lab run {spec} failed:\n{done.stdout}\n{done.stderr}"
    (run_dir,) = [p for p in (tmp_path / "first").iterdir() if p.is_dir()]
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["outcome"] == "passed"
    assert (metadata["kernel"]["package"], metadata["kernel"]["version"]) == (package, version)
    assert metadata["kernel"]["spec"] == spec
    script = (run_dir / "reproducer.sh").read_text()
    assert f"--kernel=debian:{version} " in script and f"{package} {version}" in script

    rerun = subprocess.run(["sh", str(run_dir / "reproducer.sh"), str(tmp_path / "again")], cwd=REPO,
                           capture_output=True, text=True, timeout=1800, check=False)
    assert rerun.returncode == 0, f"reproducer failed:\n{rerun.stdout}\n{rerun.stderr}"
    (again,) = [p for p in (tmp_path / "again").iterdir() if p.is_dir()]
    replayed = json.loads((again / "metadata.json").read_text())
    assert (replayed["kernel"]["package"], replayed["kernel"]["version"]) == (package, version)
    compared = lab("compare", str(run_dir), str(again))
    assert compared.returncode == 0, compared.stdout
