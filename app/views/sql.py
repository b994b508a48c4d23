"""SQL page: a read-only DuckDB console over the database's views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import state
from app.logic import mapview
from app.logic.colour import ramp
from app.logic.console import CONSOLE_LIMITS, SQL_TIME_LIMIT_S, open_console, run_console_query
from embedder.errors import EarthvecError
from index.sql_worker import SqlWorker

ROW_LIMIT = 10_000
CON_KEY = "sql_connection"
SQL_KEY = "sql_text"
EXAMPLE_KEY = "sql_example"


def examples(first_cell: str, dim: int) -> dict[str, str]:
    """Example queries over the views (``first_cell``: a cell of the database)."""
    return {
        "Cells per partition": (
            "SELECT h3_parent, count(*) AS cells, round(avg(valid_fraction), 3) AS valid\n"
            "FROM embeddings GROUP BY h3_parent ORDER BY cells DESC"
        ),
        "Most similar to a cell (exact kNN in SQL)": (
            "SELECT h3_to_string(h3) AS h3, lat, lon,\n"
            "       array_inner_product(embedding, (SELECT embedding FROM embeddings\n"
            f"           WHERE h3 = h3_from_string('{first_cell}') LIMIT 1)) AS score\n"
            "FROM embeddings ORDER BY score DESC LIMIT 10"
        ),
        "Cells with the most nodata": (
            "SELECT h3_to_string(h3) AS h3, valid_fraction, sensors, source\n"
            "FROM embeddings ORDER BY valid_fraction ASC LIMIT 20"
        ),
        "Rows per sensor and date": (
            "SELECT sensors, date_trunc('month', datetime) AS month, count(*) AS rows\n"
            "FROM embeddings GROUP BY ALL ORDER BY month NULLS FIRST"
        ),
        "Predicted classes (after earthvec label)": (
            "SELECT label, count(*) AS cells, round(avg(confidence), 3) AS confidence\n"
            "FROM predictions GROUP BY label ORDER BY cells DESC"
        ),
        f"Embedding of one cell (FLOAT[{dim}])": (
            f"SELECT h3_to_string(h3) AS h3, model, embedding FROM embeddings\n"
            f"WHERE h3 = h3_from_string('{first_cell}')"
        ),
    }


def h3_hex(values: pd.Series) -> list[str] | None:
    """A result's ``h3`` column as hex ids (integers or strings), or None if not cells."""
    out = []
    for v in values:
        try:
            out.append(format(int(v), "x") if not isinstance(v, str) else v.strip().lower())
        except (TypeError, ValueError):
            return None
    return out


def _connection(db: str) -> SqlWorker:
    from pathlib import Path

    key = (db, state.db_stamp(Path(db)))  # a new generation gets a new connection (its files)
    held = st.session_state.get(CON_KEY)
    if held is None or held[0] != key:
        if held is not None:
            held[1].close()
        held = (key, open_console(db))
        st.session_state[CON_KEY] = held
    return held[1]


def _load_example() -> None:
    st.session_state[SQL_KEY] = st.session_state["_examples"][st.session_state[EXAMPLE_KEY]]


def main() -> None:
    """Draw the page."""
    db, rows = state.require_rows()
    st.title("SQL")
    st.caption(
        "DuckDB over the views `embeddings`, `labels`, `predictions`, with `h3_parent`, "
        "`h3_lat`, `h3_lon`, `h3_to_string`, `h3_from_string`, `h3_resolution`. Read-only: "
        f"one SELECT per run, no file or network access, at most {ROW_LIMIT:,} rows, "
        f"{SQL_TIME_LIMIT_S:g} s and {CONSOLE_LIMITS.memory} of memory."
    )
    ex = examples(format(int(rows.h3[rows.latest[0]]), "x"), rows.dim)
    st.session_state["_examples"] = ex
    if SQL_KEY not in st.session_state:
        st.session_state[SQL_KEY] = next(iter(ex.values()))
    st.selectbox("Examples", list(ex), key=EXAMPLE_KEY, on_change=_load_example)
    sql = st.text_area("Query", key=SQL_KEY, height=140)
    if not st.button("Run", type="primary", key="sql_run") and "sql_result" not in st.session_state:
        return
    if st.session_state.get("sql_run"):
        try:
            con = _connection(str(db))
            table, cut = run_console_query(con, sql, limit=ROW_LIMIT)
            st.session_state["sql_result"] = (table.to_pandas(), cut)
        except EarthvecError as exc:
            st.session_state.pop("sql_result", None)
            st.error(str(exc))
            return
    df, cut = st.session_state["sql_result"]
    st.write(f"{len(df):,} rows" + (f" (cut at {ROW_LIMIT:,})" if cut else ""))
    st.dataframe(df, hide_index=True, key="sql_table")
    if "h3" in df.columns and len(df):
        _map(rows, df)


def _map(rows: state.Rows, df: pd.DataFrame) -> None:
    cells = h3_hex(df["h3"])
    if cells is None:
        return
    known = set(mapview.hex_ids(rows.h3[rows.latest]))
    keep = [i for i, c in enumerate(cells) if c in known]
    if not keep:
        return
    idx = np.array([rows.row_of_cell(int(cells[i], 16)) for i in keep], dtype=np.int64)
    num = [c for c in df.columns if c != "h3" and pd.api.types.is_numeric_dtype(df[c])]
    if num:
        values = df[num[-1]].to_numpy(dtype=np.float64)[keep]
        colours = ramp(values)
        info = [f"{num[-1]} = {v:.4g}" for v in values]
    else:
        colours = np.tile(np.array([[255, 140, 0]], dtype=np.uint8), (len(idx), 1))
        info = [""] * len(idx)
    cells_df = mapview.cells_frame(rows, idx, colours, info)
    st.pydeck_chart(
        mapview.build_deck(cells_df, mapview.fit_view(rows.lat[idx], rows.lon[idx]),
                           resolution=rows.resolution, basemap_url=state.basemap_url()),
        key="sql_map", height=420, alt="Cells returned by the query",
    )
    st.caption(f"{len(idx):,} result cells on the map" + (f", coloured by {num[-1]}" if num else ""))


main()
