"""Reproject or stack real rasters from ``data/`` into other CRSs and layouts (for ingest tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject


def reproject_file(
    src_path: str | Path,
    dst: Path,
    crs: str,
    *,
    resampling: Resampling = Resampling.nearest,
    scale: float = 1.0,
    tags: dict[str, str] | None = None,
) -> Path:
    """Write a real raster reprojected into ``crs`` (pixels ``scale`` times finer, nodata kept).

    Integer rasters get nodata 0 (the sensors' raw nodata), float rasters NaN.
    """
    with rasterio.open(src_path) as src:
        transform, width, height = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds
        )
        if scale != 1.0:
            transform = transform @ rasterio.Affine.scale(1.0 / scale)
            width, height = int(round(width * scale)), int(round(height * scale))
        float_data = np.issubdtype(np.dtype(src.dtypes[0]), np.floating)
        nodata = np.nan if float_data else 0
        prof = src.profile.copy()
        prof.update(crs=crs, transform=transform, width=width, height=height, nodata=nodata)
        prof.pop("blockxsize", None)
        prof.pop("blockysize", None)
        prof["tiled"] = False
        dst.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(dst, "w", **prof) as out:
            for b in range(1, src.count + 1):
                arr = np.full((height, width), nodata, dtype=src.dtypes[0])
                reproject(
                    rasterio.band(src, b),
                    arr,
                    src_nodata=src.nodata if src.nodata is not None else (None if float_data else 0),
                    dst_transform=transform,
                    dst_crs=crs,
                    dst_nodata=nodata,
                    resampling=resampling,
                )
                out.write(arr, b)
                if src.descriptions[b - 1]:
                    out.set_band_description(b, src.descriptions[b - 1])
            out.update_tags(**(tags or src.tags()))
    return dst


def stack_files(
    paths: list[str | Path | None],
    dst: Path,
    names: list[str] | None,
    tags: dict[str, str] | None = None,
    like: str | Path | None = None,
) -> Path:
    """Stack single-band real rasters into one file on the first file's grid (nearest resampling).

    A ``None`` path is a band the product lacks (Sentinel-2 L2A has no B10): written as all
    nodata (0 for integers, NaN for floats), never as invented pixels. Band descriptions are
    ``names`` (what Earth Engine exports write); ``None`` writes none (Sen1Floods11 has none).
    The grid is that of ``like``, else of the first file.
    """
    first_path = like or next(p for p in paths if p is not None)
    with rasterio.open(first_path) as first:
        prof = first.profile.copy()
        shape = (first.height, first.width)
        dtype = first.dtypes[0]
    fill = np.nan if np.issubdtype(np.dtype(dtype), np.floating) else 0
    arrays = []
    for p in paths:
        if p is None:
            arrays.append(np.full(shape, fill, dtype=dtype))
            continue
        with rasterio.open(p) as src:
            arrays.append(src.read(1, out_shape=shape, resampling=Resampling.nearest))
    prof.update(count=len(arrays), nodata=fill)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **prof) as out:
        out.write(np.stack(arrays))
        for i, n in enumerate(names or []):
            out.set_band_description(i + 1, n)
        if tags:
            out.update_tags(**tags)
    return dst


def crop_file(src_path: str | Path, dst: Path, bounds: tuple[float, float, float, float]) -> Path:
    """Copy the pixels of a real raster inside ``bounds`` (its own CRS), unchanged (a lossless crop)."""
    from rasterio.windows import from_bounds

    with rasterio.open(src_path) as src:
        win = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
        win = win.intersection(rasterio.windows.Window(0, 0, src.width, src.height))
        prof = src.profile.copy()
        prof.update(
            width=int(win.width), height=int(win.height), transform=src.window_transform(win), tiled=False
        )
        prof.pop("blockxsize", None)
        prof.pop("blockysize", None)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(dst, "w", **prof) as out:
            out.write(src.read(window=win))
            out.update_tags(**src.tags())
    return dst
