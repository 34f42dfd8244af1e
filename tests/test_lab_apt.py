"""lab.apt: the host's apt sources, kernel package names, `apt-cache show` output, dpkg versions."""
from __future__ import annotations

import os

import subprocess
from pathlib import Path

import pytest

from lab.core import apt
from lab.core.apt import AptSource
from lab.core.errors import InfraError, UserError

DEBIAN = "http://mirror.example/debian"
SECURITY = "http://mirror.example/debian-security"


# --- one-line sources ------------------------------------------------------------------------


def test_one_line_sources_with_options_comments_and_deb_src(tmp_path: Path) -> None:
    path = tmp_path / "sources.list"
    path.write_text(
        "# the main archive\n"
        f"deb {DEBIAN} bookworm main contrib non-free-firmware\n"
        f"deb-src {DEBIAN} bookworm main\n"
        f"#deb {DEBIAN} bookworm-backports main\n"
        f"deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {DEBIAN} bookworm-updates main\n"
        f"deb [arch=amd64] {SECURITY} bookworm-security main  # security\n"
        f"deb [ trusted=yes ] http://mirror.example/debian bookworm main\n"
        "\n"
        "deb http://broken.example/debian\n"  # too short: ignored
    )
    assert apt.parse_sources_file(path) == [
        AptSource(DEBIAN, "bookworm", ("main", "contrib", "non-free-firmware")),
        AptSource(DEBIAN, "bookworm-updates", ("main",)),
        AptSource(SECURITY, "bookworm-security", ("main",)),
        AptSource("http://mirror.example/debian", "bookworm", ("main",)),
    ]


def test_one_line_round_trip() -> None:
    source = AptSource(DEBIAN, "bookworm", ("main", "contrib"))
    assert source.one_line() == f"deb {DEBIAN} bookworm main contrib"
    assert apt._parse_one_line(source.one_line()) == [source]


# --- deb822 sources -----------------------------------------------------------------------------


DEB822 = f"""\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: {DEBIAN}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: {SECURITY}
Suites: bookworm-security
Components: main contrib
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NdOOHwPIJlgPu6JDcKw/NZJPR8lsD9K87ZqMrxpH3Uk2Mr
 Comment: not a field, a continuation line
 -----END PGP PUBLIC KEY BLOCK-----

# disabled
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm-backports
Components: main
Enabled: no

Types: deb-src
URIs: {DEBIAN}
Suites: bookworm
Components: main

types: deb
uris: http://mirror-a.example/debian http://mirror-b.example/debian
suites: trixie
components: main
"""


def test_deb822_stanzas(tmp_path: Path) -> None:
    path = tmp_path / "debian.sources"
    path.write_text(DEB822)
    assert apt.parse_sources_file(path) == [
        AptSource(DEBIAN, "bookworm", ("main",)),
        AptSource(DEBIAN, "bookworm-updates", ("main",)),
        AptSource(SECURITY, "bookworm-security", ("main", "contrib")),
        AptSource("http://mirror-a.example/debian", "trixie", ("main",)),
        AptSource("http://mirror-b.example/debian", "trixie", ("main",)),
    ]


def test_the_file_suffix_chooses_the_format(tmp_path: Path) -> None:
    as_list = tmp_path / "x.list"
    as_list.write_text(DEB822)
    assert apt.parse_sources_file(as_list) == []  # deb822 text read as one-line: nothing
    as_sources = tmp_path / "x.sources"
    as_sources.write_text(f"deb {DEBIAN} bookworm main\n")
    assert apt.parse_sources_file(as_sources) == []


# --- host codename -----------------------------------------------------------------------------


def test_host_codename(tmp_path: Path) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME="bookworm"\nID=debian\n')
    assert apt.host_codename(os_release) == "bookworm"
    os_release.write_text("ID=debian\nVERSION_CODENAME=trixie\n")
    assert apt.host_codename(os_release) == "trixie"


def test_host_codename_missing_is_an_infra_error(tmp_path: Path) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text("ID=debian\n")
    with pytest.raises(InfraError, match="VERSION_CODENAME"):
        apt.host_codename(os_release)


# --- debian_sources ---------------------------------------------------------------------------


@pytest.fixture
def apt_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("LAB_APT_SOURCES", raising=False)
    directory = tmp_path / "etc-apt"
    (directory / "sources.list.d").mkdir(parents=True)
    return directory


def test_debian_sources_keeps_the_release_updates_and_security(apt_dir: Path) -> None:
    (apt_dir / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert apt.debian_sources("bookworm", apt_dir) == [
        AptSource(DEBIAN, "bookworm", ("main",)),
        AptSource(DEBIAN, "bookworm-updates", ("main",)),
        AptSource(SECURITY, "bookworm-security", ("main", "contrib")),
    ]


def test_debian_sources_reads_sources_list_and_the_directory(apt_dir: Path) -> None:
    (apt_dir / "sources.list").write_text(f"deb {DEBIAN} bookworm main\n")
    (apt_dir / "sources.list.d" / "security.list").write_text(f"deb {SECURITY} bookworm-security main\n")
    # Files apt itself ignores are ignored here too.
    (apt_dir / "sources.list.d" / "old.list.disabled-by-farm").write_text(f"deb {DEBIAN} bookworm-updates main\n")
    (apt_dir / "sources.list.d" / "x.list.dpkg-old").write_text(f"deb {DEBIAN} bookworm-updates main\n")
    assert apt.debian_sources("bookworm", apt_dir) == [
        AptSource(DEBIAN, "bookworm", ("main",)),
        AptSource(SECURITY, "bookworm-security", ("main",)),
    ]


def test_debian_sources_drops_other_releases_and_third_party_repositories(apt_dir: Path) -> None:
    (apt_dir / "sources.list").write_text(
        f"deb {DEBIAN} bookworm main\n"
        f"deb {DEBIAN} bookworm-backports main\n"
        f"deb {DEBIAN} trixie main\n"
        f"deb {DEBIAN} bookworm contrib\n"
        "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
        "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/debian bookworm stable\n"
        "deb http://apt.postgresql.org/pub/repos/apt bookworm-pgdg main\n"
    )
    (apt_dir / "sources.list.d" / "nodesource.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n"
    )
    assert apt.debian_sources("bookworm", apt_dir) == [AptSource(DEBIAN, "bookworm", ("main",))]


def test_a_third_party_repository_using_the_release_name_is_dropped(apt_dir: Path) -> None:
    # Microsoft's documented line: same suite and component names as Debian's own archive.
    (apt_dir / "sources.list").write_text(
        f"deb {DEBIAN} bookworm main\n"
        "deb [arch=amd64,arm64,armhf signed-by=/usr/share/keyrings/microsoft-prod.gpg] "
        "https://packages.microsoft.com/debian/12/prod bookworm main\n"
    )
    chosen = apt.debian_sources("bookworm", apt_dir)
    assert [s.uri for s in chosen] == [DEBIAN], "a non-Debian archive would be baked into the guest image"


def test_debian_sources_with_nothing_for_the_codename_is_an_infra_error(apt_dir: Path) -> None:
    (apt_dir / "sources.list").write_text(f"deb {DEBIAN} trixie main\ndeb {SECURITY} bookworm-security main\n")
    with pytest.raises(InfraError) as caught:
        apt.debian_sources("bookworm", apt_dir)
    assert "bookworm" in str(caught.value)
    assert str(apt_dir) in str(caught.value)
    assert "LAB_APT_SOURCES" in str(caught.value)


def test_debian_sources_with_an_empty_apt_dir_is_an_infra_error(apt_dir: Path) -> None:
    with pytest.raises(InfraError, match="no apt source for Debian bookworm"):
        apt.debian_sources("bookworm", apt_dir)


def test_lab_apt_sources_overrides_the_host(apt_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (apt_dir / "sources.list").write_text(f"deb {DEBIAN} bookworm main\n")
    override = tmp_path / "mirror.sources"
    override.write_text("Types: deb\nURIs: http://mirror.internal/debian\nSuites: bookworm bookworm-updates\n"
                        "Components: main\n")
    monkeypatch.setenv("LAB_APT_SOURCES", str(override))
    assert apt.debian_sources("bookworm", apt_dir) == [
        AptSource("http://mirror.internal/debian", "bookworm", ("main",)),
        AptSource("http://mirror.internal/debian", "bookworm-updates", ("main",)),
    ]


def test_lab_apt_sources_one_line_override(apt_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override = tmp_path / "mirror.list"
    override.write_text("deb http://mirror.internal/debian trixie main\n")
    monkeypatch.setenv("LAB_APT_SOURCES", str(override))
    assert apt.debian_sources("trixie", apt_dir) == [AptSource("http://mirror.internal/debian", "trixie", ("main",))]


def test_lab_apt_sources_without_the_codename_names_the_file(
    apt_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (apt_dir / "sources.list").write_text(f"deb {DEBIAN} bookworm main\n")  # not consulted
    override = tmp_path / "mirror.list"
    override.write_text("deb http://mirror.internal/debian trixie main\n")
    monkeypatch.setenv("LAB_APT_SOURCES", str(override))
    with pytest.raises(InfraError) as caught:
        apt.debian_sources("bookworm", apt_dir)
    assert str(override) in str(caught.value)


# --- kernel package names ------------------------------------------------------------------------


NAMES_61 = [
    "linux-image-6.1.0-56-cloud-amd64-unsigned",
    "linux-image-6.1.0-56-cloud-amd64",
    "linux-image-6.1.0-56-cloud-amd64-dbg",
    "linux-image-6.1.0-56-amd64-unsigned",
    "linux-image-6.1.0-56-rt-amd64-unsigned",
    "linux-image-6.1.0-47-cloud-amd64-unsigned",
]
NAMES_612 = [
    "linux-image-6.12.113+deb12-cloud-amd64-unsigned",
    "linux-image-6.12.117+deb12-cloud-amd64-unsigned",
    "linux-image-6.12.117+deb12-cloud-amd64-dbg",
    "linux-image-6.12.117+deb12-amd64-unsigned",
    "linux-image-6.12.117+deb12-rt-amd64-unsigned",
]
OTHER = ["linux-image-cloud-amd64", "linux-image-amd64", "linux-image-5.10.0-32-cloud-amd64-unsigned",
         "linux-image-6.10.6+bpo-cloud-amd64-unsigned", "linux-image-6.11.2-cloud-amd64-unsigned"]


def _matching(series: str, flavour: str) -> list[str]:
    pattern = apt.kernel_package_pattern(series, flavour)
    return [name for name in NAMES_61 + NAMES_612 + OTHER if pattern.match(name)]


def test_the_6_1_pattern() -> None:
    assert _matching("6.1", "cloud-amd64") == [
        "linux-image-6.1.0-56-cloud-amd64-unsigned",
        "linux-image-6.1.0-47-cloud-amd64-unsigned",
    ]


def test_the_6_12_pattern() -> None:
    assert _matching("6.12", "cloud-amd64") == [
        "linux-image-6.12.113+deb12-cloud-amd64-unsigned",
        "linux-image-6.12.117+deb12-cloud-amd64-unsigned",
    ]


def test_a_series_does_not_match_a_longer_series() -> None:
    assert not apt.kernel_package_pattern("6.1", "cloud-amd64").match("linux-image-6.12.113+deb12-cloud-amd64-unsigned")
    assert not apt.kernel_package_pattern("6.1", "cloud-amd64").match("linux-image-6.10.6+bpo-cloud-amd64-unsigned")
    assert not apt.kernel_package_pattern("6.12", "cloud-amd64").match("linux-image-6.1.0-56-cloud-amd64-unsigned")


def test_the_series_dot_is_literal() -> None:
    assert not apt.kernel_package_pattern("6.1", "cloud-amd64").match("linux-image-6x1.0-56-cloud-amd64-unsigned")


@pytest.mark.parametrize("series, names, expected", [
    ("6.1", NAMES_61, ["linux-image-6.1.0-56-amd64-unsigned"]),
    ("6.12", NAMES_612, ["linux-image-6.12.117+deb12-amd64-unsigned"]),
])
def test_the_plain_amd64_flavour_matches_only_itself(series: str, names: list[str], expected: list[str]) -> None:
    # debian:6.1:amd64 must never resolve to the cloud or rt kernel of the same ABI: they all
    # have the same version, so newest() would pick one of them at random.
    pattern = apt.kernel_package_pattern(series, "amd64")
    assert [n for n in names if pattern.match(n)] == expected


def test_the_rt_flavour() -> None:
    assert _matching("6.1", "rt-amd64") == ["linux-image-6.1.0-56-rt-amd64-unsigned"]


# --- apt-cache show and dpkg versions ----------------------------------------------------------


SHOW = """\
Package: linux-image-6.12.113+deb12-cloud-amd64-unsigned
Source: linux (6.12.113-1~deb12u1)
Version: 6.12.113-1~deb12u1
Installed-Size: 81234
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Description-en: Linux 6.12 for x86-64 cloud (unsigned)
 The Linux kernel 6.12 and modules for use on cloud platforms.
 Version: not a field, a description line
Description-md5: 0123

Package: linux-image-6.12.117+deb12-cloud-amd64-unsigned
Version: 6.12.117-1~deb12u1
Description-en: Linux 6.12 for x86-64 cloud (unsigned)

Package: no-version-here
Description-en: broken stanza

"""


def test_parse_show() -> None:
    assert apt.parse_show(SHOW) == [
        ("linux-image-6.12.113+deb12-cloud-amd64-unsigned", "6.12.113-1~deb12u1"),
        ("linux-image-6.12.117+deb12-cloud-amd64-unsigned", "6.12.117-1~deb12u1"),
    ]


def test_parse_show_empty() -> None:
    assert apt.parse_show("") == []


def _dpkg_lt(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0


def test_newest_uses_debian_version_order() -> None:
    versions = [("a", "6.12.113-1~deb12u1"), ("b", "6.12.117-1~deb12u1"), ("c", "6.12.9-1")]
    # A string comparison would pick 6.12.9; dpkg knows 117 > 113 > 9.
    assert max(v for _, v in versions) == "6.12.9-1"
    assert apt.newest(versions) == ("b", "6.12.117-1~deb12u1")
    assert apt.newest(list(reversed(versions))) == ("b", "6.12.117-1~deb12u1")


def test_newest_tilde_sorts_before_the_release() -> None:
    assert _dpkg_lt("6.12.117-1~deb12u1", "6.12.117-1")
    assert apt.newest([("x", "6.12.117-1"), ("y", "6.12.117-1~deb12u1")]) == ("x", "6.12.117-1")
    assert apt.newest([("y", "6.12.117-1~deb12u1"), ("x", "6.12.117-1")]) == ("x", "6.12.117-1")


def test_newest_agrees_with_dpkg_on_every_pair() -> None:
    versions = ["6.1.192-2", "6.1.192-1", "6.1.99-1", "6.1.192-2+deb12u1", "6.1.192-2~bpo11+1", "1:6.1.0-1"]
    best = apt.newest([(v, v) for v in versions])[1]
    for other in versions:
        if other != best:
            assert _dpkg_lt(other, best), f"{other} is not older than {best}"
    assert best == "1:6.1.0-1"  # an epoch beats everything


def test_compare_versions_sign() -> None:
    assert apt._compare_versions("6.1.99-1", "6.1.192-1") == -1
    assert apt._compare_versions("6.1.192-1", "6.1.99-1") == 1
    assert apt._compare_versions("6.1.192-1", "6.1.192-1") == 0


# --- resolve_kernel_package, with apt-cache replaced ---------------------------------------------


def test_resolve_picks_the_newest_matching_package(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    names = " ".join(NAMES_61 + NAMES_612 + OTHER)

    def fake_run(argv: list[str], cwd: Path | None = None) -> str:
        calls.append(argv)
        if argv[:2] == ["apt-cache", "pkgnames"]:
            return names.replace(" ", "\n") + "\n"
        assert argv[:3] == ["apt-cache", "show", "--no-all-versions"]
        return SHOW

    monkeypatch.setattr(apt, "_run", fake_run)
    assert apt.resolve_kernel_package("6.12", "cloud-amd64") == (
        "linux-image-6.12.117+deb12-cloud-amd64-unsigned", "6.12.117-1~deb12u1")
    # Only the matching names were asked about.
    assert sorted(calls[-1][3:]) == sorted(["linux-image-6.12.113+deb12-cloud-amd64-unsigned",
                                            "linux-image-6.12.117+deb12-cloud-amd64-unsigned"])


def test_the_newest_package_is_remembered_until_the_apt_lists_change(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    lists, etc = tmp_path / "lists", tmp_path / "etc"
    lists.mkdir()
    etc.mkdir()
    (lists / "deb.example_dists_bookworm_main_binary-amd64_Packages").write_text("v1")
    asked: list[tuple[str, str]] = []

    def resolve(series: str, flavour: str) -> tuple[str, str]:
        asked.append((series, flavour))
        return f"linux-image-{series}.0-{len(asked)}-{flavour}-unsigned", f"{series}.{len(asked)}-1"

    monkeypatch.setattr(apt, "resolve_kernel_package", resolve)
    memo = tmp_path / "cache" / "apt-newest.json"
    first = apt.newest_kernel_package("6.1", "cloud-amd64", memo, lists, etc)
    assert apt.newest_kernel_package("6.1", "cloud-amd64", memo, lists, etc) == first
    assert asked == [("6.1", "cloud-amd64")]  # the second answer came from the memo
    apt.newest_kernel_package("6.12", "cloud-amd64", memo, lists, etc)  # another series: asked
    assert len(asked) == 2
    os.utime(lists / "deb.example_dists_bookworm_main_binary-amd64_Packages", (1, 1))  # apt-get update
    assert apt.newest_kernel_package("6.1", "cloud-amd64", memo, lists, etc) != first
    (etc / "preferences").write_text("Package: linux-image-*\nPin: version 6.1.170*\n")  # a pin changes it too
    apt.newest_kernel_package("6.1", "cloud-amd64", memo, lists, etc)
    assert len(asked) == 4
    memo.write_text("{half")  # a damaged memo is asked again, never trusted
    apt.newest_kernel_package("6.1", "cloud-amd64", memo, lists, etc)
    assert len(asked) == 5


def test_resolve_with_no_matching_package_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apt, "_run", lambda argv, cwd=None: "\n".join(NAMES_61) + "\n")
    with pytest.raises(UserError, match=r"debian:6\.6"):
        apt.resolve_kernel_package("6.6", "cloud-amd64")


def test_resolve_with_empty_apt_lists_is_an_infra_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apt, "_run", lambda argv, cwd=None: "")
    with pytest.raises(InfraError, match="apt-get update"):
        apt.resolve_kernel_package("6.1", "cloud-amd64")


def test_run_reports_a_failing_command_in_one_line() -> None:
    with pytest.raises(InfraError) as caught:
        apt._run(["sh", "-c", "echo first >&2; echo 'the last line' >&2; exit 3"])
    assert "the last line" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_run_reports_a_missing_program() -> None:
    with pytest.raises(InfraError, match="not installed"):
        apt._run(["/nonexistent/apt-cache-nope"])
