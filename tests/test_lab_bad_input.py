"""Issue 14: every bound, count, job number, place and kernel the user gives is checked before anything
starts (exit 2, one line); a place the lab chose itself that cannot be written is infra-error (exit 8)."""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterator

import pytest

from labfakes import make_bzimage
from lab.cli import main as cli
from lab.core.errors import UserError
from lab.core.outcome import Outcome, exit_code
from lab.guest import assets, image
from lab.kernel import acquire
from lab.kernel import build as kernel_build
from lab.run import guest as guest_run
from lab.vm import machine


@pytest.fixture(autouse=True)
def nothing_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private cache and results root; preparing, building or booting anything fails the test."""
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LAB_RESULTS", str(tmp_path / "results"))
    started: list[str] = []

    def forbidden(*args: object, **kwargs: object) -> None:
        started.append("something")
        raise AssertionError("this command should have failed before starting anything")

    for owner, name in ((image, "build"), (assets, "prepare"), (guest_run, "execute"), (machine.Machine, "start"),
                        (kernel_build, "build"), (acquire, "fetch_debian")):
        monkeypatch.setattr(owner, name, forbidden)
    previous = signal.getsignal(signal.SIGTERM)
    yield tmp_path
    signal.signal(signal.SIGTERM, previous)
    assert not started, "a stage started"


def parse_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """argparse's refusal: exit 2 and exactly one line on stderr."""
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def lab_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return code, lines[0]


BOUNDS = ["--suite-timeout", "--run-timeout", "--boot-timeout", "--ssh-timeout", "--command-timeout", "--probe-timeout"]


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "ten"])
@pytest.mark.parametrize("option", BOUNDS)
def test_a_bound_that_is_not_a_positive_number_is_refused(option: str, value: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    line = parse_error(["run", f"{option}={value}"], capsys)
    assert line.startswith("lab run: error: ") and option in line and value in line


@pytest.mark.parametrize("argv", [
    ["matrix", "--kernel", "debian:6.1", "--jobs", "0"],
    ["matrix", "--kernel", "debian:6.1", "--jobs", "-3"],
    ["kernel", "build", "--source", "debian:6.1", "--jobs", "0"],
    ["validate", "--source", "debian:6.1", "--patch", "x.patch", "--jobs", "two"],
    ["run", "--suite-jobs", "0"],
    ["run", "--target", "ssh://root@box", "--suite-jobs", "-1"],
], ids=["matrix 0", "matrix -3", "kernel build 0", "validate two", "run suite jobs 0", "target suite jobs -1"])
def test_a_job_number_below_one_is_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    option = next(word for word in argv if word.endswith("-jobs"))
    assert option in parse_error(argv, capsys)


@pytest.mark.parametrize("port", ["0", "70000", "-1", "gdb"])
def test_a_gdb_port_that_is_no_port_is_refused(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = parse_error(["boot", "--gdb", port], capsys)
    assert "--gdb" in line and port in line


def test_a_shell_and_a_command_at_once_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert "not allowed with" in parse_error(["boot", "--shell", "--command", "true"], capsys)


@pytest.mark.parametrize("option", ["--allow-splat", "--deny-splat"])
def test_a_splat_pattern_that_does_not_compile_is_refused(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "regular expression" in parse_error(["run", option, "WARNING: ("], capsys)


def test_a_kernel_command_line_with_a_newline_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--cmdline" in parse_error(["run", "--cmdline", "quiet\ninit=/bin/sh"], capsys)


def test_the_help_is_still_shown(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["run", "--help"])
    assert caught.value.code == 0 and "--suite-timeout" in capsys.readouterr().out


# -- places ------------------------------------------------------------------------------------

@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    """A regular file: nothing can be created under it, not even by root."""
    path = tmp_path / "a-file"
    path.write_text("")
    return path


def test_results_under_a_file_is_bad_input(a_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = lab_error(["run", "--results", str(a_file / "results")], capsys)
    assert code == 2 and line.startswith("lab: error: --results ") and "Not a directory" in line


def test_lab_results_under_a_file_is_bad_input(a_file: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_RESULTS", str(a_file / "results"))
    code, line = lab_error(["run", "--suite", "pin"], capsys)
    assert code == 2 and "$LAB_RESULTS" in line


def test_lab_cache_under_a_file_is_bad_input(a_file: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_CACHE", str(a_file / "cache"))
    for argv in (["run", "--suite", "pin"], ["kernel", "fetch", "debian:6.1"], ["image", "build"]):
        code, line = lab_error(argv, capsys)
        assert code == 2 and "$LAB_CACHE" in line, argv


def test_lava_job_output_under_a_file_is_bad_input(a_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = lab_error(["lava-job", "--output", str(a_file / "job")], capsys)
    assert code == 2 and "--output" in line


def test_boot_workdir_under_a_file_is_bad_input(a_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = lab_error(["boot", "--workdir", str(a_file / "w"), "--command", "true"], capsys)
    assert code == 2 and "--workdir" in line


def test_the_default_cache_that_cannot_be_written_is_infra_error(a_file: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(a_file))
    code, line = lab_error(["run", "--suite", "pin"], capsys)
    assert code == exit_code(Outcome.INFRA_ERROR) and line.startswith("lab: infrastructure error: ")


def test_the_default_results_that_cannot_be_written_is_infra_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_RESULTS")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").write_text("")  # ./results is a file
    code, line = lab_error(["run", "--suite", "pin"], capsys)
    assert code == exit_code(Outcome.INFRA_ERROR) and "results" in line


def test_a_writable_results_root_is_not_created_by_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.core.paths import writable_results
    assert writable_results(str(tmp_path / "new" / "results")) == tmp_path / "new" / "results"
    assert not (tmp_path / "new").exists()


# -- kernels of a matrix, sources of a validation -----------------------------------------------

@pytest.mark.parametrize("bad", ["/no/such", "build:nope", "debian:9.9", "debian:6.1x"])
def test_every_kernel_of_a_matrix_is_checked_before_anything_starts(bad: str, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lab.core.apt.resolve_kernel_package",
                        lambda series, flavour: ("linux-image-x", "1") if series == "6.1" else acquire_refusal(series))
    code, line = lab_error(["matrix", "--kernel", "debian:6.1", "--kernel", bad, "--results", str(tmp_path / "m")], capsys)
    assert code == 2 and line.startswith("lab: error: ")
    assert not (tmp_path / "m").exists()  # no matrix directory, no report


def acquire_refusal(series: str) -> tuple[str, str]:
    from lab.core.errors import UserError
    raise UserError(f"no Debian kernel package for debian:{series} (cloud-amd64) in the host's apt lists")


def test_a_matrix_kernel_path_that_is_not_a_bzimage_is_refused(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "vmlinuz"
    junk.write_bytes(b"\0" * 4096)
    good = make_bzimage(tmp_path / "bzImage", "6.9.0-lab #1")
    code, line = lab_error(["matrix", "--kernel", str(good), "--kernel", str(junk)], capsys)
    assert code == 2 and "not an x86 bzImage" in line


def test_a_validation_with_a_missing_patch_fails_before_the_base_build(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, line = lab_error(["validate", "--source", "debian:6.1", "--patch", str(tmp_path / "missing.patch")], capsys)
    assert code == 2 and "missing.patch" in line


def test_a_validation_with_a_missing_fragment_fails_before_the_base_build(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    patch = tmp_path / "a.patch"
    patch.write_text("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n")
    code, line = lab_error(["validate", "--source", "debian:6.1", "--patch", str(patch),
                            "--config", str(tmp_path / "missing.config")], capsys)
    assert code == 2 and "missing.config" in line


# -- what a kernel says is data ------------------------------------------------------------------

@pytest.mark.parametrize("version", ["../../../tmp/evil", "6.1.0\nrm -rf ~", "6.1.0;reboot", "x" * 65, "-6.1"])
def test_a_bzimage_version_string_that_is_not_a_release_is_refused(version: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    image_path = make_bzimage(tmp_path / "bzImage", version + " #1")
    code, line = lab_error(["kernel", "fetch", str(image_path)], capsys)
    assert code == 2 and "is not a kernel release" in line


@pytest.mark.parametrize("version", ["6.1.0-28-cloud-amd64", "6.12.0-rc1+", "5.10.0~lab.1", "6.1.192"])
def test_real_release_strings_are_taken(version: str, tmp_path: Path) -> None:
    image_path = make_bzimage(tmp_path / "bzImage", version + " (gcc) #1 SMP")
    assert acquire.bzimage_release(image_path) == version


def test_a_missing_target_key_is_refused_before_connecting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = lab_error(["run", "--target", "ssh://root@127.0.0.1:1", "--key", str(tmp_path / "no-key")], capsys)
    assert code == 2 and "--key" in line and "no such file" in line


def test_an_artifact_url_that_is_not_one_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for url in ("ftp://farm/x", "http://farm/a b", "not a url"):
        assert "--artifact-url" in parse_error(["lava-job", "--output", str(tmp_path), "--artifact-url", url], capsys)


def test_lab_apt_sources_that_is_no_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.core import apt

    monkeypatch.setenv("LAB_APT_SOURCES", str(tmp_path / "none.sources"))
    with pytest.raises(UserError, match="LAB_APT_SOURCES"):
        apt.debian_sources("bookworm")


@pytest.mark.parametrize("content", ["{", "[]", '{"job_name": "x"}'], ids=["truncated", "not an object", "keys missing"])
def test_a_damaged_lava_job_record_is_bad_input(content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job"
    job.mkdir()
    for name in ("job.yaml", "device.yaml"):
        (job / name).write_text("{}\n")
    (job / "lava-job.json").write_text(content)
    code, line = lab_error(["lava-run", str(job), "--results", str(tmp_path / "r")], capsys)
    assert code == 2 and "lava-job.json" in line


@pytest.mark.parametrize("argv, said", [
    (["run", "--coverage"], "--coverage: debian:6.1 is a Debian kernel, built without gcov profiling"),
    (["run", "--kernel", "debian:6.12", "--coverage"], "--coverage: debian:6.12 is a Debian kernel"),
    (["run", "--kernel", "/boot/vmlinuz", "--coverage"], "--coverage needs a kernel the lab built with --coverage"),
    (["run", "--target", "ssh://root@box", "--coverage"], "--coverage cannot be combined with --target"),
], ids=["default kernel", "debian 6.12", "a path", "a target"])
def test_coverage_of_a_kernel_without_gcov_is_one_line(argv: list[str], said: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, line = lab_error(argv, capsys)
    assert code == 2 and said in line, line


def test_coverage_of_a_build_made_without_it_is_one_line(nothing_starts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = nothing_starts / "cache" / "builds" / "6.1.192-0123456789ab"
    plain.mkdir(parents=True)
    (plain / "kernel.json").write_text("{}")
    code, line = lab_error(["run", "--kernel", "build:6.1.192-0123456789ab", "--coverage"], capsys)
    assert code == 2 and "build:6.1.192-0123456789ab was built without --coverage" in line, line
