"""lab.guestinit: the two init scripts and sshd_config rendered from images/."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest

from lab.guest import init as guestinit


def _syntax_ok(script: str, shell: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "script.sh"
    path.write_text(script)
    return subprocess.run([*shell, "-n", str(path)], capture_output=True, text=True, check=False)


MODULES = ["virtio_ring.ko", "virtio.ko", "virtio_pci.ko", "failover.ko", "net_failover.ko", "virtio_net.ko"]


def test_stage1_prints_its_markers_and_loads_modules_in_order() -> None:
    script = guestinit.render_stage1(MODULES)
    assert script.startswith("#!/bin/busybox sh\n")
    assert f'echo "{guestinit.STAGE1_MARKER}"' in script
    assert f'echo "{guestinit.PROBE_MARKER}"' in script
    assert guestinit.FAILURE_MARKER in script
    insmods = re.findall(r"^insmod /modules/(\S+) \|\| echo \"" + re.escape(guestinit.FAILURE_MARKER) + r" insmod (\S+) failed\"$",
                         script, flags=re.M)
    assert insmods == [(m, m) for m in MODULES]
    # The marker comes after the console is set up, and before any insmod.
    assert script.index("exec </dev/console") < script.index(guestinit.STAGE1_MARKER) < script.index("insmod ")
    # The probe stops before touching the root disk.
    assert script.index(guestinit.PROBE_MARKER) < script.index("mount -t ext4")


def test_stage1_mounts_the_root_device_and_hands_over_to_stage2() -> None:
    script = guestinit.render_stage1([])
    assert "insmod" not in script
    assert f"root={guestinit.ROOT_DEVICE}" in script
    assert "lab.root=" in script
    assert "lab.accel_probe" in script
    assert script.rstrip().endswith("exec switch_root /newroot /sbin/lab-init")
    assert "mount --move /dev /newroot/dev" in script


def test_stage2_mounts_bpffs_and_configures_the_network() -> None:
    script = guestinit.render_stage2()
    assert script.startswith("#!/bin/sh\n")
    assert re.search(r"^mount -t bpf .* /sys/fs/bpf$", script, flags=re.M)
    assert f"ip addr add {guestinit.GUEST_IP}/24 dev eth0" in script
    assert f"ip route add default via {guestinit.GATEWAY_IP}" in script
    assert "ip link set eth0 up" in script and "ip link set lo up" in script
    assert f'echo "{guestinit.READY_MARKER} $(uname -r)"' in script
    assert f'"{guestinit.FAILURE_MARKER} sshd configuration is invalid"' in script
    assert "/usr/sbin/sshd -D -e &" in script
    # sshd must be started before the ready marker: the host connects as soon as it sees it.
    assert script.index("/usr/sbin/sshd -D -e") < script.index(guestinit.READY_MARKER)
    # PID 1 never exits.
    assert script.rstrip().endswith("while :; do wait; sleep 5; done")


def test_guest_and_gateway_are_in_qemus_user_network() -> None:
    assert guestinit.GUEST_IP.startswith("10.0.2.") and guestinit.GATEWAY_IP == "10.0.2.2"


@pytest.mark.parametrize("shell", [["sh"], ["dash"], ["bash", "--posix"], ["/bin/busybox", "sh"]])
def test_rendered_scripts_pass_a_syntax_check(shell: list[str], tmp_path: Path) -> None:
    if shutil.which(shell[0]) is None:
        pytest.skip(f"{shell[0]} is not installed")
    for script in (guestinit.render_stage1(MODULES), guestinit.render_stage1([]), guestinit.render_stage2()):
        done = _syntax_ok(script, shell, tmp_path)
        assert done.returncode == 0, done.stderr


def test_the_syntax_check_would_catch_a_broken_script(tmp_path: Path) -> None:
    broken = guestinit.render_stage2().replace("\nfi\n", "\n", 1)
    assert _syntax_ok(broken, ["sh"], tmp_path).returncode != 0


def test_sshd_config_allows_only_key_logins() -> None:
    config = guestinit.render_sshd_config()
    options = {}
    for line in config.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split(None, 1)
            options[key] = value
    assert options["PasswordAuthentication"] == "no"
    assert options["KbdInteractiveAuthentication"] == "no"
    assert options["PermitEmptyPasswords"] == "no"
    assert options["PermitRootLogin"] == "prohibit-password"
    assert options["PubkeyAuthentication"] == "yes"
    assert options["HostKey"] == "/etc/ssh/ssh_host_ed25519_key"
    assert options["Subsystem"] == "sftp internal-sftp"  # the runner uploads with SFTP


def test_templates_are_strict_about_missing_values() -> None:
    with pytest.raises(jinja2.UndefinedError):
        guestinit.render("lab-init.sh.j2", hostname="x")
