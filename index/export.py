"""Raster export of a prediction map: H3 cells' classes burnt onto an EPSG:4326 GeoTIFF.

Every output pixel takes the class of the H3 cell (at the map's resolution) that contains
the pixel centre; pixels whose cell is not in the map are nodata (0). Class codes are 1..n
in the order of the sorted class names; the GeoTIFF carries the code -> name table in its
tags (``class_<code>=<name>`` and ``classes`` as JSON) and a colour map::

    from index.export import prediction_geotiff
    info = prediction_geotiff("map.parquet", "map.tif", resolution_deg=0.25)
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h3.api.basic_int as h3i
import numpy as np
import pyarrow.parquet as pq
import rasterio
from rasterio import features
from rasterio.io import MemoryFile
from rasterio.transform import Affine

from embedder import contract
from embedder.errors import InputNotFoundError, RasterError
from embedder.h3grid import EARTH_RADIUS_KM, cell_centres, latlon_to_cells, plate_carree_rings
from index.seeds import LABEL

NODATA = 0
MAX_EDGE_POINTS = 64
"""Most points per H3 edge when burning cells (see :func:`edge_points`)."""
BURN_PIXELS_PER_CELL = 40
"""Burn outlines when the grid has at least this many pixels per cell, else look up pixel centres."""
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
)  # fmt: skip
"""Colours of class codes 1, 2, ... (cycled): the tab20 qualitative palette."""


@dataclass(frozen=True)
class GeoTiffInfo:
    """What :func:`prediction_geotiff` wrote."""

    path: Path
    width: int
    height: int
    bounds: tuple[float, float, float, float]
    classes: dict[int, str]
    pixels_labelled: int


def _snap(bounds: tuple[float, float, float, float], step: float) -> tuple[float, float, float, float]:
    w, s, e, n = bounds
    w, s = np.floor(w / step) * step, np.floor(s / step) * step
    e, n = np.ceil(e / step) * step, np.ceil(n / step) * step
    return max(float(w), -180.0), max(float(s), -90.0), min(float(e), 180.0), min(float(n), 90.0)


def _extent(
    cells: np.ndarray, lat: np.ndarray, lon: np.ndarray, res: int
) -> tuple[float, float, float, float]:
    """Bounds (west, south, east, north) of the cells' centres padded by a cell edge."""
    pad = np.degrees(h3i.average_hexagon_edge_length(res, unit="km") / EARTH_RADIUS_KM) * 1.5
    stretch = 1.0 / max(float(np.cos(np.radians(np.abs(lat).max()))), 0.05)
    return (
        float(lon.min() - pad * stretch),
        float(lat.min() - pad),
        float(lon.max() + pad * stretch),
        float(lat.max() + pad),
    )


def edge_points(res: int, step: float, lat: np.ndarray | float = 0.0) -> np.ndarray:
    """Points per H3 edge when burning cells of resolution ``res`` onto ``step``-degree pixels.

    About one per pixel an edge spans on the lon/lat plane (longitudes stretch by
    1 / cos(lat)), so the burnt outline follows the great-circle arc to well under a pixel;
    at least 1 and at most :data:`MAX_EDGE_POINTS`.

    Args:
        res: H3 resolution.
        step: pixel size in degrees.
        lat: cell centre latitudes.
    """
    edge_deg = np.degrees(h3i.average_hexagon_edge_length(res, unit="km") / EARTH_RADIUS_KM)
    stretch = 1.0 / np.maximum(np.cos(np.radians(np.asarray(lat, dtype=np.float64))), 1e-3)
    return np.clip(np.ceil(edge_deg * stretch / step), 1, MAX_EDGE_POINTS).astype(np.int64)


@dataclass(frozen=True)
class PixelGrid:
    """A north-up EPSG:4326 pixel grid: ``bounds`` (west, south, east, north), multiples of ``step``."""

    bounds: tuple[float, float, float, float]
    step: float

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        w, s, e, n = self.bounds
        return round((n - s) / self.step), round((e - w) / self.step)

    @property
    def transform(self) -> Affine:
        """Pixel -> lon/lat: ``step``-degree pixels from the top-left corner (west, north)."""
        return Affine(self.step, 0.0, self.bounds[0], 0.0, -self.step, self.bounds[3])

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Latitudes of the pixel rows' centres (north first) and longitudes of the columns'."""
        (height, width), (w, _, _, n) = self.shape, self.bounds
        return n - (np.arange(height) + 0.5) * self.step, w + (np.arange(width) + 0.5) * self.step


def rasterise(
    cells: np.ndarray, codes: np.ndarray, res: int, grid: PixelGrid, lat: np.ndarray | None = None
) -> np.ndarray:
    """Class code of the cell under every pixel centre of ``grid``, ``NODATA`` elsewhere.

    Two exact ways, the cheaper one is taken: when cells span several pixels their outlines
    are burnt with ``rasterio.features`` (:func:`burn_cells`); when pixels are about as
    large as cells or larger, H3 looks up the cell of each pixel centre
    (:func:`sample_cells`). They agree up to pixel centres lying within metres of a cell edge.

    Args:
        cells: (N,) uint64 H3 cells, all at resolution ``res``.
        codes: (N,) class codes (> 0).
        res: H3 resolution of the cells.
        grid: the pixel grid.
        lat: (N,) cell centre latitudes, when known (saves looking them up).

    Returns:
        (height, width) int32 array.
    """
    height, width = grid.shape
    if width * height < BURN_PIXELS_PER_CELL * len(cells):
        return sample_cells(cells, codes, res, grid)
    return burn_cells(cells, codes, res, grid, lat)


def burn_cells(
    cells: np.ndarray, codes: np.ndarray, res: int, grid: PixelGrid, lat: np.ndarray | None = None
) -> np.ndarray:
    """:func:`rasterise` by burning the cells' outlines with ``rasterio.features.rasterize``.

    The outlines (:func:`embedder.h3grid.plate_carree_rings`) follow the great-circle edges
    (:func:`edge_points`) and handle the antimeridian and the poles; a pixel is set when its
    centre lies inside an outline.
    """
    lat = cell_centres(cells)[0] if lat is None else np.asarray(lat, dtype=np.float64)
    rings, owner = plate_carree_rings(cells, edge_points(res, grid.step, lat))
    with _gc_paused():  # millions of small lists: the cyclic GC would rescan them over and over
        shapes = [{"type": "Polygon", "coordinates": [r.tolist()]} for r in rings]
        return features.rasterize(
            zip(shapes, np.asarray(codes)[owner].tolist(), strict=True),
            out_shape=grid.shape,
            transform=grid.transform,
            fill=NODATA,
            dtype="int32",
        )


def sample_cells(cells: np.ndarray, codes: np.ndarray, res: int, grid: PixelGrid) -> np.ndarray:
    """:func:`rasterise` by looking up the H3 cell of every pixel centre (``latlng_to_cell``)."""
    order = np.argsort(cells)
    cells, codes = np.asarray(cells)[order], np.asarray(codes)[order]
    lats, lons = grid.centres()
    out = np.full(grid.shape, NODATA, dtype=np.int32)
    for r, la in enumerate(lats.tolist()):
        row = latlon_to_cells(np.full(len(lons), la), lons, res)
        pos = np.minimum(np.searchsorted(cells, row), len(cells) - 1)
        hit = cells[pos] == row
        out[r, hit] = codes[pos[hit]]
    return out


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (objects made here hold no cycles)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def prediction_geotiff(
    pred_parquet: str | Path,
    out_tif: str | Path,
    resolution_deg: float = 0.25,
    bounds: tuple[float, float, float, float] | None = None,
) -> GeoTiffInfo:
    """Write a land-cover prediction map (GeoParquet from ``earthvec label``) as a GeoTIFF.

    Args:
        pred_parquet: the prediction map (columns ``h3`` and ``label``).
        out_tif: output GeoTIFF path (written atomically).
        resolution_deg: pixel size in degrees (EPSG:4326).
        bounds: (west, south, east, north); default the map's extent, snapped to the pixel grid.

    Returns:
        A :class:`GeoTiffInfo` with the size, bounds and class table.

    Raises:
        InputNotFoundError: ``pred_parquet`` does not exist.
        RasterError: an empty map, mixed H3 resolutions, bad pixel size or bounds.
    """
    src = Path(pred_parquet)
    if not src.is_file():
        raise InputNotFoundError(f"{src}: no prediction map there; write one with earthvec label --out")
    if not resolution_deg > 0:
        raise RasterError(f"resolution_deg={resolution_deg}: give a positive pixel size in degrees")
    t = pq.read_table(src, columns=[contract.H3, contract.LAT, contract.LON, LABEL])
    if t.num_rows == 0:
        raise RasterError(f"{src}: the prediction map has no cells; nothing to rasterise")
    cells = t.column(contract.H3).to_numpy().astype(np.uint64)
    resolutions = {h3i.get_resolution(int(c)) for c in np.unique(cells[:: max(1, len(cells) // 1000)])}
    if len(resolutions) != 1:
        raise RasterError(f"{src}: cells at H3 resolutions {sorted(resolutions)}; a map must use one")
    res = resolutions.pop()
    names = [str(x) for x in t.column(LABEL).to_pylist()]
    classes = {i + 1: name for i, name in enumerate(sorted(set(names)))}
    if len(classes) >= np.iinfo(np.uint16).max:
        raise RasterError(f"{src}: {len(classes)} classes; a GeoTIFF class map holds at most 65534")
    code_of = {name: code for code, name in classes.items()}
    codes = np.array([code_of[x] for x in names], dtype=np.int32)
    lat, lon = t.column(contract.LAT).to_numpy(), t.column(contract.LON).to_numpy()
    box = _snap(bounds or _extent(cells, lat, lon, res), resolution_deg)
    if not (box[0] < box[2] and box[1] < box[3]):
        raise RasterError(f"bounds {bounds}: need west < east and south < north within -180..180, -90..90")
    pixels = PixelGrid(box, resolution_deg)
    grid = rasterise(cells, codes, res, pixels, lat)
    dtype = "uint8" if len(classes) < 255 else "uint16"
    profile = {
        "driver": "GTiff", "width": grid.shape[1], "height": grid.shape[0], "count": 1, "dtype": dtype,
        "crs": "EPSG:4326", "transform": pixels.transform,
        "nodata": NODATA, "compress": "deflate",
    }  # fmt: skip
    if dtype == "uint8":
        profile["photometric"] = "palette"
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.update_tags(classes=json.dumps(classes), source=str(src), h3_resolution=str(res))
            dst.update_tags(**{f"class_{c}": n for c, n in classes.items()})
            dst.set_band_description(1, "class code (see tags class_<code>)")
            if dtype == "uint8":
                cmap = {NODATA: (0, 0, 0, 0)}
                cmap.update({c: (*PALETTE[(c - 1) % len(PALETTE)], 255) for c in classes})
                dst.write_colormap(1, cmap)
            dst.write(grid.astype(dtype), 1)  # after the colour map: GDAL fixes it at the first write
        data = mem.read()
    out = Path(out_tif)
    contract.atomic_write_bytes(out, data)
    return GeoTiffInfo(out, grid.shape[1], grid.shape[0], box, classes, int((grid != NODATA).sum()))


def read_classes(tif: str | Path) -> dict[int, str]:
    """The class code -> name table stored in a GeoTIFF written by :func:`prediction_geotiff`."""
    with rasterio.open(tif) as src:
        return {int(k): v for k, v in json.loads(src.tags()["classes"]).items()}
