"""``python -m bench.run``: run every benchmark (today: the search benchmark)."""

from __future__ import annotations

import sys

from bench.search_bench import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
