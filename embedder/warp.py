"""Chip grids in local metric coordinates, and reading rasters onto them through GDAL's warper.

Every chip lies on a north-up grid in the UTM zone of its centre (the universal polar
stereographic grid beyond 84 N / 80 S), ``px`` x ``px`` pixels. A raster whose own grid
already matches that chip grid to within a fraction of a pixel (a UTM file read in its own
zone, the usual case) is read directly with a window; anything else (a geographic CRS such
as EPSG:4326, a polar or national projection, a file in a neighbouring UTM zone far from
its central meridian) is reprojected onto the chip grid with ``rasterio.warp.reproject``,
which reads only the source blocks the chip needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.warp import transform as warp_transform

NATIVE_MAX_DEVIATION_PX = 0.5  # read without warping when the grids differ by less than this
NEAREST_ZOOM = (1 / 1.5, 1.5)  # source/chip pixel-size ratios read with nearest neighbour


def local_crs(lat: float, lon: float) -> CRS:
    """The metric CRS of a chip centred at (lat, lon): its UTM zone, or UPS near the poles."""
    if lat > 84.0:
        return CRS.from_epsg(32661)
    if lat < -80.0:
        return CRS.from_epsg(32761)
    zone = int((((lon + 180.0) % 360.0) // 6.0) + 1)
    zone = min(max(zone, 1), 60)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@dataclass(frozen=True)
class ChipGrid:
    """A chip's pixel grid: ``transform`` maps (col, row) to ``crs`` coordinates."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def pixel_m(self) -> tuple[float, float]:
        """Pixel width and height in metres."""
        return abs(self.transform.a), abs(self.transform.e)


def chip_grid(lat: float, lon: float, px: int, size_x_m: float, size_y_m: float | None = None) -> ChipGrid:
    """The north-up ``px`` x ``px`` grid of a chip centred at (lat, lon), ``size_x_m`` metres wide."""
    crs = local_crs(lat, lon)
    (cx,), (cy,) = warp_transform("EPSG:4326", crs, [lon], [lat])
    sy = size_x_m if size_y_m is None else size_y_m
    t = Affine(size_x_m / px, 0.0, cx - size_x_m / 2, 0.0, -sy / px, cy + sy / 2)
    return ChipGrid(crs, t, px, px)


def _apply(t: Affine, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply an affine transform to arrays of (col, row)."""
    return t.a * cols + t.b * rows + t.c, t.d * cols + t.e * rows + t.f


def _sample_pixels(grid: ChipGrid) -> tuple[np.ndarray, np.ndarray]:
    """Corners, edge midpoints and centre of a grid in pixel coordinates."""
    w, h = grid.width, grid.height
    cols = np.array([0, w / 2, w, 0, w / 2, w, 0, w / 2, w], dtype=np.float64)
    rows = np.array([0, 0, 0, h / 2, h / 2, h / 2, h, h, h], dtype=np.float64)
    return cols, rows


def grid_in_source(grid: ChipGrid, src_crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """Where the grid's sample points (:func:`_sample_pixels`) lie in ``src_crs`` coordinates."""
    cols, rows = _sample_pixels(grid)
    x, y = _apply(grid.transform, cols, rows)
    if CRS.from_user_input(src_crs) == grid.crs:
        return np.asarray(x), np.asarray(y)
    sx, sy = warp_transform(grid.crs, src_crs, list(x), list(y))
    return np.asarray(sx), np.asarray(sy)


def deviation_px(grid: ChipGrid, native: Affine, src_crs: CRS, src_transform: Affine) -> float:
    """How far (in source pixels) an axis-aligned source window departs from the true chip grid.

    Args:
        grid: the chip grid.
        native: maps chip pixel (col, row) to source CRS coordinates as a direct window read would.
        src_crs: the source CRS.
        src_transform: the source's pixel-to-CRS transform.
    """
    cols, rows = _sample_pixels(grid)
    nx, ny = _apply(native, cols, rows)
    tx, ty = grid_in_source(grid, src_crs)
    if not (np.all(np.isfinite(tx)) and np.all(np.isfinite(ty))):
        return math.inf
    inv = ~src_transform
    c0, r0 = _apply(inv, nx, ny)
    c1, r1 = _apply(inv, tx, ty)
    return float(np.max(np.hypot(c0 - c1, r0 - r1)))


def source_pixel_m(grid: ChipGrid, src_crs: CRS, src_transform: Affine) -> tuple[float, float]:
    """Size (x, y) in metres of one source pixel at the chip centre, measured in the chip CRS."""
    cx, cy = grid.transform @ (grid.width / 2, grid.height / 2)
    if CRS.from_user_input(src_crs) != grid.crs:
        (sx,), (sy,) = warp_transform(grid.crs, src_crs, [cx], [cy])
    else:
        sx, sy = cx, cy
    col, row = ~src_transform @ (sx, sy)
    pts = [src_transform @ (col + dc, row + dr) for dc, dr in ((0, 0), (1, 0), (0, 1))]
    if CRS.from_user_input(src_crs) != grid.crs:
        xs, ys = warp_transform(src_crs, grid.crs, [p[0] for p in pts], [p[1] for p in pts])
    else:
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return math.hypot(xs[1] - xs[0], ys[1] - ys[0]), math.hypot(xs[2] - xs[0], ys[2] - ys[0])


def warp_resampling(src_px_m: tuple[float, float], chip_px_m: tuple[float, float]) -> Resampling:
    """Resampling for a warp: nearest for pixels of about the chip's size, else average or bilinear.

    Within a factor of 1.5 either way nearest neighbour keeps each band's value distribution
    (its std is what channel statistics and the spectral signature measure; bilinear
    interpolation at about the same scale smooths it by up to 20%). Much finer source pixels
    are averaged, much coarser ones (60 m bands onto a 10 m chip) interpolated bilinearly.
    """
    zooms = [s / c for s, c in zip(src_px_m, chip_px_m, strict=True)]
    if all(NEAREST_ZOOM[0] <= z <= NEAREST_ZOOM[1] for z in zooms):
        return Resampling.nearest
    if all(z < NEAREST_ZOOM[1] for z in zooms):
        return Resampling.average
    return Resampling.bilinear


def warp_read(
    src: rasterio.DatasetReader,
    bands: list[int],
    grid: ChipGrid,
    *,
    src_nodata: float | None,
    resampling: Resampling | None = None,
) -> np.ndarray:
    """Reproject ``bands`` of ``src`` onto ``grid``: (len(bands), H, W) float32, NaN outside/nodata.

    Args:
        src: an open raster.
        bands: 1-based band indexes.
        grid: the chip grid.
        src_nodata: raw value that marks missing source pixels (the file's nodata, else the
            sensor's); excluded from interpolation.
        resampling: override the automatic choice (masks use nearest).
    """
    out = np.full((len(bands), grid.height, grid.width), np.nan, dtype=np.float32)
    if resampling is None:
        resampling = warp_resampling(source_pixel_m(grid, src.crs, src.transform), grid.pixel_m)
    reproject(
        source=rasterio.band(src, bands),
        destination=out,
        src_transform=src.transform,
        src_crs=src.crs,
        src_nodata=src_nodata,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=np.nan,
        resampling=resampling,
    )
    return out


def footprint_size_m(crs: CRS, bounds: tuple[float, float, float, float]) -> tuple[float, float]:
    """Width and height in metres of a raster footprint, measured through its centre."""
    left, bottom, right, top = bounds
    cx, cy = (left + right) / 2, (bottom + top) / 2
    xs = [left, right, cx, cx, cx]
    ys = [cy, cy, bottom, top, cy]
    lon, lat = warp_transform(crs, "EPSG:4326", xs, ys)
    loc = local_crs(lat[4], lon[4])
    x, y = warp_transform("EPSG:4326", loc, lon, lat)
    return math.hypot(x[1] - x[0], y[1] - y[0]), math.hypot(x[3] - x[2], y[3] - y[2])
