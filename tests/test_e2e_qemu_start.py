"""End-to-end (issue 14 item 8): a run whose QEMU did not start is infra-error with QEMU's own
line, while a real kernel that panics at once stays boot-failed. The same Debian 6.1 guest as
the other e2e tests; on this host /dev/kvm is there but aborts QEMU, so the KVM probe runs too."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from e2ehelpers import no_own_qemu_left, own_qemu_children  # noqa: F401  (a fixture)

from lab.core.outcome import Outcome
from lab.core.paths import cache_dir
from lab.guest import assets
from lab.guest.assets import Prepared
from lab.kernel.spec import parse_kernel_spec
from lab.run import guest as guest_run
from lab.run.lifecycle import RunOutcome
from lab.run.request import RunRequest

pytestmark = pytest.mark.boot


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    return assets.prepare(parse_kernel_spec("debian:6.1"), cache_dir(), lambda message: None)


@pytest.fixture(autouse=True)
def no_qemu_left(no_own_qemu_left: None) -> None:
    """Only this process's QEMU is watched: others may boot beside this test."""


def execute(prepared: Prepared, tmp_path: Path, **options: object) -> RunOutcome:
    request = RunRequest(parse_kernel_spec("debian:6.1"), "debian:6.1", ["pin"], "auto",
                         tmp_path / "results", **options)  # type: ignore[arg-type]
    return guest_run.execute(request, prepared, cache_dir(), lambda message: None, lambda suite: None)


def test_a_missing_initramfs_is_infra_error_with_qemus_line(prepared: Prepared, tmp_path: Path) -> None:
    gone = tmp_path / "gone-initramfs.cpio"
    result = execute(dataclasses.replace(prepared, initramfs=gone), tmp_path)
    assert result.outcome is Outcome.INFRA_ERROR, result.reason
    assert result.reason.startswith("qemu: error reading initrd ") and str(gone) in result.reason  # QEMU's own words
    assert result.suites == []
    assert str(gone) in (result.record.directory / "console.log").read_text()


def test_a_kernel_that_panics_at_once_stays_boot_failed(prepared: Prepared, tmp_path: Path) -> None:
    # No such init in the initramfs and no root device: the kernel panics right after its banner.
    result = execute(prepared, tmp_path, extra_cmdline="rdinit=/no/such/init")
    assert result.outcome is Outcome.BOOT_FAILED, result.reason
    assert result.reason == "QEMU exited before init was ready"
    console = (result.record.directory / "console.log").read_text()
    assert "Linux version" in console and "Kernel panic" in console
