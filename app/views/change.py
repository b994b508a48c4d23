"""Change page: where a cell has embeddings from several dates, map how much they moved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from app import state
from app.logic import mapview
from app.logic.change import change_table
from app.logic.colour import ramp
from app.logic.thumbnails import true_colour

MAP_KEY = "change_map"


@st.cache_resource(show_spinner="Comparing dates ...", max_entries=4)
def _changes(db: str, stamp: str) -> dict[str, np.ndarray]:
    return change_table(state.rows(Path(db)))


def main() -> None:
    """Draw the page."""
    db, rows = state.require_rows()
    st.title("Change")
    ch = _changes(str(db), state.db_stamp(db))
    if len(ch["h3"]) == 0:
        st.info(
            "No cell of this database has embeddings from more than one date. Build the same "
            "area from imagery of several dates (earthvec build ... ) to see change."
        )
        return
    st.caption(
        f"{len(ch['h3']):,} cells with several dates. Colour: similarity between the first "
        "and the last date (purple = changed most, yellow = unchanged)."
    )
    idx = ch["last_row"]
    colours = ramp(ch["similarity"], -1.0, 1.0)
    info = [
        f"{n} dates · similarity first→last {s:.3f} · lowest step {m:.3f}"
        for n, s, m in zip(ch["n_dates"], ch["similarity"], ch["min_step_similarity"], strict=True)
    ]
    cells_df = mapview.cells_frame(rows, idx, colours, info)
    event = st.pydeck_chart(
        mapview.build_deck(cells_df, mapview.fit_view(rows.lat[idx], rows.lon[idx]),
                           resolution=rows.resolution, basemap_url=state.basemap_url()),
        on_select="rerun", selection_mode="single-object", key=MAP_KEY, height=460,
        alt="Map of change between dates",
    )
    table = pd.DataFrame({
        "cell": mapview.hex_ids(ch["h3"]),
        "dates": ch["n_dates"],
        "first": [rows.datetime_text(int(r)) for r in ch["first_row"]],
        "last": [rows.datetime_text(int(r)) for r in ch["last_row"]],
        "similarity": np.round(ch["similarity"].astype(np.float64), 4),
        "lowest_step": np.round(ch["min_step_similarity"].astype(np.float64), 4),
    })
    st.dataframe(table, hide_index=True, key="change_table")
    picked = mapview.selected_cells(event)
    if picked:
        _timeline(rows, picked[0])


def _timeline(rows: state.Rows, cell_hex: str) -> None:
    st.subheader(f"Cell {cell_hex} over time")
    rs = rows.rows_of_cell(int(cell_hex, 16))
    v = rows.vectors[rs]
    st.dataframe(
        pd.DataFrame({
            "date": [rows.datetime_text(int(r)) for r in rs],
            "similarity_to_first": np.round((v @ v[0]).astype(np.float64), 4),
            "valid_fraction": np.round(rows.valid_fraction[rs].astype(np.float64), 3),
            "source": [", ".join(s) for s in rows.provenance("source", rs)],
        }),
        hide_index=True, key="timeline",
    )
    cols = st.columns(min(len(rs), 6))
    for j, r in enumerate(rs[:6]):
        img = true_colour(int(rows.h3[r]), rows.provenance("source", [r])[0],
                          rows.provenance("sensors", [r])[0])
        if img is not None:
            cols[j].image(img, caption=rows.datetime_text(int(r))[:10], width=128)


main()
