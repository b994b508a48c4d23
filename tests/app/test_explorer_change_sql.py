"""AppTest of the Change and SQL pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from app.logic.change import change_table
from app.logic.rows import load_rows
from tests.app.conftest import click_map, deck, layer, open_app


def test_change_page_maps_similarity_between_dates(change_db: tuple[Path, dict[str, Any]]) -> None:
    db, info = change_db
    at = open_app(db, "change")
    table = at.dataframe[0].value
    assert len(table) == 6 and set(table["dates"]) == {2}
    # oracle: cosine between each cell's 2018 and 2021 vectors
    rows = load_rows(db)
    for cell_hex, sim in zip(table["cell"], table["similarity"], strict=True):
        rs = rows.rows_of_cell(int(cell_hex, 16))
        v = rows.vectors[rs]
        assert abs(float(v[0] @ v[1]) - sim) < 1e-4
    # the constructed changes (forest -> industrial) are the least similar cells
    changed = {format(int(c), "x") for c, ch in zip(info["cells"], info["changed"], strict=True) if ch}
    assert set(table["cell"][:3]) == changed
    _, spec = deck(at, "change_map")
    assert len(layer(spec, "cells")["data"]) == 6  # type: ignore[index]
    click_map(at, table["cell"][0], key="change_map")
    timeline = at.dataframe[1].value
    assert list(timeline["date"]) == ["2018-06-01T00:00:00+00:00", "2021-06-01T00:00:00+00:00"]
    assert timeline["similarity_to_first"][0] == 1.0
    assert len(at.get("image")) == 2


def test_change_page_without_time_series(explorer_db: Path) -> None:
    at = open_app(explorer_db, "change")
    assert "more than one date" in at.info[0].value
    assert len(change_table(load_rows(explorer_db))["h3"]) == 0


def test_sql_console_runs_examples_read_only(explorer_db: Path) -> None:
    at = open_app(explorer_db, "sql")
    at.selectbox(key="sql_example").set_value("Most similar to a cell (exact kNN in SQL)")
    at.run()
    at.button(key="sql_run").click()
    at.run()
    assert not at.exception and not at.error
    df = at.dataframe[0].value
    assert len(df) == 10 and df["score"].is_monotonic_decreasing
    # same order as the numpy oracle (the query cell itself first, score 1)
    rows = load_rows(explorer_db)
    q = rows.vectors[rows.row_of_cell(int(df["h3"][0], 16))]
    assert abs(df["score"][0] - 1.0) < 1e-5
    scores = rows.vectors[rows.latest] @ q
    np.testing.assert_allclose(np.sort(scores)[::-1][:10], df["score"], atol=1e-5)
    # results with h3 are drawn on a map
    _, spec = deck(at, "sql_map")
    assert [d["h3"] for d in layer(spec, "cells")["data"]] == list(df["h3"])  # type: ignore[index]


def test_sql_console_refuses_files_writes_and_many_statements(explorer_db: Path) -> None:
    at = open_app(explorer_db, "sql")
    for sql, words in [
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled"),
        ("COPY (SELECT 1) TO '/tmp/earthvec_leak.csv'", "one SELECT"),
        ("SELECT 1; SELECT 2", "one SELECT"),
        ("SET enable_external_access = true", "one SELECT"),
    ]:
        at.text_area(key="sql_text").set_value(sql)
        at.button(key="sql_run").click()
        at.run()
        assert at.error and words in at.error[0].value, (sql, [e.value for e in at.error])
    assert not Path("/tmp/earthvec_leak.csv").exists()
    at.text_area(key="sql_text").set_value("SELECT * FROM range(20000)")
    at.button(key="sql_run").click()
    at.run()
    assert len(at.dataframe[0].value) == 10_000
    assert "cut at 10,000" in " ".join(m.value for m in at.markdown)


def test_search_within_a_time_range(change_db: tuple[Path, dict[str, Any]]) -> None:
    from datetime import date

    db, info = change_db
    at = open_app(db)
    cell = format(int(info["cells"][0]), "x")
    click_map(at, cell)
    # default: every cell's latest (2021) row
    table = at.dataframe[0].value
    assert len(table) == 5 and set(table["date"].str[:4]) == {"2021"}
    at.sidebar.date_input(key="dates").set_value((date(2018, 6, 1), date(2018, 6, 1)))
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 5 and set(table["date"].str[:4]) == {"2018"}
    # oracle: the query (latest vector of the cell) against the 2018 rows of the other cells
    rows = load_rows(db)
    q = rows.vectors[rows.row_of_cell(int(cell, 16))]
    r2018 = [int(r) for r in range(len(rows)) if rows.datetime_text(r).startswith("2018")
             and format(int(rows.h3[r]), "x") != cell]
    want = sorted(r2018, key=lambda r: -float(rows.vectors[r] @ q))
    assert list(table["cell"]) == [format(int(rows.h3[r]), "x") for r in want]
    _, spec = deck(at)
    assert {d["date"][:4] for d in layer(spec, "cells")["data"]} == {"2018"}  # type: ignore[index]
