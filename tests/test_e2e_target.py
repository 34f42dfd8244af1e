"""End-to-end: `lab run --target ssh://...` against a machine the lab did not boot for the run.

A lab guest (Debian 6.1 under QEMU, booted here with guest_run.booted) stands in for the
remote machine: the `lab` command in a subprocess reaches it only through its forwarded SSH
port, its host key in a known_hosts file and the lab's client key, and boots nothing itself.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2ehelpers import check_suite_records, lab, no_qemu_left  # noqa: F401 (no_qemu_left: an autouse fixture)

from lab.guest import keys
from lab.run import guest as guest_run
from lab.kernel.spec import parse_kernel_spec
from lab.core.paths import cache_dir
from lab.core.timeouts import Timeouts
from lab.target.ssh import SshTarget
from lab.guest import assets
from lab.vm.boot import booted

pytestmark = pytest.mark.boot
SUITES = {"maps", "dump", "pin"}
LEFTOVERS = "ls -d /tmp/bpf-kernel-lab.* /root/lab 2>/dev/null | wc -l"


@dataclass(frozen=True)
class Remote:
    url: str
    port: int
    release: str
    client_key: Path
    host_public: str
    session: SshTarget  # the test's own view of the machine


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    prepared = assets.prepare(parse_kernel_spec("debian:6.1"), cache_dir(), lambda message: None)
    run_dir = tmp_path_factory.mktemp("remote-guest")
    with booted(prepared, "tcg", run_dir, Timeouts().scaled_for("tcg")) as (machine, session):
        assert machine.ssh_port is not None
        yield Remote(f"ssh://root@127.0.0.1:{machine.ssh_port}", machine.ssh_port, prepared.kernel.release,
                     prepared.keys.client_private, prepared.keys.host_public, session)
    assert not machine.alive()


def known_hosts(path: Path, port: int, public: str) -> Path:
    path.write_text(f"[127.0.0.1]:{port} {public}\n")
    return path


def lab_target(remote: Remote, known: Path, results: Path, *extra: str) -> tuple[int, str, str]:
    done = lab("run", "--target", remote.url, "--key", str(remote.client_key), "--known-hosts", str(known),
               "--results", str(results), *extra, timeout=1800)
    return done.returncode, done.stdout, done.stderr


def test_a_wrong_or_missing_host_key_is_refused_and_nothing_runs(remote: Remote, tmp_path: Path) -> None:
    other = keys.ensure_keys(tmp_path / "other-lab").host_public
    code, out, err = lab_target(remote, known_hosts(tmp_path / "wrong", remote.port, other), tmp_path / "results")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and f"[127.0.0.1]:{remote.port} offered ssh-ed25519 SHA256:" in err
    assert "not its key" in err and "ssh-keygen -R" in err
    code, out, err = lab_target(remote, known_hosts(tmp_path / "unknown", 22, remote.host_public), tmp_path / "results")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and f"[127.0.0.1]:{remote.port} is not in" in err
    assert f"ssh-keyscan -p {remote.port} 127.0.0.1 >> " in err
    assert out == ""
    assert not (tmp_path / "results").exists()
    assert remote.session.run(LEFTOVERS, 60).out.strip() == "0"


def test_run_on_a_second_machine_passes_the_suites(remote: Remote, tmp_path: Path) -> None:
    results = tmp_path / "results"
    code, out, err = lab_target(remote, known_hosts(tmp_path / "known_hosts", remote.port, remote.host_public),
                                results, "--suite-timeout", "900", "--command-timeout", "120")
    assert code == 0, f"lab run --target failed:\n{out}\n{err}"
    for suite in SUITES:
        assert any(line.startswith(suite) for line in out.splitlines()), out
    assert "outcome: passed" in out
    assert f"kernel {remote.release} (x86_64)" in err
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["outcome"] == "passed"
    assert metadata["target"] == remote.url
    assert metadata["kernel"]["release"] == remote.release
    assert metadata["qemu_version"] is None and metadata["accelerator"] is None
    checks = metadata["target_checks"]
    assert checks["euid"] == 0 and checks["bpffs_mounted"] is True and checks["bpftool"]
    check_suite_records(run_dir, SUITES)
    assert not (run_dir / "console.log").exists()
    assert "Linux version" in (run_dir / "dmesg.txt").read_text()
    # Shipped into a per-run mktemp directory, which is gone again.
    assert metadata["remote_dir"].startswith("/tmp/bpf-kernel-lab.")
    assert remote.session.run(LEFTOVERS, 60).out.strip() == "0"
