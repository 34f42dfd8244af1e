"""`make bench`: what validating over several versions at once buys. A one-line, behaviour-neutral
patch (a comment in kernel/bpf/syscall.c, placed where 6.1 and 6.12 share the context, so it
applies to both) is validated on each version alone, one after the other, then on both in one
`lab validate`; wall seconds each, warm cache (one validation of both first, unmeasured, so the
patched builds and their initramfs are cached).

Run as `python -m lab.bench.validate [--source A --source B] [--suite pin]`. Goal: the two
versions together in at most 0.7 of the two alone.
"""
from __future__ import annotations

import argparse
import difflib
import json
import sys
import tempfile
from pathlib import Path

from ..core.log import stderr as log
from ..core.paths import cache_dir
from ..kernel import source as ksource
from .timing import timed_lab

DEFAULT_SOURCES = ["debian:6.1", "debian:6.12"]
TARGET = "kernel/bpf/syscall.c"
COMMENT = "/* bpf-kernel-lab bench: a one-line change that changes no behaviour */\n"
CONTEXT = 3  # lines each side, as diff -u writes them


def _shared_spot(texts: list[list[str]]) -> int:
    """A line of the first file right after a blank line at top level (so a comment there is
    outside any function) whose CONTEXT lines each side appear once, identically, in every file
    (so the hunk applies to all, at an offset where the files differ above it)."""
    first = texts[0]
    for at in range(CONTEXT, len(first) - CONTEXT):
        block = first[at - CONTEXT:at + CONTEXT]
        if first[at - 1].strip() != "" or first[at].startswith((" ", "\t")):
            continue
        if all(_count(text, block) == 1 for text in texts):
            return at
    raise SystemExit(f"bench_validate: no place in {TARGET} with the same context in every source")


def _count(text: list[str], block: list[str]) -> int:
    return sum(1 for i in range(len(text) - len(block) + 1) if text[i:i + len(block)] == block)


def one_line_patch(sources: list[str], directory: Path) -> Path:
    """The patch, made against the first source, applying to every one (offsets allowed)."""
    trees = [ksource.acquire(ksource.parse_source_spec(s), cache_dir(), log) for s in sources]
    texts = [(tree.root / TARGET).read_text().splitlines(keepends=True) for tree in trees]
    at = _shared_spot(texts)
    changed = texts[0][:at] + [COMMENT] + texts[0][at:]
    patch = directory / "0001-bench-one-line-comment.patch"
    patch.write_text("".join(difflib.unified_diff(texts[0], changed, f"a/{TARGET}", f"b/{TARGET}", n=CONTEXT)))
    return patch


def _preparing(results: Path) -> float:
    """Seconds the newest validation spent before its runs (sources, apply checks, builds), from its validate.json."""
    newest = max(results.glob("validate-*/validate.json"), key=lambda p: p.stat().st_mtime)
    versions = json.loads(newest.read_text())["versions"]
    return sum(float(t) for v in versions for k, t in v["timings"].items() if not k.endswith("_run_seconds"))


def _timed(args: list[str]) -> float:
    return timed_lab(args, "bench_validate")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.validate")
    parser.add_argument("--source", action="append", help="two sources (default: debian:6.1 and debian:6.12)")
    parser.add_argument("--suite", default="pin")
    args = parser.parse_args(argv)
    sources = args.source or DEFAULT_SOURCES
    with tempfile.TemporaryDirectory(prefix="lab-bench-validate-") as tmp:
        patch = one_line_patch(sources, Path(tmp))
        results = Path(tmp) / "results"
        common = ["--patch", str(patch), "--suite", args.suite, "--results", str(results)]
        every = [a for s in sources for a in ("--source", s)]
        # Warm-up: the patched builds (ccache makes them a rebuild of one file) and their initramfs.
        _timed(["validate", *every, *common])
        alone, preparing = [], []
        for source in sources:
            alone.append(_timed(["validate", "--source", source, *common]))
            preparing.append(_preparing(results))
        together = _timed(["validate", *every, *common])
        preparing.append(_preparing(results))
    print(f"bench-validate: one-line patch, suite {args.suite}; alone: "
          + ", ".join(f"{s} {t:.1f} s" for s, t in zip(sources, alone)))
    print("bench-validate: before the first run (sources, apply checks, cached builds): alone "
          + ", ".join(f"{t:.1f} s" for t in preparing[:-1]) + f"; together {preparing[-1]:.1f} s")
    print(f"bench-validate: {len(sources)} versions one after the other {sum(alone):.1f} s; one `lab validate` of all "
          f"{together:.1f} s; ratio to the sum {together / sum(alone):.2f} (goal <= 0.70)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
