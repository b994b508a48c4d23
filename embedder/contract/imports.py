"""Imported rows: the pooling columns and the ``earthvec_import`` provenance block.

A database made by ``earthvec import`` holds the contract's embeddings columns plus two
optional ones that say how each row was pooled from the product's pixels or chips:

* ``count`` (int64): valid pixels (pixel products) or chips (chip products) averaged into
  the row;
* ``spread`` (float32, only with ``--spread``): ``1 - |mean of the unit pixel vectors|``,
  0 when every pixel agrees and up to 1 when they cancel (the pyramid's definition).

Every imported file also carries an ``earthvec_import`` metadata block (JSON): product,
version, years and the source files that fed its rows.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from embedder.contract.columns import COUNT, IMPORT_META_KEY, SPREAD
from embedder.errors import SchemaError


def with_pooling_columns(table: pa.Table, count: np.ndarray, spread: np.ndarray | None = None) -> pa.Table:
    """``table`` with the ``count`` column (and ``spread`` when given) appended.

    Raises:
        SchemaError: when a column's length differs from the table's.
    """
    n = table.num_rows
    if len(count) != n or (spread is not None and len(spread) != n):
        raise SchemaError(f"pooling columns have {len(count)} values for {n} rows")
    meta = table.schema.metadata
    out = table.append_column(pa.field(COUNT, pa.int64(), nullable=False), pa.array(count, type=pa.int64()))
    if spread is not None:
        out = out.append_column(
            pa.field(SPREAD, pa.float32(), nullable=False), pa.array(spread, type=pa.float32())
        )
    return out.replace_schema_metadata(meta)


def with_import_metadata(table: pa.Table, info: dict[str, Any]) -> pa.Table:
    """``table`` with the ``earthvec_import`` block (JSON of ``info``) added to its metadata."""
    meta = dict(table.schema.metadata or {})
    meta[IMPORT_META_KEY] = json.dumps(info, sort_keys=True, default=str).encode()
    return table.replace_schema_metadata(meta)


def import_metadata(schema: pa.Schema) -> dict[str, Any] | None:
    """The ``earthvec_import`` block of a file's schema, or ``None`` for built (not imported) files."""
    raw = (schema.metadata or {}).get(IMPORT_META_KEY)
    return None if raw is None else dict(json.loads(raw))
