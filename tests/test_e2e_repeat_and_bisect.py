"""End to end, as a new user would: `lab bisect` across real Debian 6.1 kernel packages (prebuilt:
each step a boot and the one test), then the same command again (every step reused), and
`lab run --repeat 3` reporting a test made flaky on purpose as flaky with its counts.

The predicate's answer is known by construction: the bisected test asserts that the kernel's ABI
number (6.1.0-NN) is below that of the fourth-oldest of the five newest 6.1 packages in the apt
lists, so exactly that package is the first where its outcome changes. Five packages take at most
ceil(log2 5) + 1 = 4 kernels, the endpoints included (the bound make bench checks)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from e2ehelpers import REPO, lab, no_qemu_left  # noqa: F401 (an autouse fixture)

pytestmark = pytest.mark.boot

TEST = "release/test_release.py::test_abi_before_the_threshold"


def five_newest_6_1() -> list[dict[str, object]]:
    """The five newest 6.1 kernel packages of the host's apt lists, oldest first."""
    done = lab("kernel", "list", "--json")
    assert done.returncode == 0, done.stderr
    kernels = [item for item in json.loads(done.stdout) if item["kind"] == "kernel" and item["series"] == "6.1"]
    assert len(kernels) >= 5, f"the apt lists hold {len(kernels)} 6.1 kernels; the bisection needs five"
    return kernels[:5][::-1]


def abi_number(item: dict[str, object]) -> int:
    return int(str(item["abi_spec"]).rsplit("-", 1)[1])  # debian:6.1.0-55 -> 55


def tree_with(tmp_path: Path, name: str, text: str) -> Path:
    tree = tmp_path / "guest-tests"
    shutil.copytree(REPO / "guest-tests", tree, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "suites" / name).mkdir()
    (tree / "suites" / name / f"test_{name}.py").write_text(text)
    return tree


def test_bisect_across_debian_packages_finds_the_known_first_changed_one(tmp_path: Path) -> None:
    kernels = five_newest_6_1()
    threshold = abi_number(kernels[3])
    tree = tree_with(tmp_path, "release", f'''import os


def test_abi_before_the_threshold() -> None:
    abi = int(os.uname().release.split("-")[1])  # 6.1.0-55-cloud-amd64
    assert abi < {threshold}, f"ABI {{abi}}"
''')
    argv = ["bisect", "--good", str(kernels[0]["abi_spec"]), "--bad", str(kernels[4]["abi_spec"]), "--test", TEST,
            "--guest-tests", str(tree), "--results", str(tmp_path / "results")]
    done = lab(*argv)
    assert done.returncode == 0, f"lab bisect failed:\n{done.stdout}\n{done.stderr}"
    first = f"debian:{kernels[3]['version']} ({str(kernels[3]['abi_spec']).removeprefix('debian:')})"
    last_good = f"debian:{kernels[2]['version']}"
    assert f"bisect: first changed: {first}: {TEST} outcome 'fail' (last good {last_good}" in done.stdout
    steps = [line for line in done.stdout.splitlines() if line.startswith("bisect: packages [")]
    assert len(steps) <= 4, steps  # ceil(log2 5) + 1
    (directory,) = (tmp_path / "results").glob("bisect-*")
    data = json.loads((directory / "bisect.json").read_text())
    assert data["answer"]["first_changed"] == first and data["answer"]["exact"]
    for step in data["phases"]["packages"]["steps"].values():
        (run,) = step["runs"]
        metadata = json.loads((directory / run / "metadata.json").read_text())
        assert metadata["kernel"]["version"] == step["key"]  # the exact package the step names
        assert metadata["request"]["suites"] == ["release"]
    script = (directory / "reproducer.sh").read_text()
    assert f"--kernel=debian:{kernels[3]['version']}" in script and f"--kernel=debian:{kernels[2]['version']}" in script

    runs_before = sorted(directory.glob("steps/*/r*/*/metadata.json"))
    again = lab(*argv)
    assert again.returncode == 0 and f"({len(steps)} reused)" in again.stdout, again.stdout + again.stderr
    assert sorted(directory.glob("steps/*/r*/*/metadata.json")) == runs_before  # nothing booted again


def test_repeat_reports_a_test_made_flaky_on_purpose_with_its_counts(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "flaky", '''import os


def test_fails_in_the_second_repetition() -> None:
    assert os.environ.get("LAB_REPEAT") != "2"


def test_steady() -> None:
    assert os.environ.get("LAB_REPEAT") in ("1", "2", "3")
''')
    done = lab("run", "--guest-tests", str(tree), "--suite", "flaky", "--repeat", "3", results=tmp_path / "results")
    assert done.returncode == 1, done.stdout + done.stderr  # one of the three runs failed
    assert "repeat: 3 runs: 2 passed, 1 failed" in done.stdout
    assert "flaky: flaky/test_flaky.py::test_fails_in_the_second_repetition: 2 pass, 1 fail" in done.stdout
    assert "test_steady" not in done.stdout.split("repeat: 3 runs", 1)[1]
    runs = sorted(p for p in (tmp_path / "results").iterdir() if (p / "metadata.json").is_file())
    assert len(runs) == 3
    script = (runs[1] / "reproducer.sh").read_text()
    assert f"--guest-tests={tree}" in script and "repetition 2 of --repeat" in script


def test_matrix_repeat_lists_a_flaky_test_apart_from_a_real_difference(tmp_path: Path) -> None:
    """`lab matrix --repeat 2` over two 6.1 packages: a test that fails in the second repetition is
    flaky on both kernels (not a difference), one that fails on the newer package only is the
    difference."""
    kernels = five_newest_6_1()
    older, newer = kernels[3], kernels[4]
    tree = tree_with(tmp_path, "flaky", f'''import os


def test_fails_in_the_second_repetition() -> None:
    assert os.environ.get("LAB_REPEAT") != "2"


def test_differs_between_the_kernels() -> None:
    assert int(os.uname().release.split("-")[1]) < {abi_number(newer)}
''')
    done = lab("matrix", "--kernel", str(older["abi_spec"]), "--kernel", str(newer["abi_spec"]), "--guest-tests",
               str(tree), "--suite", "flaky", "--repeat", "2", results=tmp_path / "results")
    assert done.returncode == 1, done.stdout + done.stderr  # some runs failed
    (directory,) = (tmp_path / "results").glob("matrix-*")
    data = json.loads((directory / "matrix.json").read_text())
    differences = data["differences"]
    assert [d["name"] for d in differences["outcome"]] == ["test_flaky.py::test_differs_between_the_kernels"]
    (flaky,) = differences["flaky"]
    assert flaky["name"] == "test_flaky.py::test_fails_in_the_second_repetition"
    assert flaky["counts"] == {str(older["abi_spec"]): "1 pass, 1 fail", str(newer["abi_spec"]): "1 pass, 1 fail"}
    assert all(len(k["repetitions"]) == 2 for k in data["kernels"])
    assert "flaky (outcome or behaviour differs between runs of one kernel; not counted as a difference):" in done.stdout
