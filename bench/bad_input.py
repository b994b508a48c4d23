"""The bad-input table: hostile and broken input through the real ``earthvec`` CLI.

``python -m bench.bad_input`` makes every bad file from real files in ``data/`` (in a
temporary folder), runs each case as ``python -m app.cli.main CMD ...`` in a subprocess and
prints one row per case: exit code, whether stderr is one ``earthvec CMD: error: ...`` line
without a traceback, whether the database folder is unchanged (or not created), and the
message. A case that should work (a scene in a geographic CRS, seeds with a byte-order
mark, a box across the antimeridian) must exit 0 and pass its own check instead.
``tests/bench/test_bad_input.py`` asserts the same for every case.

Then it prints the SQL escape table of :mod:`bench.sql_escapes` (``--no-sql`` skips it).
Options: ``--only NAME[,NAME]`` (cases whose name contains one of them), ``--keep`` (leave
the files), ``--slow`` (also the slow cases, e.g. 10^6 seed rows), ``--jobs N``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from bench.bad_cases import CASES
from bench.bad_runner import XFAIL, Ctx, format_table, run_cases


def main(argv: list[str] | None = None) -> int:
    """Print the bad-input table; exit 1 if a case fails."""
    p = argparse.ArgumentParser(prog="python -m bench.bad_input", description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated parts of case names")
    p.add_argument("--slow", action="store_true", help="also run the slow cases")
    p.add_argument("--keep", action="store_true", help="keep the temporary files")
    p.add_argument("--jobs", type=int, default=2, help="cases at a time (default 2)")
    p.add_argument("--no-sql", action="store_true", help="skip the SQL escape table")
    a = p.parse_args(argv)
    want = [w for w in (a.only or "").split(",") if w]
    cases = [c for c in CASES if (a.slow or not c.slow) and (not want or any(w in c.name for w in want))]
    if os.name == "posix" and os.geteuid() == 0:
        cases = [c for c in cases if not c.needs_non_root]
    os.environ.setdefault("TQDM_DISABLE", "1")
    root = Path(tempfile.mkdtemp(prefix="earthvec-bad-input-"))
    try:
        ctx = Ctx(root)
        results = run_cases(cases, ctx, jobs=a.jobs)
        print(format_table(results))
        if not a.no_sql and not want:
            from bench.sql_escapes import escape_table

            (root / "sql_scratch").mkdir()
            print("\nread-only SQL (earthvec sql, explorer console):")
            print(escape_table(ctx.db_copy(root / "sql_db"), root / "sql_scratch"))
    finally:
        if a.keep:
            print(f"files kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if all(r.passed for r in results if r.case not in XFAIL) else 1


if __name__ == "__main__":
    raise SystemExit(main())
