"""Exact Debian kernels and sources: every version the apt lists hold (apt-cache replaced by a fake
with several versions per series), an exact spec picking one, the nearest ones named when it is not
there, and `lab kernel list`. Version order is dpkg's own (`dpkg --compare-versions`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.cli import main as cli
from lab.core import apt
from lab.core.errors import UserError
from lab.kernel import listing
from lab.kernel import source as ksource

IMAGES = {  # package -> versions the lists hold
    "linux-image-6.1.0-47-cloud-amd64-unsigned": ["6.1.170-3"],
    "linux-image-6.1.0-50-cloud-amd64-unsigned": ["6.1.176-1"],
    "linux-image-6.1.0-53-cloud-amd64-unsigned": ["6.1.187-1"],
    "linux-image-6.1.0-57-cloud-amd64-unsigned": ["6.1.192-3"],
    "linux-image-6.1.0-57-rt-amd64-unsigned": ["6.1.192-3"],
    "linux-image-6.1.0-57-cloud-amd64-dbg": ["6.1.192-3"],
    "linux-image-6.12.113+deb12-cloud-amd64-unsigned": ["6.12.113-1~deb12u1"],
    "linux-image-6.12.117+deb12-cloud-amd64-unsigned": ["6.12.117-1~deb12u1"],
}
SOURCES = {
    "linux-source-6.1": ["6.1.192-3", "6.1.176-1", "6.1.187-1", "6.1.192-1", "6.1.170-3"],
    "linux-source-6.12": ["6.12.117-1~deb12u1", "6.12.113-1~deb12u1"],
}
PACKAGES = {**IMAGES, **SOURCES, "linux-headers-6.1.0-57-cloud-amd64": ["6.1.192-3"]}


def fake_apt_cache(argv: list[str], cwd: Path | None = None) -> str:
    if argv[:2] == ["apt-cache", "pkgnames"]:
        prefix = argv[2] if len(argv) > 2 else ""
        return "".join(f"{name}\n" for name in PACKAGES if name.startswith(prefix))
    assert argv[:2] == ["apt-cache", "show"] and "--no-all-versions" not in argv, argv
    # A version in two suites (main and -security) is shown twice; the lab counts it once.
    return "".join(f"Package: {name}\nVersion: {version}\nDescription: x\n\n"
                   for name in argv[2:] for version in PACKAGES[name] for _ in range(2))


@pytest.fixture(autouse=True)
def lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apt, "_run", fake_apt_cache)


def test_every_version_newest_first_once_each() -> None:
    assert [p.version for p in apt.source_packages("6.1")] == [
        "6.1.192-3", "6.1.192-1", "6.1.187-1", "6.1.176-1", "6.1.170-3"]
    images = apt.kernel_packages("6.1", "cloud-amd64")
    assert [(p.abi, p.version) for p in images] == [
        ("6.1.0-57", "6.1.192-3"), ("6.1.0-53", "6.1.187-1"), ("6.1.0-50", "6.1.176-1"), ("6.1.0-47", "6.1.170-3")]
    assert [p.abi for p in apt.kernel_packages("6.12", "cloud-amd64")] == ["6.12.117+deb12", "6.12.113+deb12"]


def test_the_series_in_the_lists_newest_first() -> None:
    assert apt.series_in_lists("cloud-amd64") == ["6.12", "6.1"]


@pytest.mark.parametrize("exact, package, version", [
    ("6.1.176-1", "linux-image-6.1.0-50-cloud-amd64-unsigned", "6.1.176-1"),  # the package version
    ("6.1.0-53", "linux-image-6.1.0-53-cloud-amd64-unsigned", "6.1.187-1"),  # the ABI name
    ("6.1.192", "linux-image-6.1.0-57-cloud-amd64-unsigned", "6.1.192-3"),  # upstream: its newest revision
])
def test_an_exact_kernel_names_one_package(exact: str, package: str, version: str) -> None:
    found = apt.find_kernel_package("6.1", "cloud-amd64", exact)
    assert (found.package, found.version) == (package, version)


def test_the_flavour_is_part_of_the_exact_kernel() -> None:
    assert apt.find_kernel_package("6.1", "rt-amd64", "6.1.0-57").package == "linux-image-6.1.0-57-rt-amd64-unsigned"
    with pytest.raises(UserError):
        apt.find_kernel_package("6.1", "rt-amd64", "6.1.0-53")


@pytest.mark.parametrize("exact, nearest", [
    ("6.1.180-1", "nearest: debian:6.1.176-1 (6.1.0-50), debian:6.1.187-1 (6.1.0-53)"),  # between two versions
    ("6.1.0-52", "nearest: debian:6.1.176-1 (6.1.0-50), debian:6.1.187-1 (6.1.0-53)"),  # between two ABIs
    ("6.1.0-58", "nearest: debian:6.1.192-3 (6.1.0-57) "),  # newer than any
    ("6.1.99-1", "nearest: debian:6.1.170-3 (6.1.0-47) "),  # older than any (a string order would say newer)
])
def test_a_version_the_lists_do_not_hold_names_the_nearest(exact: str, nearest: str) -> None:
    with pytest.raises(UserError) as caught:
        apt.find_kernel_package("6.1", "cloud-amd64", exact)
    message = str(caught.value)
    assert message.startswith(f"no Debian 6.1 kernel (cloud-amd64) debian:{exact} in the host's apt lists; ")
    assert nearest in message and "lab kernel list" in message and "\n" not in message


def test_an_exact_source_by_version_abi_or_upstream() -> None:
    assert apt.find_source_package("6.1", None).version == "6.1.192-3"  # debian:6.1: the newest
    assert apt.find_source_package("6.1", "6.1.176-1").version == "6.1.176-1"
    # The ABI name of a kernel image stands for the source of that image: the same Debian version.
    assert apt.find_source_package("6.1", "6.1.0-53").version == "6.1.187-1"
    assert apt.find_source_package("6.12", "6.12.113+deb12").version == "6.12.113-1~deb12u1"
    assert apt.find_source_package("6.1", "6.1.192").version == "6.1.192-3"


def test_a_source_the_lists_do_not_hold() -> None:
    with pytest.raises(UserError) as caught:
        ksource.check(ksource.parse_source_spec("debian:6.1.190-1"))
    assert str(caught.value).startswith("no Debian source linux-source-6.1 debian:6.1.190-1 in the host's apt lists; "
                                        "nearest: debian:6.1.187-1, debian:6.1.192-1")
    with pytest.raises(UserError, match="linux-source-6.6"):
        ksource.check(ksource.parse_source_spec("debian:6.6"))
    ksource.check(ksource.parse_source_spec("debian:6.1.0-50"))  # held: no error


def test_kernel_list_marks_the_newest_and_the_cached(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (ksource.debian_entry(cache, "linux-source-6.1", "6.1.176-1")).mkdir(parents=True)
    (ksource.debian_entry(cache, "linux-source-6.1", "6.1.176-1") / "source.json").write_text("{}")
    listed = listing.list_all(cache)
    kernels = [item for item in listed if item.kind == "kernel"]
    assert [item.spec for item in kernels] == [
        "debian:6.12.117-1~deb12u1", "debian:6.12.113-1~deb12u1",
        "debian:6.1.192-3", "debian:6.1.187-1", "debian:6.1.176-1", "debian:6.1.170-3"]
    assert [item.spec for item in kernels if item.newest] == ["debian:6.12.117-1~deb12u1", "debian:6.1.192-3"]
    sources = {item.spec: item for item in listed if item.kind == "source"}
    assert [spec for spec, item in sources.items() if item.cached] == ["debian:6.1.176-1"]
    rows = [line.split() for line in listing.render(listed).splitlines()]
    assert ["debian:6.1.187-1", "debian:6.1.0-53", "linux-image-6.1.0-53-cloud-amd64-unsigned"] in rows
    assert ["debian:6.1.176-1", "linux-source-6.1", "cached"] in rows
    assert ["debian:6.12.117-1~deb12u1", "debian:6.12.117+deb12", "linux-image-6.12.117+deb12-cloud-amd64-unsigned",
            "newest", "(debian:6.12)"] in rows


def test_lab_kernel_list_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    assert cli.main(["kernel", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"kind": "kernel", "series": "6.1", "spec": "debian:6.1.187-1", "abi_spec": "debian:6.1.0-53",
            "package": "linux-image-6.1.0-53-cloud-amd64-unsigned", "version": "6.1.187-1",
            "newest": False, "cached": False} in listed
    assert len(listed) == 6 + 7


def test_a_run_of_a_version_the_lists_do_not_hold_is_exit_2_before_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LAB_RESULTS", str(tmp_path / "results"))
    assert cli.main(["run", "--kernel", "debian:6.1.0-51", "--suite", "pin"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "debian:6.1.0-51" in err[0] and "nearest: debian:6.1.176-1 (6.1.0-50)" in err[0]
    assert not (tmp_path / "results").exists()


def test_kernel_list_with_empty_apt_lists_is_an_infra_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(apt, "_run", lambda argv, cwd=None: "")
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    assert cli.main(["kernel", "list"]) == 8
    assert "apt lists are empty" in capsys.readouterr().err
