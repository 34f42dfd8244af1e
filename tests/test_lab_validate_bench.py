"""lab.bench.validate's patch: one comment line where every source shares the context, so the
same patch applies to each (the measurement itself needs real builds and boots)."""
from __future__ import annotations

import pytest

from lab.bench import validate as bench


def lines(*text: str) -> list[str]:
    return [f"{t}\n" for t in text]


def test_the_spot_is_after_a_blank_top_level_line_with_context_shared_by_every_file() -> None:
    old = lines("#include <a>", "", "int a;", "", "int b;", "int c;", "", "static int shared;", "int d;", "int e;", "")
    new = lines("#include <a>", "#include <new>", "", "int a2;", "", "int b;", "int c;", "", "static int shared;",
                "int d;", "int e;", "")
    at = bench._shared_spot([old, new])
    assert old[at] == "static int shared;\n" and old[at - 1] == "\n"


def test_no_shared_spot_is_an_error() -> None:
    with pytest.raises(SystemExit, match="no place"):
        bench._shared_spot([lines("a", "", "b", "c", "d", "e", "f"), lines("x", "", "y", "z", "w", "v", "u")])
