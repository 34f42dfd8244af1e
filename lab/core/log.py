"""The one progress logger: a callable taking a line, and the one that writes it to stderr."""
from __future__ import annotations

import sys
from typing import Callable

Log = Callable[[str], None]


def stderr(message: str) -> None:
    """What `lab` says about its own work goes to stderr, so stdout stays the result."""
    print(message, file=sys.stderr, flush=True)
