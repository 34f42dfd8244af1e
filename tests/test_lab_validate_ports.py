"""Per-version ports of a series directory (kernel/patches.py) and the apply check `lab validate`
runs before building: clean, with fuzz/offset (which patch and hunk), or which hunk fails."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from validatefakes import LINES, replaced, tree, udiff

from lab.core.errors import UserError
from lab.kernel import build as kernel_build
from lab.kernel import patches
from lab.kernel import source as ksource


def series_dir(root: Path, own: dict[str, str], ports: dict[str, dict[str, str]] | None = None) -> Path:
    root.mkdir(parents=True)
    for name, text in own.items():
        (root / name).write_text(text)
    for version, files in (ports or {}).items():
        (root / "ports" / version).mkdir(parents=True)
        for name, text in files.items():
            (root / "ports" / version / name).write_text(text)
    return root


@pytest.fixture
def ported(tmp_path: Path) -> Path:
    return series_dir(tmp_path / "s", {"0001-own.patch": "own\n"},
                      {"6.12": {"0001-612.patch": "six-twelve\n"}, "6.12.117": {"0001-612117.patch": "exact\n"},
                       "5.10": {"0001-510.patch": "old\n"}})


@pytest.mark.parametrize("version, expected", [
    ("6.12.117", "0001-612117.patch"),  # the most specific prefix wins
    ("6.12.9", "0001-612.patch"),
    ("6.12", "0001-612.patch"),
    ("6.1.192", "0001-own.patch"),  # 6.1 is not a prefix of 6.12 (numbers, not characters)
    ("6.121.0", "0001-own.patch"),
    ("5.10.200-rc1", "0001-510.patch"),
    ("7.0.0", "0001-own.patch"),
])
def test_the_port_for_a_version_is_its_most_specific_prefix(ported: Path, version: str, expected: str) -> None:
    assert [p.name for p in patches.load_series([ported], version)] == [expected]


def test_without_a_matching_port_the_series_is_exactly_the_directory_s_own(ported: Path, tmp_path: Path) -> None:
    plain = series_dir(tmp_path / "plain", {"0001-own.patch": "own\n"})
    without = [p.sha256 for p in patches.load_series([plain])]
    assert [p.sha256 for p in patches.load_series([ported], "6.1.192")] == without
    assert [p.sha256 for p in patches.load_series([ported])] == without == [hashlib.sha256(b"own\n").hexdigest()]


def test_the_map_dump_series_for_6_1_is_today_s_patch() -> None:
    """The cached 6.1 builds' ids depend on these hashes: a port must not change them."""
    directory = Path(__file__).resolve().parent.parent / "kernel-configs" / "patches" / "bpf-map-dump"
    own = sorted(directory.glob("*.patch"))
    assert [p.sha256 for p in patches.load_series([directory], "6.1.192")] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in own]


def test_a_badly_named_port_is_refused(tmp_path: Path) -> None:
    bad = series_dir(tmp_path / "s", {"0001-own.patch": "own\n"}, {"v6.12": {"a.patch": "x\n"}})
    with pytest.raises(UserError) as caught:
        patches.check_series([bad])
    assert "ports/v6.12 is not a version directory" in str(caught.value)


def test_check_series_reads_every_port(tmp_path: Path) -> None:
    empty_port = series_dir(tmp_path / "s", {"0001-own.patch": "own\n"}, {"6.12": {"README": "x\n"}})
    with pytest.raises(UserError) as caught:
        patches.check_series([empty_port])
    assert "6.12: no *.patch" in str(caught.value)
    blank = series_dir(tmp_path / "t", {"0001-own.patch": "own\n"}, {"6.12": {"a.patch": "  \n"}})
    with pytest.raises(UserError, match="empty file"):
        patches.check_series([blank])


def test_a_directory_of_ports_only_has_no_series_for_another_version(tmp_path: Path) -> None:
    only = series_dir(tmp_path / "s", {}, {"6.12": {"a.patch": "x\n"}})
    patches.check_series([only])  # fine up front: some version has a series
    assert [p.name for p in patches.load_series([only], "6.12.1")] == ["a.patch"]
    with pytest.raises(UserError) as caught:
        patches.load_series([only], "6.1.5")
    assert "no port for 6.1.5 (ports: 6.12)" in str(caught.value)


# --- the apply check -----------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_clean_series_applies_clean_and_leaves_the_tree_alone(tmp_path: Path) -> None:
    source = tree(tmp_path / "tree")
    patch = write(tmp_path / "0001-a.patch", udiff("kernel/f.c", LINES, replaced(LINES, {5: "patched\n"})))
    check = patches.check_applies(source.root, patches.load_series([patch]), tmp_path / "scratch")
    assert (check.status, check.describe()) == ("clean", "clean")
    assert (source.root / "kernel" / "f.c").read_text() == "".join(LINES)
    assert list((tmp_path / "scratch").iterdir()) == []  # the linked files are gone


def test_fuzz_and_offset_name_the_patch_and_the_hunk(tmp_path: Path) -> None:
    # The tree has 3 more lines at the top than the patches expect, and line 18 differs (fuzz for the second).
    shifted = ["extra 1\n", "extra 2\n", "extra 3\n"] + replaced(LINES, {18: "changed context\n"})
    source = tree(tmp_path / "tree", text=shifted)
    first = write(tmp_path / "0001-a.patch", udiff("kernel/f.c", LINES, replaced(LINES, {30: "thirty\n"})))
    second = write(tmp_path / "0002-b.patch",
                   udiff("kernel/f.c", replaced(LINES, {30: "thirty\n"}), replaced(LINES, {30: "thirty\n", 20: "twenty\n"})))
    check = patches.check_applies(source.root, patches.load_series([first, second]), tmp_path / "scratch")
    assert check.status == "with fuzz/offset", check
    assert check.inexact[0] == "1/2 0001-a.patch: kernel/f.c hunk #1 with offset 3 lines (at line 30)"
    assert check.inexact[1] == "2/2 0002-b.patch: kernel/f.c hunk #1 with fuzz 2, offset 3 lines (at line 20)"
    assert check.describe().startswith("with fuzz/offset: 1/2 0001-a.patch: kernel/f.c hunk #1 with offset 3 lines")


def test_a_series_that_does_not_apply_names_patch_file_hunk_and_line(tmp_path: Path) -> None:
    source = tree(tmp_path / "tree", text=replaced(LINES, {30: "local change\n"}))
    first = write(tmp_path / "0001-a.patch", udiff("kernel/f.c", LINES, replaced(LINES, {5: "five\n"})))
    second = write(tmp_path / "0002-b.patch", udiff("kernel/f.c", replaced(LINES, {5: "five\n"}),
                                                      replaced(LINES, {5: "five\n", 10: "ten\n", 30: "thirty\n"})))
    check = patches.check_applies(source.root, patches.load_series([first, second]), tmp_path / "scratch")
    assert check.status == "does not apply"
    assert check.failure == "2/2 0002-b.patch: kernel/f.c hunk #2 (at line 27)"
    assert check.describe() == "does not apply: 2/2 0002-b.patch: kernel/f.c hunk #2 (at line 27)"
    assert check.to_json() == {"status": "does not apply", "failure": check.failure, "inexact": []}


def test_a_header_the_reader_missed_is_tried_on_the_whole_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tree(tmp_path / "tree")
    patch = write(tmp_path / "0001-a.patch", udiff("kernel/f.c", LINES, replaced(LINES, {5: "patched\n"})))
    monkeypatch.setattr(patches, "touched_files", lambda series: set())
    check = patches.check_applies(source.root, patches.load_series([patch]), tmp_path / "scratch")
    assert check.status == "clean"
    missing = write(tmp_path / "0001-m.patch", udiff("kernel/nope.c", LINES, replaced(LINES, {5: "x\n"})))
    check = patches.check_applies(source.root, patches.load_series([missing]), tmp_path / "scratch")
    assert check.failure == "1/1 0001-m.patch: a file it patches does not exist in this tree"


def test_touched_files_reads_diff_and_git_headers(tmp_path: Path) -> None:
    patch = write(tmp_path / "p.patch", "diff --git a/x/old.c b/x/new.c\nrename from x/old.c\nrename to x/new.c\n"
                  "--- a/kernel/f.c\t2024-01-01 00:00:00\n+++ b/kernel/f.c\t2024-01-01\n"
                  "--- /dev/null\n+++ b/kernel/added.c\n--- a/../../etc/passwd\n")
    assert patches.touched_files(patches.load_series([patch])) == {"x/old.c", "x/new.c", "kernel/f.c", "kernel/added.c"}


def test_a_build_takes_the_port_for_its_source_s_version(ported: Path, tmp_path: Path) -> None:
    said: list[str] = []
    request = kernel_build.BuildRequest(ksource.TreeSource(tmp_path), (), (ported,))
    chosen = kernel_build.series_for(request, tree(tmp_path / "t", "6.12.9"), said.append)
    assert [p.name for p in chosen] == ["0001-612.patch"]
    assert said == ["build: s: the port ports/6.12 for 6.12.9"]
    assert [p.name for p in kernel_build.series_for(request, tree(tmp_path / "u", "6.1.192"), said.append)] == [
        "0001-own.patch"]
