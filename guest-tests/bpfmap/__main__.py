"""``python3 -m bpfmap ...``: the bpftool-compatible command line (see :mod:`bpfmap.cli`)."""

import sys

from .cli import main

sys.exit(main())
