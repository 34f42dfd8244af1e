"""Each suite's gcovr trace made as soon as the suite ends, on a thread of its own. A coverage
run has the suites one at a time (the counters are the kernel's), so the guest keeps about one
core busy and gcov can have the other: by the run's end only the last suite's trace and the
merge are left to do."""
from __future__ import annotations

import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from ..core.errors import InfraError
from .collect import trace_suite


class SuiteTraces:
    """`submit(suite)` when a suite has ended (its counters are in the run directory); `finished()`
    after the last: suite -> trace, or the first InfraError one of them raised."""

    def __init__(self, run_dir: Path, material: Path) -> None:
        self.run_dir = run_dir
        self.material = material
        self._scratch = tempfile.TemporaryDirectory(prefix="lab-coverage-")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lab-gcov")
        self._traces: dict[str, Future[Path | None]] = {}

    def submit(self, suite: str) -> None:
        # Each submission lays out in a directory of its own (a repeated suite's traces follow one another).
        scratch = Path(self._scratch.name) / f"{len(self._traces)}-{suite}"
        self._traces[suite] = self._pool.submit(trace_suite, self.run_dir, self.material, suite, scratch)

    def finished(self) -> dict[str, Path]:
        done: dict[str, Path] = {}
        for suite, future in self._traces.items():
            try:
                path = future.result()
            except OSError as exc:
                raise InfraError(f"suite {suite}'s coverage could not be traced: {exc}") from exc
            if path is not None:
                done[suite] = path
        return done

    def close(self) -> None:
        """Nothing left running: a trace under way ends (its gcovr is a few seconds) before the
        scratch directory goes; those not started never are."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._scratch.cleanup()

    def __enter__(self) -> "SuiteTraces":
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
