"""Small file helpers every stage uses: a JSON file written whole or not at all, a safe name."""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomic(path: Path, data: object) -> None:
    """Write then rename: a reader (a matrix watching a run, a killed lab) never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def safe_name(text: str, limit: int) -> str:
    """A file-name piece from anything a user or a kernel said: letters, digits, '.' and '-' only."""
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in text)[:limit]
