"""Check a job and a device configuration with LAVA's own schemas (Debian's lava-common).

lava-common is installed for the system python3 (/usr/lib/python3/dist-packages), which is
not necessarily the python running the lab, so the check runs in the interpreter that runs
`lava-run` itself.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LAVA_RUN = "lava-run"
SYSTEM_PYTHON = "/usr/bin/python3"

_CHECK = """
import sys, yaml
from lava_common.schemas import validate
from lava_common.schemas.device import validate as validate_device
try:
    with open(sys.argv[1]) as f:
        validate(yaml.safe_load(f), strict=True)
    with open(sys.argv[2]) as f:
        validate_device(yaml.safe_load(f))
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}")
    sys.exit(1)
"""


@dataclass(frozen=True)
class SchemaCheck:
    ok: bool
    message: str


def lava_python() -> str | None:
    """The interpreter of `lava-run` (its #! line), or the system python3; None without lava-common."""
    candidates = []
    lava_run = shutil.which(LAVA_RUN)
    if lava_run:
        first = Path(lava_run).read_text(errors="replace").splitlines()[:1]
        if first and first[0].startswith("#!"):
            candidates.append(first[0][2:].strip().split()[0])
    candidates.append(SYSTEM_PYTHON)
    for python in candidates:
        probe = subprocess.run([python, "-c", "import lava_common.schemas"], capture_output=True, check=False) \
            if Path(python).exists() else None
        if probe is not None and probe.returncode == 0:
            return python
    return None


def check(job: Path, device: Path, python: str | None = None) -> SchemaCheck | None:
    """LAVA's verdict on the job (strict: no unknown keys) and the device; None without lava-common."""
    python = python or lava_python()
    if python is None:
        return None
    done = subprocess.run([python, "-c", _CHECK, str(job), str(device)], capture_output=True, text=True,
                          timeout=120, check=False)
    message = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return SchemaCheck(done.returncode == 0, message[-1] if message else "")
