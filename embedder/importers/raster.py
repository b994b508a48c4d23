"""Pixel products stored as multi-band rasters (GeoTIFF/COG/VRT, local or remote), read by window."""

from __future__ import annotations

from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from embedder.errors import RasterError
from embedder.rasterfile import is_url, open_raster


class RasterSource:
    """A raster of ``dim`` embedding bands in any CRS; opened once, read window by window.

    Subclasses turn the raw ``(dim, h, w)`` window into de-quantised vectors and validity
    (:meth:`convert`).
    """

    def __init__(self, path: str, dim: int, product: str) -> None:
        self.path = path
        self._ds: Any = None
        with open_raster(path) as src:
            if src.crs is None:
                raise RasterError(f"{path} has no CRS; a {product} raster must be georeferenced")
            if src.count != dim:
                raise RasterError(
                    f"{path} has {src.count} band(s); a {product} raster has {dim} embedding bands"
                )
            self.crs = src.crs
            self.transform = src.transform
            self.width, self.height = src.width, src.height
            self.dtype = np.dtype(src.dtypes[0])
            self.nodata = src.nodata
            self.tags: dict[str, str] = dict(src.tags())
            self.descriptions = tuple(src.descriptions)
        self.dim = dim

    def _open(self) -> Any:
        if self._ds is None:
            if is_url(self.path):
                with open_raster(self.path):  # sets the remote GDAL options
                    pass
            self._ds = rasterio.open(self.path)
        return self._ds

    def close(self) -> None:
        """Close the dataset (reopened on the next read)."""
        if self._ds is not None:
            self._ds.close()
            self._ds = None

    def read(self, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        """De-quantised vectors ``(h * w, dim)`` and validity ``(h * w,)`` of a window."""
        win = Window.from_slices(rows, cols)
        try:
            raw = self._open().read(window=win)
        except rasterio.errors.RasterioIOError as exc:
            raise RasterError(f"cannot read {self.path} ({exc}); is the file complete?") from exc
        flat = np.ascontiguousarray(raw.reshape(self.dim, -1).T)
        return self.convert(flat)

    def convert(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Float rasters: values as stored; NaN, nodata and all-zero pixels are invalid."""
        vecs = flat.astype(np.float32, copy=False)
        valid = np.isfinite(vecs).all(axis=1)
        if self.nodata is not None and np.isfinite(self.nodata):
            valid &= ~(vecs == np.float32(self.nodata)).any(axis=1)
        valid &= np.einsum("ij,ij->i", np.nan_to_num(vecs), np.nan_to_num(vecs)) > 0
        return vecs, valid
