"""Cut raster items into chips centred on H3 cells.

Two modes: a *chip* file (its extent is about one chip, like EuroSAT) becomes one chip
mapped to the cell containing its centre; a *scene* is tiled into chips centred on every
H3 cell whose centre lies inside its footprint. Chips are read in the raster's own CRS,
axis-aligned, ``chip_px`` x ``chip_px`` at the sensor's ``chip_gsd_m``; bands of other
resolutions are resampled onto that grid. Pixels outside the raster or equal to nodata
become NaN and are counted in ``valid_fraction``, never zero-filled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import h3.api.basic_int as h3i
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from embedder.errors import RasterError
from embedder.sources import RasterItem, raster_header

MODES = ("auto", "chip", "scene")
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
    """One chip to read: the cell, its centre, and where it lies in the item CRS."""

    cell: int
    lat: float
    lon: float
    x: float
    y: float


def default_resolution(chip_size_m: float) -> int:
    """The H3 resolution whose average cell area is closest (in log) to the chip's area."""
    area = (chip_size_m / 1000.0) ** 2
    return int(np.argmin([abs(math.log(a / area)) for a in _AVG_HEX_AREA_KM2]))


def item_geometry(item: RasterItem) -> ItemGeometry:
    """Open the item's first band file and read its CRS and bounds.

    Raises:
        RasterError: when the file cannot be read or has no CRS.
    """
    path = item.paths[0]
    head = raster_header(path)
    if head.crs is None:
        raise RasterError(
            f"{path!r} has no CRS; georeference it first (e.g. gdal_translate -a_srs EPSG:XXXX "
            "-a_ullr ...) so earthvec can place its chips on the H3 grid"
        )
    return ItemGeometry(head.crs, head.bounds)


def choose_mode(geom: ItemGeometry, item: RasterItem, mode: str = "auto") -> str:
    """Resolve ``auto`` to ``chip`` or ``scene`` from the item's size."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if mode != "auto":
        return mode
    if geom.crs.is_geographic:
        size_m = max(geom.width, geom.height) * 111_320.0
    else:
        size_m = max(geom.width, geom.height) * float(geom.crs.linear_units_factor[1])
    return "chip" if size_m <= CHIP_MODE_MAX_CHIPS * item.sensor.chip_size_m else "scene"


def plan_chips(item: RasterItem, geom: ItemGeometry, res: int, mode: str) -> list[ChipSpec]:
    """The chips an item yields at H3 resolution ``res`` in ``mode`` (``chip``/``scene``)."""
    if mode == "chip":
        (lon,), (lat,) = geom.to_lonlat([geom.centre[0]], [geom.centre[1]])
        cell = h3i.latlng_to_cell(lat, lon, res)
        clat, clon = h3i.cell_to_latlng(cell)
        return [ChipSpec(cell, clat, clon, geom.centre[0], geom.centre[1])]
    left, bottom, right, top = geom.bounds
    n = 16  # densify the footprint edges before projecting
    xs = [left + (right - left) * i / n for i in range(n)] + [right] * n
    ys = [bottom] * n + [bottom + (top - bottom) * i / n for i in range(n)]
    xs += [right - (right - left) * i / n for i in range(n)] + [left] * n
    ys += [top] * n + [top - (top - bottom) * i / n for i in range(n)]
    lons, lats = geom.to_lonlat(xs, ys)
    poly = h3i.LatLngPoly(list(zip(lats, lons, strict=True)))
    cells = sorted(h3i.h3shape_to_cells(poly, res))
    if not cells:
        return []
    centres = [h3i.cell_to_latlng(c) for c in cells]
    cx, cy = geom.from_lonlat([c[1] for c in centres], [c[0] for c in centres])
    return [
        ChipSpec(c, lat, lon, float(x), float(y))
        for c, (lat, lon), x, y in zip(cells, centres, cx, cy, strict=True)
        if left <= x <= right and bottom <= y <= top
    ]


def _resampling(src: rasterio.DatasetReader, zoom: float) -> Resampling:
    """Nearest when source and chip pixels match (keeps nodata exact), else bilinear/average."""
    if abs(zoom - 1.0) < 0.05:
        return Resampling.nearest
    return Resampling.bilinear if zoom > 1.0 else Resampling.average


def _read_window(
    src: rasterio.DatasetReader, bands: list[int], x: float, y: float, size: float, px: int
) -> np.ndarray:
    """Read a ``size``-metre square centred on (x, y) onto a (len(bands), px, px) grid, NaN outside."""
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
    data = src.read(
        bands,
        window=win,
        out_shape=(len(bands), e1 - e0, d1 - d0),
        resampling=_resampling(src, sx),
        masked=True,
    )
    out[:, e0:e1, d0:d1] = np.ma.filled(data.astype(np.float32), np.nan)
    return out


def _read_whole(src: rasterio.DatasetReader, bands: list[int], px: int) -> np.ndarray:
    """Read whole bands resampled to (len(bands), px, px) (chip mode)."""
    if (src.height, src.width) == (px, px):
        data = src.read(bands, masked=True)
    else:
        data = src.read(
            bands, out_shape=(len(bands), px, px), resampling=_resampling(src, px / src.width), masked=True
        )
    return np.ma.filled(data.astype(np.float32), np.nan)


def read_chips(item: RasterItem, specs: list[ChipSpec], mode: str) -> np.ndarray:
    """Read the chips of one item: (n, C, H, W) float32 physical values, NaN = no data.

    Bands the item lacks are all-NaN channels (missing channels, not zeros).

    Raises:
        RasterError: when a band file cannot be read.
    """
    s = item.sensor
    px = s.chip_px
    out = np.full((len(specs), len(s.bands), px, px), np.nan, dtype=np.float32)
    by_path: dict[str, list[tuple[int, int]]] = {}
    for c, band in enumerate(s.band_names):
        if band in item.band_files:
            path, idx = item.band_files[band]
            by_path.setdefault(path, []).append((c, idx))
    for path, pairs in by_path.items():
        chans = [c for c, _ in pairs]
        idxs = [i for _, i in pairs]
        try:
            with rasterio.open(path) as src:
                for i, spec in enumerate(specs):
                    if mode == "chip":
                        out[i, chans] = _read_whole(src, idxs, px)
                    else:
                        out[i, chans] = _read_window(src, idxs, spec.x, spec.y, s.chip_size_m, px)
        except rasterio.errors.RasterioIOError as exc:
            raise RasterError(f"cannot read {path!r} ({exc}); is the file complete?") from exc
    if s.nodata is not None:
        out[out == s.nodata] = np.nan
    out *= np.float32(s.scale)
    out += np.float32(s.offset)
    return out
