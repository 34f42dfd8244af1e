"""`make bench`, kernel builds: the cold build of the base config, and the rebuild after a
one-line source change with a warm ccache.

Both run in a scratch cache that shares only the unpacked sources with the real one, so
the cold build really starts with an empty ccache and the real cache is left alone.
The one-line change is a patch adding a variable to kernel/bpf/syscall.c: it changes the
compiled code of one file (a comment would be a ccache hit) and so the image is relinked.
"""
from __future__ import annotations

import argparse
import difflib
import json
import sys
import tempfile
import time
from pathlib import Path

from ..core.paths import cache_dir
from ..kernel import build as kbuild
from ..kernel import source as ksource

CHANGED_FILE = "kernel/bpf/syscall.c"


def one_line_patch(tree: Path, dest: Path) -> Path:
    """A patch adding one line after the first #include of CHANGED_FILE."""
    old = (tree / CHANGED_FILE).read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(old) if line.startswith("#include")) + 1
    new = old[:at] + ["static int __maybe_unused lab_bench_one_line_change = 1;\n"] + old[at:]
    dest.write_text("".join(difflib.unified_diff(old, new, f"a/{CHANGED_FILE}", f"b/{CHANGED_FILE}")))
    return dest


def _quiet(message: str) -> None:
    if message.startswith(("warning", "source: downloading")):
        print(message, file=sys.stderr)


def _timed_build(request: kbuild.BuildRequest, cache: Path, jobs: int | None) -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    built = kbuild.build(request, cache, _quiet, jobs=jobs)
    seconds = time.monotonic() - started
    return seconds, json.loads((built.directory / "build.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.build")
    parser.add_argument("--source", default="debian:6.1")
    parser.add_argument("--jobs", type=int)
    args = parser.parse_args(argv)
    real = cache_dir()
    source = ksource.acquire(ksource.parse_source_spec(args.source), real, _quiet)  # not measured
    with tempfile.TemporaryDirectory(prefix="lab-bench-build-", dir=real) as tmp_name:
        scratch = Path(tmp_name)
        (scratch / "sources").symlink_to(real / "sources")
        spec = ksource.parse_source_spec(args.source)
        cold, cold_info = _timed_build(kbuild.BuildRequest(spec), scratch, args.jobs)
        print(f"build-cold   {cold:6.1f} s  (make {cold_info['build_seconds']} s, -j{cold_info['jobs']}, "
              f"{source.version}, base config, empty ccache)", flush=True)
        patch = one_line_patch(source.root, scratch / "one-line.patch")
        warm, warm_info = _timed_build(kbuild.BuildRequest(spec, patches=(patch,)), scratch, args.jobs)
        print(f"build-warm   {warm:6.1f} s  (make {warm_info['build_seconds']} s after a one-line change "
              f"in {CHANGED_FILE}; ccache {warm_info['ccache']})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
