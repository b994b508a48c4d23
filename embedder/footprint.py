"""Where a scene holds data, and how much of each chip it covers.

The footprint of a scene is its data, not its bounding box: reprojected, rotated or mosaicked
scenes have nodata margins. One decimated read of the first band (at most ``MASK_MAX_PX``
pixels a side; full resolution for smaller rasters, so exact there) gives a validity mask.
Each candidate chip is sampled on a ``COVERAGE_SAMPLES`` x ``COVERAGE_SAMPLES`` grid of its
local metric chip grid (the grid :func:`embedder.warp.chip_grid` reads) to measure the share
of the chip the scene covers; the chip centre tells whether the cell belongs to the scene.
Chips straddling two scenes are then given to the scene covering more of them
(:mod:`embedder.align`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import transform as warp_transform

from embedder.rasterfile import RasterItem, open_raster
from embedder.warp import local_crs

MASK_MAX_PX = 4096  # the validity mask is read at most this many pixels a side (16 MB of bools)
COVERAGE_SAMPLES = 8  # chip coverage is measured on an 8 x 8 grid of points (1/64 steps)


@dataclass(frozen=True)
class DataMask:
    """A (possibly decimated) validity mask of a raster: True where it holds data."""

    valid: np.ndarray
    transform: Affine  # mask pixel (col, row) -> raster CRS
    crs: CRS
    geographic_span: tuple[float, float] | None = None  # (left, right) for longitude wrapping

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """True where points (raster CRS) fall on a valid mask pixel."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if self.geographic_span is not None:  # bring longitudes into the raster's range
            left, right = self.geographic_span
            x = np.where(x < left, x + 360.0, np.where(x > right, x - 360.0, x))
        inv = ~self.transform
        ok = np.isfinite(x) & np.isfinite(y)
        col = np.floor(inv.a * np.where(ok, x, 0) + inv.b * np.where(ok, y, 0) + inv.c)
        row = np.floor(inv.d * np.where(ok, x, 0) + inv.e * np.where(ok, y, 0) + inv.f)
        h, w = self.valid.shape
        ok &= (col >= 0) & (col < w) & (row >= 0) & (row < h)
        out = np.zeros(x.shape, dtype=bool)
        out[ok] = self.valid[row[ok].astype(np.int64), col[ok].astype(np.int64)]
        return out


@lru_cache(maxsize=4)
def data_mask(path: str, band: int, nodata: float | None) -> DataMask:
    """The validity mask of band ``band`` of ``path`` (``nodata``: the raw value of no data).

    Raises:
        RasterError: when the file cannot be read.
    """
    with open_raster(path) as src:
        f = max(1, math.ceil(max(src.width, src.height) / MASK_MAX_PX))
        h, w = math.ceil(src.height / f), math.ceil(src.width / f)
        arr = src.read(band, out_shape=(h, w), resampling=Resampling.nearest)
        nod = src.nodata if src.nodata is not None else nodata
        valid = np.isfinite(arr) if arr.dtype.kind == "f" else np.ones(arr.shape, dtype=bool)
        if nod is not None and not (isinstance(nod, float) and math.isnan(nod)):
            valid &= arr != nod
        transform = src.transform @ Affine.scale(src.width / w, src.height / h)
        span = (src.bounds.left, src.bounds.right) if src.crs is not None and src.crs.is_geographic else None
        return DataMask(valid, transform, src.crs, span)


def item_mask(item: RasterItem) -> DataMask:
    """The validity mask of the item's first band."""
    path = item.paths[0]
    band = next(idx for p, idx in item.band_files.values() if p == path)
    return data_mask(path, band, item.sensor.nodata)


def _offsets(size_m: float, k: int = COVERAGE_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Sample points of a chip relative to its centre (metres east, north), k x k pixel-centred."""
    o = ((np.arange(k) + 0.5) / k - 0.5) * size_m
    dx, dy = np.meshgrid(o, o)
    return dx.ravel(), dy.ravel()


def chip_coverage(mask: DataMask, lats: np.ndarray, lons: np.ndarray, size_m: float) -> np.ndarray:
    """Share (0..1) of each chip centred at (lat, lon), ``size_m`` wide, on which ``mask`` holds data."""
    lats = np.asarray(lats, dtype=np.float64)
    lons = np.asarray(lons, dtype=np.float64)
    out = np.zeros(len(lats), dtype=np.float64)
    if not len(lats):
        return out
    dx, dy = _offsets(size_m)
    groups: dict[CRS, list[int]] = defaultdict(list)
    for i, (la, lo) in enumerate(zip(lats, lons, strict=True)):
        groups[local_crs(float(la), float(lo))].append(i)
    for crs, idx in groups.items():
        ix = np.asarray(idx)
        cx, cy = warp_transform("EPSG:4326", crs, lons[ix].tolist(), lats[ix].tolist())
        px = (np.asarray(cx)[:, None] + dx[None, :]).ravel()
        py = (np.asarray(cy)[:, None] + dy[None, :]).ravel()
        if CRS.from_user_input(mask.crs) != crs:
            sx, sy = warp_transform(crs, mask.crs, px.tolist(), py.tolist())
            px, py = np.asarray(sx), np.asarray(sy)
        out[ix] = mask.lookup(px, py).reshape(len(ix), -1).mean(axis=1)
    return out
