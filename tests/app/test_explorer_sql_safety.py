"""The explorer's SQL page under hostile queries: refused with a message, and the app stays up."""

from __future__ import annotations

from pathlib import Path

from tests.app.conftest import open_app


def _run(at, sql: str):  # type: ignore[no-untyped-def]
    at.text_area(key="sql_text").set_value(sql)
    at.button(key="sql_run").click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_console_survives_memory_bombs_and_write_attempts(explorer_db: Path, tmp_path: Path) -> None:
    at = open_app(explorer_db, "sql")
    leak = tmp_path / "leak.csv"
    for sql, words in [
        ("SELECT list(a.range * b.range) FROM range(30000) a, range(30000) b", "memory limit 1GB"),
        ("SELECT repeat('x', 2000000000)", "memory limit 1GB"),
        (f"COPY (SELECT * FROM embeddings) TO '{leak}'", "COPY reads or writes files"),
        ("EXPLAIN ANALYZE DROP VIEW embeddings", "EXPLAIN is allowed only of one SELECT"),
        ("SELECT * FROM read_text('/etc/hostname')", "cannot read or write files"),
        ("ATTACH ':memory:' AS m", "ATTACH"),
    ]:
        _run(at, sql)
        assert at.error and words in at.error[0].value, (sql, [e.value for e in at.error])
        _run(at, "SELECT count(*) AS n FROM embeddings")  # the same session keeps working
        assert not at.error and int(at.dataframe[0].value["n"][0]) == 369, sql
    assert not leak.exists()
