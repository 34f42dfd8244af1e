"""One line naming a kernel as a run recorded it (metadata.json's `kernel`), for `lab report` and reproducer.sh.

The identity comes from kernel/acquire.py (a Debian package or a path) and kernel/build.py (a build,
whose source, patches and fragments are stored as JSON strings).
"""
from __future__ import annotations

import json
from collections.abc import Mapping

SHORT = 12  # hash prefix for patches and fragments; the config hash is given in full


def _decoded(value: object) -> object:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _source(value: object) -> str:
    source = _decoded(value)
    if not isinstance(source, dict):
        return str(source)
    rest = [str(v) for k, v in source.items() if k not in ("origin", "spec")]
    return f"{source.get('spec', '?')} ({' '.join(rest)})" if rest else str(source.get("spec", "?"))


def _named_hashes(value: object) -> str:
    items = _decoded(value)
    if not isinstance(items, list):
        return str(items)
    if not items:
        return "none"
    return ", ".join(f"{item.get('name', '?')}@{str(item.get('sha256', ''))[:SHORT]}" if isinstance(item, dict)
                     else str(item) for item in items)


def describe(kernel: Mapping[str, object]) -> str:
    """e.g. `6.1.0-28-cloud-amd64 (debian:6.1 = linux-image-6.1.0-28-cloud-amd64-unsigned 6.1.119-1; config sha256 ...)`."""
    origin = kernel.get("origin")
    parts: list[str] = []
    if origin == "debian":
        parts.append(f"{kernel.get('spec', '?')} = {kernel.get('package', '?')} {kernel.get('version', '?')}")
    elif origin == "build":
        parts += [f"build:{kernel.get('build_id', '?')}", f"source {_source(kernel.get('source'))}",
                  f"patches {_named_hashes(kernel.get('patches', '[]'))}",
                  f"fragments {_named_hashes(kernel.get('fragments', '[]'))}"]
    elif origin == "path":
        parts += [str(kernel.get("spec", "?")), f"image sha256 {kernel.get('image_sha256', '?')}"]
    elif origin is not None:
        parts.append(f"origin {origin}")
    parts.append(f"config sha256 {kernel.get('config_sha256') or 'unknown'}")
    return f"{kernel.get('release') or 'unknown release'} ({'; '.join(parts)})"
