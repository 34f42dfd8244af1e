"""lab.kernelspec: what the user typed for --kernel, parsed into a typed spec."""
from __future__ import annotations

from pathlib import Path

import pytest

from lab.core.errors import UserError
from lab.kernel.spec import DEFAULT_KERNEL, DebianSpec, PathSpec, parse_kernel_spec


@pytest.mark.parametrize("text, series", [("debian:6.1", "6.1"), ("debian:6.12", "6.12")])
def test_debian_series_default_to_the_cloud_flavour(text: str, series: str) -> None:
    spec = parse_kernel_spec(text)
    assert spec == DebianSpec(series, "cloud-amd64")
    assert isinstance(spec, DebianSpec)


def test_debian_spec_with_an_explicit_flavour() -> None:
    assert parse_kernel_spec("debian:6.1:amd64") == DebianSpec("6.1", "amd64")
    assert parse_kernel_spec("debian:6.12:rt-amd64") == DebianSpec("6.12", "rt-amd64")


@pytest.mark.parametrize("text, series, exact", [
    ("debian:6.1.176-1", "6.1", "6.1.176-1"),  # a package version
    ("debian:6.1.0-53", "6.1", "6.1.0-53"),  # an ABI name
    ("debian:6.1.192", "6.1", "6.1.192"),  # an upstream version: its newest Debian revision
    ("debian:6.12.117-1~deb12u1", "6.12", "6.12.117-1~deb12u1"),
    ("debian:6.12.117+deb12", "6.12", "6.12.117+deb12"),
])
def test_exact_debian_versions_pin_one_package(text: str, series: str, exact: str) -> None:
    spec = parse_kernel_spec(text)
    assert spec == DebianSpec(series, "cloud-amd64", exact)
    assert isinstance(spec, DebianSpec) and spec.text == text


def test_an_exact_version_with_a_flavour() -> None:
    spec = parse_kernel_spec("debian:6.1.0-53:rt-amd64")
    assert spec == DebianSpec("6.1", "rt-amd64", "6.1.0-53")
    assert isinstance(spec, DebianSpec) and spec.text == "debian:6.1.0-53:rt-amd64"


def test_the_series_form_is_still_the_newest() -> None:
    spec = parse_kernel_spec("debian:6.12")
    assert isinstance(spec, DebianSpec) and spec.exact is None and spec.text == "debian:6.12"


def test_the_default_kernel_is_a_valid_spec() -> None:
    assert isinstance(parse_kernel_spec(DEFAULT_KERNEL), DebianSpec)


@pytest.mark.parametrize("text", ["debian:x", "debian:6", "debian:", "debian:6.1.", "debian:6.1:", "debian:6.1:AMD64",
                                  "debian:6.x", "debian:6.1.x", "debian:6.1.0 53", "debian:6.1.0/53", "debian:6.1-5"])
def test_bad_debian_forms_are_user_errors_naming_the_input(text: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_kernel_spec(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "debian:6.1" in message  # says what a good one looks like
    assert "\n" not in message


@pytest.mark.parametrize("modules, config", [("/lib/modules/x", None), (None, "/boot/config-x"), ("m", "c")])
def test_modules_or_config_with_a_debian_spec_is_a_user_error(modules: str | None, config: str | None) -> None:
    with pytest.raises(UserError, match="--modules/--config"):
        parse_kernel_spec("debian:6.1", modules, config)


def test_a_path_with_a_slash_is_a_path_spec_even_when_missing(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "bzImage"
    spec = parse_kernel_spec(str(missing))
    assert spec == PathSpec(missing, None, None)


def test_a_path_spec_carries_modules_and_config() -> None:
    spec = parse_kernel_spec("/k/arch/x86/boot/bzImage", "/k/mods/lib/modules/6.9.0", "/k/.config")
    assert isinstance(spec, PathSpec)
    assert spec.image == Path("/k/arch/x86/boot/bzImage")
    assert spec.modules == Path("/k/mods/lib/modules/6.9.0")
    assert spec.config == Path("/k/.config")


def test_a_path_spec_expands_the_home_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = parse_kernel_spec("~/bzImage", "~/modules", "~/config")
    assert spec == PathSpec(tmp_path / "bzImage", tmp_path / "modules", tmp_path / "config")


def test_an_existing_file_without_a_slash_is_a_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bzImage").write_bytes(b"x")
    assert parse_kernel_spec("bzImage") == PathSpec(Path("bzImage"))


@pytest.mark.parametrize("text", ["bzImage", "6.1", "linux", "ubuntu:22.04", "Debian:6.1"])
def test_unknown_words_are_user_errors(text: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # none of these exists here
    with pytest.raises(UserError, match="unknown kernel") as caught:
        parse_kernel_spec(text)
    assert repr(text) in str(caught.value)
