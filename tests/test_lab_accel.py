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
    """Record probe calls; each test installs a probe saying what it wants with _probe."""
    calls: list[tuple] = []
    monkeypatch.setattr(accel, "qemu_version", lambda: "7.2.22")
    monkeypatch.setattr(accel, "_host_boot_id", lambda: "boot-1")
    monkeypatch.setattr(accel, "kvm_usable_device", lambda: True)
    return calls


def _probe(calls: list[tuple], *verdicts: accel.ProbeResult):
    """A probe answering with verdicts in turn (the last one from then on)."""
    def probe(kernel_image: Path, initramfs: Path, run_dir: Path, timeout: float) -> accel.ProbeResult:
        assert timeout == accel.PROBE_TIMEOUT
        calls.append((kernel_image, initramfs, run_dir))
        return verdicts[min(len(calls), len(verdicts)) - 1]
    return probe


def kernel(tmp_path: Path, name: str = "k", content: bytes = b"bzImage one") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


REACHED = accel.ProbeResult(True, "a KVM boot reached init", "kernel")
HUNG = accel.ProbeResult(False, "a KVM boot did not reach init within 20 s", "kernel")
HOST_KVM_BROKEN = accel.ProbeResult(False, "QEMU could not start a KVM guest: qemu-system-x86_64: kvm.c:3183: "
                                    "kvm_buf_set_msrs: Assertion failed.", "host")


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
    monkeypatch.setattr(accel, "probe_kvm", _probe(no_probe, REACHED))
    image = kernel(tmp_path)
    first = accel.choose("auto", image, tmp_path / "i", tmp_path / "run", tmp_path, logged.append)
    assert first == accel.AccelChoice("kvm", "a KVM boot reached init", probed=True)
    assert no_probe == [(image, tmp_path / "i", tmp_path / "run")]
    assert json.loads((tmp_path / "accel.json").read_text()) == {
        "host_key": "boot-1 qemu-7.2.22", "host": None,
        "kernels": {accel.kernel_identity(image): {"accel": "kvm", "reason": "a KVM boot reached init"}}}
    second = accel.choose("auto", image, tmp_path / "i", tmp_path / "run", tmp_path, logged.append)
    assert second.accel == "kvm" and not second.probed and "cached" in second.reason
    assert len(no_probe) == 1
    assert not any("warning" in line for line in logged)


def test_a_failed_probe_means_tcg_and_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_probe: list,
                                                logged: list[str]) -> None:
    monkeypatch.setattr(accel, "probe_kvm", _probe(no_probe, HUNG))
    image = kernel(tmp_path)
    first = accel.choose("auto", image, tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert first.accel == "tcg" and first.probed
    assert any("KVM is unusable for this kernel" in line for line in logged)
    logged.clear()
    second = accel.choose("auto", image, tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert second.accel == "tcg" and not second.probed
    assert any("cached probe" in line for line in logged)  # still warned: the user should know
    assert len(no_probe) == 1


def test_one_kernel_failing_the_probe_does_not_pin_the_next_to_tcg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   no_probe: list, logged: list[str]) -> None:
    """Issue 14 item 12: a kernel that hangs under KVM is that kernel's verdict, not the host's."""
    monkeypatch.setattr(accel, "probe_kvm", _probe(no_probe, HUNG, REACHED))
    broken, good = kernel(tmp_path, "broken", b"hangs under KVM"), kernel(tmp_path, "good", b"boots under KVM")
    assert accel.choose("auto", broken, tmp_path / "i", tmp_path, tmp_path, logged.append).accel == "tcg"
    later = accel.choose("auto", good, tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert later == accel.AccelChoice("kvm", "a KVM boot reached init", probed=True)
    assert [call[0] for call in no_probe] == [broken, good]
    # Both verdicts are kept: neither kernel is probed again.
    assert accel.choose("auto", broken, tmp_path / "i", tmp_path, tmp_path, logged.append).accel == "tcg"
    assert accel.choose("auto", good, tmp_path / "i", tmp_path, tmp_path, logged.append).accel == "kvm"
    assert len(no_probe) == 2


def test_a_rebuilt_image_at_the_same_path_is_probed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          no_probe: list, logged: list[str]) -> None:
    monkeypatch.setattr(accel, "probe_kvm", _probe(no_probe, HUNG, REACHED))
    image = kernel(tmp_path, "bzImage", b"first build")
    assert accel.choose("auto", image, tmp_path / "i", tmp_path, tmp_path, logged.append).accel == "tcg"
    kernel(tmp_path, "bzImage", b"second build")
    assert accel.choose("auto", image, tmp_path / "i", tmp_path, tmp_path, logged.append).accel == "kvm"
    assert len(no_probe) == 2


def test_the_hosts_kvm_failing_is_a_verdict_for_every_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             no_probe: list, logged: list[str]) -> None:
    monkeypatch.setattr(accel, "probe_kvm", _probe(no_probe, HOST_KVM_BROKEN, REACHED))
    first = accel.choose("auto", kernel(tmp_path, "a", b"a"), tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert first.accel == "tcg" and first.probed
    assert any("KVM is unusable on this host" in line for line in logged)
    other = accel.choose("auto", kernel(tmp_path, "b", b"b"), tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert other.accel == "tcg" and not other.probed and "kvm_buf_set_msrs" in other.reason
    assert len(no_probe) == 1
    assert json.loads((tmp_path / "accel.json").read_text())["host"]["accel"] == "tcg"


def test_qemu_failing_for_another_reason_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       no_probe: list, logged: list[str]) -> None:
    """A missing initramfs says nothing about KVM: TCG for this run, and the next run probes again."""
    missing = accel.ProbeResult(False, "QEMU could not start a KVM guest: qemu: error reading initrd /x", "none")
    monkeypatch.setattr(accel, "probe_kvm", _probe(no_probe, missing))
    image = kernel(tmp_path)
    choice = accel.choose("auto", image, tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert choice.accel == "tcg" and choice.probed
    assert any("for this run" in line for line in logged) and not any("on this host" in line for line in logged)
    assert not (tmp_path / "accel.json").exists()
    accel.choose("auto", image, tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert len(no_probe) == 2


@pytest.mark.parametrize("cached", [
    {"host_key": "boot-0 qemu-7.2.22", "host": {"accel": "tcg", "reason": "old host boot"}, "kernels": {}},
    {"host_key": "boot-1 qemu-7.2.1", "host": {"accel": "tcg", "reason": "older QEMU"}, "kernels": {}},
    {"key": "boot-1 qemu-7.2.22", "accel": "tcg", "reason": "the host-wide format before issue 14"},
    {"host_key": "boot-1 qemu-7.2.22", "host": {"accel": "warp"}, "kernels": ["not", "a", "dict"]},
    {"host_key": "boot-1 qemu-7.2.22", "host": "tcg", "kernels": {"sha256:x": 7}},
    ["a", "list"],
    "not json",
    "",
])
def test_a_stale_or_broken_verdict_is_probed_again(cached: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   no_probe: list, logged: list[str]) -> None:
    (tmp_path / "accel.json").write_text(cached if isinstance(cached, str) else json.dumps(cached))
    monkeypatch.setattr(accel, "probe_kvm", _probe(no_probe, REACHED))
    choice = accel.choose("auto", kernel(tmp_path), tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert choice.accel == "kvm" and choice.probed
    assert len(no_probe) == 1
    written = json.loads((tmp_path / "accel.json").read_text())
    assert written["host_key"] == "boot-1 qemu-7.2.22" and written["host"] is None


def test_the_verdict_file_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_probe: list,
                                                logged: list[str]) -> None:
    written: list[Path] = []
    real = accel.write_json_atomic
    monkeypatch.setattr(accel, "write_json_atomic", lambda path, data: (written.append(path), real(path, data)))
    monkeypatch.setattr(accel, "probe_kvm", _probe(no_probe, REACHED))
    accel.choose("auto", kernel(tmp_path), tmp_path / "i", tmp_path, tmp_path, logged.append)
    assert written == [tmp_path / "accel.json"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("accel")] == ["accel.json"]


def test_an_unwritable_cache_costs_only_a_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_probe: list,
                                                logged: list[str]) -> None:
    monkeypatch.setattr(accel, "probe_kvm", _probe(no_probe, REACHED))
    choice = accel.choose("auto", kernel(tmp_path), tmp_path / "i", tmp_path, tmp_path / "no" / "such", logged.append)
    assert choice.accel == "kvm"


def test_old_kernels_verdicts_are_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_probe: list,
                                          logged: list[str]) -> None:
    monkeypatch.setattr(accel, "KERNELS_KEPT", 2)
    monkeypatch.setattr(accel, "probe_kvm", _probe(no_probe, REACHED))
    images = [kernel(tmp_path, f"k{n}", bytes([n])) for n in range(3)]
    for image in images:
        accel.choose("auto", image, tmp_path / "i", tmp_path, tmp_path, logged.append)
    kept = json.loads((tmp_path / "accel.json").read_text())["kernels"]
    assert list(kept) == [accel.kernel_identity(images[1]), accel.kernel_identity(images[2])]


# --- probe_kvm against a fake QEMU ------------------------------------------------------------------




def test_probe_succeeds_when_init_is_reached(tmp_path: Path, fake_qemu, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_sandbox(monkeypatch)
    fake_qemu(f'case "$*" in *lab.accel_probe*) echo "{guestinit.PROBE_MARKER}";; esac; sleep 60')
    assert accel.probe_kvm(tmp_path / "k", tmp_path / "i", tmp_path / "run") == REACHED
    cmdline = (tmp_path / "run" / "qemu-cmdline.txt").read_text()
    assert "-drive" not in cmdline and "-netdev" not in cmdline and "kvm" in cmdline
    assert (tmp_path / "run" / "kvm-probe-console.log").is_file()
    assert not (tmp_path / "run" / "console.log").exists()  # the real boot's log stays clean


def _no_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "sandbox_supported", lambda: False)  # the fake does not answer the sandbox probe


def test_probe_of_a_host_whose_kvm_aborts_qemu_blames_the_host(tmp_path: Path, fake_qemu,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _no_sandbox(monkeypatch)
    fake_qemu("echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69'; "
              "echo \"qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion "
              "\\`ret == cpu->kvm_msr_buf->nmsrs' failed.\"; kill -ABRT $$")
    result = accel.probe_kvm(tmp_path / "k", tmp_path / "i", tmp_path / "run")
    assert not result.ok and result.scope == "host"
    assert result.reason == "QEMU could not start a KVM guest: qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69"


def test_probe_of_qemu_failing_for_another_reason_blames_nobody(tmp_path: Path, fake_qemu,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _no_sandbox(monkeypatch)
    fake_qemu("echo \"qemu: error reading initrd /gone: Failed to open file\"; exit 1")
    result = accel.probe_kvm(tmp_path / "k", tmp_path / "i", tmp_path / "run")
    assert not result.ok and result.scope == "none" and "error reading initrd /gone" in result.reason


@pytest.mark.parametrize("body, reason", [
    ('echo "[    0.000000] Linux version 6.1.0"; echo "[    0.5] Kernel panic - not syncing: x"; exit 0',
     "a KVM boot failed: QEMU exited before init was ready: [    0.5] Kernel panic - not syncing: x"),
    ('echo "Probing EDD (edd=off to disable)... ok"; sleep 60', "a KVM boot did not reach init within 2 s"),
])
def test_probe_of_a_guest_that_ran_and_failed_blames_the_kernel(body: str, reason: str, tmp_path: Path, fake_qemu,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _no_sandbox(monkeypatch)
    fake_qemu(body)
    result = accel.probe_kvm(tmp_path / "k", tmp_path / "i", tmp_path / "run", timeout=2)
    assert result == accel.ProbeResult(False, reason, "kernel")


def test_the_probe_runs_sandboxed_where_qemu_can(tmp_path: Path, fake_qemu, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "sandbox_supported", lambda: True)
    fake_qemu(f'echo "{guestinit.PROBE_MARKER}"; sleep 60')
    assert accel.probe_kvm(tmp_path / "k", tmp_path / "i", tmp_path / "run").ok
    assert "-sandbox on," in (tmp_path / "run" / "qemu-cmdline.txt").read_text()
