"""lab.cli: bad input ends at once with exit 2 and one line on stderr, before anything boots."""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterator

import pytest

from labfakes import make_bzimage
from lab.core import apt
from lab.cli import main as cli
from lab.guest import image
from lab.vm import machine
from lab.run import guest as guest_run
from lab.core.errors import InfraError
from lab.core.outcome import USER_ERROR_EXIT, Outcome, exit_code
from lab.cli import kernel as kernel_cli


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private cache and results root; nothing may build an image or start QEMU."""
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LAB_RESULTS", str(tmp_path / "results"))

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("this command should have failed before preparing a boot")

    monkeypatch.setattr(image, "build", forbidden)
    monkeypatch.setattr(guest_run, "execute", forbidden)
    monkeypatch.setattr(machine.Machine, "start", forbidden)
    previous = signal.getsignal(signal.SIGTERM)  # main() installs its own handler
    yield tmp_path
    signal.signal(signal.SIGTERM, previous)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    assert lines[0].startswith("lab: error: ")
    return lines[0]


def test_run_with_an_unknown_suite(capsys: pytest.CaptureFixture[str], isolated: Path) -> None:
    code, out, err = run(["run", "--suite", "nope"], capsys)
    assert code == USER_ERROR_EXIT == 2
    line = one_line_error(err)
    assert "nope" in line and "maps" in line
    assert out == ""
    assert not (isolated / "results").exists()


def test_run_with_a_missing_kernel_file(capsys: pytest.CaptureFixture[str], isolated: Path) -> None:
    code, out, err = run(["run", "--kernel", "/no/such/file"], capsys)
    assert code == 2
    line = one_line_error(err)
    assert "/no/such/file" in line and "no such file" in line
    assert out == ""
    assert not (isolated / "results").exists()  # no run was recorded


def test_kernel_fetch_with_a_bad_debian_spec(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["kernel", "fetch", "debian:x"], capsys)
    assert code == 2
    assert "debian:x" in one_line_error(err)
    assert out == ""


@pytest.mark.parametrize("argv, needle", [
    (["kernel", "fetch", "debian:6"], "debian:6"),
    (["kernel", "fetch", "nonsense"], "unknown kernel"),
    (["run", "--kernel", "debian:6.1", "--modules", "/lib/modules/x"], "--modules/--config"),
    (["boot", "--kernel", "/no/such/bzImage"], "/no/such/bzImage"),
    (["run", "--suite", "maps,,bogus"], "bogus"),
])
def test_other_bad_input(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2
    assert needle in one_line_error(err)


def test_run_with_a_file_that_is_not_a_kernel(capsys: pytest.CaptureFixture[str], isolated: Path) -> None:
    not_kernel = isolated / "notes.txt"
    not_kernel.write_text("hello\n" * 2000)
    code, out, err = run(["run", "--kernel", str(not_kernel)], capsys)
    assert code == 2
    assert "not an x86 bzImage" in one_line_error(err)


def test_run_with_a_kernel_without_bpf(capsys: pytest.CaptureFixture[str], isolated: Path) -> None:
    image_path = isolated / "bzImage"
    make_bzimage(image_path, "6.9.0-nobpf #1")
    (isolated / "config").write_text("# CONFIG_BPF_SYSCALL is not set\n")
    code, out, err = run(["run", "--kernel", str(image_path), "--suite", "maps"], capsys)
    assert code == 2
    assert "CONFIG_BPF_SYSCALL" in one_line_error(err)


def test_an_unknown_accelerator_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["run", "--accel", "hvf"])
    assert caught.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_an_infrastructure_error_has_its_own_exit_code(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def no_apt(series: str, flavour: str) -> tuple[str, str]:
        raise InfraError("the host's apt lists are empty: run `apt-get update` (or `make setup`)")

    monkeypatch.setattr(apt, "resolve_kernel_package", no_apt)
    code, out, err = run(["kernel", "fetch", "debian:6.1"], capsys)
    assert code == exit_code(Outcome.INFRA_ERROR) != 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lab: infrastructure error: ")


def test_an_interrupt_exits_130(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(series: str, flavour: str) -> tuple[str, str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(apt, "resolve_kernel_package", interrupted)
    code, out, err = run(["kernel", "fetch", "debian:6.1"], capsys)
    assert code == 130
    assert err.strip() == "lab: interrupted"


def test_sigterm_becomes_keyboard_interrupt(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["kernel", "fetch", "debian:x"])  # installs the handler
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler)
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGTERM, None)  # type: ignore[operator]


def test_kernel_fetch_prints_release_and_image(capsys: pytest.CaptureFixture[str], isolated: Path) -> None:
    image_path = isolated / "bzImage"
    make_bzimage(image_path, "6.9.0-local #1")
    code, out, err = run(["kernel", "fetch", str(image_path)], capsys)
    assert code == 0
    assert out.split() == ["6.9.0-local", str(image_path.resolve())]


def test_the_parser_knows_every_command() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["run"]).suite == "maps,dump,pin"
    # None until cmd_run resolves it to DEFAULT_KERNEL, so --target can refuse a --kernel given.
    assert parser.parse_args(["run"]).kernel is None
    # boot's --command shares its dest with the sub-command name: the option must win.
    boot = parser.parse_args(["boot", "--command", "uname -r"])
    assert boot.func is kernel_cli.cmd_boot and boot.command == "uname -r"
    assert parser.parse_args(["boot"]).command is None  # interactive
    assert parser.parse_args(["image", "build", "--force"]).force is True
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_an_unknown_debian_version_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Resolved against the host's real apt lists: there is no Debian 9.9 kernel package."""
    assert cli.main(["kernel", "fetch", "debian:9.9"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "debian:9.9" in lines[0], lines
