"""lab.timeouts: every wait has a bound, scaled for TCG."""
from __future__ import annotations

import dataclasses

import pytest

from lab.core.timeouts import TCG_FACTOR, Timeouts


def test_kvm_keeps_the_defaults() -> None:
    assert Timeouts().scaled_for("kvm") == Timeouts()


def test_tcg_scales_every_bound() -> None:
    base = Timeouts()
    scaled = base.scaled_for("tcg")
    assert TCG_FACTOR > 1
    for field in dataclasses.fields(Timeouts):
        assert getattr(scaled, field.name) == pytest.approx(getattr(base, field.name) * TCG_FACTOR), field.name


def test_with_suite_overrides_only_the_suite_bound() -> None:
    scaled = Timeouts().scaled_for("tcg")
    overridden = scaled.with_suite(12.5)
    assert overridden.suite == 12.5
    assert dataclasses.replace(overridden, suite=scaled.suite) == scaled
    assert scaled.with_suite(None) is scaled


def test_every_bound_is_positive_and_boot_silence_is_below_boot() -> None:
    for accel in ("kvm", "tcg"):
        timeouts = Timeouts().scaled_for(accel)
        assert all(getattr(timeouts, f.name) > 0 for f in dataclasses.fields(Timeouts))
        assert timeouts.boot_silence < timeouts.boot
