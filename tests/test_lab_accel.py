"""lab.accel: choosing KVM or TCG (the probe itself is driven by a fake QEMU script here)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from labfakes import fake_qemu  # noqa: F401 (a fixture)
from lab.vm import accel
from lab.guest import init as guestinit


@pytest.fixture
def logged() -> list[str]:
    return []


@pytest.fixture
def no_probe(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Record probe calls; the test decides what the probe says by setting verdict[0]."""
    calls: list[tuple] = []
    monkeypatch.setattr(accel, "qemu_version", lambda: "7.2.22")
    monkeypatch.setattr(accel, "_host_boot_id", lambda: "boot-1")
    return calls


def _probe(calls: list[tuple], verdict: tuple[bool, str]):
    def probe(kernel_image: Path, initramfs: Path, run_dir: Path, timeout: float) -> tuple[bool, str]:
        assert timeout == accel.PROBE_TIMEOUT
        calls.append((kernel_image, initramfs, run_dir))
        return verdict
    return probe


@pytest.mark.parametrize("requested", ["kvm", "tcg"])
def test_a_forced_accelerator_is_not_probed(requested: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            logged: list[str]) -> None:
    monkeypatch.setattr(accel, "probe_kvm", lambda *a: pytest.fail("probed although forced"))
    choice = accel.choose(requested, tmp_path / "k", tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert choice == accel.AccelChoice(requested, f"--accel {requested}", probed=False)
    assert not (tmp_path / "accel.json").exists()


def test_no_usable_dev_kvm_means_tcg_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    logged: list[str]) -> None:
    monkeypatch.setattr(accel, "kvm_usable_device", lambda: False)
    monkeypatch.setattr(accel, "probe_kvm", lambda *a: pytest.fail("probed without /dev/kvm"))
    choice = accel.choose("auto", tmp_path / "k", tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert choice.accel == "tcg" and not choice.probed
    assert any(line.startswith("warning:") and "TCG" in line for line in logged)


def test_auto_probes_once_and_caches_the_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_probe: list,
                                                 logged: list[str]) -> None:
    monkeypatch.setattr(accel, "kvm_usable_device", lambda: True)
    monkeypatch.setattr(accel, "probe_kvm", _probe(no_probe, (True, "a KVM boot reached init")))
    first = accel.choose("auto", tmp_path / "k", tmp_path / "i", tmp_path / "run", tmp_path, logged.append)
    assert first == accel.AccelChoice("kvm", "a KVM boot reached init", probed=True)
    assert no_probe == [(tmp_path / "k", tmp_path / "i", tmp_path / "run")]
    assert json.loads((tmp_path / "accel.json").read_text()) == {
        "key": "boot-1 qemu-7.2.22", "accel": "kvm", "reason": "a KVM boot reached init"}
    second = accel.choose("auto", tmp_path / "k", tmp_path / "i", tmp_path / "run", tmp_path, logged.append)
    assert second.accel == "kvm" and not second.probed and "cached" in second.reason
    assert len(no_probe) == 1
    assert not any("warning" in line for line in logged)


def test_a_failed_probe_means_tcg_and_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_probe: list,
                                                logged: list[str]) -> None:
    monkeypatch.setattr(accel, "kvm_usable_device", lambda: True)
    monkeypatch.setattr(accel, "probe_kvm", _probe(no_probe, (False, "a KVM boot did not reach init within 20 s")))
    first = accel.choose("auto", tmp_path / "k", tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert first.accel == "tcg" and first.probed
    assert any("KVM is unusable" in line for line in logged)
    logged.clear()
    second = accel.choose("auto", tmp_path / "k", tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert second.accel == "tcg" and not second.probed
    assert any("cached probe" in line for line in logged)  # still warned: the user should know
    assert len(no_probe) == 1


@pytest.mark.parametrize("cached", [
    {"key": "boot-0 qemu-7.2.22", "accel": "tcg", "reason": "old host boot"},
    {"key": "boot-1 qemu-7.2.1", "accel": "tcg", "reason": "older QEMU"},
    "not json",
])
def test_a_stale_or_broken_verdict_is_probed_again(cached: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   no_probe: list, logged: list[str]) -> None:
    (tmp_path / "accel.json").write_text(cached if isinstance(cached, str) else json.dumps(cached))
    monkeypatch.setattr(accel, "kvm_usable_device", lambda: True)
    monkeypatch.setattr(accel, "probe_kvm", _probe(no_probe, (True, "a KVM boot reached init")))
    choice = accel.choose("auto", tmp_path / "k", tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert choice.accel == "kvm" and choice.probed
    assert len(no_probe) == 1
    assert json.loads((tmp_path / "accel.json").read_text())["key"] == "boot-1 qemu-7.2.22"


# --- probe_kvm against a fake QEMU ------------------------------------------------------------------




def test_probe_succeeds_when_init_is_reached(tmp_path: Path, fake_qemu) -> None:
    fake_qemu(f'case "$*" in *lab.accel_probe*) echo "{guestinit.PROBE_MARKER}";; esac; sleep 60')
    ok, reason = accel.probe_kvm(tmp_path / "k", tmp_path / "i", tmp_path / "run")
    assert ok and reason == "a KVM boot reached init"
    cmdline = (tmp_path / "run" / "qemu-cmdline.txt").read_text()
    assert "-drive" not in cmdline and "-netdev" not in cmdline and "kvm" in cmdline
    assert (tmp_path / "run" / "kvm-probe-console.log").is_file()
    assert not (tmp_path / "run" / "console.log").exists()  # the real boot's log stays clean


def test_probe_fails_with_qemus_last_words(tmp_path: Path, fake_qemu) -> None:
    fake_qemu("echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69'; exit 1")
    ok, reason = accel.probe_kvm(tmp_path / "k", tmp_path / "i", tmp_path / "run")
    assert not ok
    assert reason.startswith("a KVM boot failed: QEMU exited before init was ready")
    assert "failed to set MSR 0x10a" in reason
