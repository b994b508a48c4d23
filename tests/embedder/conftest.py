"""Helpers that derive bad inputs from real files (no synthetic imagery)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio


def rewrite(
    src_path: str, dst: Path, *, crs: bool = True, pixels: np.ndarray | None = None, bands: int | None = None
) -> Path:
    """Copy a real raster, optionally dropping its CRS, replacing pixels or keeping fewer bands."""
    with rasterio.open(src_path) as src:
        prof = src.profile.copy()
        data = src.read()
    if pixels is not None:
        data = pixels.astype(data.dtype)
    if bands is not None:
        data = data[:bands]
    prof.update(count=data.shape[0])
    if not crs:
        prof.pop("crs", None)
        prof.pop("transform", None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **prof) as out:
        out.write(data)
    return dst
