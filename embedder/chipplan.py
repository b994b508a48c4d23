"""Plan chips: which H3 cells a raster item yields, and whether it is one chip or a scene.

A *chip* file (its extent is about one chip, like EuroSAT) becomes one chip mapped to the
cell containing its centre; a *scene* is tiled into chips centred on every H3 cell whose
centre lies inside its footprint (its data mask, :mod:`embedder.footprint`). Planning also
refuses inputs that cannot be read honestly (a corrupt declared size, a geographic CRS
with non-degree bounds, band files covering different areas) before any pixel is read.
Reading the planned chips is :mod:`embedder.chips`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import h3.api.basic_int as h3i
import numpy as np
from rasterio._err import CPLE_BaseError  # GDAL/PROJ errors (no public name in rasterio)
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.warp import transform as warp_transform
from rasterio.warp import transform_bounds

from embedder.errors import RasterError, SourceError
from embedder.footprint import chip_coverage, item_mask
from embedder.rasterfile import RasterHeader, RasterItem, is_url, raster_header
from embedder.warp import footprint_size_m

MODES = ("auto", "chip", "scene")
CHIP_MODE_MAX_CHIPS = 2.0  # a file at most this many chips wide is one chip in "auto" mode
_AVG_HEX_AREA_KM2 = [h3i.average_hexagon_area(r, "km^2") for r in range(16)]


@dataclass(frozen=True)
class ItemGeometry:
    """Where an item lies: CRS, bounds in that CRS and size in metres."""

    crs: CRS
    bounds: tuple[float, float, float, float]

    @property
    def width(self) -> float:
        """Width in CRS units (metres for projected CRSs)."""
        return self.bounds[2] - self.bounds[0]

    @property
    def height(self) -> float:
        """Height in CRS units."""
        return self.bounds[3] - self.bounds[1]

    @property
    def centre(self) -> tuple[float, float]:
        """Centre (x, y) in the item CRS."""
        return ((self.bounds[0] + self.bounds[2]) / 2, (self.bounds[1] + self.bounds[3]) / 2)

    def to_lonlat(self, xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
        """Project points from the item CRS to lon/lat."""
        lon, lat = warp_transform(self.crs, "EPSG:4326", xs, ys)
        return list(lon), list(lat)

    def from_lonlat(self, lons: list[float], lats: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """Project lon/lat points into the item CRS."""
        x, y = warp_transform("EPSG:4326", self.crs, lons, lats)
        return np.asarray(x), np.asarray(y)


@dataclass(frozen=True)
class ChipSpec:
    """One chip to read: the cell, its centre, and where it lies in the item CRS.

    ``coverage`` is the share of the chip the item holds data on; ``centre_in`` whether it
    holds data at the cell centre (the cell belongs to the item).
    """

    cell: int
    lat: float
    lon: float
    x: float
    y: float
    coverage: float = 1.0
    centre_in: bool = True


def default_resolution(chip_size_m: float) -> int:
    """The H3 resolution whose average cell area is closest (in log) to the chip's area."""
    area = (chip_size_m / 1000.0) ** 2
    return int(np.argmin([abs(math.log(a / area)) for a in _AVG_HEX_AREA_KM2]))


def item_geometry(item: RasterItem) -> ItemGeometry:
    """Open the item's band files and read its CRS and bounds.

    Raises:
        RasterError: when a file cannot be read, has no CRS, has a geographic CRS with bounds
            that are no longitudes/latitudes (a wrong CRS), or when the band files of one
            item cover different areas.
    """
    path = item.paths[0]
    head = raster_header(path)
    if head.crs is None:
        raise RasterError(
            f"{path!r} has no CRS; georeference it first (e.g. gdal_translate -a_srs EPSG:XXXX "
            "-a_ullr ...) so earthvec can place its chips on the H3 grid"
        )
    _check_geographic_bounds(path, head.crs, head.bounds)
    _check_declared_size(path, head)
    for other in item.paths[1:]:
        if not is_url(other):  # remote band files: one request per file is too dear here
            _check_same_footprint(path, head.crs, head.bounds, other)
    return ItemGeometry(head.crs, head.bounds)


_GDAL_ERRORS = (CRSError, RasterioError, CPLE_BaseError)

FOOTPRINT_TOLERANCE = 0.01
"""Band files of one item may differ by this share of the extent (half a coarse pixel)."""


MAX_DECLARED_RATIO = 10_000
"""Uncompressed size / file size above which a header is taken as corrupt (DEFLATE, LZW and
ZSTD stay far below; only sparse GeoTIFFs with empty tiles go above)."""


def _check_declared_size(path: str, head: RasterHeader) -> None:
    if is_url(path):
        return
    declared = head.shape[0] * head.shape[1] * head.count * head.itemsize
    size = max(1, os.path.getsize(path))
    if declared > 2**30 and declared > MAX_DECLARED_RATIO * size:
        raise RasterError(
            f"{path!r} declares {head.shape[1]} x {head.shape[0]} pixels x {head.count} band(s) "
            f"({declared / 1e9:.0f} GB uncompressed) in a file of {size / 1e3:.0f} kB; its header is "
            "corrupt or the file is truncated: export it again (a sparse GeoTIFF: fill it first with "
            "gdal_translate -co SPARSE_OK=FALSE)"
        )


def _check_geographic_bounds(path: str, crs: CRS, bounds: tuple[float, float, float, float]) -> None:
    left, bottom, right, top = bounds
    if crs.is_geographic and not (-180.5 <= left <= right <= 360.5 and -90.5 <= bottom <= top <= 90.5):
        raise RasterError(
            f"{path!r} says its CRS is {crs.to_string()} (degrees) but its bounds "
            f"({left:.6g}, {bottom:.6g}, {right:.6g}, {top:.6g}) are not longitudes and latitudes; "
            "the file's CRS is wrong: set the right one (gdal_edit.py -a_srs EPSG:XXXX FILE)"
        )


def _check_same_footprint(
    first: str, crs: CRS, bounds: tuple[float, float, float, float], other: str
) -> None:
    head = raster_header(other)
    if head.crs is None:
        raise RasterError(f"{other!r} has no CRS but {first!r} of the same item has; georeference it")
    ob = head.bounds
    if head.crs != crs:
        try:
            ob = transform_bounds(head.crs, crs, *ob)
        except _GDAL_ERRORS as exc:
            raise RasterError(f"cannot place {other!r} beside {first!r}: {exc}") from exc
    tol = FOOTPRINT_TOLERANCE * max(bounds[2] - bounds[0], bounds[3] - bounds[1])
    if max(abs(a - b) for a, b in zip(bounds, ob, strict=True)) > tol:
        raise RasterError(
            f"band files of one item cover different areas: {Path(other).name} spans "
            f"({ob[0]:.6g}, {ob[1]:.6g}, {ob[2]:.6g}, {ob[3]:.6g}) but {Path(first).name} spans "
            f"({bounds[0]:.6g}, {bounds[1]:.6g}, {bounds[2]:.6g}, {bounds[3]:.6g}); give the band "
            "files of one scene (same footprint), or cut them to a common extent first"
        )


def choose_mode(geom: ItemGeometry, item: RasterItem, mode: str = "auto") -> str:
    """Resolve ``auto`` to ``chip`` or ``scene`` from the item's size."""
    if mode not in MODES:
        raise SourceError(f"--mode {mode!r} is not one of {', '.join(MODES)}; choose one of them")
    if mode != "auto":
        return mode
    try:
        size_m = max(footprint_size_m(geom.crs, geom.bounds))
    except _GDAL_ERRORS as exc:
        raise RasterError(
            f"cannot place {item.paths[0]!r} on the globe with its CRS {geom.crs.to_string()} ({exc}); "
            "the file's CRS or transform is probably wrong: fix them (gdal_edit.py -a_srs / -a_ullr)"
        ) from exc
    return "chip" if size_m <= CHIP_MODE_MAX_CHIPS * item.sensor.chip_size_m else "scene"


def plan_chips(
    item: RasterItem, geom: ItemGeometry, res: int, mode: str, *, straddle: bool = False
) -> list[ChipSpec]:
    """The chips an item yields at H3 resolution ``res`` in ``mode`` (``chip``/``scene``).

    A scene yields the cells whose centre falls on its data. With ``straddle`` it also yields,
    with ``centre_in=False``, cells whose chip it only partly covers, so that a chip on the
    seam of two scenes can be read from the scene covering more of it.
    """
    if mode == "chip":
        (lon,), (lat,) = geom.to_lonlat([geom.centre[0]], [geom.centre[1]])
        cell = h3i.latlng_to_cell(lat, lon, res)
        clat, clon = h3i.cell_to_latlng(cell)
        return [ChipSpec(cell, clat, clon, geom.centre[0], geom.centre[1])]
    cells = _scene_cells(geom, res)
    if not cells:
        return []
    left, right = geom.bounds[0], geom.bounds[2]
    centres = np.array([h3i.cell_to_latlng(c) for c in cells], dtype=np.float64)
    cx, cy = geom.from_lonlat(centres[:, 1].tolist(), centres[:, 0].tolist())
    if geom.crs.is_geographic:  # a footprint beyond +-180 degrees: bring centres into its range
        cx = np.where(cx < left, cx + 360.0, np.where(cx > right, cx - 360.0, cx))
    mask = item_mask(item)
    centre_in = mask.lookup(cx, cy)
    cover = chip_coverage(mask, centres[:, 0], centres[:, 1], item.sensor.chip_size_m)
    keep = centre_in | (cover > 0) if straddle else centre_in
    return [
        ChipSpec(c, float(lat), float(lon), float(x), float(y), float(f), bool(k))
        for c, (lat, lon), x, y, f, k, ok in zip(cells, centres, cx, cy, cover, centre_in, keep, strict=True)
        if ok
    ]


MAX_SAMPLES_PER_AXIS = 1500


def _scene_cells(geom: ItemGeometry, res: int) -> list[int]:
    """Cells that may have their centre in the footprint, found by sampling it on the ground.

    Sampling in the raster's own CRS (not a lon/lat polygon) works for footprints that hold a
    pole or cross the antimeridian. Samples are half a cell edge apart; each hit cell adds its
    neighbours, so no cell whose centre lies inside is missed. The caller keeps the cells whose
    centre falls on the raster's data (and, for seams, those whose chip it partly covers).
    """
    left, bottom, right, top = geom.bounds
    w_m, h_m = footprint_size_m(geom.crs, geom.bounds)
    step = h3i.average_hexagon_edge_length(res, "m") / 2.0
    nx = min(MAX_SAMPLES_PER_AXIS, max(2, math.ceil(w_m / step) + 1))
    ny = min(MAX_SAMPLES_PER_AXIS, max(2, math.ceil(h_m / step) + 1))
    gx, gy = np.meshgrid(np.linspace(left, right, nx), np.linspace(bottom, top, ny))
    lons, lats = warp_transform(geom.crs, "EPSG:4326", gx.ravel().tolist(), gy.ravel().tolist())
    hits: set[int] = set()
    for lat, lon in zip(lats, lons, strict=True):
        if math.isfinite(lat) and math.isfinite(lon) and -90.0 <= lat <= 90.0:
            hits.add(h3i.latlng_to_cell(lat, ((lon + 180.0) % 360.0) - 180.0, res))
    cells: set[int] = set()
    for c in hits:
        cells.update(h3i.grid_disk(c, 1))
    return sorted(cells)
