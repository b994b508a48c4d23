"""The explorer's SQL console: one read-only statement with a row limit and a time limit."""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa

from embedder.errors import QueryError
from index.sql import run_query

SQL_TIME_LIMIT_S = 10.0
"""Default wall-clock limit of one console query."""


def run_console_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    limit: int = 10_000,
    timeout_s: float = SQL_TIME_LIMIT_S,
) -> tuple[pa.Table, bool]:
    """Run one read-only console statement with a row limit and a time limit.

    Only a single ``SELECT`` (``WITH`` ... ``SELECT``) or ``EXPLAIN`` statement is accepted.
    The connection should come from :func:`index.sql.connect` with ``read_only=True`` (no
    file or network access). A query still running after ``timeout_s`` is interrupted.

    Returns:
        The result (at most ``limit`` rows) and whether rows were cut off.

    Raises:
        QueryError: a rejected statement, a DuckDB error, or the time limit.
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"SQL failed: {str(exc).strip()}") from exc
    allowed = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)
    if len(statements) != 1 or statements[0].type not in allowed:
        kinds = ", ".join(str(s.type).split(".")[-1] for s in statements) or "nothing"
        raise QueryError(
            f"the console runs one SELECT (or EXPLAIN) statement; got {kinds}. "
            "Use earthvec sql for anything else"
        )
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["result"] = run_query(con, sql, limit=limit)
        except Exception as exc:  # noqa: BLE001 - handed back to the caller's thread
            box["error"] = exc

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        con.interrupt()
        t.join(5.0)
        raise QueryError(
            f"the query ran longer than {timeout_s:g} s and was stopped; add a WHERE or "
            "LIMIT, or run it with earthvec sql"
        )
    if "error" in box:
        err = box["error"]
        assert isinstance(err, Exception)
        raise err
    result: tuple[pa.Table, bool] = box["result"]  # type: ignore[assignment]
    return result
