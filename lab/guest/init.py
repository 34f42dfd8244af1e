"""The guest's two init scripts, rendered from images/ templates, and the markers they print.

The host watches the serial console for these markers: they are the only way to tell
"init ran" from "the kernel is still booting" without a network.
"""
from __future__ import annotations

import jinja2

from ..core.paths import IMAGES_DIR

STAGE1_MARKER = "lab-stage1: initramfs init running"
PROBE_MARKER = "lab-probe: reached init"
READY_MARKER = "lab-ready: sshd started on"
FAILURE_MARKER = "lab-init-failure:"
# On the kernel command line, this turns the guest into a LAVA device: a root shell on
# the console with this prompt instead of the network and sshd (see lab-init.sh.j2).
LAVA_FLAG = "lab.lava"
LAVA_PROMPT = "lab-lava# "

GUEST_IP = "10.0.2.15"
GATEWAY_IP = "10.0.2.2"
ROOT_DEVICE = "/dev/vda"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(IMAGES_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
    )


def render(template: str, **values: object) -> str:
    return _environment().get_template(template).render(**values)


def render_stage2() -> str:
    return render(
        "lab-init.sh.j2",
        hostname="lab-guest",
        guest_ip=GUEST_IP,
        gateway_ip=GATEWAY_IP,
        ready_marker=READY_MARKER,
        failure_marker=FAILURE_MARKER,
        lava_flag=LAVA_FLAG,
        lava_prompt=LAVA_PROMPT,
    )


def render_stage1(modules: list[str]) -> str:
    return render(
        "initramfs-init.sh.j2",
        modules=modules,
        stage1_marker=STAGE1_MARKER,
        probe_marker=PROBE_MARKER,
        failure_marker=FAILURE_MARKER,
        root_device=ROOT_DEVICE,
    )


def render_sshd_config() -> str:
    return render("sshd_config.j2")
