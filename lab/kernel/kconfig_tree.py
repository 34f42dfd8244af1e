"""What a source tree's Kconfig files say about symbols: which exist, and what each depends on.

Only enough of the Kconfig language to name an unmet dependency in an error message
("CONFIG_X depends on CONFIG_Y, not set") and to tell a misspelt symbol from a dropped
one: `config`/`menuconfig` blocks, their `depends on` lines, and the conditions of the
enclosing `if` and `menu ... depends on` blocks. Selects and defaults are not followed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# A symbol that must be set for the expression to hold: not negated, not a number.
_SYMBOL = re.compile(r"(?<![!\w])[A-Z0-9_]*[A-Z_][A-Z0-9_]*\b")
_HELP = re.compile(r"^\s*(---)?help(---)?\s*$")
_ENTRY = re.compile(r"^\s*(menu)?config\s+([A-Za-z0-9_]+)\s*$")
_DEPENDS = re.compile(r"^\s*depends\s+on\s+(.+?)\s*$")
_IF = re.compile(r"^\s*if\s+(.+?)\s*$")
_MENU = re.compile(r"^\s*menu\s+\"")
_END_IF = re.compile(r"^\s*endif\b")
_END_MENU = re.compile(r"^\s*endmenu\b")
_OTHER_BLOCK = re.compile(r"^\s*(choice|endchoice|comment|source|mainmenu)\b")
_CONSTANTS = {"y", "m", "n"}


@dataclass
class KconfigIndex:
    defined: set[str] = field(default_factory=set)  # CONFIG_ names
    depends: dict[str, list[str]] = field(default_factory=dict)  # CONFIG_X -> expressions

    @staticmethod
    def _positive_symbols(expression: str) -> list[str]:
        names = _SYMBOL.findall(re.sub(r'"[^"]*"', "", expression.split("#", 1)[0]))
        return [f"CONFIG_{n}" for n in names if n not in _CONSTANTS]

    def dependency_symbols(self, symbol: str) -> list[str]:
        names: list[str] = []
        for expression in self.depends.get(symbol, []):
            names.extend(n for n in self._positive_symbols(expression) if n not in names)
        return names

    def unmet(self, symbol: str, final: dict[str, str]) -> tuple[str, ...]:
        """Dependencies of symbol that are off in final, an approximation: `!X` terms are left
        out, and an expression with `||` is unmet only when none of its symbols is on."""
        unmet: list[str] = []
        for expression in self.depends.get(symbol, []):
            known = [n for n in self._positive_symbols(expression) if n in self.defined]
            off = [n for n in known if final.get(n, "n") == "n"]
            if "||" in expression:
                # With a negated alternative (`!X || Y`) the expression may hold anyway.
                if known and len(off) == len(known) and "!" not in expression:
                    unmet.append(" or ".join(off))
            else:
                unmet.extend(n for n in off if n not in unmet)
        return tuple(unmet)


def parse_kconfig(text: str, index: KconfigIndex) -> None:
    """Add one Kconfig file's entries to index."""
    enclosing: list[str | None] = []  # one per open if/menu: its condition, if any
    current: str | None = None
    menu_open = False  # the `depends on` lines right after `menu "..."` guard the menu
    help_indent: int | None = None  # inside help text: its indentation, once known
    in_help = False
    for line in _logical_lines(text):
        if in_help:
            indent = len(line.expandtabs()) - len(line.expandtabs().lstrip())
            if not line.strip():
                continue
            if indent > 0 and help_indent is None:
                help_indent = indent
                continue
            if indent > 0 and help_indent is not None and indent >= help_indent:
                continue
            in_help = False  # a line at column 0, or less indented, ends the help text
        if _HELP.match(line):
            in_help, help_indent = True, None
        elif entry := _ENTRY.match(line):
            current = f"CONFIG_{entry[2]}"
            menu_open = False
            index.defined.add(current)
            index.depends.setdefault(current, []).extend(c for c in enclosing if c)
        elif depends := _DEPENDS.match(line):
            if menu_open and enclosing:
                enclosing[-1] = depends[1] if enclosing[-1] is None else f"{enclosing[-1]} && {depends[1]}"
            elif current:
                index.depends[current].append(depends[1])
        elif condition := _IF.match(line):
            enclosing.append(condition[1])
            current, menu_open = None, False
        elif _MENU.match(line):
            enclosing.append(None)
            current, menu_open = None, True
        elif _END_IF.match(line) or _END_MENU.match(line):
            if enclosing:
                enclosing.pop()
            current, menu_open = None, False
        elif _OTHER_BLOCK.match(line):
            current, menu_open = None, False


def _logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined."""
    return text.replace("\\\n", " ").splitlines()


def scan(tree: Path, arch: str = "x86") -> KconfigIndex:
    """Every Kconfig file of the tree, other architectures' left out."""
    index = KconfigIndex()
    for path in sorted(tree.rglob("Kconfig*")):
        relative = path.relative_to(tree).parts
        if relative[0] == "arch" and len(relative) > 2 and relative[1] != arch:
            continue
        if relative[0] in ("tools", "Documentation", "scripts") or not path.is_file():
            continue
        parse_kconfig(path.read_text(errors="replace"), index)
    return index
