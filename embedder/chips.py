"""Cut raster items into chips centred on H3 cells.

Two modes: a *chip* file (its extent is about one chip, like EuroSAT) becomes one chip
mapped to the cell containing its centre; a *scene* is tiled into chips centred on every
H3 cell whose centre lies inside its footprint. Every chip is a north-up ``chip_px`` x
``chip_px`` grid at the sensor's ``chip_gsd_m`` in the UTM zone of its centre (see
:mod:`embedder.warp`): a raster already on that grid is read with a window, any other CRS
(geographic, polar, a neighbouring zone) is reprojected onto it. Bands of other resolutions
are resampled onto that grid. Pixels outside the raster, equal to nodata or flagged by the
sensor's quality masks become NaN and are counted in ``valid_fraction``, never zero-filled.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h3.api.basic_int as h3i
import numpy as np
import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError  # GDAL/PROJ errors (no public name in rasterio)
from rasterio.crs import CRS
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import CRSError, RasterioError
from rasterio.warp import transform as warp_transform
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from embedder.errors import RasterError, SourceError
from embedder.footprint import chip_coverage, item_mask
from embedder.masks import mask_chips
from embedder.rasterfile import OpenFiles, RasterHeader, RasterItem, is_url, raster_header
from embedder.warp import (
    NATIVE_MAX_DEVIATION_PX,
    ChipGrid,
    chip_grid,
    deviation_px,
    footprint_size_m,
    warp_read,
)

MODES = ("auto", "chip", "scene")
_PLAIN_MASKS = ([MaskFlags.all_valid], [MaskFlags.nodata])  # validity = nodata value (or none)
CHIP_MODE_MAX_CHIPS = 2.0  # a file at most this many chips wide is one chip in "auto" mode
_AVG_HEX_AREA_KM2 = [h3i.average_hexagon_area(r, "km^2") for r in range(16)]


@dataclass(frozen=True)
class ItemGeometry:
    """Where an item lies: CRS, bounds in that CRS and size in metres."""

    crs: rasterio.crs.CRS
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


def _resampling(src: rasterio.DatasetReader, zoom: float) -> Resampling:
    """Nearest when source and chip pixels match (keeps nodata exact), else bilinear/average."""
    if abs(zoom - 1.0) < 0.05:
        return Resampling.nearest
    return Resampling.bilinear if zoom > 1.0 else Resampling.average


def _read_window(
    src: rasterio.DatasetReader,
    bands: list[int],
    x: float,
    y: float,
    size: float,
    px: int,
    resampling: Resampling | None = None,
) -> np.ndarray:
    """Read a ``size``-unit square centred on (x, y) onto a (len(bands), px, px) grid, NaN outside."""
    inv = ~src.transform
    c0, r0 = inv @ (x - size / 2, y + size / 2)
    c1, r1 = inv @ (x + size / 2, y - size / 2)
    out = np.full((len(bands), px, px), np.nan, dtype=np.float32)
    cc0, rr0 = max(c0, 0.0), max(r0, 0.0)
    cc1, rr1 = min(c1, float(src.width)), min(r1, float(src.height))
    if cc1 <= cc0 or rr1 <= rr0:
        return out
    # destination pixels covered by the part of the window inside the raster
    sx, sy = px / (c1 - c0), px / (r1 - r0)
    d0, d1 = round((cc0 - c0) * sx), round((cc1 - c0) * sx)
    e0, e1 = round((rr0 - r0) * sy), round((rr1 - r0) * sy)
    if d1 <= d0 or e1 <= e0:
        return out
    win = Window(cc0, rr0, cc1 - cc0, rr1 - rr0)
    out[:, e0:e1, d0:d1] = _read_nan(
        src,
        bands,
        window=win,
        out_shape=(len(bands), e1 - e0, d1 - d0),
        resampling=resampling or _resampling(src, sx),
    )
    return out


def _read_nan(src: rasterio.DatasetReader, bands: list[int], **kw: Any) -> np.ndarray:
    """``src.read(bands, **kw)`` as float32 with NaN where the file has no data.

    Bands whose validity is just their nodata value (or that are all valid) are read plainly
    and compared with nodata, which is what a masked read does, at a fraction of its cost.
    """
    flags = src.mask_flag_enums
    if all(f[bi - 1] in _PLAIN_MASKS for f in [flags] for bi in bands):
        data = src.read(bands, **kw)
        out = data.astype(np.float32)
        if src.nodata is not None and not np.isnan(src.nodata):
            out[data == src.nodata] = np.nan
        return out
    return np.ma.filled(src.read(bands, masked=True, **kw).astype(np.float32), np.nan)


def _read_whole(
    src: rasterio.DatasetReader, bands: list[int], px: int, resampling: Resampling | None = None
) -> np.ndarray:
    """Read whole bands resampled to (len(bands), px, px) (chip mode)."""
    if (src.height, src.width) == (px, px):
        return _read_nan(src, bands)
    return _read_nan(
        src,
        bands,
        out_shape=(len(bands), px, px),
        resampling=resampling or _resampling(src, px / src.width),
    )


def chip_grids(item: RasterItem, geom: ItemGeometry, specs: list[ChipSpec], mode: str) -> list[ChipGrid]:
    """The local metric grid of each chip.

    In ``chip`` mode the chip is the whole file: centred on the file centre, as wide and high
    as the file measures on the ground. In ``scene`` mode it is centred on the cell centre,
    ``chip_size_m`` wide.
    """
    s = item.sensor
    if mode != "chip":
        return [chip_grid(sp.lat, sp.lon, s.chip_px, s.chip_size_m) for sp in specs]
    w_m, h_m = footprint_size_m(geom.crs, geom.bounds)
    lons, lats = geom.to_lonlat([sp.x for sp in specs], [sp.y for sp in specs])
    return [chip_grid(lat, lon, s.chip_px, w_m, h_m) for lat, lon in zip(lats, lons, strict=True)]


def _native_affine(src: rasterio.DatasetReader, spec: ChipSpec, size: float, px: int) -> Affine:
    """Chip pixel -> source CRS as a direct (unwarped) window read of a scene chip maps it."""
    return Affine(size / px, 0.0, spec.x - size / 2, 0.0, -size / px, spec.y + size / 2)


def _direct(src: rasterio.DatasetReader, spec: ChipSpec, grid: ChipGrid, size: float, cache: dict) -> bool:
    """Whether a scene chip can be read with a plain window.

    True when the file's grid departs from the local chip grid by under
    ``NATIVE_MAX_DEVIATION_PX`` pixels; ``cache`` memoises it per cell for one file grid.
    """
    if spec.cell not in cache:
        native = _native_affine(src, spec, size, grid.width)
        cache[spec.cell] = deviation_px(grid, native, src.crs, src.transform) <= NATIVE_MAX_DEVIATION_PX
    return bool(cache[spec.cell])


def _read_one(
    src: rasterio.DatasetReader,
    bands: list[int],
    spec: ChipSpec,
    grid: ChipGrid,
    mode: str,
    size: float,
    nodata: float | None,
    resampling: Resampling | None = None,
    cache: dict | None = None,
) -> np.ndarray:
    """One chip from one open file: a direct read when the grids agree, else a warped one.

    A chip-mode file in a projected CRS is its own chip grid (read whole, exact pixels); in a
    geographic CRS it is warped onto the local grid. A scene chip is read with a window when
    the file's grid departs from the local chip grid by under half a pixel, else warped.
    """
    px = grid.width
    if mode == "chip":
        if src.crs is not None and src.crs.is_projected:
            return _read_whole(src, bands, px, resampling)
    elif _direct(src, spec, grid, size, {} if cache is None else cache):
        return _read_window(src, bands, spec.x, spec.y, size, px, resampling)
    return warp_read(src, bands, grid, src_nodata=nodata, resampling=resampling)


def _by_path(files: dict[str, tuple[str, int]], names: list[str] | tuple[str, ...]) -> dict[str, list]:
    """Group (channel, band index) pairs by file."""
    out: dict[str, list[tuple[int, int]]] = {}
    for c, band in enumerate(names):
        if band in files:
            path, idx = files[band]
            out.setdefault(path, []).append((c, idx))
    return out


def read_chips(
    item: RasterItem, specs: list[ChipSpec], mode: str, files: OpenFiles | None = None
) -> np.ndarray:
    """Read the chips of one item: (n, C, H, W) float32 physical values, NaN = no data.

    Bands the item lacks are all-NaN channels (missing channels, not zeros). Pixels flagged
    by the item's quality-mask bands become NaN. Files come from ``files`` (kept open by the
    caller, e.g. one :class:`OpenFiles` per reader thread); without it each file is opened
    once for this call.

    Raises:
        RasterError: when a band file cannot be read.
    """
    own = files is None
    opened = OpenFiles() if files is None else files
    try:
        return _read_chips(item, specs, mode, opened)
    finally:
        if own:
            opened.close()


def _grid_key(src: rasterio.DatasetReader) -> tuple:
    return (src.crs.to_wkt() if src.crs else None, tuple(src.transform))


def _read_chips(item: RasterItem, specs: list[ChipSpec], mode: str, files: OpenFiles) -> np.ndarray:
    s = item.sensor
    px = s.chip_px
    geom = item_geometry(item)
    grids = chip_grids(item, geom, specs, mode)
    out = np.full((len(specs), len(s.bands), px, px), np.nan, dtype=np.float32)
    caches: dict = {}  # direct-read decisions per file grid (band files often share one)
    for path, pairs in _by_path(item.band_files, s.band_names).items():
        chans = [c for c, _ in pairs]
        idxs = [i for _, i in pairs]
        with files.use(path) as src:
            nodata = src.nodata if src.nodata is not None else s.nodata
            cache = caches.setdefault(_grid_key(src), {})
            for i, (spec, grid) in enumerate(zip(specs, grids, strict=True)):
                out[i, chans] = _read_one(src, idxs, spec, grid, mode, s.chip_size_m, nodata, None, cache)
    mask_names = list(item.mask_files)
    if mask_names:
        masks = np.full((len(specs), len(mask_names), px, px), np.nan, dtype=np.float32)
        for path, pairs in _by_path(item.mask_files, mask_names).items():
            chans = [c for c, _ in pairs]
            idxs = [i for _, i in pairs]
            with files.use(path) as src:
                cache = caches.setdefault(_grid_key(src), {})
                for i, (spec, grid) in enumerate(zip(specs, grids, strict=True)):
                    masks[i, chans] = _read_one(
                        src, idxs, spec, grid, mode, s.chip_size_m, None, Resampling.nearest, cache
                    )
        mask_chips(out, {m: masks[:, k] for k, m in enumerate(mask_names)}, s)
    if s.nodata is not None:
        out[out == s.nodata] = np.nan
    out *= np.float32(s.scale)
    out += np.float32(s.offset)
    return out
