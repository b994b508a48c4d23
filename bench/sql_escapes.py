"""SQL escape attempts against read-only SQL, and the table ``python -m bench.bad_input`` prints.

Each case is ``(name, SQL, words the refusal must hold, whether DuckDB's sandbox alone stops
it)``; ``{tmp}`` is a scratch folder that must stay empty, ``{db}`` the database folder and
``{shard}`` one of its Parquet files. ``tests/index/test_sql_escape.py`` asserts every case;
:func:`escape_table` runs them all (plus the time, row and memory limits) through a
:class:`index.sql_worker.SqlWorker` and formats the outcome.
"""

from __future__ import annotations

import time
from pathlib import Path

from embedder import contract
from embedder.errors import QueryError
from index.sql_guard import Limits
from index.sql_worker import SqlWorker

LIMITS = Limits(memory="512MB", threads=2, timeout_s=3.0, rows=1000)
"""The worker limits of the escape tests (small, so the limit cases are quick)."""

ESCAPES: list[tuple[str, str, str, bool]] = [
    ("copy_to", "COPY (SELECT * FROM embeddings) TO '{tmp}/leak.csv'", "COPY reads or writes files", False),
    (
        "copy_to_in_subquery_cte",
        "WITH x AS (SELECT 1) SELECT * FROM x; COPY x TO '{tmp}/leak2.csv'",
        "give one statement",
        False,
    ),
    ("read_csv_passwd", "SELECT * FROM read_csv('/etc/passwd', sep=':')", "cannot read or write files", True),
    ("read_parquet_http", "SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')", "cannot read", True),
    ("read_text", "SELECT * FROM read_text('/etc/hostname')", "cannot read or write files", True),
    ("read_blob_db_sidecar", "SELECT * FROM read_blob('{db}/build.json')", "cannot read or write", True),
    ("glob_root", "SELECT * FROM glob('/*')", "cannot read or write files", True),
    ("replacement_scan", "SELECT * FROM '/etc/passwd'", "cannot read files by name", True),
    ("path_traversal", "SELECT * FROM read_csv('{shard}/../../../../../../etc/passwd')", "cannot read", True),
    (
        "parquet_glob_in_db",
        "SELECT count(*) FROM read_parquet('{db}/embeddings/*/*.parquet')",
        "cannot read",
        True,
    ),
    ("attach_file", "ATTACH '{tmp}/other.duckdb' AS other", "ATTACH opens another database", False),
    ("attach_memory", "ATTACH ':memory:' AS scratch", "ATTACH", False),
    ("install", "INSTALL httpfs", "extensions", False),
    ("load", "LOAD httpfs", "extensions", True),
    ("load_path", "LOAD '{tmp}/evil.duckdb_extension'", "extensions", True),
    ("set_external_access", "SET enable_external_access = true", "SET/RESET/USE/PRAGMA x = y changes", True),
    ("set_lock_configuration", "SET lock_configuration = false", "settings", True),
    ("reset_lock_configuration", "RESET lock_configuration", "settings", True),
    ("set_memory_limit", "SET memory_limit = '100GB'", "settings", True),
    ("set_allowed_directories", "SET allowed_directories = ['/']", "settings", True),
    ("set_temp_directory", "SET temp_directory = '{tmp}/spill'", "settings", True),
    ("pragma_threads", "PRAGMA threads = 64", "PRAGMA", True),
    ("pragma_database_list", "PRAGMA database_list", "PRAGMA changes or reads settings", False),
    (
        "enable_logging_to_file",
        "SELECT * FROM enable_logging(storage='file', storage_path='{tmp}/log')",
        "locked",
        True,
    ),
    ("enable_profiling", "SELECT * FROM enable_profiling()", "locked", True),
    ("create_table", "CREATE TABLE t AS SELECT * FROM embeddings", "CREATE makes tables", False),
    ("create_secret", "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", "CREATE", True),
    ("drop_view", "DROP VIEW embeddings", "DROP removes views", False),
    (
        "explain_analyze_drop",
        "EXPLAIN ANALYZE DROP VIEW embeddings",
        "EXPLAIN is allowed only of one SELECT",
        False,
    ),
    ("explain_analyze_create", "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1", "EXPLAIN", False),
    ("export_database", "EXPORT DATABASE '{tmp}/export'", "EXPORT DATABASE writes files", True),
    ("call", "CALL duckdb_settings()", "CALL runs a procedure", False),
    ("set_variable", "SET VARIABLE x = 1", "settings", False),
    ("multiple_statements", "SELECT 1; DROP VIEW embeddings", "give one statement, not 2", False),
    ("getenv", "SELECT getenv('HOME')", "getenv does not exist", True),
    ("python_replacement_scan", "SELECT * FROM os", "does not exist", True),
    ("empty", "  -- nothing\n", "the query is empty", False),
]


LIMIT_CASES: list[tuple[str, str]] = [
    ("past_time_limit", "SELECT count(*) FROM range(100000000000) a WHERE a.range % 7 = 3"),
    ("huge_cross_join", "SELECT list(a.range * b.range) FROM range(30000) a, range(30000) b"),
    ("repeat_2gb_string", "SELECT repeat('x', 2000000000)"),
    ("past_row_limit", "SELECT * FROM range(1000000) a, range(1000000) b"),
    ("huge_values_within_row_limit", "SELECT repeat('x', 100000000) AS s FROM range(4)"),
]
"""Resource cases: stopped by the time or memory limit, or cut at the row limit."""


def fill(sql: str, tmp: Path, db: Path) -> str:
    """The case's SQL with its placeholders filled in."""
    return sql.format(tmp=tmp, db=db, shard=contract.embedding_files(db)[0])


def escape_table(db: Path, tmp: Path) -> str:
    """Run every case through one worker on ``db``; one row per case (refused?, message)."""
    rows = [f"{'case':28s} {'outcome':9s} {'s':>5s}  message"]
    with SqlWorker(db, LIMITS) as worker:
        for name, sql, _words, _alone in ESCAPES:
            rows.append(_row(worker, name, fill(sql, tmp, db)))
        for name, sql in LIMIT_CASES:
            rows.append(_row(worker, name, sql))
        n = worker.query("SELECT count(*) AS n FROM embeddings")[0].column("n")[0].as_py()
    leaked = sorted(p.name for p in tmp.iterdir())
    rows.append(
        f"{len(ESCAPES) + len(LIMIT_CASES)} cases; the worker still answers ({n} rows); "
        f"files written: {leaked or 'none'}"
    )
    return "\n".join(rows)


def _row(worker: SqlWorker, name: str, sql: str) -> str:
    t0 = time.monotonic()
    try:
        table, cut = worker.query(sql)
        outcome, msg = ("cut" if cut else "ANSWERED"), f"{table.num_rows} rows"
    except QueryError as exc:
        outcome, msg = "refused", str(exc)
    msg = msg if len(msg) <= 140 else msg[:137] + "..."
    return f"{name:28s} {outcome:9s} {time.monotonic() - t0:5.1f}  {msg}"
