"""MODIS IGBP land-cover labels per H3 cell: a label source for evaluation and seeding only.

The labels come from the MODIS MCD12C1 2019 majority land cover (0.05 degrees). They are
never an input or a training target of an embedder; they serve ``earthvec label``/``eval``
as seeds and ground truth. Each cell gets the majority class over a ``k`` x ``k`` sample
grid spanning the cell (nodata samples ignored; cells with no valid sample get no label).

Written as ``DB/labels/modis_igbp.parquet`` with columns ``h3`` (uint64), ``label`` (int16
IGBP code) and ``label_name`` (string).

The Koppen-Geiger main climate zone (1 A tropical .. 5 E polar, from the ``climate`` input
layer and its sensor preset's class table) is written the same way, by majority over the
same footprint, as ``DB/labels/koppen.parquet``: a second label table for SQL joins and
evaluation (the climate layer is also an embedder input, so it is no independent truth).
"""

from __future__ import annotations

import csv
from collections.abc import Collection
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa

from embedder import contract
from embedder.globe.cells import cell_radius_deg
from embedder.globe.grid import MIN_COS_LAT, NEAREST
from embedder.globe.layers import GlobalLayers, layer_table

LABEL_LAYER = "landcover"
KOPPEN_LAYER = "climate"
LABEL = contract.LABEL
LABEL_NAME = contract.LABEL_NAME
NO_LABEL = -1
SAMPLES_PER_SIDE = 5


@lru_cache(maxsize=1)
def igbp_classes() -> dict[int, str]:
    """IGBP class code -> name (0 water, 1..16 land classes), from ``igbp.csv``."""
    name = layer_table()[LABEL_LAYER]["classes_file"]
    text = resources.files("embedder.globe").joinpath(name).read_text()
    return {int(r["code"]): r["name"] for r in csv.DictReader(text.splitlines())}


def _footprint(lat: np.ndarray, lon: np.ndarray, res: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows (N, k) and columns (N, k) of a ``k`` x ``k`` sample grid spanning each cell."""
    half = cell_radius_deg(res)
    off = ((np.arange(k) + 0.5) / k - 0.5) * 2.0 * half
    stretch = 1.0 / np.maximum(np.cos(np.radians(lat)), MIN_COS_LAT)
    rows = np.clip(lat[:, None] - off[None, :], -90.0, 90.0)
    cols = lon[:, None] + off[None, :] * stretch[:, None]
    return rows, cols


def _majority(codes: np.ndarray, valid: np.ndarray, n_codes: int) -> np.ndarray:
    """Most frequent valid code per row of ``codes`` (N, S), :data:`NO_LABEL` if none valid."""
    n = len(codes)
    key = np.arange(n, dtype=np.int64)[:, None] * n_codes + np.where(valid, codes, 0)
    counts = np.bincount(key[valid], minlength=n * n_codes).reshape(n, n_codes)
    out = counts.argmax(axis=1).astype(np.int16)
    out[counts.sum(axis=1) == 0] = NO_LABEL
    return out


def _layer_codes(
    layers: GlobalLayers, layer: str, lat: np.ndarray, lon: np.ndarray, res: int, k: int
) -> np.ndarray:
    """Class codes (N, k*k) sampled nearest-neighbour over each cell's footprint, -1 for NaN."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    rows, cols = _footprint(lat, lon, res, k)
    values = layers.raster(layer).sample_windows(rows, cols, NEAREST).reshape(len(lat), -1)
    finite = np.isfinite(values)
    return np.where(finite, np.rint(np.where(finite, values, 0.0)), -1).astype(np.int64)


def majority_class(
    layers: GlobalLayers,
    layer: str,
    classes: Collection[int],
    lat: np.ndarray,
    lon: np.ndarray,
    res: int,
    k: int = SAMPLES_PER_SIDE,
) -> np.ndarray:
    """Majority class of a coded layer per cell, int16 (N,), :data:`NO_LABEL` where none is valid.

    Samples a ``k`` x ``k`` grid over each cell's footprint (nearest neighbour); samples whose
    code is not in ``classes`` (nodata, NaN) are ignored.

    Args:
        layers: the global layers.
        layer: name of the coded layer (``landcover``, ``climate``).
        classes: the valid class codes (non-negative).
        lat: (N,) cell centre latitudes.
        lon: (N,) cell centre longitudes.
        res: H3 resolution of the cells (sets the sampled footprint).
        k: samples per side of the footprint grid.
    """
    codes = _layer_codes(layers, layer, lat, lon, res, k)
    return _majority(codes, np.isin(codes, list(classes)), max(classes) + 1)


def majority_labels(
    layers: GlobalLayers, lat: np.ndarray, lon: np.ndarray, res: int, k: int = SAMPLES_PER_SIDE
) -> np.ndarray:
    """Majority IGBP class per cell (:func:`majority_class` of the MODIS land cover)."""
    return majority_class(layers, LABEL_LAYER, igbp_classes(), lat, lon, res, k)


def koppen_classes(layers: GlobalLayers) -> dict[int, str]:
    """Koppen class code -> name (1 A tropical .. 5 E polar), from the climate sensor preset."""
    table = layers.sensor(KOPPEN_LAYER).extra.get("classes", {})
    return {int(code): str(name) for code, name in table.items()}


def majority_koppen(
    layers: GlobalLayers, lat: np.ndarray, lon: np.ndarray, res: int, k: int = SAMPLES_PER_SIDE
) -> np.ndarray:
    """Majority Koppen main climate zone per cell (:func:`majority_class` of the climate layer)."""
    return majority_class(layers, KOPPEN_LAYER, koppen_classes(layers), lat, lon, res, k)


def labels_table(cells: np.ndarray, codes: np.ndarray, names: dict[int, str] | None = None) -> pa.Table:
    """A labels table (h3, label, label_name) for the cells that have a label.

    Args:
        cells: (N,) H3 cells.
        codes: (N,) class codes, :data:`NO_LABEL` for none.
        names: class code -> name (default the IGBP classes).
    """
    keep = np.asarray(codes) != NO_LABEL
    names = igbp_classes() if names is None else names
    cells = np.asarray(cells, dtype=np.uint64)[keep]
    codes = np.asarray(codes, dtype=np.int16)[keep]
    return pa.table(
        {
            contract.H3: pa.array(cells, type=pa.uint64()),
            LABEL: pa.array(codes, type=pa.int16()),
            LABEL_NAME: pa.array([names[int(c)] for c in codes], type=pa.string()),
        },
        schema=contract.label_layer_schema(),
    )


def labels_path(db: str | Path) -> Path:
    """Where the MODIS labels of a database live."""
    return contract.label_path(db, contract.MODIS_LABELS)


def koppen_path(db: str | Path) -> Path:
    """Where the Koppen climate-zone labels of a database live."""
    return contract.label_path(db, contract.KOPPEN_LABELS)
