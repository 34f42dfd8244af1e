"""lab.vm.boot.booted with a fake QEMU and a fake SSH session: the lost port race is retried on
another port, and QEMU that never starts is infra-error, never boot-failed (issue 14 item 8)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from labfakes import fake_qemu  # noqa: F401 (a fixture)

from lab.core.errors import InfraError
from lab.core.timeouts import Timeouts
from lab.guest import init as guestinit
from lab.vm import boot, machine
from lab.vm.machine import BootFailed

PORT_LINE = "qemu-system-x86_64: -netdev user,id=net0: Could not set up host forwarding rule 'tcp:127.0.0.1:1-:22'"


class FakeSession:
    def __init__(self, port: int) -> None:
        self.port = port
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def qemu_script(fake_qemu):  # noqa: F811 - labfakes' fixture under a name of this file's own
    return fake_qemu


@pytest.fixture
def prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    monkeypatch.setattr(boot, "sandbox_supported", lambda: False)  # the fake does not answer that probe
    monkeypatch.setattr(boot.SshTarget, "connect", lambda host, port, *rest: FakeSession(port))
    return SimpleNamespace(kernel=SimpleNamespace(image=tmp_path / "vmlinuz"), initramfs=tmp_path / "initrd.cpio",
                           image=SimpleNamespace(path=tmp_path / "rootfs.ext4"),
                           keys=SimpleNamespace(client_private=tmp_path / "key", host_public="ssh-ed25519 AAAA"))


def _losing(tmp_path: Path, losses: int) -> str:
    """A QEMU that loses the port race `losses` times, then boots; each start is counted."""
    starts = tmp_path / "starts"
    return (f'echo start >> {starts}\n'
            f'if [ "$(wc -l < {starts})" -le {losses} ]; then echo "{PORT_LINE}" >&2; exit 1; fi\n'
            f'echo "{guestinit.READY_MARKER} 6.1.0-fake"; exec sleep 60')


def _starts(tmp_path: Path) -> int:
    return len((tmp_path / "starts").read_text().splitlines())


def test_a_lost_port_race_is_retried_on_another_port(tmp_path: Path, qemu_script, prepared: SimpleNamespace) -> None:
    qemu_script(_losing(tmp_path, boot.PORT_ATTEMPTS - 1))
    with boot.booted(prepared, "tcg", tmp_path / "run", Timeouts()) as (vm, session):  # type: ignore[arg-type]
        assert vm.alive() and session.port == vm.ssh_port
    assert session.closed and not vm.alive()
    assert _starts(tmp_path) == boot.PORT_ATTEMPTS


def test_every_attempt_losing_the_port_is_an_infra_error(tmp_path: Path, qemu_script, prepared: SimpleNamespace) -> None:
    qemu_script(_losing(tmp_path, boot.PORT_ATTEMPTS))
    with pytest.raises(machine.PortTaken) as caught, \
            boot.booted(prepared, "tcg", tmp_path / "run", Timeouts()):  # type: ignore[arg-type]
        pytest.fail("booted although every port was taken")
    assert isinstance(caught.value, InfraError) and not isinstance(caught.value, BootFailed)
    assert str(caught.value) == f"QEMU could not forward the SSH port in {boot.PORT_ATTEMPTS} attempts: {PORT_LINE}"
    assert _starts(tmp_path) == boot.PORT_ATTEMPTS


def test_qemu_refusing_to_start_is_not_retried(tmp_path: Path, qemu_script, prepared: SimpleNamespace) -> None:
    qemu_script(f'echo start >> {tmp_path / "starts"}\n'
              "echo \"qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory\" >&2; exit 1")
    with pytest.raises(machine.QemuDidNotStart, match="cannot set up guest memory"), \
            boot.booted(prepared, "tcg", tmp_path / "run", Timeouts()):  # type: ignore[arg-type]
        pytest.fail("booted although QEMU did not start")
    assert _starts(tmp_path) == 1


def test_the_boot_is_sandboxed_where_qemu_can(tmp_path: Path, qemu_script, prepared: SimpleNamespace,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boot, "sandbox_supported", lambda: True)
    qemu_script(_losing(tmp_path, 0))
    with boot.booted(prepared, "tcg", tmp_path / "run", Timeouts()) as (vm, _):  # type: ignore[arg-type]
        assert vm.spec.sandbox
    assert f"-sandbox {machine.SANDBOX}" in (tmp_path / "run" / "qemu-cmdline.txt").read_text()


def test_qemu_that_did_not_start_is_an_infra_error_outcome_with_its_line() -> None:
    from lab.core.outcome import Outcome
    from lab.results.kernel_log import SplatPolicy
    from lab.run.verdict import Evidence, verdict_for

    for exc in (machine.QemuDidNotStart("qemu: error reading initrd /x: No such file"),
                machine.PortTaken(f"QEMU could not forward the SSH port in 3 attempts: {PORT_LINE}")):
        verdict = verdict_for(exc, Evidence("", ""), SplatPolicy())
        assert verdict.outcome is Outcome.INFRA_ERROR and verdict.reason == exc.reason
