"""Google Satellite Embedding (AlphaEarth Foundations): 64-d annual pixel embeddings at 10 m.

Two layouts (from Google's "AlphaEarth Foundations GCS data" readme and the Earth Engine
catalogue entry GOOGLE/SATELLITE_EMBEDDING/V1_ANNUAL):

* the Cloud Storage COGs ``satellite_embedding/v1/annual/<year>/<UTM zone>/<name>.tiff``:
  8192x8192 px, 64 int8 bands A00..A63, NoData -128 (a masked pixel is -128 in every band).
  De-quantisation: ``sign(q) * (|q| / 127.5) ** 2``; the de-quantised pixel has length 1.
  Some copies (the Source Cooperative mirror) are "bottom-up" (positive y resolution);
  pixels are placed through the file's own affine transform, so either way works;
* Earth Engine exports: 64-band float GeoTIFFs (bands A00..A63, already de-quantised), in
  whatever CRS the export asked for; masked pixels are NaN, the file's nodata, or all zero.

Year: ``--year``, else the path's ``<year>`` folder. Version: ``--version``, else the path
part after ``satellite_embedding`` (``v1``), else ``v1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedder.errors import RasterError, SourceError
from embedder.importers.files import check_year, expand_paths, one_version, year_from_path
from embedder.importers.products import get_product
from embedder.importers.raster import RasterSource

NAME = "satellite-embedding"
NODATA = -128
SCALE = 127.5
SUFFIXES = (".tif", ".tiff", ".vrt")


def _formula(q: np.ndarray) -> np.ndarray:
    v = q.astype(np.float32) / np.float32(SCALE)
    return np.sign(v) * v * v


_LUT = _formula(np.arange(256, dtype=np.uint8).view(np.int8))


def dequantise(q: np.ndarray) -> np.ndarray:
    """Int8 values to the native range [-1, 1]: ``sign(q) * (|q| / 127.5) ** 2`` (float32, by table)."""
    return _LUT[np.asarray(q, dtype=np.int8).view(np.uint8)]


def quantise(v: np.ndarray) -> np.ndarray:
    """The inverse of :func:`dequantise` (rounded, clipped to [-127, 127]); -128 stays free for NoData."""
    q = np.sign(v) * np.sqrt(np.abs(v)) * SCALE
    return np.clip(np.rint(q), -127, 127).astype(np.int8)


class EmbeddingRaster(RasterSource):
    """One Satellite Embedding raster (int8 COG or float export)."""

    def __init__(self, path: str, year: int) -> None:
        super().__init__(path, get_product(NAME).dim or 64, "Satellite Embedding")
        self.year = year
        if self.dtype == np.int8:
            self.quantised = True
        elif self.dtype.kind == "f":
            self.quantised = False
        else:
            raise RasterError(
                f"{path} holds {self.dtype} values; Satellite Embedding rasters are int8 (Cloud Storage "
                "COGs) or float (Earth Engine exports)"
            )

    def convert(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """De-quantise int8 pixels (NoData -128, or the file's nodata, in any band is masked)."""
        if not self.quantised:
            return super().convert(flat)
        nodata = NODATA if self.nodata is None else int(self.nodata)
        valid = ~(flat == nodata).any(axis=1)
        return dequantise(flat), valid


@dataclass
class PixelImport:
    """Rasters of one product version, each with its year."""

    sources: list[EmbeddingRaster]
    version: str
    files: list[str]


def version_from_path(path: str) -> str | None:
    """``v1`` from ``.../satellite_embedding/v1/annual/...``."""
    parts = Path(path).parts
    for a, b in zip(parts, parts[1:], strict=False):
        if a == "satellite_embedding":
            return b
    return None


def open_sources(paths: list[str], *, year: int | None = None, version: str | None = None) -> PixelImport:
    """The Satellite Embedding rasters among ``paths`` (files, folders, globs).

    Raises:
        SourceError: a file's year is unknown (pass --year) or files hold several versions.
        RasterError: a file is not a 64-band int8/float raster with a CRS.
    """
    files = expand_paths(paths, SUFFIXES, NAME)
    default = get_product(NAME).default_version or "v1"
    versions = {f: version or version_from_path(f) or default for f in files}
    srcs = []
    for f in files:
        y = year if year is not None else year_from_path(f)
        if y is None:
            raise SourceError(
                f"{f}: no year in its path (the Cloud Storage layout is .../annual/<year>/<zone>/); "
                "pass --year YYYY"
            )
        srcs.append(EmbeddingRaster(f, check_year(y, f)))
    return PixelImport(srcs, one_version(versions, NAME), files)
