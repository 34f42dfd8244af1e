"""lab.patches: loading a series, applying it with GNU patch to a hard-linked copy, naming the first failure."""
from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

import pytest

from lab.kernel import patches
from lab.core.errors import UserError

LINES = [f"line {n:02d}\n" for n in range(1, 41)]


def udiff(name: str, old: list[str], new: list[str]) -> str:
    """A `diff -u` style patch for one file, with a/ and b/ prefixes (for -p1)."""
    return "".join(difflib.unified_diff(old, new, f"a/{name}", f"b/{name}"))


def replaced(lines: list[str], changes: dict[int, str]) -> list[str]:
    """lines with 1-based line numbers replaced."""
    return [changes.get(number, line) for number, line in enumerate(lines, 1)]


def write_patch(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


# --- load_series ---------------------------------------------------------------------------------


def test_load_series_keeps_the_given_order_and_hashes_content(tmp_path: Path) -> None:
    second = write_patch(tmp_path / "b.patch", "b\n")
    first = write_patch(tmp_path / "a.patch", "a\n")
    series = patches.load_series([second, first])
    assert [p.path for p in series] == [second, first]
    assert series[0].sha256 == hashlib.sha256(b"b\n").hexdigest()
    assert series[0].to_json() == {"name": "b.patch", "sha256": series[0].sha256}


def test_load_series_of_a_directory_takes_patch_and_diff_files_sorted(tmp_path: Path) -> None:
    directory = tmp_path / "series"
    for name in ("0002-two.patch", "0001-one.patch", "0003-three.diff", "README", "series", "notes.txt",
                 "0004-x.patch.orig"):
        write_patch(directory / name, name + "\n")
    series = patches.load_series([directory])
    assert [p.name for p in series] == ["0001-one.patch", "0002-two.patch", "0003-three.diff"]


def test_load_series_mixes_directories_and_files_in_the_given_order(tmp_path: Path) -> None:
    directory = tmp_path / "series"
    write_patch(directory / "b.patch", "b\n")
    write_patch(directory / "a.patch", "a\n")
    last = write_patch(tmp_path / "z-last.diff", "z\n")
    first = write_patch(tmp_path / "zz-first.patch", "zz\n")
    assert [p.name for p in patches.load_series([first, directory, last])] == [
        "zz-first.patch", "a.patch", "b.patch", "z-last.diff",
    ]


def test_load_series_of_a_directory_without_patches_is_a_user_error(tmp_path: Path) -> None:
    directory = tmp_path / "empty"
    directory.mkdir()
    (directory / "README").write_text("nothing here\n")
    with pytest.raises(UserError) as caught:
        patches.load_series([directory])
    assert str(directory) in str(caught.value)


def test_load_series_of_a_missing_file_is_a_user_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.patch"
    with pytest.raises(UserError) as caught:
        patches.load_series([missing])
    message = str(caught.value)
    assert str(missing) in message
    assert "\n" not in message


def test_sha256_differs_when_content_differs_and_not_when_only_the_name_does(tmp_path: Path) -> None:
    one = write_patch(tmp_path / "one.patch", "--- a/x\n+++ b/x\n")
    other = write_patch(tmp_path / "other.patch", "--- a/x\n+++ b/y\n")
    same = write_patch(tmp_path / "same-as-one.patch", "--- a/x\n+++ b/x\n")
    a, b, c = patches.load_series([one, other, same])
    assert a.sha256 != b.sha256
    assert a.sha256 == c.sha256


# --- apply_series / linked_copy -----------------------------------------------------------------


def test_linked_copy_then_apply_leaves_the_source_untouched(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"f.txt": "".join(LINES), "sub/g.txt": "unchanged\n"})
    patch = write_patch(tmp_path / "p.patch", udiff("f.txt", LINES, replaced(LINES, {5: "patched\n"})))
    copy = tmp_path / "work" / "copy"
    patches.linked_copy(source, copy)
    assert (copy / "f.txt").stat().st_ino == (source / "f.txt").stat().st_ino  # hard links, no copy
    patches.apply_series(copy, patches.load_series([patch]))
    assert "patched\n" in (copy / "f.txt").read_text()
    assert (source / "f.txt").read_text() == "".join(LINES)
    assert (copy / "sub" / "g.txt").read_text() == "unchanged\n"
    assert sorted(p.name for p in source.rglob("*")) == ["f.txt", "g.txt", "sub"]  # no .orig/.rej left in source


def test_linked_copy_replaces_an_existing_destination(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"f.txt": "new\n"})
    dest = make_tree(tmp_path / "dest", {"stale.txt": "old\n", "f.txt": "old\n"})
    patches.linked_copy(source, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["f.txt"]
    assert (dest / "f.txt").read_text() == "new\n"


def two_dependent_patches(tmp_path: Path) -> tuple[Path, Path, Path, list[str]]:
    """A tree and two patches, the second made on top of the first; and the final text."""
    tree = make_tree(tmp_path / "tree", {"f.txt": "".join(LINES)})
    after_first = LINES[:3] + ["added by the first\n"] + LINES[3:]
    after_second = replaced(after_first, {4: "changed by the second\n"})
    first = write_patch(tmp_path / "1.patch", udiff("f.txt", LINES, after_first))
    second = write_patch(tmp_path / "2.patch", udiff("f.txt", after_first, after_second))
    return tree, first, second, after_second


def test_a_series_applies_in_order(tmp_path: Path) -> None:
    tree, first, second, after_second = two_dependent_patches(tmp_path)
    patches.apply_series(tree, patches.load_series([first, second]))
    assert (tree / "f.txt").read_text() == "".join(after_second)


def test_the_same_series_in_the_wrong_order_fails_at_the_first_patch(tmp_path: Path) -> None:
    tree, first, second, _ = two_dependent_patches(tmp_path)
    with pytest.raises(UserError) as caught:
        patches.apply_series(tree, patches.load_series([second, first]))
    message = str(caught.value)
    assert "1/2" in message
    assert "2.patch" in message
    assert (tree / "f.txt").read_text() == "".join(LINES)


def test_a_failing_hunk_names_patch_position_file_and_hunk_and_applies_nothing(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", {"f.txt": "".join(LINES), "other.txt": "".join(LINES)})
    after_one = replaced(LINES, {5: "one\n"})
    one = write_patch(tmp_path / "0001-one.patch", udiff("f.txt", LINES, after_one))
    # Two hunks far apart in f.txt (made against the tree after patch one), plus a change to other.txt.
    two_text = (udiff("other.txt", LINES, replaced(LINES, {2: "other\n"}))
                + udiff("f.txt", after_one, replaced(after_one, {10: "two-a\n", 30: "two-b\n"})))
    two = write_patch(tmp_path / "0002-two.patch", two_text)
    three = write_patch(tmp_path / "0003-three.patch", udiff("f.txt", LINES, replaced(LINES, {38: "three\n"})))
    # The tree differs from what patch two expects at line 30, so its second hunk in f.txt fails.
    local = replaced(LINES, {30: "line 30, changed locally\n"})
    (tree / "f.txt").write_text("".join(local))
    with pytest.raises(UserError) as caught:
        patches.apply_series(tree, patches.load_series([one, two, three]))
    message = str(caught.value)
    assert "\n" not in message
    assert "2/3" in message
    assert "0002-two.patch" in message
    assert "f.txt" in message
    assert "hunk #2" in message
    assert "0001-one.patch" not in message and "0003-three.patch" not in message
    # Patch one applied; nothing of patch two did (not even its good hunk or its other file); no rejects.
    assert (tree / "f.txt").read_text() == "".join(replaced(local, {5: "one\n"}))
    assert (tree / "other.txt").read_text() == "".join(LINES)
    assert sorted(p.name for p in tree.iterdir()) == ["f.txt", "other.txt"]


def test_a_patch_for_a_missing_file_is_a_user_error(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", {"f.txt": "".join(LINES)})
    patch = write_patch(tmp_path / "missing.patch", udiff("drivers/nope.c", LINES, replaced(LINES, {1: "x\n"})))
    with pytest.raises(UserError) as caught:
        patches.apply_series(tree, patches.load_series([patch]))
    message = str(caught.value)
    assert "1/1" in message
    assert "missing.patch" in message
    assert "does not exist" in message
    assert not (tree / "drivers").exists()


def test_garbage_is_a_user_error_saying_it_is_not_a_patch(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", {"f.txt": "".join(LINES)})
    garbage = write_patch(tmp_path / "garbage.patch", "this is not a diff\nat all\n")
    with pytest.raises(UserError) as caught:
        patches.apply_series(tree, patches.load_series([garbage]))
    message = str(caught.value)
    assert "garbage.patch" in message
    assert "not a patch" in message
    assert (tree / "f.txt").read_text() == "".join(LINES)


def test_a_patch_applied_twice_is_reported_as_already_applied(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", {"f.txt": "".join(LINES)})
    patch = write_patch(tmp_path / "p.patch", udiff("f.txt", LINES, replaced(LINES, {7: "seven\n"})))
    with pytest.raises(UserError) as caught:
        patches.apply_series(tree, patches.load_series([patch, patch]))
    message = str(caught.value)
    assert "2/2" in message
    assert "already applied" in message
    assert (tree / "f.txt").read_text() == "".join(replaced(LINES, {7: "seven\n"}))


def test_a_patch_creating_a_file_works(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", {"f.txt": "x\n"})
    text = "--- /dev/null\n+++ b/new/file.c\n@@ -0,0 +1,2 @@\n+int a;\n+int b;\n"
    patches.apply_series(tree, patches.load_series([write_patch(tmp_path / "new.patch", text)]))
    assert (tree / "new" / "file.c").read_text() == "int a;\nint b;\n"


# --- first_failure -------------------------------------------------------------------------------


def test_first_failure_names_the_file_and_hunk_of_the_first_failure() -> None:
    output = (
        "checking file include/linux/bpf.h\n"
        "checking file 'kernel/bpf/syscall.c'\n"
        "Hunk #2 FAILED at 1097.\n"
        "Hunk #3 FAILED at 1200.\n"
        "2 out of 3 hunks FAILED\n"
    )
    text = patches.first_failure(output)
    assert "kernel/bpf/syscall.c" in text
    assert "'" not in text
    assert "hunk #2" in text
    assert "1097" in text
    assert "1200" not in text


def test_first_failure_falls_back_to_the_last_non_blank_line() -> None:
    assert patches.first_failure("something odd\npatch: **** unexpected end of file in patch\n\n") == \
        "patch: **** unexpected end of file in patch"
    assert patches.first_failure("") != ""
