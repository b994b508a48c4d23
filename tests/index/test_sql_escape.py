"""Read-only SQL refuses every escape attempt, with a clear message, through every guard.

Each case runs (1) in the sandboxed worker process (what ``earthvec sql`` and the explorer
use), and (2) for the cases DuckDB itself must stop, on a locked read-only connection with
the statement check switched off: the string/parser check is never the only guard. Nothing
may be written anywhere, the database must be byte-for-byte unchanged and the worker must
still answer afterwards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from embedder import contract
from embedder.errors import QueryError
from index.sql import connect
from index.sql_guard import Limits, check_statement, parse_size, run_limited
from index.sql_worker import SqlWorker

LIMITS = Limits(memory="512MB", threads=2, timeout_s=3.0, rows=1000)

# (case, SQL with {tmp} and {db} placeholders, words the message must hold, DuckDB alone stops it)
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


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def sdb(eurosat_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("escape") / "db"
    shutil.copytree(eurosat_db, db)
    return db


@pytest.fixture(scope="module")
def worker(sdb: Path) -> SqlWorker:
    w = SqlWorker(sdb, LIMITS)
    yield w  # type: ignore[misc]
    w.close()


def _fill(sql: str, tmp: Path, db: Path) -> str:
    shard = contract.embedding_files(db)[0]
    return sql.format(tmp=tmp, db=db, shard=shard)


@pytest.mark.parametrize(("case", "sql", "words", "duckdb_alone"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_escape_refused(
    worker: SqlWorker, sdb: Path, tmp_path: Path, case: str, sql: str, words: str, duckdb_alone: bool
) -> None:
    before = _digest(sdb)
    q = _fill(sql, tmp_path, sdb)
    with pytest.raises(QueryError) as err:
        worker.query(q)
    msg = str(err.value)
    assert words in msg, (case, msg)
    assert "\n" not in msg and "Traceback" not in msg
    t, _ = worker.query("SELECT count(*) AS n FROM embeddings")  # the views are intact
    assert t.column("n")[0].as_py() == 369
    assert list(tmp_path.iterdir()) == [] and _digest(sdb) == before, case
    if duckdb_alone:  # DuckDB's own sandbox refuses it even without the statement check
        con = connect(sdb, read_only=True, limits=LIMITS)
        with pytest.raises(QueryError):
            run_limited(con, q, LIMITS, check=False)
        assert list(tmp_path.iterdir()) == [] and _digest(sdb) == before, case


def test_row_limit_cuts_huge_results(worker: SqlWorker) -> None:
    t, cut = worker.query("SELECT * FROM range(1000000) a, range(1000000) b")
    assert t.num_rows == LIMITS.rows and cut
    t, cut = worker.query("SELECT * FROM range(20)", rows=5)
    assert t.num_rows == 5 and cut
    t, cut = worker.query("SELECT * FROM range(1000000)", rows=10**9)  # never above the worker's cap
    assert t.num_rows == LIMITS.rows and cut


def test_time_limit_interrupts_and_worker_answers_again(worker: SqlWorker) -> None:
    start = time.monotonic()
    with pytest.raises(QueryError, match="time limit 3 s"):
        worker.query("SELECT count(*) FROM range(100000000000) a WHERE a.range % 7 = 3")
    assert time.monotonic() - start < LIMITS.timeout_s + 4  # type: ignore[operator]
    with pytest.raises(QueryError, match="time limit 1 s"):
        worker.query("SELECT count(*) FROM range(1000000) a, range(1000000) b", timeout_s=1)
    assert worker.query("SELECT 42 AS x")[0].column("x")[0].as_py() == 42


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT list(a.range * b.range) FROM range(30000) a, range(30000) b",  # huge cross join
        "SELECT repeat('x', 2000000000)",  # allocates outside DuckDB's buffer manager
        "SELECT list_resize([1], 600000000)",
        "SELECT string_agg(range::VARCHAR, ',') FROM range(300000000)",
    ],
    ids=["cross_join_list", "repeat_2gb", "list_resize", "string_agg"],
)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory read from /proc")
def test_memory_limit_holds(worker: SqlWorker, sql: str) -> None:
    with pytest.raises(QueryError, match="memory limit 512MB|time limit"):
        worker.query(sql)
    assert worker.pid is not None
    assert _peak_rss(worker.pid) < parse_size(LIMITS.memory) + (1 << 30)
    assert worker.query("SELECT count(*) AS n FROM embeddings")[0].column("n")[0].as_py() == 369


def test_worker_confines_itself(worker: SqlWorker) -> None:
    if os.name == "posix":
        assert {"file_size", "core"} <= set(worker.confined)
    if Path("/proc/self/status").exists():
        assert "address_space" in worker.confined
        limits = Path(f"/proc/{worker.pid}/limits").read_text()
        fsize = next(line for line in limits.splitlines() if line.startswith("Max file size"))
        assert fsize.split()[3:5] == ["0", "0"], fsize


def test_killed_worker_is_replaced(sdb: Path) -> None:
    with SqlWorker(sdb, LIMITS) as w:
        first = w.pid
        assert first is not None
        threading.Timer(0.5, os.kill, (first, signal.SIGKILL)).start()
        with pytest.raises(QueryError, match="stopped the SQL worker"):
            w.query("SELECT count(*) FROM range(100000000000)")
        t, _ = w.query("SELECT count(*) AS n FROM embeddings")
        assert t.column("n")[0].as_py() == 369 and w.pid != first and w.restarts == 1


def test_statement_check_allows_queries(worker: SqlWorker, sdb: Path) -> None:
    con = connect(sdb, read_only=True, limits=LIMITS)
    for sql in [
        "SELECT 1",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "FROM embeddings LIMIT 1",
        "DESCRIBE embeddings",
        "SUMMARIZE SELECT valid_fraction FROM embeddings",
        "EXPLAIN SELECT count(*) FROM embeddings",
        "EXPLAIN ANALYZE SELECT count(*) FROM embeddings",
        "SELECT ';' AS semicolon",
        "SELECT 1;",
    ]:
        check_statement(con, sql)
        assert worker.query(sql)[0].num_rows >= 1, sql
    # the database's own files stay readable by path
    shard = contract.embedding_files(sdb)[0]
    t, _ = worker.query(f"SELECT count(*) AS n FROM read_parquet('{shard}')")
    assert t.column("n")[0].as_py() > 0


def test_bad_limits_and_missing_database(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="not a size"):
        Limits(memory="lots")
    with pytest.raises(QueryError, match="at least 64MB"):
        Limits(memory="1MB")
    with pytest.raises(QueryError, match="positive number of seconds"):
        Limits(timeout_s=-1)
    with pytest.raises(FileNotFoundError, match="build the database first"):
        SqlWorker(tmp_path / "nodb", LIMITS)
