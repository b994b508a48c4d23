"""``earthvec sql DB "SELECT ..."``: DuckDB SQL over embeddings, labels and predictions."""

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
    p.add_argument(
        "--read-only",
        action="store_true",
        help="forbid reading or writing any file outside the database",
    )


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
    from index.sql import connect, run_query

    if args.limit < 1:
        raise QueryError(f"--limit {args.limit}: give a positive number of rows")
    con = connect(args.db, read_only=args.read_only)
    table, cut = run_query(con, args.query, limit=args.limit)
    df = table.to_pandas()
    df.columns = unique_names([str(c) for c in df.columns])  # SQL may repeat a name
    for col in df.columns:  # fixed-size arrays (embeddings) print shortly
        if len(df) and hasattr(df[col].iloc[0], "__len__") and not isinstance(df[col].iloc[0], str | bytes):
            df[col] = df[col].map(lambda v: list(v) if v is not None else None)
    print_frame(df, args.format)
    if cut:
        print(f"(output cut at {args.limit} rows; raise --limit to see more)", file=sys.stderr)
    return 0
