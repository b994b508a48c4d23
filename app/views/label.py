"""Label page: click cells to give them a class, run kNN labelling, export the map."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from app import state
from app.limits import max_upload_bytes
from app.logic import export, mapview
from app.logic.labelling import (
    LabelRun,
    class_colouring,
    predicted_for,
    run_labelling,
    seeds_from_upload,
)
from embedder.errors import EarthvecError

MAP_KEY = "label_map"
CLASS_KEY = "label_class"
NEW_CLASS_KEY = "label_new_class"
MODE_KEY = "label_mode"
RUN_KEY = "label_run"
_UPLOADER_PARAMS = inspect.signature(st.file_uploader).parameters  # max_upload_size: Streamlit >= 1.5x


@st.cache_resource(show_spinner="Labelling every cell ...", max_entries=8)
def _labelling(db: str, stamp: str, seeds: tuple[tuple[str, str], ...], k: int) -> LabelRun:
    return run_labelling(state.rows(Path(db)), dict(seeds), k)


def _current_class() -> str:
    new = str(st.session_state.get(NEW_CLASS_KEY) or "").strip()
    return new or str(st.session_state.get(CLASS_KEY) or "").strip()


def _on_map_select() -> None:
    cells = mapview.selected_cells(st.session_state.get(MAP_KEY))
    if cells:
        apply_label(cells[0], _current_class(), str(st.session_state.get(MODE_KEY, "label")))


def apply_label(cell: str, cls: str, mode: str) -> None:
    """Give ``cell`` the class ``cls`` (mode ``label``) or remove its label (``erase``)."""
    labels = state.session_dict(state.LABELS)
    if mode.startswith("erase"):
        labels.pop(cell, None)
    elif cls:
        labels[cell] = cls
    else:
        st.session_state["label_warning"] = "Type a class name before clicking cells."


def _sidebar(rows: state.Rows) -> int:
    sb = st.sidebar
    sb.subheader("Labels")
    labels = state.session_dict(state.LABELS)
    known = sorted(set(labels.values()))
    sb.selectbox("Class to give", known or ["(none yet)"], key=CLASS_KEY)
    sb.text_input("… or a new class", key=NEW_CLASS_KEY, placeholder="e.g. Forest")
    sb.radio("A click on the map …", ["label: give the class", "erase: remove the label"],
             key=MODE_KEY)
    cap_mb = max_upload_bytes() // 2**20
    what = f"Seeds (CSV lat,lon,label or h3,label; GeoJSON points; up to {cap_mb} MB)"
    if "max_upload_size" in _UPLOADER_PARAMS:
        up = sb.file_uploader(what, type=["csv", "geojson", "json"], key="seed_upload",
                              max_upload_size=cap_mb)
    else:
        up = sb.file_uploader(what, type=["csv", "geojson", "json"], key="seed_upload")
    if up is not None and st.session_state.get("seed_upload_done") != up.file_id:
        try:
            seeds, outside = seeds_from_upload(rows, up.name, up.getvalue())
            labels.update(seeds)
            st.session_state["seed_upload_done"] = up.file_id
            sb.success(f"{len(seeds)} seeds added; {outside} outside the database skipped.")
        except EarthvecError as exc:
            sb.error(str(exc))
    if sb.button("Clear labels", key="clear_labels"):
        labels.clear()
        st.session_state.pop(state.PREDICTIONS, None)
    k = int(sb.slider("Neighbours (k)", 1, 25, 5, key="label_k"))
    return k


def main() -> None:
    """Draw the page."""
    db, rows = state.require_rows()
    st.title("Label")
    k = _sidebar(rows)
    if warning := st.session_state.pop("label_warning", None):
        st.warning(warning)
    labels = state.session_dict(state.LABELS)
    run = None
    if len(set(labels.values())) >= 2:
        try:
            run = _labelling(str(db), state.db_stamp(db), tuple(sorted(labels.items())), k)
            st.session_state[state.PREDICTIONS] = run.prediction
        except EarthvecError as exc:
            st.error(str(exc))
    else:
        st.session_state.pop(state.PREDICTIONS, None)

    shown = rows.latest
    colours = state.pca_colours(db)[shown]
    info = None
    if run is not None:
        colours, info = class_colouring(rows, run.prediction, shown)
    marks = [("seeds", list(labels), [255, 255, 255], 3)]
    if run is not None:
        marks.append(("suggested", mapview.hex_ids(rows.h3[run.suggestions]), [255, 0, 255], 3))
    cells_df = parents_df = None
    if len(shown) > mapview.MAX_CELLS:
        res = mapview.parent_resolution(rows.h3[shown], rows.resolution)
        parents_df = mapview.parents_frame(rows, shown, colours, res)
    else:
        cells_df = mapview.cells_frame(rows, shown, colours, info() if info else None)
    deck = mapview.build_deck(
        cells_df, mapview.fit_view(rows.lat[shown], rows.lon[shown]), resolution=rows.resolution,
        parents=parents_df, marks=marks, basemap_url=state.basemap_url(),
    )
    st.pydeck_chart(deck, on_select=_on_map_select, selection_mode="single-object", key=MAP_KEY,
                    height=480, alt="Map for labelling cells")
    st.caption("Seeds: white outline · suggested next: magenta · colour: predicted class, "
               "greyer = less confident")

    counts = pd.Series(list(labels.values()), dtype=str).value_counts()
    st.write(f"**{len(labels)} seeds**" + (": " + ", ".join(f"{c} {n}" for c, n in counts.items())
                                         if len(labels) else ""))
    if run is None:
        st.info("Click cells (or upload seeds) of at least two classes to run kNN labelling.")
        return
    _results(rows, run, labels)


def _results(rows: state.Rows, run: LabelRun, labels: dict[str, str]) -> None:
    p = run.prediction
    c1, c2, c3 = st.columns(3)
    acc = run.cv.accuracy
    c1.metric("Spatial CV accuracy", "n/a" if acc is None else f"{acc:.1%}",
              help=f"{run.cv.n_folds} folds of whole H3 blocks at resolution "
                   f"{run.cv.block_resolution} ({run.cv.n_blocks} blocks). {run.cv.message}")
    c2.metric("Cells labelled", f"{len(p.rows):,}")
    c3.metric("Mean confidence", f"{float(np.mean(p.confidence)):.2f}")
    if run.cv.message:
        st.caption(run.cv.message)
    names, n = np.unique(p.labels().astype(str), return_counts=True)
    st.dataframe(pd.DataFrame({"class": names, "cells": n}), hide_index=True, key="class_counts")
    if run.curve:
        st.subheader("Learning curve")
        curve = pd.DataFrame(run.curve, columns=["seeds", "accuracy", "std"]).set_index("seeds")
        st.line_chart(curve[["accuracy"]], x_label="training seeds", y_label="spatial CV accuracy")
    st.subheader("Label next")
    sug = run.suggestions
    st.dataframe(
        pd.DataFrame({
            "cell": mapview.hex_ids(rows.h3[sug]),
            "lat": np.round(rows.lat[sug], 5),
            "lon": np.round(rows.lon[sug], 5),
            "predicted": [p.classes[c] for c in predicted_for(rows, p, sug)[0]],
            "confidence": np.round(predicted_for(rows, p, sug)[1].astype(np.float64), 3),
        }),
        hide_index=True, key="suggestions",
    )
    st.caption("The cells whose neighbours disagree most (lowest vote share); labelling them "
               "helps the map most.")
    _exports(rows, run, labels)


def _exports(rows: state.Rows, run: LabelRun, labels: dict[str, str]) -> None:
    p = run.prediction
    st.subheader("Export")
    seed_cells = np.array([int(c, 16) for c in labels], dtype=np.uint64)
    seed_names = list(labels.values())
    cells = rows.h3[p.rows]
    names = p.labels().astype(str).tolist()
    conf = p.confidence
    files = [
        ("Labels GeoJSON", "labels.geojson", "application/geo+json",
         lambda: export.geojson(seed_cells, {"label": seed_names})),
        ("Labels GeoParquet", "labels.parquet", "application/octet-stream",
         lambda: export.geoparquet(seed_cells, {"label": seed_names})),
        ("Map GeoParquet", "map.parquet", "application/octet-stream",
         lambda: export.geoparquet(cells, {"label": names, "confidence": conf.astype(np.float32)})),
        ("Map GeoJSON", "map.geojson", "application/geo+json",
         lambda: export.geojson(cells, {"label": names, "confidence": conf.round(4).tolist()})),
        ("Map GeoTIFF", "map.tif", "image/tiff",
         lambda: export.geotiff(cells, p.classes, p.pred, conf)),
    ]
    # files are made only when a button is clicked (deferred), so big maps cost nothing here
    for col, (label, name, mime, make) in zip(st.columns(len(files)), files, strict=True):
        col.download_button(label, make, name, mime, key=f"dl_{name}")

main()
