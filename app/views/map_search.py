"""Map & search page: the cells on a map; click one to find the most similar places."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timezone

import numpy as np
import streamlit as st

from app import state
from app.logic import mapview
from app.logic.colour import ramp
from app.logic.labelling import class_colouring
from app.logic.rows import NO_TIME, filter_mask
from app.logic.search import candidate_rows, cell_at_point, results_frame, search, similarity_to
from app.logic.thumbnails import true_colour
from embedder.errors import EarthvecError, QueryError
from embedder.h3grid import parse_cell
from index.filters import Filter

MAP_KEY = "map"
CLICK_KEY = "click_action"
COLOUR_PCA = "Embedding (PCA RGB)"
COLOUR_SIM = "Similarity to query"
COLOUR_CLASS = "Predicted class"


def _on_map_select() -> None:
    """Turn a click on the map into a query, an example or a region."""
    event = st.session_state.get(MAP_KEY)
    parents = mapview.selected_cells(event, (mapview.PARENTS,))
    if parents:
        st.session_state[state.REGION] = parents[0]
        return
    cells = mapview.selected_cells(event)
    if not cells:
        return
    apply_click(cells[0], st.session_state.get(CLICK_KEY, "query"))


def apply_click(cell: str, action: str) -> None:
    """Use a clicked cell as the new query, or add it as a positive or negative example."""
    pos = state.session_list(state.POSITIVES)
    neg = state.session_list(state.NEGATIVES)
    if action.startswith("query"):
        pos[:] = [cell]
        neg.clear()
    elif action.startswith("positive"):
        if cell in neg:
            neg.remove(cell)
        if cell not in pos:
            pos.append(cell)
    else:
        if cell in pos:
            pos.remove(cell)
        if cell not in neg:
            neg.append(cell)


def _sidebar(rows: state.Rows) -> dict[str, object]:
    sb = st.sidebar
    sb.subheader("Search")
    k = sb.slider("Results (k)", 1, 100, 10, key="k")
    sb.radio(
        "A click on the map …",
        ["query: search from this cell", "positive: add as positive", "negative: add as negative"],
        key=CLICK_KEY,
    )
    with sb.form("point"):
        st.caption("… or search from a point")
        c1, c2 = st.columns(2)
        lat = c1.number_input("lat", -90.0, 90.0, value=None, format="%.5f", key="pt_lat")
        lon = c2.number_input("lon", -180.0, 180.0, value=None, format="%.5f", key="pt_lon")
        if st.form_submit_button("Find cell") and lat is not None and lon is not None:
            try:
                apply_click(format(cell_at_point(rows, lat, lon), "x"), "query")
            except EarthvecError as exc:
                st.error(str(exc))
    if sb.button("Clear examples", key="clear"):
        state.session_list(state.POSITIVES).clear()
        state.session_list(state.NEGATIVES).clear()

    sb.subheader("Region and time")
    region = sb.text_input(
        "H3 region cell", key=state.REGION, help="Keep cells inside this coarser H3 cell; "
        "clicking an aggregated hexagon sets it."
    )
    bbox_text = sb.text_input("Box: min_lon, min_lat, max_lon, max_lat", key="bbox")
    dated = rows.time_us[rows.time_us != NO_TIME]
    start = end = None
    if len(dated):
        lo = datetime.fromtimestamp(int(dated.min()) / 1e6, tz=timezone.utc).date()
        hi = datetime.fromtimestamp(int(dated.max()) / 1e6, tz=timezone.utc).date()
        rng = sb.date_input("Dates", value=(lo, hi), min_value=lo, max_value=hi, key="dates")
        if isinstance(rng, tuple) and len(rng) == 2 and (rng[0], rng[1]) != (lo, hi):
            start = datetime.combine(rng[0], time.min, tzinfo=timezone.utc)
            end = datetime.combine(rng[1], time.max, tzinfo=timezone.utc)
    sb.subheader("Map")
    colour = sb.radio("Colour cells by", [COLOUR_PCA, COLOUR_SIM, COLOUR_CLASS], key="colour_by")
    return {"k": k, "region": region, "bbox": bbox_text, "start": start, "end": end, "colour": colour}


def make_filter(region: str, bbox_text: str, start: datetime | None, end: datetime | None) -> Filter:
    """The search filter from the sidebar's region cell, box text and dates.

    Raises:
        QueryError: for a box that is not four numbers or a bad region cell.
    """
    bbox = None
    text = bbox_text.strip()
    if text:
        try:
            parts = [float(x) for x in text.replace(";", ",").split(",")]
        except ValueError:
            parts = []
        if len(parts) != 4:
            raise QueryError(
                f"box {text!r} needs four numbers: min_lon, min_lat, max_lon, max_lat"
            )
        bbox = (parts[0], parts[1], parts[2], parts[3])
    region_text = region.strip()
    return Filter(
        region=format(parse_cell(region_text), "x") if region_text else None,
        bbox=bbox,
        start=start,
        end=end,
    )


def main() -> None:
    """Draw the page."""
    db, rows = state.require_rows()
    st.title("Map & search")
    opts = _sidebar(rows)
    try:
        flt = make_filter(str(opts["region"] or ""), str(opts["bbox"] or ""),
                          opts["start"], opts["end"])  # type: ignore[arg-type]
        mask = filter_mask(rows, flt)
    except EarthvecError as exc:
        st.error(str(exc))
        flt, mask = Filter(), np.ones(len(rows), dtype=bool)
    shown = candidate_rows(rows, mask)
    pos = state.session_list(state.POSITIVES)
    neg = state.session_list(state.NEGATIVES)

    result = None
    if pos:
        try:
            index, why = state.search_index(db)
            if index is None:
                st.caption(f"No search index ({why}); ranking exactly with numpy instead.")
            result = search(rows, pos, neg, int(opts["k"]), flt, index)  # type: ignore[call-overload]
        except EarthvecError as exc:
            st.error(str(exc))

    colours = state.pca_colours(db)[shown]
    info: Callable[[], list[str]] | None = None  # hover texts, made only for single cells
    if opts["colour"] == COLOUR_SIM:
        if result is not None:
            sim = similarity_to(rows, result.query, shown)
            colours = ramp(sim, -1.0, 1.0) if len(sim) else colours

            def info() -> list[str]:
                return [f"similarity {s:.3f}" for s in sim]

        else:
            st.caption("Pick a query cell to colour by similarity.")
    elif opts["colour"] == COLOUR_CLASS:
        pred = st.session_state.get(state.PREDICTIONS)
        if pred is not None:
            colours, info = class_colouring(rows, pred, shown)
        else:
            st.caption("Run kNN labelling on the Label page to colour by predicted class.")

    cells_df = parents_df = None
    if len(shown) > mapview.MAX_CELLS:
        res = mapview.parent_resolution(rows.h3[shown], rows.resolution)
        parents_df = mapview.parents_frame(rows, shown, colours, res)
        st.caption(
            f"{len(shown):,} cells in view: drawn as {len(parents_df):,} parent cells at "
            f"resolution {res}. Click one (or set a region) to zoom in."
        )
    else:
        cells_df = mapview.cells_frame(rows, shown, colours, info() if info else None)
    view = mapview.fit_view(rows.lat[shown], rows.lon[shown])
    results_hex = mapview.hex_ids(rows.h3[result.rows]) if result is not None else []
    deck = mapview.build_deck(
        cells_df, view, resolution=rows.resolution, parents=parents_df, query=pos, negatives=neg,
        results=results_hex, basemap_url=state.basemap_url(),
    )
    st.pydeck_chart(
        deck, on_select=_on_map_select, selection_mode="single-object", key=MAP_KEY, height=520,
        alt="Map of the database's H3 cells",
    )
    st.caption(
        f"{len(shown):,} of {len(rows.latest):,} cells · model {rows.model} · "
        f"H3 resolution {rows.resolution} · query: cyan, negatives: red, results: yellow"
    )

    if not pos:
        st.info("Click a cell on the map (or give a point in the sidebar) to find similar places.")
        return
    st.subheader("Most similar places")
    st.write(f"Positives: {', '.join(pos)}" + (f" · negatives: {', '.join(neg)}" if neg else ""))
    if result is None:
        return
    st.dataframe(results_frame(rows, result), hide_index=True, key="results")
    st.caption(f"Ranked by {result.engine}; similarity is the cosine of the embeddings.")
    _thumbnails(rows, pos, result.rows[:8], db)


def _thumbnails(rows: state.Rows, pos: list[str], top: np.ndarray, db: object) -> None:
    items: list[tuple[str, int]] = [(f"query {c}", rows.row_of_cell(parse_cell(c))) for c in pos[:2]]
    items += [(f"#{i + 1} {int(rows.h3[r]):x}", int(r)) for i, r in enumerate(top)]
    images = []
    for caption, r in items:
        img = true_colour(
            int(rows.h3[r]), rows.provenance("source", [r])[0], rows.provenance("sensors", [r])[0]
        )
        if img is not None:
            images.append((caption, img))
    if not images:
        st.caption("No source imagery found on this machine for these cells.")
        return
    with st.expander("True-colour chips", expanded=True):
        cols = st.columns(min(len(images), 5))
        for j, (caption, img) in enumerate(images):
            cols[j % len(cols)].image(img, caption=caption, width=128)


main()
