"""Broken and hostile input files, each made from a real file of ``data/``.

Used by :mod:`bench.bad_input` (the bad-input table) and its tests: a truncated or corrupted
real GeoTIFF, a real chip whose TIFF tags declare 0 bands or 100000 x 100000 pixels, the real
pixels rewritten as NaN/inf or without georeferencing, real seeds made malformed ... Nothing
here invents pixel values: every raster keeps a real file's grid, and values are either the
real ones or the special values under test.
"""

from __future__ import annotations

import shutil
import struct
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TAG_WIDTH, TAG_HEIGHT, TAG_SAMPLES, TAG_STRIP_OFFSETS, TAG_STRIP_COUNTS = 256, 257, 277, 273, 279
_SHORT, _LONG = 3, 4


def truncate(src: Path, dst: Path, fraction: float = 0.3) -> Path:
    """The first ``fraction`` of ``src``'s bytes."""
    data = src.read_bytes()
    dst.write_bytes(data[: max(1, int(len(data) * fraction))])
    return dst


def _ifd(data: bytes | bytearray) -> tuple[int, int]:
    if data[:4] != b"II*\x00":
        raise ValueError("only little-endian classic TIFF files are patched")
    off = int.from_bytes(data[4:8], "little")
    return off, struct.unpack_from("<H", data, off)[0]


def _entries(data: bytes | bytearray) -> dict[int, tuple[int, int, int, int]]:
    """``{tag: (entry offset, type, count, value or offset)}`` of the first IFD."""
    off, n = _ifd(data)
    out = {}
    for i in range(n):
        pos = off + 2 + 12 * i
        tag, typ, cnt, val = struct.unpack_from("<HHII", data, pos)
        out[tag] = (pos, typ, cnt, val)
    return out


def patch_tags(src: Path, dst: Path, values: dict[int, int]) -> Path:
    """Copy ``src`` with single-value TIFF tags set to ``values`` (written as LONG)."""
    data = bytearray(src.read_bytes())
    entries = _entries(data)
    for tag, value in values.items():
        pos, _, cnt, _ = entries[tag]
        if cnt != 1:
            raise ValueError(f"tag {tag} holds {cnt} values")
        struct.pack_into("<HHII", data, pos, tag, _LONG, 1, value)
    dst.write_bytes(bytes(data))
    return dst


def corrupt_pixels(src: Path, dst: Path) -> Path:
    """Copy ``src`` with its compressed pixel strips overwritten (tags and georeferencing intact)."""
    data = bytearray(src.read_bytes())
    e = _entries(data)

    def values(tag: int) -> list[int]:
        _, typ, cnt, val = e[tag]
        if cnt == 1:
            return [val]
        fmt = "<" + ("I" if typ == _LONG else "H") * cnt
        return list(struct.unpack_from(fmt, data, val))

    for off, n in zip(values(TAG_STRIP_OFFSETS), values(TAG_STRIP_COUNTS), strict=True):
        data[off : off + n] = bytes((i * 37 + 11) % 251 for i in range(n))  # not a deflate stream
    dst.write_bytes(bytes(data))
    return dst


def rewrite(
    src: Path, dst: Path, pixels: Callable[[np.ndarray], np.ndarray] | None = None, **profile: Any
) -> Path:
    """Rewrite a real raster: ``pixels`` maps its array, ``profile`` overrides its profile."""
    import rasterio

    with rasterio.open(src) as s:
        arr = s.read()
        prof = s.profile.copy()
    out = pixels(arr) if pixels is not None else arr
    prof.update(count=out.shape[0], dtype=str(out.dtype), **profile)
    if prof.get("crs") is None:
        prof.pop("crs", None)
    with rasterio.open(dst, "w", **prof) as d:
        d.write(out)
    return dst


def strip_georeferencing(src: Path, dst: Path, *, keep_transform: bool) -> Path:
    """A real raster without a CRS (and without its transform unless ``keep_transform``)."""
    import rasterio
    import rasterio.errors
    from rasterio.transform import Affine

    with rasterio.open(src) as s:
        arr, prof = s.read(), s.profile.copy()
    prof.pop("crs", None)
    if not keep_transform:
        prof["transform"] = Affine.identity()
    with warnings.catch_warnings():  # the missing georeferencing is the point
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(dst, "w", **prof) as d:
            d.write(arr)
    return dst


def reproject_to(src: Path, dst: Path, crs: str = "EPSG:4326") -> Path:
    """The real raster warped into ``crs`` (a scene in geographic coordinates)."""
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(src) as s:
        transform, width, height = calculate_default_transform(s.crs, crs, s.width, s.height, *s.bounds)
        prof = s.profile.copy()
        prof.update(crs=crs, transform=transform, width=width, height=height, nodata=0)
        with rasterio.open(dst, "w", **prof) as d:
            for b in range(1, s.count + 1):
                reproject(rasterio.band(s, b), rasterio.band(d, b), resampling=Resampling.nearest)
    return dst


def crop(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """The upper-left ``fraction`` of a real raster (a band file of another size and extent)."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(src) as s:
        w = Window(0, 0, max(1, int(s.width * fraction)), max(1, int(s.height * fraction)))
        arr = s.read(window=w)
        prof = s.profile.copy()
        prof.update(width=arr.shape[2], height=arr.shape[1], transform=s.window_transform(w))
    for key in ("blockxsize", "blockysize"):
        prof.pop(key, None)
    prof["tiled"] = False
    with rasterio.open(dst, "w", **prof) as d:
        d.write(arr)
    return dst


def copy_tree(src: Path, dst: Path) -> Path:
    """A private copy of a folder."""
    shutil.copytree(src, dst)
    return dst
