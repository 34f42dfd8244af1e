"""lab.kernelident: one line naming a kernel from the identity a run recorded."""
from __future__ import annotations

import json

from lab.kernel.ident import describe


def test_a_debian_kernel() -> None:
    kernel = {"release": "6.12.57+deb13-cloud-amd64", "origin": "debian", "spec": "debian:6.12",
              "package": "linux-image-6.12.57+deb13-cloud-amd64-unsigned", "version": "6.12.57-1", "config_sha256": "ab" * 32}
    assert describe(kernel) == ("6.12.57+deb13-cloud-amd64 (debian:6.12 = linux-image-6.12.57+deb13-cloud-amd64-unsigned "
                                f"6.12.57-1; config sha256 {'ab' * 32})")


def test_a_built_kernel_names_source_patches_and_fragments() -> None:
    kernel = {"release": "6.1.192", "origin": "build", "build_id": "6.1.192-4191b8b4fb01",
              "source": json.dumps({"origin": "debian", "package": "linux-source-6.1", "spec": "debian:6.1",
                                    "version": "6.1.192-2"}),
              "patches": json.dumps([{"name": "0001-dump.patch", "sha256": "7fe5ee172446" + "0" * 52}]),
              "fragments": "[]", "config_sha256": "3794"}
    assert describe(kernel) == ("6.1.192 (build:6.1.192-4191b8b4fb01; source debian:6.1 (linux-source-6.1 6.1.192-2); "
                                "patches 0001-dump.patch@7fe5ee172446; fragments none; config sha256 3794)")


def test_a_kernel_path_and_a_damaged_record() -> None:
    assert describe({"release": "6.9.0", "origin": "path", "spec": "/k/bzImage", "image_sha256": "ee"}) == (
        "6.9.0 (/k/bzImage; image sha256 ee; config sha256 unknown)")
    # Old or hand-edited records still give a line rather than an exception.
    assert describe({"origin": "build", "source": "not json", "patches": 3}) == (
        "unknown release (build:?; source not json; patches 3; fragments none; config sha256 unknown)")
