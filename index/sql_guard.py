"""Guards for untrusted SQL: DuckDB's own sandbox, one read-only statement, limits, clear errors.

Three layers, each enough on its own for file access:

1. :func:`lock_down` turns DuckDB's external access off after the views are made (only the
   database's own files stay readable through ``allowed_paths``), forbids extension
   installing and loading, caps memory and threads, disables spilling to disk, sets
   DuckDB's own ``max_execution_time`` where the version has it, then locks the
   configuration so no ``SET``/``RESET``/``PRAGMA`` can undo any of it.
2. :func:`check_statement` accepts exactly one ``SELECT`` (``WITH``, ``DESCRIBE``, ``SHOW``,
   ``SUMMARIZE``, ``VALUES``, ``FROM ...``) or an ``EXPLAIN`` of one, judged by DuckDB's
   parser rather than by string matching, and says why anything else is refused.
3. :mod:`index.sql_worker` runs the statement in a child process with an address-space
   and a file-size limit of 0 bytes, so scalar functions that allocate outside DuckDB's
   buffer manager (``repeat('x', 2000000000)``) or a crash cannot take the caller down.

:func:`run_limited` runs a checked statement with a row cap and a wall-clock limit (a timer
thread calls ``con.interrupt()``), and :func:`friendly_error` turns DuckDB's exceptions into
one line naming the problem and the fix.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from embedder.errors import EarthvecError, QueryError

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in a size such as ``512MB``, ``2GB`` or ``1.5GiB`` (DuckDB's units).

    Raises:
        QueryError: not a number with a known unit.
    """
    m = _SIZE.match(str(text))
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise QueryError(f"memory limit {text!r} is not a size; write e.g. 512MB, 2GB or 1.5GiB")
    n = int(float(m.group(1)) * _UNITS[unit])
    if n < 64 * 2**20:
        raise QueryError(f"memory limit {text!r} is too small to run a query; give at least 64MB")
    return n


@dataclass(frozen=True)
class Limits:
    """What one untrusted statement may use.

    Attributes:
        memory: DuckDB ``memory_limit`` (e.g. ``"1GB"``); the worker process also gets an
            address-space limit of its start size plus this plus :data:`HEADROOM_BYTES`.
        threads: DuckDB worker threads.
        timeout_s: wall-clock limit of one statement (None: none).
        rows: most rows returned (the rest is cut, and the result says so).
    """

    memory: str = "2GB"
    threads: int = 2
    timeout_s: float | None = None
    rows: int = 10_000

    def __post_init__(self) -> None:
        parse_size(self.memory)
        if self.threads < 1:
            raise QueryError(f"threads {self.threads}: give at least 1")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise QueryError(f"time limit {self.timeout_s:g} s: give a positive number of seconds")
        if self.rows < 1:
            raise QueryError(f"row limit {self.rows}: give a positive number of rows")


HEADROOM_BYTES = 1 << 30
"""Address space a worker may use beyond its DuckDB memory limit (results, Arrow, Python)."""

_OPTIONAL = (
    "allow_community_extensions",
    "allow_persistent_secrets",
    "allow_extension_repositories",
    "max_temp_directory_size",
    "max_execution_time",
    "autoinstall_known_extensions",
    "autoload_known_extensions",
)


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


def lock_down(con: duckdb.DuckDBPyConnection, allowed: Sequence[Path], limits: Limits) -> None:
    """Sandbox ``con``: only the files in ``allowed`` stay readable; nothing can be changed back.

    Call it after every view is created. Settings this DuckDB version lacks are skipped
    except the essential ones (external access, allowed paths, lock), which must exist.
    """
    have = {r[0] for r in con.execute("SELECT name FROM duckdb_settings()").fetchall()}
    settings: list[tuple[str, object]] = [
        ("autoinstall_known_extensions", False),
        ("autoload_known_extensions", False),
        ("allow_community_extensions", False),
        ("allow_persistent_secrets", False),
        ("allow_extension_repositories", "forbidden"),
        ("temp_directory", ""),  # no spilling: a query needing more memory fails cleanly
        ("max_temp_directory_size", "0B"),
        ("memory_limit", limits.memory),
        ("threads", limits.threads),
        ("allowed_paths", [str(Path(p).resolve()) for p in allowed]),
        ("allowed_directories", []),
    ]
    if limits.timeout_s is not None:
        settings.append(("max_execution_time", max(1, int(limits.timeout_s * 1000))))
    for name, value in settings:
        if name not in have and name in _OPTIONAL:
            continue
        try:
            con.execute(f"SET {name} = {_literal(value)}")
        except duckdb.Error:
            if name not in _OPTIONAL:  # a startup-only option on some versions is fine to skip
                raise
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+|\([^()]*\)\s*)?", re.IGNORECASE)

_REFUSED: dict[str, str] = {
    "COPY": "COPY reads or writes files",
    "EXPORT": "EXPORT DATABASE writes files",
    "COPY_DATABASE": "COPY FROM DATABASE writes a database",
    "ATTACH": "ATTACH opens another database",
    "DETACH": "DETACH changes the attached databases",
    "LOAD": "INSTALL/LOAD adds extensions (the H3 helpers are built in)",
    "EXTENSION": "INSTALL/LOAD adds extensions (the H3 helpers are built in)",
    "SET": "SET/RESET/USE/PRAGMA x = y changes settings, which are locked",
    "VARIABLE_SET": "SET VARIABLE changes the session",
    "PRAGMA": "PRAGMA changes or reads settings, which are locked",
    "CALL": "CALL runs a procedure (write SELECT * FROM f(...) instead)",
    "CREATE": "CREATE makes tables or views (use WITH ... AS (...) SELECT instead)",
    "CREATE_FUNC": "CREATE MACRO/FUNCTION changes the session",
    "DROP": "DROP removes views",
    "ALTER": "ALTER changes views",
    "INSERT": "INSERT writes rows",
    "UPDATE": "UPDATE writes rows",
    "DELETE": "DELETE removes rows",
    "MERGE_INTO": "MERGE INTO writes rows",
    "MULTI": "this statement runs several statements (a PIVOT without an IN list?)",
}


def _kind(stmt: object) -> str:
    return str(getattr(stmt, "type", "")).split(".")[-1]


def check_statement(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Accept one read-only statement (``SELECT`` or ``EXPLAIN [ANALYZE] SELECT``).

    Raises:
        QueryError: empty, several statements, unparsable, or not a read-only query; the
            message names the statement and what to do instead.
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"SQL failed: {first_line(exc)}") from exc
    if not statements:
        raise QueryError("the query is empty; write one SELECT statement")
    if len(statements) > 1:
        kinds = ", ".join(_kind(s) for s in statements)
        raise QueryError(
            f"give one statement, not {len(statements)} ({kinds}): read-only SQL runs one SELECT "
            "(or EXPLAIN) at a time; remove the ';' between them"
        )
    kind = _kind(statements[0])
    if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs its statement: it must be a SELECT too
        inner = _EXPLAIN.sub("", sql, count=1)
        try:
            inner_kinds = [_kind(s) for s in con.extract_statements(inner)] if inner != sql else []
        except duckdb.Error:
            inner_kinds = []
        if inner_kinds != ["SELECT"]:
            raise QueryError(
                "EXPLAIN is allowed only of one SELECT (EXPLAIN ANALYZE runs the statement); "
                "read-only SQL runs one SELECT (or EXPLAIN SELECT)"
            )
        return
    if kind != "SELECT":
        why = _REFUSED.get(kind, f"a {kind} statement is not a query")
        raise QueryError(
            f"{why}: read-only SQL runs one SELECT (or EXPLAIN) over the views embeddings, labels, "
            "predictions; use earthvec sql --allow-files on your own machine for anything else"
        )


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, stripped."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


_PATH = re.compile(r'"([^"]+)"')


def friendly_error(exc: BaseException, limits: Limits | None = None, *, sandboxed: bool = True) -> QueryError:
    """One line for a DuckDB error: what was refused or went wrong, and the fix."""
    msg = first_line(exc)
    if isinstance(exc, duckdb.InterruptException) or "Interrupted" in msg or "execution time" in msg:
        t = f" {limits.timeout_s:g} s" if limits and limits.timeout_s else ""
        return QueryError(
            f"the query ran past the time limit{t} and was stopped; filter (WHERE), aggregate or "
            "LIMIT it, or give earthvec sql a longer --timeout"
        )
    if isinstance(exc, duckdb.OutOfMemoryException | MemoryError | pa.ArrowMemoryError) or msg.startswith(
        "Out of Memory"
    ):
        m = f" {limits.memory}" if limits else ""
        return QueryError(
            f"the query needs more than the memory limit{m} and was stopped ({msg}); filter "
            "(WHERE), aggregate or LIMIT it, or give earthvec sql a larger --memory-limit"
        )
    if (
        isinstance(exc, duckdb.PermissionException)
        or "disabled by configuration" in msg
        or "disabled through configuration" in msg
    ):
        what = _PATH.search(msg)
        target = f"{what.group(1)}: " if what else ""
        return QueryError(
            f"{target}read-only SQL cannot read or write files outside the database, reach the "
            f"network or load extensions ({msg}); query the views embeddings, labels, predictions, "
            "or use earthvec sql --allow-files on your own machine"
        )
    if "configuration has been locked" in msg:
        return QueryError(f"settings are locked in read-only SQL ({msg}); remove the SET/PRAGMA")
    by_name = re.search(r"Table with name \S*[/\\.]", msg)
    if sandboxed and isinstance(exc, duckdb.CatalogException) and by_name:
        return QueryError(
            f"SQL failed: {msg} (read-only SQL cannot read files by name; query the views "
            "embeddings, labels, predictions)"
        )
    return QueryError(f"SQL failed: {msg}")


def fetch_limited(con: duckdb.DuckDBPyConnection, sql: str, limit: int | None) -> tuple[pa.Table, bool]:
    """Run one statement and fetch at most ``limit`` rows (DuckDB's errors pass through).

    Returns:
        The result table and whether rows were cut off by ``limit``.
    """
    rel = con.sql(sql)
    if rel is None:  # a statement without a result (SET, CREATE ...)
        return pa.table({}), False
    reader = rel.to_arrow_reader(min(limit or 100_000, 100_000))
    batches, n, cut = [], 0, False
    for b in reader:
        if limit is not None and n + b.num_rows > limit:
            batches.append(b.slice(0, limit - n))
            cut = True
            break
        batches.append(b)
        n += b.num_rows
    return pa.Table.from_batches(batches, schema=reader.schema), cut


def run_limited(
    con: duckdb.DuckDBPyConnection, sql: str, limits: Limits, *, check: bool = True
) -> tuple[pa.Table, bool]:
    """Run one statement with the row and time limits of ``limits``.

    ``check=False`` (trusted SQL, ``earthvec sql --allow-files``) runs any statement.

    A timer thread interrupts the query after ``limits.timeout_s`` (DuckDB's own
    ``max_execution_time``, set by :func:`lock_down`, is a second guard).

    Returns:
        The result (at most ``limits.rows`` rows) and whether rows were cut off.

    Raises:
        QueryError: a refused statement, a DuckDB error, the time or the memory limit.
    """
    if check:
        check_statement(con, sql)
    timer = None
    fired = threading.Event()
    if limits.timeout_s is not None:

        def stop() -> None:
            fired.set()
            con.interrupt()

        timer = threading.Timer(limits.timeout_s, stop)
        timer.daemon = True
        timer.start()
    try:
        return fetch_limited(con, sql, limits.rows)
    except EarthvecError:
        raise
    except (duckdb.Error, pa.ArrowException, MemoryError) as exc:  # Arrow re-raises DuckDB's errors
        if fired.is_set():
            raise friendly_error(duckdb.InterruptException("Interrupted!"), limits) from exc
        raise friendly_error(exc, limits, sandboxed=check) from exc
    finally:
        if timer is not None:
            timer.cancel()
