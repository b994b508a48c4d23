"""Schemas of the derived tables: seeds, label layers, prediction maps and pyramid levels.

The geometry-bearing ones (predictions, pyramid) are GeoParquet 1.1 with a ``bbox``
covering column (see :mod:`embedder.contract.geo`).
"""

from __future__ import annotations

import pyarrow as pa

from embedder.contract.columns import (
    CONFIDENCE,
    COUNT,
    EMBEDDING,
    GEOMETRY,
    H3,
    LABEL,
    LABEL_NAME,
    LAT,
    LON,
    SPREAD,
)
from embedder.contract.geo import with_bbox_field


def seeds_schema() -> pa.Schema:
    """Seeds mapped onto cells, as stored in ``DB/labels/<seed file stem>.parquet``."""
    return pa.schema(
        [pa.field(H3, pa.uint64()), pa.field(LAT, pa.float64()), pa.field(LON, pa.float64()),
         pa.field(LABEL, pa.string())]
    )  # fmt: skip


def label_layer_schema() -> pa.Schema:
    """A coded label layer (``DB/labels/modis_igbp.parquet``, ``koppen.parquet``): h3, code, name."""
    return pa.schema(
        [pa.field(H3, pa.uint64()), pa.field(LABEL, pa.int16()), pa.field(LABEL_NAME, pa.string())]
    )


def _cell_geo_schema(*fields: pa.Field) -> pa.Schema:
    """A GeoParquet table of cells: h3, centre, WKB polygon, ``fields`` and the ``bbox`` covering."""
    cell = [
        pa.field(H3, pa.uint64(), nullable=False),
        pa.field(LAT, pa.float64(), nullable=False),
        pa.field(LON, pa.float64(), nullable=False),
        pa.field(GEOMETRY, pa.binary(), nullable=False),
    ]
    return pa.schema(with_bbox_field([*cell, *fields]))


def prediction_schema() -> pa.Schema:
    """Schema of a prediction map (GeoParquet; ``DB/predictions/<name>.parquet``)."""
    return _cell_geo_schema(
        pa.field(LABEL, pa.string(), nullable=False), pa.field(CONFIDENCE, pa.float32(), nullable=False)
    )


def pyramid_schema(dim: int) -> pa.Schema:
    """Schema of a pyramid level (GeoParquet; ``DB/pyramid/res=<r>.parquet``)."""
    return _cell_geo_schema(
        pa.field(COUNT, pa.int64(), nullable=False),
        pa.field(SPREAD, pa.float32(), nullable=False),
        pa.field(EMBEDDING, pa.list_(pa.float32(), dim), nullable=False),
    )
