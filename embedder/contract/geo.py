"""The one GeoParquet 1.1 writer: WKB ``geometry`` plus a ``bbox`` covering column.

Every earthvec file with a geometry (embeddings, predictions, pyramid levels, exports) gets
its ``geo`` metadata and its ``bbox`` column here. The covering follows GeoParquet 1.1
(``covering.bbox`` names the struct fields ``xmin, ymin, xmax, ymax``), so readers such as
GeoPandas (``read_parquet(bbox=...)``), GDAL and DuckDB can skip row groups by bounding box.
Polygons are H3 cells with unwrapped longitudes, so a cell on the antimeridian has a small
box whose ``xmin`` or ``xmax`` lies beyond +-180.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import shapely

from embedder.contract.columns import BBOX, GEO_KEY, GEOMETRY

BBOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")
BBOX_TYPE = pa.struct([pa.field(f, pa.float64(), nullable=False) for f in BBOX_FIELDS])
GEOPARQUET_VERSION = "1.1.0"


def bbox_array(geometry: pa.Array | pa.ChunkedArray | Sequence[bytes]) -> pa.StructArray:
    """Per-row bounding boxes of WKB geometries (the covering column's values)."""
    if isinstance(geometry, pa.ChunkedArray):
        geometry = geometry.combine_chunks()
    wkb = geometry.to_numpy(zero_copy_only=False) if isinstance(geometry, pa.Array) else list(geometry)
    # unreadable WKB gets a NaN box (the contract checks the column types, not the geometry)
    b = shapely.bounds(shapely.from_wkb(np.asarray(wkb, dtype=object), on_invalid="ignore")).reshape(-1, 4)
    return pa.StructArray.from_arrays([pa.array(b[:, i]) for i in range(4)], fields=list(BBOX_TYPE))


def geo_metadata(bbox: Sequence[float] | None = None) -> dict[str, Any]:
    """GeoParquet 1.1 metadata for the ``geometry`` column (WKB polygons, OGC:CRS84).

    Args:
        bbox: the file's overall ``[xmin, ymin, xmax, ymax]`` when known (streamed files
            omit it; it is optional in the specification).
    """
    col: dict[str, Any] = {
        "encoding": "WKB",
        "geometry_types": ["Polygon"],
        "orientation": "counterclockwise",
        "edges": "planar",
        "covering": {"bbox": {f: [BBOX, f] for f in BBOX_FIELDS}},
    }
    if bbox is not None:
        col["bbox"] = [float(v) for v in bbox]
    return {"version": GEOPARQUET_VERSION, "primary_column": GEOMETRY, "columns": {GEOMETRY: col}}


def geo_schema(schema: pa.Schema, extra: dict[bytes, bytes] | None = None) -> pa.Schema:
    """``schema`` with the ``geo`` block (and ``extra`` blocks) in its metadata (for streamed writers).

    The schema must already hold the ``bbox`` column (see :func:`with_bbox_field`).
    """
    meta = dict(schema.metadata or {})
    meta[GEO_KEY] = json.dumps(geo_metadata()).encode()
    meta.update(extra or {})
    return schema.with_metadata(meta)


def with_bbox_field(fields: list[pa.Field]) -> list[pa.Field]:
    """``fields`` with the ``bbox`` covering field inserted right after ``geometry``."""
    names = [f.name for f in fields]
    at = names.index(GEOMETRY) + 1
    return [*fields[:at], pa.field(BBOX, BBOX_TYPE, nullable=False), *fields[at:]]


def add_bbox(table: pa.Table) -> pa.Table:
    """``table`` with its ``bbox`` column filled from ``geometry`` (inserted or replaced)."""
    box = bbox_array(table.column(GEOMETRY))
    fld = pa.field(BBOX, BBOX_TYPE, nullable=False)
    if BBOX in table.column_names:
        return table.set_column(table.column_names.index(BBOX), fld, box)
    return table.add_column(table.column_names.index(GEOMETRY) + 1, fld, box)


def file_bbox(table: pa.Table) -> list[float] | None:
    """Overall ``[xmin, ymin, xmax, ymax]`` of a table's ``bbox`` column (``None`` when empty)."""
    if table.num_rows == 0:
        return None
    col = table.column(BBOX)
    mins = [float(np.min(col.combine_chunks().field(f).to_numpy())) for f in BBOX_FIELDS[:2]]
    maxs = [float(np.max(col.combine_chunks().field(f).to_numpy())) for f in BBOX_FIELDS[2:]]
    return [*mins, *maxs]


def to_geoparquet(table: pa.Table, extra: dict[bytes, bytes] | None = None) -> pa.Table:
    """``table`` made a GeoParquet 1.1 table: ``bbox`` column and ``geo`` metadata with the overall box.

    Args:
        table: a table with a WKB ``geometry`` column.
        extra: further schema-metadata blocks to keep or add (e.g. ``earthvec``).
    """
    table = add_bbox(table)
    meta = dict(table.schema.metadata or {})
    meta[GEO_KEY] = json.dumps(geo_metadata(file_bbox(table))).encode()
    meta.update(extra or {})
    return table.replace_schema_metadata(meta)
