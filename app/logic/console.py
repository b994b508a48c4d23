"""The explorer's SQL console: one read-only statement with row, time and memory limits.

The explorer runs console queries in a :class:`index.sql_worker.SqlWorker` (a child process
with DuckDB's sandbox and operating-system limits): a query that needs too much memory, or
crashes DuckDB, ends that child, never the explorer. A plain read-only connection
(:func:`index.sql.connect` with ``read_only=True``) works too, in this process.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from index.sql_guard import Limits, run_limited
from index.sql_worker import SqlWorker

SQL_TIME_LIMIT_S = 10.0
"""Default wall-clock limit of one console query."""

CONSOLE_LIMITS = Limits(memory="1GB", threads=2, timeout_s=SQL_TIME_LIMIT_S, rows=10_000)
"""Memory, threads, time and rows of one console query."""


def open_console(db: str | Path, limits: Limits = CONSOLE_LIMITS) -> SqlWorker:
    """A sandboxed SQL worker process on ``db`` for the console.

    Raises:
        InputNotFoundError: ``db`` holds no embeddings (and the other errors of
            :func:`index.sql.connect`).
    """
    return SqlWorker(db, limits)


def run_console_query(
    con: duckdb.DuckDBPyConnection | SqlWorker,
    sql: str,
    *,
    limit: int = 10_000,
    timeout_s: float = SQL_TIME_LIMIT_S,
) -> tuple[pa.Table, bool]:
    """Run one read-only console statement with a row limit and a time limit.

    Only a single ``SELECT`` (``WITH`` ... ``SELECT``, ``DESCRIBE``, ``SUMMARIZE``) or an
    ``EXPLAIN`` of one is accepted (:func:`index.sql_guard.check_statement`). A connection
    should come from :func:`index.sql.connect` with ``read_only=True``.

    Returns:
        The result (at most ``limit`` rows) and whether rows were cut off.

    Raises:
        QueryError: a refused statement, a DuckDB error, the time or the memory limit.
    """
    if isinstance(con, SqlWorker):
        return con.query(sql, rows=limit, timeout_s=timeout_s)
    limits = Limits(CONSOLE_LIMITS.memory, CONSOLE_LIMITS.threads, timeout_s, limit)
    return run_limited(con, sql, limits)
