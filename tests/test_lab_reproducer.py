"""lab.reproducer: reproducer.sh reruns `lab run` with this run's options, through a real /bin/sh.

The round trip: `lab run ARGS` (the real CLI, up to the RunRequest it builds) -> reproducer.sh ->
executed by sh against a stand-in `.venv/bin/lab` that records its argv -> that argv through the
real CLI (lab.cli.build_parser() and cmd_run) again -> the same RunRequest.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from test_lab_pipeline import World, world  # noqa: F401  (execute() with everything faked)

from lab.cli import main as cli
from lab.results import kernel_log as consolescan
from lab.run import guest as guest_run
from lab.run import reproducer
from lab.run.request import TargetRunRequest
from lab.target.remote import SshUrl
from lab.kernel.spec import BuildSpec, DebianSpec, PathSpec
from lab.run import suites as runner
from lab.core.timeouts import Timeouts
from lab.guest import assets
from lab.run.request import RunRequest

KERNEL = {"release": "6.1.0-28-cloud-amd64", "origin": "debian", "spec": "debian:6.1",
          "package": "linux-image-6.1.0-28-cloud-amd64-unsigned", "version": "6.1.119-1", "config_sha256": "c" * 64}


class Captured(BaseException):  # not an Exception: `lab` would report it as infra-error
    """Stops `lab run` once it has built its RunRequest."""


def request_of(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> RunRequest:
    """The RunRequest the real `lab run` builds from argv; nothing is fetched or booted."""
    seen: list[RunRequest] = []

    def execute(request: RunRequest, *args: object) -> None:
        seen.append(request)
        raise Captured

    monkeypatch.setattr(assets, "prepare", lambda *args: None)
    monkeypatch.setattr(guest_run, "execute", execute)
    with pytest.raises(Captured):
        cli.main(argv)
    return seen[0]


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """A repository root whose `.venv/bin/lab` writes $LAB_CACHE and its argv, NUL-separated, to $ARGV_OUT."""
    repo = tmp_path / "repo"
    (repo / ".venv" / "bin").mkdir(parents=True)
    lab = repo / ".venv" / "bin" / "lab"
    lab.write_text('#!/bin/sh\nprintf \'%s\\0\' "$LAB_CACHE" "$@" > "$ARGV_OUT"\n')
    lab.chmod(lab.stat().st_mode | stat.S_IXUSR)
    return repo


def identity_for(request: RunRequest) -> dict[str, str]:
    """What the run recorded: a Debian spec got one package version of its series."""
    if isinstance(request.kernel, DebianSpec):
        return {**KERNEL, "version": f"{request.kernel.series}.119-1"}
    return KERNEL


def pinned(request: RunRequest) -> RunRequest:
    """The request the script makes: a Debian spec pinned to the version the run got."""
    if isinstance(request.kernel, DebianSpec):
        return replace(request, kernel=replace(request.kernel, exact=identity_for(request)["version"]))
    return request


def script_for(request: RunRequest, run_dir: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(reproducer, "REPO_ROOT", repo)
    run_dir.mkdir(parents=True, exist_ok=True)
    return reproducer.write_script(run_dir, reproducer.run_argv(request, identity_for(request)), request.results_root,
                                   Path("/var/cache/lab"),
                                   KERNEL, "d" * 64, ("0123abcd" * 5, True), reproducer.caveats(request))


def execute_script(script: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Run it with /bin/sh as a user would; the stand-in lab's LAB_CACHE and argv."""
    out = cwd / "argv.bin"
    environment = {k: v for k, v in os.environ.items() if k != "LAB_CACHE"} | {"ARGV_OUT": str(out)} | (env or {})
    subprocess.run(["/bin/sh", str(script), *args], cwd=cwd, env=environment, check=True, timeout=30)
    cache, *argv = out.read_bytes().decode().split("\0")[:-1]
    return cache, argv


def normalised(request: RunRequest) -> RunRequest:
    """What the run does, whatever the spelling: paths absolute, the label (the run id's words) aside."""
    kernel = request.kernel
    if isinstance(kernel, PathSpec):
        kernel = PathSpec(kernel.image.resolve(), kernel.modules.resolve() if kernel.modules else None,
                          kernel.config.resolve() if kernel.config else None)
    return replace(request, kernel=kernel, kernel_label="", results_root=request.results_root.resolve())


ROUND_TRIPS = {
    "defaults": ["run"],
    "every option": ["run", "--kernel", "debian:6.12", "--suite", "pin,maps", "--accel", "tcg",
                     "--cmdline", "console=ttyS0 quiet lab.x='a b'", "--suite-timeout", "42", "--boot-timeout", "7.5",
                     "--ssh-timeout", "9", "--command-timeout", "11", "--probe-timeout", "3", "--run-timeout", "900",
                     "--allow-splat", r"WARNING: .* at kernel/bpf/\w+\.c", "--allow-splat", "it's $HOME `x`",
                     "--deny-splat=-EFAULT", "--suite-jobs", "1"],
    "a debian flavour": ["run", "--kernel", "debian:6.1:rt-amd64", "--accel", "kvm"],
    "a build": ["run", "--kernel", "build:6.1.192-42e5948d8e60", "--suite", "dump"],
    "a relative kernel path": ["run", "--kernel", "kernels/bzImage", "--modules", "kernels/mods", "--config", "kernels/cfg",
                               "--results", "out"],
}


@pytest.mark.parametrize("argv", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_the_script_reruns_lab_run_with_the_same_options(argv: list[str], tmp_path: Path, fake_repo: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # where the user ran `lab run`: relative paths start here
    monkeypatch.setenv("LAB_RESULTS", str(tmp_path / "default-results"))
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    first = request_of(argv, monkeypatch)
    expected = normalised(pinned(first))  # relative paths resolved from here, where they were given
    script = script_for(first, tmp_path / "run", fake_repo, monkeypatch)

    _, replayed = execute_script(script, cwd=tmp_path)
    assert replayed[0] == "run"
    cli.build_parser().parse_args(replayed)  # argparse takes every option as written (raises SystemExit if not)
    monkeypatch.chdir(tmp_path)  # the replayed line needs no particular directory
    again = request_of(replayed, monkeypatch)
    assert normalised(again) == expected
    assert again.results_root == (workdir / "out" if "--results" in argv else tmp_path / "default-results")
    given = {arg.split("=")[0] for arg in argv if arg.startswith("--")}
    for option in reproducer.BOUND_OPTIONS.values():
        assert (option in given) == any(arg.startswith(option + "=") for arg in replayed), option  # none invented


def test_the_results_root_is_the_first_argument_relative_to_the_caller(tmp_path: Path, fake_repo: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    request = RunRequest(DebianSpec("6.1"), "debian:6.1", ["pin"], results_root=tmp_path / "first results")
    script = script_for(request, tmp_path / "run", fake_repo, monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args, results in [((), tmp_path / "first results"), (("/abs/rr2",), Path("/abs/rr2")),
                          (("rr2",), elsewhere / "rr2")]:
        _, argv = execute_script(script, *args, cwd=elsewhere)
        assert cli.build_parser().parse_args(argv).results == str(results), args


def test_the_script_uses_this_runs_cache_unless_told_otherwise(tmp_path: Path, fake_repo: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    script = script_for(RunRequest(BuildSpec("6.1.192-abc"), "build:6.1.192-abc", ["maps"]),
                        tmp_path / "run", fake_repo, monkeypatch)
    assert execute_script(script, cwd=tmp_path)[0] == "/var/cache/lab"  # where build:<id> lives
    assert execute_script(script, cwd=tmp_path, env={"LAB_CACHE": "/other"})[0] == "/other"


def test_the_script_is_executable_and_says_what_it_reproduces(tmp_path: Path, fake_repo: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    request = RunRequest(DebianSpec("6.1"), "debian:6.1", ["pin"], results_root=tmp_path / "results")
    script = script_for(request, tmp_path / "20261122-063736-6.1.0-28-cloud-amd64-e0b1", fake_repo, monkeypatch)
    assert script.name == "reproducer.sh" and os.access(script, os.X_OK)
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/bin/sh" and "set -eu" in lines
    header = "\n".join(line for line in lines if line.startswith("#"))
    assert "run 20261122-063736-6.1.0-28-cloud-amd64-e0b1" in header
    assert "linux-image-6.1.0-28-cloud-amd64-unsigned 6.1.119-1" in header and "c" * 64 in header
    assert "sha256 " + "d" * 64 in header
    assert "git " + "0123abcd" * 5 + " (dirty" in header
    # debian:X.Y moves on when Debian publishes a newer package: the script pins the one this run got.
    assert "asked for debian:6.1 (the newest 6.1 then); the script pins the package it got" in header
    assert 'exec "$@" run --kernel=debian:6.1.119-1 ' in script.read_text()
    assert "linux-image-6.1.0-28-cloud-amd64-unsigned 6.1.119-1" in header
    # The command is after the comment block: a reader sees what "exactly" means first.
    assert max(i for i, line in enumerate(lines) if line.startswith("#")) < lines.index("set -eu")


def test_what_no_option_can_say_is_noted_in_the_script(tmp_path: Path) -> None:
    request = RunRequest(BuildSpec("x"), "build:x", ["maps"], tree=runner.TestTree(tmp_path / "tree", {}),
                                  timeouts=Timeouts(boot=1.0))
    notes = reproducer.caveats(request)
    assert any(str(tmp_path / "tree") in note for note in notes)
    assert any("boot=1.0" in note for note in notes)
    assert reproducer.caveats(RunRequest(BuildSpec("x"), "build:x", ["maps"])) == []


def test_kernel_options_for_each_spec(tmp_path: Path) -> None:
    assert reproducer.kernel_argv(DebianSpec("6.12")) == ["--kernel=debian:6.12"]  # nothing recorded yet
    got = {"version": "6.12.117-1~deb12u1", "package": "linux-image-6.12.117+deb12-cloud-amd64-unsigned"}
    assert reproducer.kernel_argv(DebianSpec("6.12"), got) == ["--kernel=debian:6.12.117-1~deb12u1"]
    # An ABI name or an upstream version is pinned to the package version it resolved to.
    assert reproducer.kernel_argv(DebianSpec("6.12", exact="6.12.117+deb12"), got) == [
        "--kernel=debian:6.12.117-1~deb12u1"]
    assert reproducer.kernel_argv(DebianSpec("6.1", "rt-amd64"), {"version": "6.1.192-3"}) == [
        "--kernel=debian:6.1.192-3:rt-amd64"]
    assert reproducer.kernel_argv(BuildSpec("6.1.192-42e5")) == ["--kernel=build:6.1.192-42e5"]
    spec = PathSpec(tmp_path / "bzImage", None, tmp_path / "config")
    assert reproducer.kernel_argv(spec) == [f"--kernel={tmp_path / 'bzImage'}", f"--config={tmp_path / 'config'}"]


def test_lab_revision_of_this_checkout_and_of_no_checkout(tmp_path: Path) -> None:
    commit, _ = reproducer.lab_revision()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(reproducer.__file__).parent, capture_output=True,
                          text=True, check=False)
    assert commit == (head.stdout.strip() if head.returncode == 0 else None)
    assert reproducer.lab_revision(tmp_path) == (None, False)


def test_every_run_writes_its_reproducer_before_the_guest_boots(world: World) -> None:  # noqa: F811
    from lab.vm.machine import BootFailed

    world.boot_error = BootFailed("QEMU exited before init was ready", "")
    result = world.execute(suites=["pin"], suite_timeout=42)
    directory = result.record.directory
    metadata = json.loads((directory / "metadata.json").read_text())
    assert metadata["reproducer"] == "reproducer.sh"
    assert set(metadata["lab"]) == {"commit", "dirty"}
    text = (directory / "reproducer.sh").read_text()
    assert os.access(directory / "reproducer.sh", os.X_OK)
    assert "--kernel=debian:6.1 --suite=pin --accel=auto --suite-timeout=42.0" in text
    assert '--results "$results"' in text and str(world.tmp_path / "results") in text


def test_a_target_run_is_rerun_with_its_key_known_hosts_bounds_and_splats(tmp_path: Path) -> None:
    request = TargetRunRequest(SshUrl("root", "box", 22), ["maps", "pin"], tmp_path / "results",
                               Timeouts().with_suite(90), run_timeout=600,
                               splats=consolescan.SplatPolicy(("WARNING: harmless",), ("-EFAULT",)),
                               key=tmp_path / "id_ed25519", known_hosts=tmp_path / "known_hosts")
    argv = reproducer.target_argv(request)
    assert argv[:3] == ["run", "--target=ssh://root@box:22", "--suite=maps,pin"]
    assert f"--key={tmp_path / 'id_ed25519'}" in argv and f"--known-hosts={tmp_path / 'known_hosts'}" in argv
    assert {"--suite-timeout=90.0", "--run-timeout=600.0", "--allow-splat=WARNING: harmless",
            "--deny-splat=-EFAULT"} <= set(argv)
    # The options parse back to the same request, as `lab run` would read them.
    args = cli.build_parser().parse_args(argv)
    assert (args.target, args.suite, args.suite_timeout, args.run_timeout) == ("ssh://root@box:22", "maps,pin", 90.0, 600.0)
    assert (args.allow_splat, args.deny_splat) == (["WARNING: harmless"], ["-EFAULT"])


def test_a_newline_in_what_a_kernel_or_a_machine_said_is_never_a_command(tmp_path: Path, fake_repo: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14: a package version, a target's `uname -r` or a note with a newline stays in its comment."""
    monkeypatch.setattr(reproducer, "REPO_ROOT", fake_repo)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    kernel = {**KERNEL, "version": "6.1.119-1\ntouch pwned-by-version", "release": "6.1.0\rtouch pwned-by-release"}
    script = reproducer.write_script(run_dir, ["run", "--suite=pin"], tmp_path / "results", tmp_path / "cache",
                                     kernel, "d" * 64, (None, False), ["a machine said\ntouch pwned-by-note"])
    for line in script.read_text().splitlines():
        assert "pwned" not in line or line.startswith("#"), line
    execute_script(script, cwd=tmp_path)
    assert not list(tmp_path.glob("pwned*"))
    assert "6.1.119-1\\ntouch pwned-by-version" in script.read_text()  # still readable, escaped
