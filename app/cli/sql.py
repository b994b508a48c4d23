"""``earthvec sql DB "SELECT ..."``: DuckDB SQL over embeddings, labels and predictions.

Read-only by default (safe for SQL you did not write): the statement runs in a sandboxed
worker process (:mod:`index.sql_worker`) that sees only the database's views, with a row,
time and memory limit. ``--allow-files`` runs full DuckDB in this process instead (read
your own CSV files, ``COPY ... TO`` an export) under the time limit only.
"""

from __future__ import annotations

import argparse

HELP = "Run DuckDB SQL over the embeddings, labels and predictions."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec sql``."""
    p.add_argument("db", help="database folder (built by earthvec build)")
    p.add_argument(
        "query",
        help="one SQL statement; views: embeddings, labels, predictions; "
        "functions: h3_parent, h3_lat, h3_lon, h3_to_string, h3_from_string, h3_resolution",
    )
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    p.add_argument("--limit", type=int, default=10_000, help="print at most this many rows (default 10000)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--read-only",
        dest="allow_files",
        action="store_false",
        help="(the default) one SELECT over the database's views in a sandboxed process: no other "
        "file, network, extension or setting; memory and time limited",
    )
    mode.add_argument(
        "--allow-files",
        dest="allow_files",
        action="store_true",
        help="trusted SQL: full DuckDB in this process (read other files, COPY ... TO, CREATE); "
        "only for SQL you wrote",
    )
    p.set_defaults(allow_files=False)
    p.add_argument("--timeout", type=float, default=300.0, help="stop the query after this many seconds "
                   "(default 300; 0: no limit)")
    p.add_argument("--memory-limit", default="4GB", help="memory of a read-only query (default 4GB)")
    p.add_argument("--threads", type=int, default=None, help="DuckDB threads of a read-only query "
                   "(default: all CPUs)")


def unique_names(names: list[str]) -> list[str]:
    """Column names made unique the way DuckDB does it (``x``, ``x_1``, ``x_2`` ...)."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}_{k}")
    return out


def run(args: argparse.Namespace) -> int:
    """Run the statement and print its result."""
    import sys

    from app.cli.similar import print_frame
    from embedder.errors import QueryError
    from index.sql_guard import Limits

    if args.limit < 1:
        raise QueryError(f"--limit {args.limit}: give a positive number of rows")
    if args.timeout < 0:
        raise QueryError(f"--timeout {args.timeout:g}: give seconds (0: no limit)")
    import os

    threads = args.threads if args.threads is not None else max(1, os.cpu_count() or 1)
    limits = Limits(args.memory_limit, threads, args.timeout or None, args.limit)
    if args.allow_files:
        from index.sql import connect
        from index.sql_guard import run_limited

        table, cut = run_limited(connect(args.db), args.query, limits, check=False)
    else:
        from index.sql_worker import SqlWorker

        with SqlWorker(args.db, limits) as worker:
            table, cut = worker.query(args.query)
    df = table.to_pandas()
    df.columns = unique_names([str(c) for c in df.columns])  # SQL may repeat a name
    for col in df.columns:  # fixed-size arrays (embeddings) print shortly
        if len(df) and hasattr(df[col].iloc[0], "__len__") and not isinstance(df[col].iloc[0], str | bytes):
            df[col] = df[col].map(lambda v: list(v) if v is not None else None)
    print_frame(df, args.format)
    if cut:
        print(f"(output cut at {args.limit} rows; raise --limit to see more)", file=sys.stderr)
    return 0
