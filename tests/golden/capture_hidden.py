"""Capture the golden logs of reports the console scanner used to miss (issue 14 item 6).

Not part of `make test` (the logs are committed); run it again to refresh them:

- tests/golden/quiet/: the Debian 6.1 kernel booted with `quiet` (console loglevel 4, so a
  WARNING, KERN_WARNING = 4, is kept off the console) and labsplat.ko's WARN(): the console
  (`<kind>-<release>.console.log`) and `dmesg` afterwards (`<kind>-<release>.dmesg.txt`).

      apt-get install linux-headers-$(release)   # to build labsplat.ko
      .venv/bin/python tests/golden/capture_hidden.py quiet

- tests/golden/printk-caller/: a kernel with CONFIG_PRINTK_CALLER (every line
  "[    1.234567][    T1] ...") the lab built, LKDTM built in making the reports. Debian's
  kernels do not set the option, so it has to be built:

      .venv/bin/lab kernel build --source debian:6.1 \
          --config tests/golden/printk-caller/printk-caller.config      # prints build:<id>
      .venv/bin/python tests/golden/capture_hidden.py --kernel build:<id> caller
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lab.core.paths import cache_dir
from lab.core.timeouts import Timeouts
from lab.guest import assets
from lab.guest.assets import Prepared
from lab.kernel.spec import parse_kernel_spec
from lab.target.base import CommandTimedOut, ConnectionLost
from lab.vm.boot import booted

HERE = Path(__file__).resolve().parent


def _capture_module():  # the console capture's helpers (labsplat build, LKDTM command)
    spec = importlib.util.spec_from_file_location("golden_capture", HERE / "capture.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _boot_and_provoke(prepared: Prepared, cmdline: str, command: str, run_dir: Path,
                      module: Path | None = None) -> str:
    """Boot, run `command`, and return `dmesg` afterwards ("" when the kernel went down)."""
    dmesg = ""
    with booted(prepared, "tcg", run_dir, Timeouts().scaled_for("tcg"), cmdline) as (machine, target):
        if module is not None:
            target.put(module, "/root/labsplat.ko")
        try:
            target.run(command, timeout=90)
            time.sleep(3)  # let the report finish printing
            dmesg = target.run("dmesg", timeout=60).out
        except (ConnectionLost, CommandTimedOut):
            pass  # a BUG in a task kills it; a panic ends the connection
        machine.console.wait_closed(5) if machine.console else None
    return dmesg


def capture_quiet(prepared: Prepared, workdir: Path) -> None:
    capture = _capture_module()
    module = capture.build_module(prepared.kernel.release, workdir)
    out = HERE / "quiet"
    out.mkdir(exist_ok=True)
    run_dir = workdir / "quiet-warning"
    dmesg = _boot_and_provoke(prepared, "quiet", "insmod /root/labsplat.ko kind=warn", run_dir, module)
    stem = f"warning-{prepared.kernel.release}"
    (out / f"{stem}.console.log").write_bytes((run_dir / "console.log").read_bytes())
    (out / f"{stem}.dmesg.txt").write_text(dmesg)
    print(f"quiet: {out / stem}.*")


def capture_caller(prepared: Prepared, workdir: Path) -> None:
    capture = _capture_module()
    out = HERE / "printk-caller"
    for kind, crashtype in (("warning", "WARNING"), ("bug", "BUG")):
        run_dir = workdir / f"caller-{kind}"
        _boot_and_provoke(prepared, "", capture.lkdtm(crashtype), run_dir)
        path = out / f"{kind}-{prepared.kernel.release}.log"
        path.write_bytes((run_dir / "console.log").read_bytes())
        print(f"caller {kind}: {path}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel", default="debian:6.1", help="debian:X.Y, build:<id> or a bzImage path")
    parser.add_argument("what", choices=["quiet", "caller"])
    args = parser.parse_args()
    prepared = assets.prepare(parse_kernel_spec(args.kernel), cache_dir(), print)
    with tempfile.TemporaryDirectory() as tmp:
        (capture_quiet if args.what == "quiet" else capture_caller)(prepared, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
