"""Progress of a long step, on a terminal only: one line redrawn in place every half second
("kernel: linux-image-... 12.3 of 30.1 MiB", "suite maps: 123 of 465 tests"), the way apt and pip
show theirs, and wiped when the step ends, so only the lab's own one-line messages stay.

Nothing is drawn when stderr is not a terminal, when TERM is dumb, or when $CI is set: CI logs get
the one line per step the lab prints anyway. What is measured is read by a poll function from what
the step writes as it goes (a file growing, a log's lines), so a step needs no change to report
progress, and a poll that fails shows nothing rather than stopping the step.
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

Poll = Callable[[], str | None]  # the text after the label, or None for nothing to say yet
INTERVAL = 0.5


def shown_on(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb" and not os.environ.get("CI")


def wipe(stream: TextIO | None = None) -> None:
    """Clear the progress line, so a line printed now (a suite's row) starts at the left."""
    out = stream or sys.stderr
    if shown_on(out):
        out.write("\r\x1b[K")
        out.flush()


@contextmanager
def showing(label: str, poll: Poll, stream: TextIO | None = None,
            interval: float = INTERVAL) -> Iterator[Callable[[str], None]]:
    """While the body runs, `label: <poll()>` (without a label, the poll's text alone) redrawn on
    the terminal; the line is wiped after. Yields how to print a line of its own meanwhile: above
    the progress line, not into it."""
    out = stream or sys.stderr

    def plain(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    if not shown_on(out):
        yield plain
        return
    stop = threading.Event()
    drew = threading.Event()
    writing = threading.Lock()

    def say(line: str) -> None:
        with writing:
            out.write(f"\r\x1b[K{line}\n")
            out.flush()

    def draw() -> None:
        while not stop.wait(interval):
            try:
                text = poll()
            except Exception:  # noqa: BLE001 (a progress line must never stop the step it shows)
                text = None
            if text is not None:
                with writing:
                    out.write(f"\r\x1b[K{label}: {text}" if label else f"\r\x1b[K{text}")
                    out.flush()
                drew.set()

    thread = threading.Thread(target=draw, name=f"progress {label}", daemon=True)
    thread.start()
    try:
        yield say
    finally:
        stop.set()
        thread.join()
        if drew.is_set():
            out.write("\r\x1b[K")
            out.flush()


def mib(size: float) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def bytes_of(directory: Path, total: int | None) -> Poll:
    """The bytes written so far under `directory` (a download's destination), of `total`."""
    def poll() -> str | None:
        written = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
        return f"{mib(written)} of {mib(total)}" if total else mib(written)
    return poll


def last_line(path: Path, width: int = 72) -> Poll:
    """The newest line a step has logged (mmdebstrap's "I: extracting archives..."), cut to fit."""
    def poll() -> str | None:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4096))
            lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1][:width] if lines else None
    return poll


class LineCounter:
    """Lines of a growing log that match, read incrementally (a log can reach megabytes)."""

    def __init__(self, path: Path, matches: Callable[[str], bool]) -> None:
        self.path = path
        self.matches = matches
        self.offset = 0
        self.count = 0
        self.partial = ""

    def __call__(self) -> int:
        try:
            with self.path.open("r", errors="replace") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
                self.offset = handle.tell()
        except OSError:
            return self.count
        *lines, self.partial = (self.partial + chunk).split("\n")
        self.count += sum(1 for line in lines if self.matches(line))
        return self.count


def counted(path: Path, matches: Callable[[str], bool], total: Callable[[], int | None], unit: str,
            approximate: bool = False) -> Poll:
    """`<n> of <total> <unit>` (`of about <total>` for an estimate; `<n> <unit>` while the total is
    unknown) from the lines of a log."""
    counter = LineCounter(path, matches)

    def poll() -> str | None:
        done, expected = counter(), total()
        if not expected:
            return f"{done} {unit}"
        return f"{done} of {'about ' if approximate else ''}{expected} {unit}"
    return poll
