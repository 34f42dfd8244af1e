"""Kconfig fragments: parse, merge the way merge_config.sh does, and check the result.

Pure functions over text, so the merge and the check are unit-tested without a tree.
The check is kunit.py's: every symbol a fragment asked for must have that value in the
final .config, because Kconfig silently drops what its dependencies do not allow.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.errors import UserError

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


@dataclass(frozen=True)
class Setting:
    symbol: str  # CONFIG_FOO
    value: str  # y, m, a number, a quoted string; "n" for "# CONFIG_FOO is not set"
    origin: str  # fragment name:line, for messages

    def line(self) -> str:
        return f"# {self.symbol} is not set" if self.value == "n" else f"{self.symbol}={self.value}"


@dataclass(frozen=True)
class Override:
    old: Setting
    new: Setting


@dataclass(frozen=True)
class Merged:
    settings: dict[str, Setting]  # in first-seen order; the last fragment's value wins
    overrides: list[Override]

    def render(self) -> str:
        return "".join(s.line() + "\n" for s in self.settings.values())


def parse_fragment(text: str, name: str) -> list[Setting]:
    """The settings of one fragment; anything that is not a setting or a comment is an error."""
    settings = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        origin = f"{name}:{number}"
        if set_match := _SET.match(line):
            value = set_match[2]
            settings.append(Setting(set_match[1], "n" if value == "n" else value, origin))
        elif unset_match := _UNSET.match(line):
            settings.append(Setting(unset_match[1], "n", origin))
        elif line and not line.startswith("#"):
            raise UserError(f"fragment {origin}: not a Kconfig setting: {line!r}")
    return settings


def merge(fragments: list[list[Setting]]) -> Merged:
    """Later fragments override earlier ones, symbol by symbol (merge_config.sh's rule)."""
    settings: dict[str, Setting] = {}
    overrides = []
    for fragment in fragments:
        for setting in fragment:
            old = settings.get(setting.symbol)
            if old is not None and old.value != setting.value:
                overrides.append(Override(old, setting))
            settings[setting.symbol] = setting
    return Merged(settings, overrides)


def parse_config(text: str) -> dict[str, str]:
    """A .config as {CONFIG_X: value}; `# CONFIG_X is not set` becomes "n"."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if set_match := _SET.match(line):
            values[set_match[1]] = set_match[2]
        elif unset_match := _UNSET.match(line):
            values[unset_match[1]] = "n"
    return values


@dataclass(frozen=True)
class Dropped:
    """A symbol a fragment asked for that the final config does not have as asked."""

    wanted: Setting
    got: str  # "n" when absent
    unmet: tuple[str, ...] = ()  # dependencies that are not set, when known

    def describe(self) -> str:
        text = f"{self.wanted.symbol}={self.wanted.value} ({self.wanted.origin}) is {self.got} in the final config"
        if self.unmet:
            text += f": it depends on {', '.join(self.unmet)}, not set"
        return text


def check(requested: list[Setting], final: dict[str, str]) -> list[Dropped]:
    dropped = []
    for wanted in requested:
        got = final.get(wanted.symbol, "n")
        if got != wanted.value:
            dropped.append(Dropped(wanted, got))
    return dropped
