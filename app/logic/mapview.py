"""pydeck map of H3 cells: the data frames behind the layers and the ``Deck`` itself.

Cells are drawn by a pickable ``H3HexagonLayer`` (id :data:`CELLS`); a click selects a row
of its data frame, whose ``h3`` column is the hex cell id. When more than ``max_cells``
cells are in view they are drawn as their parents at the finest resolution that fits
(layer :data:`PARENTS`); clicking a parent zooms into it. Query and result cells are
outlined by two non-pickable layers on top. The basemap is the Blue Marble image in a
``BitmapLayer``; no map tiles are fetched (``map_provider=None``).
"""

from __future__ import annotations

from dataclasses import dataclass

import h3
import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import pydeck as pdk

from app.logic.rows import Rows
from embedder.h3grid import cell_parents

CELLS = "cells"
POINTS = "points"
PARENTS = "parents"
QUERY = "query"
RESULTS = "results"
BASEMAP = "basemap"

MAX_CELLS = 20_000
"""Most hexagons sent to the browser per map; beyond that parents are drawn."""

TOOLTIP = {
    "html": (
        "<b>{cell}</b><br/>{place}<br/>date: {date}<br/>sensors: {sensors}<br/>"
        "valid: {valid}<br/>{info}"
    ),
    "style": {"fontSize": "12px"},
}


def hex_ids(cells: np.ndarray) -> list[str]:
    """Hex strings of integer cells."""
    return [format(int(c), "x") for c in cells]


def place_text(lat: float, lon: float) -> str:
    """``50.3091 N, 3.0043 E`` style text of a point."""
    ns = "N" if lat >= 0 else "S"
    ew = "E" if lon >= 0 else "W"
    return f"{abs(lat):.4f} {ns}, {abs(lon):.4f} {ew}"


def hover_frame(
    cells: np.ndarray,
    colours: np.ndarray,
    place: list[str],
    date: list[str],
    sensors: list[str],
    valid: list[str],
    info: list[str],
    **extra: object,
) -> pd.DataFrame:
    """The map's row table: hex cell, RGB colour and the :data:`TOOLTIP` fields, plus ``extra``."""
    ids = hex_ids(cells)
    rgb = [list(map(int, c)) for c in np.asarray(colours).reshape(-1, 3)]
    fields = {"place": place, "date": date, "sensors": sensors, "valid": valid, "info": info}
    return pd.DataFrame({"h3": ids, "color": rgb, "cell": ids, **fields, **extra})


def cells_frame(
    rows: Rows, idx: np.ndarray, colours: np.ndarray, info: list[str] | None = None
) -> pd.DataFrame:
    """One map row per database row ``idx``: cell, colour and hover fields."""
    idx = np.asarray(idx, dtype=np.int64)
    return hover_frame(
        rows.h3[idx],
        colours,
        place=[place_text(float(rows.lat[i]), float(rows.lon[i])) for i in idx],
        date=[rows.datetime_text(int(i)) or "undated" for i in idx],
        sensors=[", ".join(x) for x in rows.provenance("sensors", idx)],
        valid=[f"{float(rows.valid_fraction[i]):.2f}" for i in idx],
        info=info if info is not None else [""] * len(idx),
        lat=rows.lat[idx],
        lon=rows.lon[idx],
        row=idx,
    )


def _sorted(cells: np.ndarray) -> np.ndarray:
    c = np.asarray(cells, dtype=np.uint64)
    return c if len(c) < 2 or bool(np.all(c[1:] >= c[:-1])) else np.sort(c)


def count_parents(sorted_cells: np.ndarray, res: int) -> int:
    """Distinct parents at ``res`` of cells sorted by id (parents keep the order: O(n))."""
    if len(sorted_cells) == 0:
        return 0
    return int(np.count_nonzero(np.diff(cell_parents(sorted_cells, res)))) + 1


def parent_resolution(cells: np.ndarray, base_res: int, max_cells: int | None = None) -> int:
    """Finest resolution at or below ``base_res`` with at most ``max_cells`` parents of ``cells``.

    ``max_cells`` defaults to :data:`MAX_CELLS`.
    """
    max_cells = MAX_CELLS if max_cells is None else max_cells
    c = _sorted(cells)
    for res in range(base_res, -1, -1):
        if count_parents(c, res) <= max_cells:
            return res
    return 0


def parents_frame(rows: Rows, idx: np.ndarray, colours: np.ndarray, res: int) -> pd.DataFrame:
    """Rows ``idx`` aggregated to parents at ``res``: mean colour, count, mean valid fraction."""
    idx = np.asarray(idx, dtype=np.int64)
    par = cell_parents(rows.h3[idx], res)
    order = np.argsort(par, kind="stable") if not bool(np.all(par[1:] >= par[:-1])) else None
    if order is not None:
        par, idx, colours = par[order], idx[order], np.asarray(colours)[order]
    starts = np.flatnonzero(np.r_[True, par[1:] != par[:-1]]) if len(par) else np.zeros(0, int)
    uniq = par[starts]
    counts = np.diff(np.r_[starts, len(par)])
    col = np.add.reduceat(np.asarray(colours, dtype=np.float64).reshape(-1, 3), starts, axis=0)
    col /= counts[:, None]
    valid = np.add.reduceat(rows.valid_fraction[idx].astype(np.float64), starts) / counts
    centres = [h3i.cell_to_latlng(int(c)) for c in uniq]
    return hover_frame(
        uniq,
        col.round(),
        place=[place_text(a, b) for a, b in centres],
        date=["(aggregate)"] * len(uniq),
        sensors=[""] * len(uniq),
        valid=[f"{v:.2f}" for v in valid],
        info=[f"{n} cells at resolution {rows.resolution}; click to zoom in" for n in counts],
        count=counts,
    )


@dataclass
class View:
    """Where the map looks."""

    latitude: float
    longitude: float
    zoom: float


def fit_view(lat: np.ndarray, lon: np.ndarray, width_px: int = 800, height_px: int = 500) -> View:
    """A view that shows every point (Web Mercator zoom from the box size)."""
    if len(lat) == 0:
        return View(20.0, 0.0, 1.0)
    y0, y1 = float(np.min(lat)), float(np.max(lat))
    x0, x1 = float(np.min(lon)), float(np.max(lon))

    def merc(y: float) -> float:
        y = max(min(y, 85.0), -85.0)
        return float(np.log(np.tan(np.pi / 4 + np.radians(y) / 2)))

    dx = max(x1 - x0, 1e-3) / 360.0
    dy = max(merc(y1) - merc(y0), 1e-5) / (2 * np.pi)
    zoom = float(np.log2(min(width_px / 512.0 / dx, height_px / 512.0 / dy))) - 0.3
    return View((y0 + y1) / 2, (x0 + x1) / 2, float(np.clip(zoom, 0.5, 14.0)))


def build_deck(
    cells: pd.DataFrame | None,
    view: View,
    *,
    resolution: int = 8,
    parents: pd.DataFrame | None = None,
    query: list[str] | None = None,
    results: list[str] | None = None,
    negatives: list[str] | None = None,
    marks: list[tuple[str, list[str], list[int], int]] | None = None,
    basemap_url: str | None = None,
    opacity: float = 0.85,
) -> pdk.Deck:
    """The map: basemap, cells (or parents), and outlined cells.

    ``query`` (cyan), ``negatives`` (red) and ``results`` (yellow) are outlined; ``marks``
    adds more outlines as ``(layer id, hex cells, RGB colour, line width px)``.
    """
    layers: list[pdk.Layer] = []
    if basemap_url:
        layers.append(
            pdk.Layer(
                "BitmapLayer",
                id=BASEMAP,
                # quoted: pydeck would otherwise read a bare string as an accessor expression
                image=f"'{basemap_url}'",
                bounds=[-180.0, -90.0, 180.0, 90.0],
                # COORDINATE_SYSTEM.LNGLAT: the image is plate carree; deck.gl reprojects it
                _imageCoordinateSystem="'lnglat'",
                pickable=False,
            )
        )
    picked = {"get_fill_color": "color", "opacity": opacity, "pickable": True, "auto_highlight": True}
    if parents is not None and len(parents):
        edge = {"stroked": True, "get_line_color": [255, 255, 255, 120], "line_width_min_pixels": 0.5}
        layers.append(_hexagons(PARENTS, parents, **edge, **picked))
    if cells is not None and len(cells):
        layers.append(_hexagons(CELLS, cells, stroked=False, high_precision=True, **picked))
        # the same cells as dots of at least 3 px, so they stay visible and clickable
        # when zoomed out far enough for the hexagons to be sub-pixel
        layers.append(
            pdk.Layer(
                "ScatterplotLayer",
                id=POINTS,
                data=cells,
                get_position=["lon", "lat"],
                get_fill_color="color",
                get_radius=float(h3.average_hexagon_edge_length(resolution, "m")) * 0.8,
                radius_min_pixels=3,
                opacity=opacity,
                pickable=True,
                auto_highlight=True,
            )
        )
    outlines = [
        *(marks or []),
        (RESULTS, results or [], [255, 215, 0], 2),
        (f"{QUERY}-neg", negatives or [], [230, 30, 30], 3),
        (QUERY, query or [], [0, 255, 255], 3),
    ]
    for layer_id, ids, colour, width in outlines:
        if not ids:
            continue
        centres = [h3i.cell_to_latlng(h3i.str_to_int(c)) for c in ids]
        marks = pd.DataFrame(
            {"h3": ids, "lat": [c[0] for c in centres], "lon": [c[1] for c in centres]}
        )
        layers.append(
            _hexagons(
                layer_id, marks, filled=False, stroked=True, get_line_color=colour,
                line_width_min_pixels=width, pickable=False,
            )  # fmt: skip
        )
        # a ring of at least 7 px around each marked cell, visible at any zoom
        layers.append(
            pdk.Layer(
                "ScatterplotLayer",
                id=f"{layer_id}-ring",
                data=marks,
                get_position=["lon", "lat"],
                get_radius=float(h3.average_hexagon_edge_length(resolution, "m")) * 1.2,
                radius_min_pixels=7,
                filled=False,
                stroked=True,
                get_line_color=colour,
                line_width_min_pixels=width,
                pickable=False,
            )
        )
    return pdk.Deck(
        layers=layers,
        initial_view_state=pdk.ViewState(
            latitude=view.latitude, longitude=view.longitude, zoom=view.zoom, pitch=0, bearing=0
        ),
        # no basemap tiles: with no provider and pydeck's default style placeholder,
        # Streamlit draws no map (an absent style would fetch Carto tiles)
        map_provider=None,
        tooltip=TOOLTIP,
    )


def _hexagons(layer_id: str, data: pd.DataFrame, **style: object) -> pdk.Layer:
    """A flat ``H3HexagonLayer`` of the ``h3`` column of ``data``."""
    return pdk.Layer("H3HexagonLayer", id=layer_id, data=data, get_hexagon="h3", extruded=False, **style)


def selected_cells(event: object, layers: tuple[str, ...] = (CELLS, POINTS)) -> list[str]:
    """Hex ids of the objects selected on ``layers`` in a ``st.pydeck_chart`` event."""
    try:
        objects = event["selection"]["objects"]  # type: ignore[index]
    except (KeyError, TypeError):
        return []
    out = []
    for layer in layers:
        for obj in objects.get(layer, []) or []:
            if isinstance(obj, dict) and obj.get("h3"):
                out.append(str(obj["h3"]))
    return out
