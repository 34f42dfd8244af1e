"""lab.kbuild's pure parts (cache keys, build ids, error extraction, fragments), `build:<id>` specs and load_build."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.kernel import build as kbuild
from lab.kernel import kconfig
from lab.kernel import acquire as kernel
from lab.core.errors import UserError
from lab.kernel.build import Fragment
from lab.kernel.acquire import Kernel
from lab.kernel.spec import BuildSpec, parse_kernel_spec
from lab.kernel.patches import Patch

IDENTITY = {"origin": "tarball", "spec": "/src/linux-6.1.192.tar.xz", "sha256": "ab" * 32}


def patch(name: str, sha: str) -> Patch:
    return Patch(Path("/patches") / name, sha * 64)


# --- request_key ---------------------------------------------------------------------------------


def test_request_key_is_stable_for_identical_input() -> None:
    fragments = [Fragment("a.config", "CONFIG_A=y\n")]
    series = [patch("1.patch", "1")]
    key = kbuild.request_key(dict(IDENTITY), fragments, series)
    assert kbuild.request_key(dict(IDENTITY), [Fragment("a.config", "CONFIG_A=y\n")], [patch("1.patch", "1")]) == key
    # Key order inside the identity does not matter.
    assert kbuild.request_key(dict(reversed(list(IDENTITY.items()))), fragments, series) == key


def test_request_key_changes_with_the_source_identity() -> None:
    other = {**IDENTITY, "sha256": "cd" * 32}
    assert kbuild.request_key(IDENTITY, [], []) != kbuild.request_key(other, [], [])


def test_request_key_changes_with_fragment_content() -> None:
    one = kbuild.request_key(IDENTITY, [Fragment("a.config", "CONFIG_A=y\n")], [])
    two = kbuild.request_key(IDENTITY, [Fragment("a.config", "CONFIG_A=m\n")], [])
    none = kbuild.request_key(IDENTITY, [], [])
    assert len({one, two, none}) == 3


def test_request_key_changes_with_fragment_order() -> None:
    a, b = Fragment("a.config", "CONFIG_X=y\n"), Fragment("b.config", "CONFIG_X=n\n")
    assert kbuild.request_key(IDENTITY, [a, b], []) != kbuild.request_key(IDENTITY, [b, a], [])


def test_request_key_changes_with_patch_content_and_order() -> None:
    p1, p2 = patch("1.patch", "1"), patch("2.patch", "2")
    keys = {
        kbuild.request_key(IDENTITY, [], []),
        kbuild.request_key(IDENTITY, [], [p1]),
        kbuild.request_key(IDENTITY, [], [patch("1.patch", "3")]),
        kbuild.request_key(IDENTITY, [], [p1, p2]),
        kbuild.request_key(IDENTITY, [], [p2, p1]),
    }
    assert len(keys) == 5


def test_request_key_changes_when_the_labs_base_fragment_changes(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The base fragment is merged into every build (merged_fragments), so a build remembered for
    # the same request under an older base.config is not what this request would build.
    fragments = [Fragment("a.config", "CONFIG_A=y\n")]
    before = kbuild.request_key(IDENTITY, fragments, [])
    edited = tmp_path / "base.config"
    edited.write_text(kbuild.BASE_FRAGMENT.read_text() + "CONFIG_SOMETHING_NEW=y\n")
    monkeypatch.setattr(kbuild, "BASE_FRAGMENT", edited)
    assert kbuild.request_key(IDENTITY, fragments, []) != before


# --- build_id ------------------------------------------------------------------------------------


def test_build_id_starts_with_the_version_and_is_stable() -> None:
    ident = kbuild.build_id("6.1.192", IDENTITY, [], "CONFIG_A=y\n")
    assert ident.startswith("6.1.192-")
    assert len(ident) > len("6.1.192-")
    assert kbuild.build_id("6.1.192", dict(IDENTITY), [], "CONFIG_A=y\n") == ident
    assert isinstance(parse_kernel_spec(f"build:{ident}"), BuildSpec)  # usable as a spec


def test_build_id_changes_with_config_patches_and_source() -> None:
    config = "CONFIG_A=y\n"
    base = kbuild.build_id("6.1.192", IDENTITY, [], config)
    ids = {
        base,
        kbuild.build_id("6.1.192", IDENTITY, [], config + "CONFIG_B=y\n"),
        kbuild.build_id("6.1.192", IDENTITY, [patch("1.patch", "1")], config),
        kbuild.build_id("6.1.192", IDENTITY, [patch("1.patch", "2")], config),
        kbuild.build_id("6.1.192", {**IDENTITY, "sha256": "ef" * 32}, [], config),
    }
    assert len(ids) == 5


# --- first_errors --------------------------------------------------------------------------------

BUILD_LOG = """\
$ make -C /cache/work/abc/src O=/cache/work/abc/obj ARCH=x86_64 CC=ccache gcc -j2 bzImage
make[1]: Entering directory '/cache/work/abc/obj'
  SYNC    include/config/auto.conf.cmd
  GEN     Makefile
  CC      kernel/bpf/core.o
  CC      kernel/bpf/syscall.o
../kernel/bpf/syscall.c: In function 'map_create':
../kernel/bpf/syscall.c:1097:9: error: 'attr_flags' undeclared (first use in this function)
 1097 |         attr_flags = 0;
      |         ^~~~~~~~~~
../kernel/bpf/syscall.c:1097:9: note: each undeclared identifier is reported only once for each function it appears in
../kernel/bpf/syscall.c:1120:13: warning: unused variable 'err' [-Wunused-variable]
make[4]: *** [../scripts/Makefile.build:250: kernel/bpf/syscall.o] Error 1
make[4]: *** Waiting for unfinished jobs....
  CC      kernel/bpf/verifier.o
../kernel/bpf/verifier.c:20:10: fatal error: linux/bpf_lab.h: No such file or directory
   20 | #include <linux/bpf_lab.h>
      |          ^~~~~~~~~~~~~~~~~
compilation terminated.
make[4]: *** [../scripts/Makefile.build:250: kernel/bpf/verifier.o] Error 1
make[3]: *** [../scripts/Makefile.build:500: kernel/bpf] Error 2
make[2]: *** [../Makefile:2012: kernel] Error 2
make[1]: *** [/cache/work/abc/src/Makefile:226: __sub-make] Error 2
make[1]: Leaving directory '/cache/work/abc/obj'
make: *** [Makefile:226: __sub-make] Error 2
"""

LINK_LOG = """\
  LD      vmlinux.o
ld: vmlinux.o: in function `bpf_prog_load': undefined reference to `bpf_lab_hook'
make[2]: *** [../scripts/Makefile.vmlinux_o:61: vmlinux.o] Error 1
make[1]: *** [/cache/work/abc/src/Makefile:1160: vmlinux_o] Error 2
make: *** [Makefile:226: __sub-make] Error 2
"""


def test_first_errors_are_the_compiler_errors_in_order() -> None:
    errors = kbuild.first_errors(BUILD_LOG)
    assert len(errors) == 2
    assert errors[0].startswith("kernel/bpf/syscall.c:1097:9: error: 'attr_flags' undeclared")
    assert errors[1].startswith("kernel/bpf/verifier.c:20:10: fatal error: linux/bpf_lab.h")
    assert not any("warning" in e or "note:" in e or "***" in e for e in errors)


def test_first_errors_stops_at_the_limit() -> None:
    log = "".join(f"drivers/x{n}.c:{n}:1: error: bad thing {n}\n" for n in range(1, 9)) + "make: *** [x] Error 2\n"
    errors = kbuild.first_errors(log, limit=3)
    assert errors == ["drivers/x1.c:1:1: error: bad thing 1", "drivers/x2.c:2:1: error: bad thing 2",
                      "drivers/x3.c:3:1: error: bad thing 3"]


def test_first_errors_falls_back_to_make_errors() -> None:
    errors = kbuild.first_errors(LINK_LOG)
    assert errors == [
        "make[2]: *** [../scripts/Makefile.vmlinux_o:61: vmlinux.o] Error 1",
        "make[1]: *** [/cache/work/abc/src/Makefile:1160: vmlinux_o] Error 2",
        "make: *** [Makefile:226: __sub-make] Error 2",
    ]


def test_first_errors_falls_back_to_the_last_lines() -> None:
    log = "".join(f"line {n}\n" for n in range(1, 20)) + "\n\n   \n"
    assert kbuild.first_errors(log, limit=3) == ["line 17", "line 18", "line 19"]


def test_first_errors_of_an_empty_log_is_empty() -> None:
    assert kbuild.first_errors("") == []


# --- read_fragments ------------------------------------------------------------------------------


def test_read_fragments_reads_name_and_text(tmp_path: Path) -> None:
    (tmp_path / "a.config").write_text("CONFIG_A=y\n")
    (tmp_path / "b.config").write_text("# CONFIG_B is not set\n")
    fragments = kbuild.read_fragments((tmp_path / "b.config", tmp_path / "a.config"))
    assert [(f.name, f.text) for f in fragments] == [("b.config", "# CONFIG_B is not set\n"),
                                                      ("a.config", "CONFIG_A=y\n")]
    assert fragments[0].sha256 != fragments[1].sha256


def test_read_fragments_of_a_missing_file_is_a_user_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.config"
    with pytest.raises(UserError) as caught:
        kbuild.read_fragments((missing,))
    assert str(missing) in str(caught.value)


def test_read_fragments_of_a_malformed_fragment_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "bad.config").write_text("CONFIG_A=y\nBPF=y\n")
    with pytest.raises(UserError) as caught:
        kbuild.read_fragments((tmp_path / "bad.config",))
    assert "bad.config:2" in str(caught.value)


# --- merged_fragments ----------------------------------------------------------------------------


def _base() -> dict[str, str]:
    return {s.symbol: s.value for s in kconfig.parse_fragment(kbuild.BASE_FRAGMENT.read_text(), "base")}


def _tiny_tree(root: Path) -> Path:
    base = _base()
    # A symbol the base also sets, with another value, so the base must win over the tree.
    shared = next(symbol for symbol, value in base.items() if value == "n")
    files = {
        "kernel/configs/tiny-base.config": "CONFIG_TINY_BASE_ONLY=y\n",
        "kernel/configs/tiny.config": f"{shared}=y\nCONFIG_TINY_ONLY=y\n",
        "arch/x86/configs/tiny.config": "CONFIG_X86_TINY_ONLY=y\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_merged_fragments_orders_tree_then_base_then_user(tmp_path: Path) -> None:
    tree = _tiny_tree(tmp_path / "tree")
    base = _base()
    shared = next(symbol for symbol, value in base.items() if value == "n")
    overridden, old_value = next((symbol, value) for symbol, value in base.items() if value not in ("n", "y"))
    new_value = old_value + "0"
    user = [Fragment("mine.config", f"{overridden}={new_value}\nCONFIG_USER_ONLY=y\n")]
    merged, requested = kbuild.merged_fragments(tree, user)

    assert merged.settings[overridden].value == new_value
    assert merged.settings[overridden].origin == "mine.config:1"
    assert merged.settings[shared].value == "n"  # the base over the tree's tiny.config
    assert merged.settings["CONFIG_TINY_ONLY"].value == "y"  # kept from the tree
    assert any(o.old.value == old_value and o.new.origin == "mine.config:1" for o in merged.overrides)
    assert any(o.new.symbol == shared and o.old.origin.startswith("kernel/configs/tiny.config") for o in merged.overrides)

    asked = {s.symbol: s.value for s in requested}
    assert len(asked) == len(requested)  # each symbol once
    assert set(asked) == set(base) | {"CONFIG_USER_ONLY"}
    assert asked[overridden] == new_value  # checked as finally merged
    for tree_only in ("CONFIG_TINY_BASE_ONLY", "CONFIG_TINY_ONLY", "CONFIG_X86_TINY_ONLY"):
        assert tree_only in merged.settings
        assert tree_only not in asked


def test_merged_fragments_without_tree_fragments_or_user_fragments(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    merged, requested = kbuild.merged_fragments(tmp_path / "tree", [])
    assert {s.symbol: s.value for s in merged.settings.values()} == _base()
    assert {s.symbol for s in requested} == set(_base())


def test_merged_fragments_a_later_user_fragment_wins(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    user = [Fragment("one.config", "CONFIG_USER_X=y\n"), Fragment("two.config", "# CONFIG_USER_X is not set\n")]
    merged, requested = kbuild.merged_fragments(tmp_path / "tree", user)
    wanted = {s.symbol: s for s in requested}["CONFIG_USER_X"]
    assert (wanted.value, wanted.origin) == ("n", "two.config:1")


def test_the_base_fragment_parses_and_asks_for_bpf_syscall() -> None:
    assert _base().get("CONFIG_BPF_SYSCALL") == kernel.REQUIRED_CONFIG["CONFIG_BPF_SYSCALL"]


# --- build:<id> specs and load_build -------------------------------------------------------------


def test_build_spec_parses() -> None:
    assert parse_kernel_spec("build:6.1.192-abc123") == BuildSpec("6.1.192-abc123")
    assert parse_kernel_spec("build:6.12.0-rc3+-0123456789ab") == BuildSpec("6.12.0-rc3+-0123456789ab")


@pytest.mark.parametrize("text", ["build:", "build:a/b", "build:x y"])
def test_bad_build_spec_is_a_user_error(text: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_kernel_spec(text)
    assert repr(text) in str(caught.value)


def test_build_spec_with_modules_or_config_is_a_user_error() -> None:
    with pytest.raises(UserError, match="--modules/--config"):
        parse_kernel_spec("build:6.1.192-abc123", modules="/lib/modules/x")


def _fake_build(cache: Path, ident: str) -> Kernel:
    directory = cache / "builds" / ident
    directory.mkdir(parents=True)
    built = Kernel(directory / "bzImage", f"{ident.split('-')[0]}-lab", directory / "config", None,
                   {"origin": "build", "build_id": ident})
    (directory / "kernel.json").write_text(json.dumps(built.to_json()))
    (directory / "bzImage").write_bytes(b"fake")  # load_build checks the entry holds what it names
    (directory / "config").write_text("CONFIG_BPF_SYSCALL=y\n")
    return built


def test_load_build_of_a_known_id(tmp_path: Path) -> None:
    built = _fake_build(tmp_path, "6.1.192-aaaaaaaaaaaa")
    assert kernel.load_build("6.1.192-aaaaaaaaaaaa", tmp_path) == built


def test_load_build_of_an_unknown_id_lists_the_known_builds(tmp_path: Path) -> None:
    _fake_build(tmp_path, "6.1.192-bbbbbbbbbbbb")
    _fake_build(tmp_path, "6.1.192-aaaaaaaaaaaa")
    # Not builds: the request memo, kept failure logs, a directory without kernel.json.
    (tmp_path / "builds" / "requests").mkdir()
    (tmp_path / "builds" / "requests" / "0123456789abcdef0123").write_text("6.1.192-aaaaaaaaaaaa\n")
    (tmp_path / "builds" / "failed").mkdir()
    (tmp_path / "builds" / "failed" / "6.1.192-cccccccccccc.log").write_text("error\n")
    (tmp_path / "builds" / "6.1.192-dddddddddddd").mkdir()
    with pytest.raises(UserError) as caught:
        kernel.load_build("6.1.192-ffffffffffff", tmp_path)
    message = str(caught.value)
    assert "build:6.1.192-ffffffffffff" in message
    assert "6.1.192-aaaaaaaaaaaa, 6.1.192-bbbbbbbbbbbb" in message
    for not_a_build in ("requests", "failed", "cccccccccccc", "dddddddddddd"):
        assert not_a_build not in message


def test_load_build_with_nothing_built_says_so(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        kernel.load_build("6.1.192-aaaaaaaaaaaa", tmp_path)
    message = str(caught.value)
    assert "build:6.1.192-aaaaaaaaaaaa" in message
    assert "lab kernel build" in message


def test_fetch_of_a_build_spec_loads_the_build(tmp_path: Path) -> None:
    built = _fake_build(tmp_path, "6.1.192-aaaaaaaaaaaa")
    lines: list[str] = []
    assert kernel.fetch(BuildSpec("6.1.192-aaaaaaaaaaaa"), tmp_path, lines.append) == built
    assert any("build:6.1.192-aaaaaaaaaaaa" in line for line in lines)


def test_two_builds_of_one_request_do_not_overlap(tmp_path: Path) -> None:
    """The second identical request waits for the first (then finds its build cached)."""
    import threading
    import time

    events: list[str] = []

    def hold(name: str) -> None:
        with kbuild._request_lock(tmp_path / "work" / "key.lock"):
            events.append(f"{name} in")
            time.sleep(0.2)
            events.append(f"{name} out")

    threads = [threading.Thread(target=hold, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert events == ["a in", "a out", "b in", "b out"]
