"""``python -m bench``: same as ``python -m bench.run``."""

from __future__ import annotations

import sys

from bench.search_bench import main

raise SystemExit(main(sys.argv[1:]))
