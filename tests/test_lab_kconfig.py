"""lab.kconfig (fragments: parse, merge, check) and lab.kconfig_tree (what a tree's Kconfig files define)."""
from __future__ import annotations

from pathlib import Path

import pytest

from lab.kernel import kconfig
from lab.kernel import kconfig_tree
from lab.core.errors import UserError
from lab.kernel.kconfig import Dropped, Setting
from lab.kernel.kconfig_tree import KconfigIndex


def parsed(text: str) -> KconfigIndex:
    index = KconfigIndex()
    kconfig_tree.parse_kconfig(text, index)
    return index


# --- parse_fragment ------------------------------------------------------------------------------


def test_parse_fragment_reads_settings_unsets_and_skips_comments_and_blanks() -> None:
    text = (
        "# a comment\n"
        "\n"
        "CONFIG_BPF_SYSCALL=y\n"
        "# CONFIG_KASAN is not set\n"
        "CONFIG_DEBUG_INFO=n\n"
        "   \n"
        'CONFIG_CMDLINE="console=ttyS0 panic=-1"\n'
        "CONFIG_NR_CPUS=8\n"
        "#CONFIG_NOT_A_SETTING is not set, just a comment\n"
    )
    settings = kconfig.parse_fragment(text, "my.config")
    assert [(s.symbol, s.value) for s in settings] == [
        ("CONFIG_BPF_SYSCALL", "y"),
        ("CONFIG_KASAN", "n"),
        ("CONFIG_DEBUG_INFO", "n"),
        ("CONFIG_CMDLINE", '"console=ttyS0 panic=-1"'),
        ("CONFIG_NR_CPUS", "8"),
    ]
    # Origins are the fragment name and the 1-based line the setting is on.
    assert [s.origin for s in settings] == ["my.config:3", "my.config:4", "my.config:5", "my.config:7", "my.config:8"]


def test_is_not_set_and_equals_n_are_the_same_setting() -> None:
    unset, = kconfig.parse_fragment("# CONFIG_X is not set\n", "a")
    equals_n, = kconfig.parse_fragment("CONFIG_X=n\n", "b")
    assert unset.value == equals_n.value
    assert unset.line() == equals_n.line() == "# CONFIG_X is not set"


def test_surrounding_whitespace_is_ignored() -> None:
    setting, = kconfig.parse_fragment("   CONFIG_X=m  \n", "f")
    assert (setting.symbol, setting.value) == ("CONFIG_X", "m")


def test_empty_fragment_has_no_settings() -> None:
    assert kconfig.parse_fragment("", "empty.config") == []
    assert kconfig.parse_fragment("\n# only comments\n\n", "c.config") == []


@pytest.mark.parametrize("bad_line", ["CONFIG_X", "BPF_SYSCALL=y", "config_x=y", "CONFIG_X y", "make it fast"])
def test_a_malformed_line_is_a_user_error_naming_fragment_and_line(bad_line: str) -> None:
    text = f"CONFIG_A=y\n# fine\n{bad_line}\nCONFIG_B=y\n"
    with pytest.raises(UserError) as caught:
        kconfig.parse_fragment(text, "mine.config")
    message = str(caught.value)
    assert "mine.config:3" in message
    assert bad_line in message
    assert "\n" not in message


# --- merge ---------------------------------------------------------------------------------------


def test_merge_later_fragment_wins_and_records_the_override() -> None:
    first = kconfig.parse_fragment("CONFIG_A=y\nCONFIG_B=y\n", "first")
    second = kconfig.parse_fragment("# CONFIG_A is not set\n", "second")
    merged = kconfig.merge([first, second])
    assert merged.settings["CONFIG_A"].value == "n"
    assert merged.settings["CONFIG_A"].origin == "second:1"
    assert merged.settings["CONFIG_B"].value == "y"
    assert len(merged.overrides) == 1
    override = merged.overrides[0]
    assert (override.old.origin, override.old.value) == ("first:1", "y")
    assert (override.new.origin, override.new.value) == ("second:1", "n")


def test_merge_records_no_override_when_the_value_is_the_same() -> None:
    first = kconfig.parse_fragment("CONFIG_A=y\nCONFIG_B=n\n", "first")
    second = kconfig.parse_fragment("CONFIG_A=y\n# CONFIG_B is not set\n", "second")
    merged = kconfig.merge([first, second])
    assert merged.overrides == []
    assert merged.settings["CONFIG_A"].value == "y"
    assert merged.settings["CONFIG_B"].value == "n"


def test_merge_keeps_first_seen_order() -> None:
    first = kconfig.parse_fragment("CONFIG_C=y\nCONFIG_A=y\n", "first")
    second = kconfig.parse_fragment("CONFIG_B=y\nCONFIG_C=m\n", "second")
    merged = kconfig.merge([first, second])
    assert list(merged.settings) == ["CONFIG_C", "CONFIG_A", "CONFIG_B"]
    assert merged.settings["CONFIG_C"].value == "m"


def test_merge_of_three_fragments_chains_overrides() -> None:
    parts = [kconfig.parse_fragment(f"CONFIG_N={n}\n", f"f{n}") for n in (1, 2, 3)]
    merged = kconfig.merge(parts)
    assert merged.settings["CONFIG_N"].value == "3"
    assert [(o.old.value, o.new.value) for o in merged.overrides] == [("1", "2"), ("2", "3")]


def test_render_round_trips_through_parse_config() -> None:
    first = kconfig.parse_fragment('CONFIG_A=y\nCONFIG_S="x y"\n# CONFIG_B is not set\nCONFIG_N=16\n', "f")
    second = kconfig.parse_fragment("CONFIG_A=m\nCONFIG_C=n\n", "g")
    merged = kconfig.merge([first, second])
    rendered = merged.render()
    assert kconfig.parse_config(rendered) == {s.symbol: s.value for s in merged.settings.values()}
    assert "# CONFIG_C is not set\n" in rendered
    assert "CONFIG_C=n" not in rendered
    # The rendered text is itself a valid fragment with the same settings.
    reparsed = kconfig.parse_fragment(rendered, "rendered")
    assert [(s.symbol, s.value) for s in reparsed] == [(s.symbol, s.value) for s in merged.settings.values()]


# --- check / Dropped -----------------------------------------------------------------------------


def test_check_reports_a_symbol_whose_value_differs() -> None:
    requested = kconfig.parse_fragment("CONFIG_A=y\nCONFIG_B=y\nCONFIG_NR=8\n", "f")
    final = {"CONFIG_A": "y", "CONFIG_B": "m", "CONFIG_NR": "4"}
    dropped = kconfig.check(requested, final)
    assert [(d.wanted.symbol, d.got) for d in dropped] == [("CONFIG_B", "m"), ("CONFIG_NR", "4")]


def test_check_treats_an_absent_symbol_as_n() -> None:
    requested = kconfig.parse_fragment("CONFIG_GONE=y\n", "f")
    dropped = kconfig.check(requested, {"CONFIG_OTHER": "y"})
    assert len(dropped) == 1
    assert dropped[0].got == "n"


def test_check_asking_n_and_getting_absent_is_fine() -> None:
    requested = kconfig.parse_fragment("# CONFIG_A is not set\nCONFIG_B=n\n", "f")
    assert kconfig.check(requested, {}) == []
    assert kconfig.check(requested, {"CONFIG_A": "n"}) == []


def test_check_asking_n_and_getting_y_is_dropped() -> None:
    requested = kconfig.parse_fragment("# CONFIG_A is not set\n", "f")
    dropped = kconfig.check(requested, {"CONFIG_A": "y"})
    assert [(d.wanted.symbol, d.got) for d in dropped] == [("CONFIG_A", "y")]


def test_dropped_describe_without_unmet_dependencies() -> None:
    wanted = Setting("CONFIG_BPF_JIT", "y", "user.config:4")
    text = Dropped(wanted, "n").describe()
    assert "CONFIG_BPF_JIT=y" in text
    assert "user.config:4" in text
    assert "is n" in text
    assert "depends on" not in text


def test_dropped_describe_names_unmet_dependencies() -> None:
    wanted = Setting("CONFIG_BPF_JIT", "y", "user.config:4")
    text = Dropped(wanted, "n", ("CONFIG_NET", "CONFIG_BPF")).describe()
    assert "CONFIG_BPF_JIT=y" in text
    assert "user.config:4" in text
    assert "depends on CONFIG_NET, CONFIG_BPF" in text


# --- kconfig_tree.parse_kconfig -----------------------------------------------------------------


def test_config_and_menuconfig_entries_are_defined_with_their_depends() -> None:
    index = parsed(
        'config FOO\n'
        '\tbool "foo"\n'
        '\tdepends on BAR && BAZ\n'
        '\n'
        'menuconfig NETDEVICES\n'
        '\tbool "Network device support"\n'
        '\tdepends on NET\n'
        '\n'
        'config PLAIN\n'
        '\ttristate\n'
    )
    assert index.defined == {"CONFIG_FOO", "CONFIG_NETDEVICES", "CONFIG_PLAIN"}
    assert index.dependency_symbols("CONFIG_FOO") == ["CONFIG_BAR", "CONFIG_BAZ"]
    assert index.dependency_symbols("CONFIG_NETDEVICES") == ["CONFIG_NET"]
    assert index.dependency_symbols("CONFIG_PLAIN") == []


def test_several_depends_lines_accumulate() -> None:
    index = parsed("config FOO\n\tbool\n\tdepends on A\n\tdepends on B\n")
    assert index.dependency_symbols("CONFIG_FOO") == ["CONFIG_A", "CONFIG_B"]


def test_enclosing_if_applies_until_endif() -> None:
    index = parsed(
        "if NET\n"
        "\n"
        "config INSIDE\n"
        "\tbool\n"
        "\tdepends on OWN\n"
        "\n"
        "endif # NET\n"
        "\n"
        "config OUTSIDE\n"
        "\tbool\n"
    )
    assert set(index.dependency_symbols("CONFIG_INSIDE")) == {"CONFIG_NET", "CONFIG_OWN"}
    assert index.dependency_symbols("CONFIG_OUTSIDE") == []


def test_nested_ifs_both_apply() -> None:
    index = parsed("if A\nif B\nconfig X\n\tbool\nendif\nconfig Y\n\tbool\nendif\n")
    assert set(index.dependency_symbols("CONFIG_X")) == {"CONFIG_A", "CONFIG_B"}
    assert index.dependency_symbols("CONFIG_Y") == ["CONFIG_A"]


def test_menu_depends_on_guards_the_menu_entries_only() -> None:
    index = parsed(
        'menu "Networking options"\n'
        '\tdepends on NET\n'
        '\n'
        'config IN_MENU\n'
        '\tbool "x"\n'
        '\tdepends on LOCAL\n'
        '\n'
        'endmenu\n'
        '\n'
        'config AFTER_MENU\n'
        '\tbool "y"\n'
    )
    assert set(index.dependency_symbols("CONFIG_IN_MENU")) == {"CONFIG_NET", "CONFIG_LOCAL"}
    assert index.dependency_symbols("CONFIG_AFTER_MENU") == []


def test_a_menu_without_depends_adds_nothing_but_still_nests() -> None:
    index = parsed('if OUTER\nmenu "m"\nconfig X\n\tbool\nendmenu\nconfig Y\n\tbool\nendif\nconfig Z\n\tbool\n')
    assert index.dependency_symbols("CONFIG_X") == ["CONFIG_OUTER"]
    assert index.dependency_symbols("CONFIG_Y") == ["CONFIG_OUTER"]
    assert index.dependency_symbols("CONFIG_Z") == []


def test_help_text_is_ignored() -> None:
    index = parsed(
        'config FOO\n'
        '\tbool "foo"\n'
        '\tdepends on REAL\n'
        '\thelp\n'
        '\t  This option depends on BOGUS being set.\n'
        '\t  depends on ALSO_BOGUS\n'
        '\n'
        '\t  if you say Y here, IF_BOGUS happens.\n'
        '\t  config NOT_A_SYMBOL\n'
        '\t  endif\n'
        '\n'
        'config BAR\n'
        '\tbool "bar"\n'
        '\t---help---\n'
        '\t  depends on HELP_BOGUS\n'
        'config BAZ\n'
        '\tbool\n'
        '\tdepends on BAZ_DEP\n'
    )
    assert index.defined == {"CONFIG_FOO", "CONFIG_BAR", "CONFIG_BAZ"}
    assert index.dependency_symbols("CONFIG_FOO") == ["CONFIG_REAL"]
    assert index.dependency_symbols("CONFIG_BAR") == []
    # The help text's "if you say Y" did not open a block that would guard what follows.
    assert index.dependency_symbols("CONFIG_BAZ") == ["CONFIG_BAZ_DEP"]


def test_an_empty_help_does_not_swallow_the_rest_of_the_file() -> None:
    # In Kconfig, a line at column 0 always ends help text (zconf.l); an empty help is legal.
    index = parsed(
        'config FOO\n'
        '\tbool "foo"\n'
        '\thelp\n'
        '\n'
        'config BAR\n'
        '\tbool "bar"\n'
        '\tdepends on BAR_DEP\n'
    )
    assert index.defined == {"CONFIG_FOO", "CONFIG_BAR"}
    assert index.dependency_symbols("CONFIG_BAR") == ["CONFIG_BAR_DEP"]


def test_backslash_continuations_are_joined() -> None:
    index = parsed("config FOO\n\tbool\n\tdepends on A && \\\n\t\tB && \\\n\t\tC\n")
    assert index.dependency_symbols("CONFIG_FOO") == ["CONFIG_A", "CONFIG_B", "CONFIG_C"]


def test_negated_terms_numbers_constants_strings_and_comments_are_not_dependencies() -> None:
    index = parsed(
        'config FOO\n'
        '\tbool\n'
        '\tdepends on !PREEMPT_RT && BAR=y && NR_CPUS > 4 && 64BIT != n # COMMENTED\n'
        '\tdepends on CC_VERSION_TEXT != "GCC SOMETHING"\n'
    )
    names = index.dependency_symbols("CONFIG_FOO")
    assert "CONFIG_PREEMPT_RT" not in names
    assert "CONFIG_COMMENTED" not in names
    assert "CONFIG_GCC" not in names and "CONFIG_SOMETHING" not in names
    assert "CONFIG_4" not in names
    assert "CONFIG_y" not in names and "CONFIG_n" not in names
    assert set(names) == {"CONFIG_BAR", "CONFIG_NR_CPUS", "CONFIG_64BIT", "CONFIG_CC_VERSION_TEXT"}


def test_negated_dependency_is_not_reported_as_unmet() -> None:
    index = parsed("config FOO\n\tbool\n\tdepends on !PREEMPT_RT && NET\nconfig PREEMPT_RT\n\tbool\nconfig NET\n\tbool\n")
    assert index.unmet("CONFIG_FOO", {}) == ("CONFIG_NET",)


def test_choice_and_comment_end_the_current_entry() -> None:
    index = parsed(
        'config FOO\n'
        '\tbool\n'
        'comment "Some comment"\n'
        '\tdepends on COMMENT_DEP\n'
        'choice\n'
        '\tprompt "pick"\n'
        '\tdepends on CHOICE_DEP\n'
        'config OPT_A\n'
        '\tbool "a"\n'
        'endchoice\n'
    )
    assert index.dependency_symbols("CONFIG_FOO") == []
    assert "CONFIG_OPT_A" in index.defined


# --- kconfig_tree.scan / unmet -------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_scan_reads_the_tree_leaving_out_other_arches_and_tools(tmp_path: Path) -> None:
    _write(tmp_path / "Kconfig", "config TOP\n\tbool\n")
    _write(tmp_path / "arch" / "Kconfig", "config ARCH_GENERIC\n\tbool\n")
    _write(tmp_path / "arch" / "x86" / "Kconfig", "config X86_ONLY\n\tbool\n")
    _write(tmp_path / "arch" / "x86" / "Kconfig.cpu", "config X86_CPU\n\tbool\n")
    _write(tmp_path / "arch" / "arm64" / "Kconfig", "config ARM64_ONLY\n\tbool\n")
    _write(tmp_path / "arch" / "arm64" / "kvm" / "Kconfig", "config ARM64_KVM\n\tbool\n")
    _write(tmp_path / "kernel" / "bpf" / "Kconfig", "config BPF_SYSCALL\n\tbool\n\tdepends on NET\n")
    _write(tmp_path / "lib" / "Kconfig.debug", "config DEBUG_THING\n\tbool\n")
    _write(tmp_path / "tools" / "Kconfig", "config TOOLS_ONLY\n\tbool\n")
    _write(tmp_path / "tools" / "sub" / "Kconfig", "config TOOLS_SUB\n\tbool\n")
    _write(tmp_path / "Documentation" / "Kconfig", "config DOC_ONLY\n\tbool\n")
    index = kconfig_tree.scan(tmp_path)
    assert index.defined == {
        "CONFIG_TOP", "CONFIG_ARCH_GENERIC", "CONFIG_X86_ONLY", "CONFIG_X86_CPU", "CONFIG_BPF_SYSCALL",
        "CONFIG_DEBUG_THING",
    }
    assert index.dependency_symbols("CONFIG_BPF_SYSCALL") == ["CONFIG_NET"]


def test_scan_for_another_arch(tmp_path: Path) -> None:
    _write(tmp_path / "arch" / "x86" / "Kconfig", "config X86_ONLY\n\tbool\n")
    _write(tmp_path / "arch" / "arm64" / "Kconfig", "config ARM64_ONLY\n\tbool\n")
    assert kconfig_tree.scan(tmp_path, arch="arm64").defined == {"CONFIG_ARM64_ONLY"}


def test_unmet_reports_only_defined_dependencies_that_are_off() -> None:
    index = parsed(
        "config WANTED\n"
        "\tbool\n"
        "\tdepends on ON && OFF && ABSENT_FROM_CONFIG && NOT_DEFINED_ANYWHERE && MODULE_ON\n"
        "config ON\n\tbool\n"
        "config OFF\n\tbool\n"
        "config ABSENT_FROM_CONFIG\n\tbool\n"
        "config MODULE_ON\n\ttristate\n"
    )
    final = {"CONFIG_ON": "y", "CONFIG_OFF": "n", "CONFIG_MODULE_ON": "m"}
    assert index.unmet("CONFIG_WANTED", final) == ("CONFIG_OFF", "CONFIG_ABSENT_FROM_CONFIG")


def test_unmet_of_an_unknown_symbol_is_empty() -> None:
    assert parsed("config A\n\tbool\n").unmet("CONFIG_NOPE", {}) == ()


def test_unmet_includes_the_enclosing_if_condition() -> None:
    index = parsed("config NET\n\tbool\nif NET\nconfig INET\n\tbool\nendif\n")
    assert index.unmet("CONFIG_INET", {}) == ("CONFIG_NET",)
    assert index.unmet("CONFIG_INET", {"CONFIG_NET": "y"}) == ()
