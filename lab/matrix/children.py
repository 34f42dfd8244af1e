"""`lab matrix`: one child `lab run` per kernel, as many at once as the host allows, with progress.

Each kernel runs in its own process (`python -m lab run ...`) so its signal handling, SIGALRM
run deadline and QEMU cleanup are its own. The guest image is built (or found) before any
child starts, because two children building the same image at the same moment would race;
after that the children only read it. Each child fetches its own kernel and builds its own
initramfs, both written under a temporary name and renamed, so different kernels never collide.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core import progress
from ..core.errors import UserError
from ..core.files import new_stamped_dir, safe_name, write_json_atomic
from ..core.log import Log
from ..core.paths import REPO_ROOT, cache_dir
from ..guest import image, keys
from ..vm.machine import MachineSpec
from . import progress as matrixprogress
from . import table as matrixtable

QEMU_OVERHEAD_MB = 384  # QEMU's own RSS under TCG, plus the child lab process
POLL_SECONDS = 1.0
STOP_GRACE_SECONDS = 60.0  # a child stopping its QEMU and writing its record on SIGTERM


def mem_available_mb(meminfo: str | None = None) -> int | None:
    if meminfo is None:
        try:
            meminfo = Path("/proc/meminfo").read_text()
        except OSError:
            return None
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return None


def default_jobs(cpus: int | None, available_mb: int | None, guest_mb: int = MachineSpec.memory_mb) -> int:
    """VMs at once: one per core, as many as memory holds (each guest plus QEMU's overhead), at least 1."""
    by_cpu = cpus or 1
    by_memory = available_mb // (guest_mb + QEMU_OVERHEAD_MB) if available_mb is not None else by_cpu
    return max(1, min(by_cpu, by_memory))


@dataclass
class Child:
    kernel: str
    root: Path  # this kernel's results root; its run directory appears inside
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    seconds: float | None = None
    returncode: int | None = None
    last: matrixprogress.Progress | None = field(default=None)
    spec: str = ""  # the kernel, when `kernel` labels one repetition of it ("debian:6.1 r2")

    @property
    def log_path(self) -> Path:
        return self.root / "lab.log"

    def start(self, env: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as out:
            # A session of its own: a terminal's Ctrl-C reaches the matrix only, which then stops
            # every child with one SIGTERM (a second signal could cut a child's QEMU cleanup short).
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=REPO_ROOT, start_new_session=True)
        self.started = time.monotonic()

    def poll(self) -> bool:
        """True once the child has exited."""
        if self.proc is None or self.returncode is not None:
            return self.returncode is not None
        rc = self.proc.poll()
        if rc is not None:
            self.returncode = rc
            self.seconds = round(time.monotonic() - self.started, 3)
        return rc is not None


def child_argv(kernel: str, suites: str, root: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "lab", "run", "--kernel", kernel, "--suite", suites, "--results", str(root), *extra]


def prepare_cache(log: Log) -> None:
    """Build (or find) the guest image every child shares, once, before any child runs.

    Kernels are left to the children: each fetches its own into its own cache entry (unpacked
    under a temporary name, then renamed), and the same kernel twice is refused, so fetches
    never collide; doing them here, one after the other, cost more than it saved."""
    cache = cache_dir()
    image.build(image.default_recipe(keys.ensure_keys(cache)), cache, log)


def _stop(children: list[Child], log: Log) -> None:
    live = [c for c in children if c.proc is not None and not c.poll()]
    for child in live:
        log(f"matrix: stopping {child.kernel} (pid {child.proc.pid if child.proc else '?'})")
        if child.proc is not None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in live:
        assert child.proc is not None
        try:
            child.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()  # its QEMU gets SIGHUP when the pty it holds closes
            child.proc.wait()
        child.poll()


def run_children(children: list[Child], jobs: int, env: dict[str, str], show: Log,
                 poll_seconds: float = POLL_SECONDS) -> None:
    """Run every child, at most `jobs` at once, printing a line when one starts, enters another
    stage or exits (on a terminal, the running children's test counts on one line redrawn below).
    Any exception (Ctrl-C, SIGTERM) stops the running children first."""
    waiting = list(children)
    running: list[Child] = []

    def counts() -> str | None:
        return "  ".join(child.last.line(child.kernel) for child in running if child.last) or None

    try:
        with progress.showing("matrix", counts) as say:
            # `show` prints to stderr: above the progress line while one is drawn.
            say = say if progress.shown_on(sys.stderr) else show
            while waiting or running:
                while waiting and len(running) < jobs:
                    child = waiting.pop(0)
                    child.start(env)
                    running.append(child)
                    say(f"[{child.kernel}] started (pid {child.proc.pid if child.proc else '?'})")
                for child in list(running):
                    exited = child.poll()
                    now = matrixprogress.read(child.root)
                    if child.last is None or now.stage != child.last.stage:
                        say(now.line(child.kernel))
                    child.last = now
                    if exited:
                        running.remove(child)
                        say(f"[{child.kernel}] exited {child.returncode} after {child.seconds:.1f} s")
                if running:
                    time.sleep(poll_seconds)
    finally:
        _stop(children, show)


def write_matrix_json(matrix_dir: Path, children: list[Child], suites: str, jobs: int, started: str) -> None:
    """matrix.json: each kernel's run (what matrix/table.load reads back; with --repeat, the first
    and every repetition) and what differs between them."""
    kernels, columns = [], []
    for kernel, mine in _by_kernel(children):
        runs = [matrixprogress.run_directory(child.root) for child in mine]
        first, run = mine[0], runs[0]
        kernels.append({"kernel": kernel, "run": str(run.relative_to(matrix_dir)) if run else None,
                        "log": str(first.log_path.relative_to(matrix_dir)), "exit_code": first.returncode,
                        "seconds": first.seconds,
                        **({"repetitions": [str(r.relative_to(matrix_dir)) if r else None for r in runs]}
                           if len(mine) > 1 else {})})
        columns.append(matrixtable.load_column(kernel, run, first.seconds, tuple(r for r in runs if r)))
    data = {"started": started, "suites": suites.split(","), "jobs": jobs, "kernels": kernels,
            "differences": matrixtable.differences_json(matrixtable.build(columns))}
    write_json_atomic(matrix_dir / "matrix.json", data)


def _by_kernel(children: list[Child]) -> list[tuple[str, list[Child]]]:
    """Each kernel's children, its first repetition first, in the order the kernels were given."""
    groups: dict[str, list[Child]] = {}
    for child in children:
        groups.setdefault(child.spec or child.kernel, []).append(child)
    return list(groups.items())


def new_matrix_dir(results_root: Path) -> Path:
    return new_stamped_dir(results_root, "matrix")


def refuse_duplicates(kernels: list[str]) -> None:
    """The same kernel twice would be two children in one results root."""
    if len(set(kernels)) != len(kernels):
        raise UserError("lab matrix: a kernel is given twice")


def make_children(kernels: list[str], suites: str, matrix_dir: Path, extra: list[str], repeat: int = 1) -> list[Child]:
    """A child per kernel; with --repeat N, N per kernel, interleaved (every kernel's first, then
    every kernel's second, ...) so that what the host does meanwhile falls on all of them alike."""
    refuse_duplicates(kernels)
    children = []
    for repetition in range(1, repeat + 1):
        for index, kernel in enumerate(kernels):
            root = matrix_dir / "runs" / f"{index + 1}-{safe_name(kernel, 60)}"
            if repeat == 1:
                children.append(Child(kernel, root, child_argv(kernel, suites, root, extra)))
                continue
            root = root / f"r{repetition}"
            children.append(Child(f"{kernel} r{repetition}", root,
                                  child_argv(kernel, suites, root, [*extra, f"--repetition={repetition}"]), spec=kernel))
    return children
