"""TESSERA (geotessera): 128-d annual pixel embeddings at 10 m on 0.1-degree tiles.

Layouts (from the geotessera repository: ``geotessera/registry.py``, ``tiles.py``, ``core.py``):

* NPY tiles ``<root>/global_0.1_degree_representation/<year>/grid_<lon>_<lat>/grid_<lon>_<lat>.npy``
  (int8, H x W x 128) with ``grid_<lon>_<lat>_scales.npy`` (float32, H x W or H x W x 128);
  de-quantised as ``q * scale`` (``geotessera.core.dequantize_embedding``); pixels with scale 0
  hold no data. NPY files carry no georeference: geotessera takes the CRS (the tile's UTM
  zone) and transform from the landmask ``<root>/global_0.1_degree_tiff_all/grid_<lon>_<lat>.tiff``,
  and so does this importer. ``<root>/tessera_metadata.json`` names the dataset version;
* GeoTIFF exports ``grid_<lon>_<lat>_<year>.tiff``: 128 float32 bands (already de-quantised),
  tags ``TESSERA_DATASET_VERSION`` and ``TESSERA_YEAR``.

v1 and v1.1 are different feature spaces: the version is part of the model id
(``tessera@1.0``), so they never mix in one database.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedder.errors import InputNotFoundError, RasterError, SourceError
from embedder.importers.files import check_year, expand_paths, one_version, year_from_path
from embedder.importers.products import get_product
from embedder.importers.raster import RasterSource
from embedder.rasterfile import open_raster

NAME = "tessera"
EMBEDDINGS_DIR = "global_0.1_degree_representation"
LANDMASKS_DIR = "global_0.1_degree_tiff_all"
METADATA_FILE = "tessera_metadata.json"
GRID_RE = re.compile(r"^grid_(-?\d+\.\d+)_(-?\d+\.\d+)")
SUFFIXES = (".npy", ".tif", ".tiff")


def normalise_version(v: str) -> str:
    """``v1`` / ``1`` / ``1.0`` -> ``1.0``; ``v1.1`` -> ``1.1`` (geotessera's spellings)."""
    s = str(v).strip().lstrip("vV")
    major, _, minor = s.partition(".")
    if not major.isdigit():
        raise SourceError(f"TESSERA version {v!r} is not understood; give e.g. 1.0 or 1.1")
    return f"{int(major)}.{minor or '0'}"


def dequantise(q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``q * scale`` with per-pixel (H x W) or per-value (H x W x 128) scales, float32."""
    s = scales[..., None] if scales.ndim == q.ndim - 1 else scales
    return q.astype(np.float32) * s.astype(np.float32)


class NpyTile:
    """One NPY tile (int8 + scales), georeferenced by its landmask GeoTIFF."""

    def __init__(self, path: str, landmask: Path, year: int) -> None:
        self.path = path
        self.year = year
        scales_path = Path(path).with_name(Path(path).stem + "_scales.npy")
        if not scales_path.is_file():
            raise InputNotFoundError(f"{path}: its scales file {scales_path.name} is missing beside it")
        self.q = np.load(path, mmap_mode="r")
        self.scales = np.load(scales_path, mmap_mode="r")
        self.dim = get_product(NAME).dim or 128
        if self.q.dtype != np.int8 or self.q.ndim != 3 or self.q.shape[2] != self.dim:
            raise RasterError(
                f"{path} is {self.q.dtype} {self.q.shape}; a TESSERA tile is int8 H x W x {self.dim}"
            )
        if self.scales.shape not in (self.q.shape[:2], self.q.shape):
            raise RasterError(f"{scales_path} has shape {self.scales.shape}; expected {self.q.shape[:2]}")
        with open_raster(str(landmask)) as src:
            if src.crs is None:
                raise RasterError(f"{landmask} has no CRS; it cannot georeference {path}")
            self.crs, self.transform = src.crs, src.transform
            shape = (src.height, src.width)
        if shape != self.q.shape[:2]:
            raise RasterError(f"{landmask} is {shape} px but {path} is {self.q.shape[:2]}; not the same tile")
        self.height, self.width = shape

    def read(self, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        """De-quantised vectors and validity (scale > 0) of a window."""
        s = np.asarray(self.scales[rows, cols], dtype=np.float32)
        vecs = dequantise(np.asarray(self.q[rows, cols]), s).reshape(-1, self.dim)
        ok = s > 0 if s.ndim == 2 else (s > 0).any(axis=-1)
        valid = ok.ravel() & np.isfinite(vecs).all(axis=1)
        return vecs, valid


class TiffTile(RasterSource):
    """One GeoTIFF export (128 float32 bands, de-quantised)."""

    def __init__(self, path: str, year: int | None) -> None:
        super().__init__(path, get_product(NAME).dim or 128, "TESSERA")
        if self.dtype.kind != "f":
            raise RasterError(f"{path} holds {self.dtype}; geotessera's GeoTIFF exports are float32")
        tag_year = self.tags.get("TESSERA_YEAR")
        y = year if year is not None else (int(tag_year) if tag_year else year_from_path(path))
        if y is None:
            raise SourceError(f"{path}: no TESSERA_YEAR tag and no year in its path; pass --year YYYY")
        self.year = check_year(y, path)


def _landmask(path: Path) -> Path:
    m = GRID_RE.match(path.stem)
    if m is None:
        raise SourceError(f"{path.name} is not named grid_<lon>_<lat>.npy as TESSERA tiles are")
    name = f"grid_{m.group(1)}_{m.group(2)}.tiff"
    for anc in path.parents:
        cand = anc / LANDMASKS_DIR / name
        if cand.is_file():
            return cand
    raise InputNotFoundError(
        f"{path}: no landmask {LANDMASKS_DIR}/{name} in a folder above it; NPY tiles hold no georeference "
        "and geotessera downloads the landmask beside them: download it too, or use GeoTIFF tiles"
    )


def _metadata_version(path: Path) -> str | None:
    for anc in path.parents:
        meta = anc / METADATA_FILE
        if meta.is_file():
            doc: dict[str, Any] = json.loads(meta.read_text())
            v = doc.get("dataset_version")
            return None if v is None else str(v)
    return None


@dataclass
class PixelImport:
    """Tiles of one TESSERA version."""

    sources: list[Any]
    version: str
    files: list[str]


def open_sources(paths: list[str], *, year: int | None = None, version: str | None = None) -> PixelImport:
    """The TESSERA tiles among ``paths`` (NPY tiles with landmasks, or GeoTIFF exports).

    Raises:
        InputNotFoundError: a scales file or landmask is missing.
        SourceError: unknown year or several versions.
        RasterError: a file has the wrong shape, type or no georeference.
    """
    files = [
        f for f in expand_paths(paths, SUFFIXES, NAME)
        if not f.endswith("_scales.npy") and LANDMASKS_DIR not in Path(f).parts
    ]  # fmt: skip
    if not files:
        raise InputNotFoundError(f"no TESSERA tile among {paths}; give grid_<lon>_<lat>.npy or .tiff files")
    srcs: list[Any] = []
    versions: dict[str, str] = {}
    for f in files:
        p = Path(f)
        if p.suffix.lower() == ".npy":
            y = year if year is not None else year_from_path(f)
            if y is None:
                raise SourceError(f"{f}: no <year> folder in its path; pass --year YYYY")
            srcs.append(NpyTile(f, _landmask(p), check_year(y, f)))
            found = _metadata_version(p)
        else:
            tile = TiffTile(f, year)
            srcs.append(tile)
            found = tile.tags.get("TESSERA_DATASET_VERSION")
        versions[f] = normalise_version(version or found or get_product(NAME).default_version or "1.0")
    return PixelImport(srcs, one_version(versions, NAME), files)
