"""Vectorised sampling of whole-Earth rasters on an implicit regular lat/lon grid.

A :class:`LatLonRaster` is a global layer (Blue Marble, ETOPO, Koppen, MODIS ...) whose pixel
centres lie on a regular grid: row ``i`` at latitude ``lat0 + i * dlat`` and column ``j`` at
longitude ``lon0 + j * dlon``, wrapping around in longitude. Chips are sampled on separable
windows (one latitude per chip row, one longitude per chip column, per cell), so a block of N
chips costs a few ``np.take`` gathers of N x P x Q pixels and no Python loop per cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

BILINEAR = "bilinear"
NEAREST = "nearest"
METHODS = (BILINEAR, NEAREST)
MIN_COS_LAT = 0.05  # longitude stretch is capped at 1 / MIN_COS_LAT near the poles


@dataclass(frozen=True)
class LatLonRaster:
    """A global raster on an implicit lat/lon grid, periodic in longitude.

    Attributes:
        data: (C, H, W) pixel values; raw codes when ``lut`` is set, else physical float32.
        lat0: latitude of the centre of row 0 (degrees).
        dlat: latitude step per row (negative for north-up rasters).
        lon0: longitude of the centre of column 0 (degrees).
        dlon: longitude step per column (positive); ``W * dlon`` must be 360.
        lut: optional (256,) float32 table mapping uint8 raw codes to physical values
            (NaN for nodata), applied after gathering.
    """

    data: np.ndarray
    lat0: float
    dlat: float
    lon0: float
    dlon: float
    lut: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise ValueError(f"raster data must be (C, H, W), got shape {self.data.shape}")
        if abs(self.data.shape[2] * self.dlon - 360.0) > 1e-6 * 360.0:
            raise ValueError(
                f"raster of width {self.data.shape[2]} with step {self.dlon} does not span 360 degrees"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        c, h, w = self.data.shape
        return int(c), int(h), int(w)

    def rows(self, lat: np.ndarray) -> np.ndarray:
        """Fractional row coordinate of latitudes (row centres at integers)."""
        return (np.asarray(lat, dtype=np.float64) - self.lat0) / self.dlat

    def cols(self, lon: np.ndarray) -> np.ndarray:
        """Fractional column coordinate of longitudes, wrapped into [0, W)."""
        w = self.shape[2]
        return np.mod((np.asarray(lon, dtype=np.float64) - self.lon0) / self.dlon, w)

    @cached_property
    def pixels(self) -> np.ndarray:
        """Physical float32 values as a pixel-interleaved (H * W, C) table (for bilinear)."""
        c, h, w = self.shape
        table = self.data.reshape(c, h * w).T
        if self.lut is not None:
            return np.take(self.lut, table)
        return np.ascontiguousarray(table, dtype=np.float32)

    def sample_windows(self, lat_rows: np.ndarray, lon_cols: np.ndarray, method: str) -> np.ndarray:
        """Sample N separable windows.

        Args:
            lat_rows: (N, P) latitude of each chip row.
            lon_cols: (N, Q) longitude of each chip column.
            method: ``"bilinear"`` (continuous layers) or ``"nearest"`` (categorical).

        Returns:
            float32 array (N, C, P, Q) in physical units (NaN for nodata).
        """
        if method not in METHODS:
            raise ValueError(f"unknown sampling method {method!r}; use one of {METHODS}")
        c, h, w = self.shape
        fr = self.rows(lat_rows)
        fc = self.cols(lon_cols)
        if method == NEAREST:
            r = np.clip(np.rint(fr), 0, h - 1).astype(np.int64) * w
            q = np.mod(np.rint(fc), w).astype(np.int64)
            idx = r[:, :, None] + q[:, None, :]
            flat = self.data.reshape(c, h * w)
            return np.stack([self._physical(np.take(flat[k], idx)) for k in range(c)], axis=1)
        r0f = np.floor(fr)
        wr = (fr - r0f).astype(np.float32)[:, :, None, None]
        r0 = np.clip(r0f, 0, h - 1).astype(np.int64) * w
        r1 = np.clip(r0f + 1, 0, h - 1).astype(np.int64) * w
        c0f = np.floor(fc)
        wc = (fc - c0f).astype(np.float32)[:, None, :, None]
        c0 = np.mod(c0f, w).astype(np.int64)
        c1 = np.mod(c0f + 1, w).astype(np.int64)
        pix = self.pixels
        single = pix.ravel() if c == 1 else None  # 1-D take is faster than rows of one value

        def corner(rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
            idx = rr[:, :, None] + cc[:, None, :]
            if single is not None:
                return np.take(single, idx)[..., None]
            return np.take(pix, idx, axis=0)  # (N, P, Q, C)

        top = corner(r0, c0)
        top += (corner(r0, c1) - top) * wc
        bottom = corner(r1, c0)
        bottom += (corner(r1, c1) - bottom) * wc
        top += (bottom - top) * wr
        return np.ascontiguousarray(top.transpose(0, 3, 1, 2))

    def sample_points(self, lat: np.ndarray, lon: np.ndarray, method: str) -> np.ndarray:
        """Values (N, C) at points (a 1 x 1 window per point)."""
        lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
        return self.sample_windows(lat[:, None], lon[:, None], method)[:, :, 0, 0]

    def _physical(self, raw: np.ndarray) -> np.ndarray:
        if self.lut is not None:
            return np.take(self.lut, raw)
        return raw.astype(np.float32, copy=False)


@dataclass(frozen=True)
class ChipGrid:
    """A square chip of ``px`` x ``px`` samples spanning ``window_deg`` of latitude.

    The longitude span is ``window_deg / cos(lat)`` so chips cover about the same ground
    distance everywhere (capped near the poles).
    """

    px: int = 16
    window_deg: float = 1.0

    def offsets(self) -> np.ndarray:
        """Sample offsets from the centre in units of the window, north/west first."""
        return ((np.arange(self.px, dtype=np.float64) + 0.5) / self.px - 0.5) * self.window_deg

    def windows(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-chip row latitudes (N, px) (north first) and column longitudes (N, px)."""
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        off = self.offsets()
        stretch = 1.0 / np.maximum(np.cos(np.radians(lat)), MIN_COS_LAT)
        lat_rows = np.clip(lat[:, None] - off[None, :], -90.0, 90.0)
        lon_cols = lon[:, None] + off[None, :] * stretch[:, None]
        return lat_rows, lon_cols


def block_reduce_sum(a: np.ndarray, k: int) -> np.ndarray:
    """Sum of non-overlapping k x k blocks of a 2-D array, in the array's dtype.

    Strided slice additions (no multi-axis reduction), fast for uint8 masks; the caller
    keeps k*k times the largest value inside the dtype.
    """
    h, w = a.shape
    if h % k or w % k:
        raise ValueError(f"array shape {a.shape} does not divide into {k} x {k} blocks")
    rows = a[0::k].copy()
    for i in range(1, k):
        rows += a[i::k]
    cols = rows.reshape(h // k, w // k, k)
    out = cols[:, :, 0].copy()
    for i in range(1, k):
        out += cols[:, :, i]
    return out
