"""Major TOM embedding shards: Parquet, one row per image fragment.

Layout (Hugging Face ``Major-TOM/Core-*-{SSL4EO,DINOv2,SigLIP,DeCUR}``, ``embeddings/part_*.parquet``,
and ``MajorTOM_Embedder`` in ``ESA-PhiLab/Major-TOM``): ``unique_id``, ``embedding`` (list of
floats, unnormalised model output), ``timestamp`` (``%Y%m%dT%H%M%S``), ``product_id``,
``grid_cell``, ``grid_row_u``, ``grid_col_r``, ``geometry`` (WKB footprint, WGS84),
``centre_lat``, ``centre_lon`` (the footprint's centroid), ``utm_footprint``, ``utm_crs``,
``pixel_bbox``. Fragments overlap (10 % by default), so several may share a coarse cell.

Version: ``--version``, else the dataset folder holding ``embeddings/`` (``Core-S2L1C-SSL4EO``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from embedder.errors import SchemaError, SourceError
from embedder.importers.chips import (
    PARQUET_SUFFIXES,
    ChipImport,
    concat,
    file_label,
    read_columns,
    vectors_of,
)
from embedder.importers.files import expand_paths

NAME = "majortom"
NEEDED = ("embedding", "centre_lat", "centre_lon", "timestamp")
OPTIONAL = ("product_id", "unique_id", "pixel_bbox")
TIME_FORMAT = "%Y%m%dT%H%M%S"
SENSOR_OF_PREFIX = {"S2": ("sentinel-2", "optical"), "S1": ("sentinel-1", "sar")}


def version_from_path(path: str) -> str | None:
    """``Core-S2L1C-SSL4EO`` from ``.../Core-S2L1C-SSL4EO/embeddings/part_00001-00050.parquet``."""
    p = Path(path)
    return p.parent.parent.name if p.parent.name == "embeddings" and p.parent.parent.name else None


def _time(text: str, where: str) -> datetime:
    try:
        return datetime.strptime(str(text), TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError as exc:
        raise SchemaError(f"{where}: timestamp {text!r} is not {TIME_FORMAT} as in Major TOM") from exc


def _read(path: str, version: str) -> ChipImport:
    t = read_columns(path, NEEDED, "Major TOM", OPTIONAL)
    vecs = vectors_of(t.column("embedding"), path)
    products = t.column("product_id").to_pylist() if "product_id" in t.column_names else [""] * t.num_rows
    label = file_label(path)
    sensors, mods = [], []
    for pid in products:
        s, m = SENSOR_OF_PREFIX.get(str(pid)[:2], (None, None))
        sensors.append([s] if s else [])
        mods.append([m] if m else [])
    px = t.column("pixel_bbox").to_pylist() if "pixel_bbox" in t.column_names else []
    side = float(np.median([abs(b[2] - b[0]) for b in px if b])) * 10.0 if px else None
    return ChipImport(
        lat=np.asarray(t.column("centre_lat").to_numpy(), dtype=np.float64),
        lon=np.asarray(t.column("centre_lon").to_numpy(), dtype=np.float64),
        vectors=vecs,
        datetimes=[_time(s, path) for s in t.column("timestamp").to_pylist()],
        sources=[[label, str(p)] if p else [label] for p in products],
        sensors=sensors,
        modalities=mods,
        version=version,
        files=[label],
        chip_size_m=side,
    )


def read_chips(paths: list[str], *, version: str | None = None) -> ChipImport:
    """Every fragment of the shards among ``paths``.

    Raises:
        SourceError: the dataset (version) is neither given nor in the path.
        SchemaError: a file lacks the layout's columns or holds bad values.
    """
    files = expand_paths(paths, PARQUET_SUFFIXES, NAME)
    found = {version or version_from_path(f) for f in files}
    if None in found:
        raise SourceError(
            "Major TOM files carry no model name: pass --version with the dataset name, e.g. "
            "--version Core-S2L1C-SSL4EO (or keep the <dataset>/embeddings/ folders)"
        )
    if len(found) > 1:
        raise SourceError(
            f"the shards come from several datasets {sorted(map(str, found))}; import each alone"
        )
    v = str(found.pop())
    return concat([_read(f, v) for f in files], v)
