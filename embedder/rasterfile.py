"""Raster items and opening their files, local or remote (GDAL ``/vsicurl/`` range reads).

A *raster item* is one logical multi-band raster of one sensor: a single stacked file or a
group of one-file-per-band files (see :mod:`embedder.sources`). This module opens its files:
once per call (:func:`open_raster`), once per reader thread for a whole build
(:class:`OpenFiles`), or just for the header (:func:`raster_header`, cached per path).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import numpy as np
import rasterio

from embedder.errors import RasterError
from embedder.sensors import Sensor

URL_PREFIXES = ("http://", "https://", "s3://", "gs://", "/vsi")

# GDAL settings for remote COGs: no directory listing per open, HTTP range reads of .tif only
REMOTE_GDAL_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF,.vrt",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
}


@dataclass
class RasterItem:
    """One logical raster of one sensor.

    Attributes:
        key: the item's name (file path, or the shared path prefix of its band files).
        sensor: the sensor preset.
        band_files: band name -> (path, 1-based band index in that file).
        datetime: acquisition time when known.
        mask_files: quality-mask band name (``BQA``, ``SCL``) -> (path, band index).
    """

    key: str
    sensor: Sensor
    band_files: dict[str, tuple[str, int]] = field(default_factory=dict)
    datetime: datetime | None = None
    mask_files: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def paths(self) -> list[str]:
        """The distinct files of the item, in band order."""
        seen: dict[str, None] = {}
        for b in self.sensor.band_names:
            if b in self.band_files:
                seen.setdefault(self.band_files[b][0])
        return list(seen)

    @property
    def all_paths(self) -> list[str]:
        """Band files and then quality-mask files."""
        masks = [p for p, _ in self.mask_files.values()]
        return list(dict.fromkeys([*self.paths, *masks]))


def is_url(path: str) -> bool:
    """True for remote paths handled by GDAL (http, s3, /vsi...)."""
    return path.startswith(URL_PREFIXES)


def _remote_env() -> None:
    for k, v in REMOTE_GDAL_OPTIONS.items():
        os.environ.setdefault(k, v)


def gdal_message(exc: BaseException) -> str:
    """The most specific one-line message in an exception chain.

    That is GDAL's own text rather than rasterio's "See previous exception for details".
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    best = ""
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = " ".join(str(cur).split())
        if text and "previous exception" not in text:
            best = text
        cur = cur.__cause__ or cur.__context__
    return best or " ".join(str(exc).split())


def _read_error(path: str, exc: BaseException) -> RasterError:
    return RasterError(
        f"cannot read the pixels of {path!r} ({gdal_message(exc)}); the file is truncated or "
        "corrupt: download or export it again"
    )


def _open(path: str) -> rasterio.DatasetReader:
    if is_url(path):
        _remote_env()
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise RasterError(
            f"cannot read {path!r} as a raster ({gdal_message(exc)}); is it a complete GeoTIFF?"
        ) from exc


@contextmanager
def open_raster(path: str) -> Iterator[rasterio.DatasetReader]:
    """Open a local or remote raster for reading.

    Raises:
        RasterError: when the file cannot be read as a raster.
    """
    with _open(path) as src:
        try:
            yield src
        except rasterio.errors.RasterioIOError as exc:
            raise _read_error(path, exc) from exc


class OpenFiles:
    """Datasets opened once and kept open until :meth:`close` (one instance per reader thread).

    rasterio datasets must not be shared between threads; a reader gives each of its threads
    its own ``OpenFiles``, so every file is opened once per thread for a whole build.
    """

    def __init__(self) -> None:
        self._open: dict[str, rasterio.DatasetReader] = {}

    def get(self, path: str) -> rasterio.DatasetReader:
        """The open dataset of ``path`` (opened on first use).

        Raises:
            RasterError: when the file cannot be read as a raster.
        """
        src = self._open.get(path)
        if src is None:
            src = self._open[path] = _open(path)
        return src

    @contextmanager
    def use(self, path: str) -> Iterator[rasterio.DatasetReader]:
        """The open dataset of ``path``; read errors become :class:`RasterError`."""
        try:
            yield self.get(path)
        except rasterio.errors.RasterioIOError as exc:
            raise _read_error(path, exc) from exc

    @property
    def opened(self) -> int:
        """How many files are open."""
        return len(self._open)

    def close(self) -> None:
        """Close every open dataset."""
        for src in self._open.values():
            src.close()
        self._open.clear()


@dataclass(frozen=True)
class RasterHeader:
    """What one open of a raster file tells: band count, CRS, bounds and tags."""

    count: int
    crs: rasterio.crs.CRS | None
    bounds: tuple[float, float, float, float]
    tags: dict[str, str]
    descriptions: tuple[str | None, ...] = ()
    shape: tuple[int, int] = (0, 0)
    """Declared (height, width) in pixels."""
    itemsize: int = 0
    """Bytes per pixel of the widest band."""


@lru_cache(maxsize=65536)
def raster_header(path: str) -> RasterHeader:
    """Open ``path`` once and keep its header (cached per path).

    Raises:
        RasterError: when the file cannot be read as a raster.
    """
    with _open(path) as src:
        b = src.bounds
        return RasterHeader(
            int(src.count),
            src.crs,
            (b.left, b.bottom, b.right, b.top),
            dict(src.tags()),
            tuple(src.descriptions),
            (int(src.height), int(src.width)),
            max((np.dtype(d).itemsize for d in src.dtypes), default=0),
        )
