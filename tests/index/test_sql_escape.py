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

from bench.sql_escapes import ESCAPES, LIMITS, fill
from embedder import contract
from embedder.errors import QueryError
from index.sql import connect
from index.sql_guard import Limits, check_statement, parse_size, run_limited
from index.sql_worker import SqlWorker


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


@pytest.mark.parametrize(("case", "sql", "words", "duckdb_alone"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_escape_refused(
    worker: SqlWorker, sdb: Path, tmp_path: Path, case: str, sql: str, words: str, duckdb_alone: bool
) -> None:
    before = _digest(sdb)
    q = fill(sql, tmp_path, sdb)
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


def test_result_size_is_capped(worker: SqlWorker) -> None:
    with pytest.raises(QueryError, match=r"the result is \d+ MB, more than the 256 MB|memory limit 512MB"):
        worker.query("SELECT repeat('x', 100000000) AS s FROM range(4)")  # 4 rows, 400 MB
    big = "SELECT repeat('x', 30000000) AS s FROM range(10)"  # 300 MB: fits in memory, too big to return
    with SqlWorker(worker.db, LIMITS) as fresh, pytest.raises(QueryError, match="the result is 286 MB"):
        fresh.query(big)
    t, cut = worker.query("SELECT repeat('x', 1000) AS s FROM range(4)")
    assert t.num_rows == 4 and not cut and len(t.column("s")[0].as_py()) == 1000
