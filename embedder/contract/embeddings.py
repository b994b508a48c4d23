"""The embeddings table: its schema, the ``earthvec`` metadata block, validation and reading.

Each embeddings file carries two schema-metadata blocks: ``earthvec`` (JSON, see
:class:`DatasetMeta`) and ``geo`` (GeoParquet 1.1 with a ``bbox`` covering column, so
GeoPandas and QGIS open the files). Rows are one chip each, keyed by ``(h3, datetime)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from embedder.contract.columns import (
    BBOX,
    DATETIME,
    EMBEDDING,
    GEO_KEY,
    GEOMETRY,
    H3,
    LAT,
    LON,
    META_KEY,
    MODALITIES,
    MODEL,
    PARTITION,
    SCHEMA_VERSION,
    SENSORS,
    SOURCE,
    VALID_FRACTION,
)
from embedder.contract.geo import bbox_array, geo_metadata, with_bbox_field
from embedder.contract.layout import embeddings_dir
from embedder.contract.snapshot import embedding_files, pinned
from embedder.errors import ModelMismatchError, SchemaError


def arrow_schema(dim: int, meta: DatasetMeta | None = None) -> pa.Schema:
    """The Arrow schema of an embeddings file with vectors of length ``dim``."""
    fields = [
        pa.field(H3, pa.uint64(), nullable=False),
        pa.field(LAT, pa.float64(), nullable=False),
        pa.field(LON, pa.float64(), nullable=False),
        pa.field(GEOMETRY, pa.binary(), nullable=False),
        pa.field(DATETIME, pa.timestamp("us", tz="UTC"), nullable=True),
        pa.field(SOURCE, pa.list_(pa.string()), nullable=False),
        pa.field(MODALITIES, pa.list_(pa.string()), nullable=False),
        pa.field(SENSORS, pa.list_(pa.string()), nullable=False),
        pa.field(VALID_FRACTION, pa.float32(), nullable=False),
        pa.field(MODEL, pa.string(), nullable=False),
        pa.field(EMBEDDING, pa.list_(pa.float32(), dim), nullable=False),
    ]
    schema = pa.schema(with_bbox_field(fields))
    if meta is not None:
        schema = schema.with_metadata(meta.to_metadata())
    return schema


REQUIRED_COLUMNS = tuple(arrow_schema(1).names)


@dataclass
class DatasetMeta:
    """Metadata stored in every embeddings file (key ``earthvec``)."""

    model_name: str
    model_version: str
    dim: int
    h3_resolution: int
    partition_resolution: int
    model_config: dict[str, Any] = field(default_factory=dict)
    normalisation: dict[str, Any] = field(default_factory=dict)
    sensors: dict[str, Any] = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION

    @property
    def model(self) -> str:
        """``name@version`` as in the ``model`` column."""
        return f"{self.model_name}@{self.model_version}"

    def to_metadata(self) -> dict[bytes, bytes]:
        """Schema metadata blocks (earthvec + GeoParquet)."""
        return {
            META_KEY: json.dumps(asdict(self), sort_keys=True).encode(),
            GEO_KEY: json.dumps(geo_metadata()).encode(),
        }

    @classmethod
    def from_schema(cls, schema: pa.Schema, where: str) -> DatasetMeta:
        """Read the ``earthvec`` block from a schema.

        Raises:
            SchemaError: when the block is missing, malformed or of another schema version.
        """
        raw = (schema.metadata or {}).get(META_KEY)
        if raw is None:
            raise SchemaError(f"{where} has no earthvec metadata; it was not written by earthvec")
        try:
            d = json.loads(raw)
            meta = cls(**d)
        except (ValueError, TypeError) as exc:
            raise SchemaError(f"{where} has malformed earthvec metadata: {exc}") from exc
        if meta.schema_version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise SchemaError(
                f"{where} uses schema {meta.schema_version}, this earthvec reads {SCHEMA_VERSION}; "
                "rebuild the database with this version"
            )
        return meta

    def compatible(self, other: DatasetMeta) -> bool:
        """Same model version, dimension and resolution (rows can live in one dataset)."""
        return (self.model, self.dim, self.h3_resolution) == (other.model, other.dim, other.h3_resolution)


def validate_schema(schema: pa.Schema, where: str) -> DatasetMeta:
    """Check that ``schema`` follows the contract and return its metadata.

    Raises:
        SchemaError: naming the file and the offending column.
    """
    meta = DatasetMeta.from_schema(schema, where)
    expected = arrow_schema(meta.dim)
    for f in expected:
        if f.name not in schema.names:
            raise SchemaError(f"{where} lacks column {f.name!r} required by the earthvec contract")
        got = schema.field(f.name).type
        if not got.equals(f.type):
            raise SchemaError(f"{where}: column {f.name!r} has type {got}, the contract needs {f.type}")
    return meta


def make_table(
    *,
    h3: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    geometry: list[bytes],
    datetime_: list[datetime | None],
    source: list[list[str]],
    modalities: list[list[str]],
    sensors: list[list[str]],
    valid_fraction: np.ndarray,
    embedding: np.ndarray,
    meta: DatasetMeta,
) -> pa.Table:
    """Assemble a contract table; checks shapes and that vectors are unit length.

    Raises:
        SchemaError: when a column has the wrong length or vectors are not normalised.
    """
    n = len(h3)
    emb = np.ascontiguousarray(embedding, dtype=np.float32)
    if emb.shape != (n, meta.dim):
        raise SchemaError(f"embedding shape {emb.shape} does not match ({n}, {meta.dim})")
    norms = np.linalg.norm(emb, axis=1)
    if n and not np.allclose(norms, 1.0, atol=1e-3):
        raise SchemaError("embeddings must be L2-normalised (unit length) before writing")
    cols = {
        H3: pa.array(np.asarray(h3, dtype=np.uint64)),
        LAT: pa.array(np.asarray(lat, dtype=np.float64)),
        LON: pa.array(np.asarray(lon, dtype=np.float64)),
        GEOMETRY: pa.array(geometry, type=pa.binary()),
        BBOX: bbox_array(geometry),
        DATETIME: pa.array(datetime_, type=pa.timestamp("us", tz="UTC")),
        SOURCE: pa.array(source, type=pa.list_(pa.string())),
        MODALITIES: pa.array(modalities, type=pa.list_(pa.string())),
        SENSORS: pa.array(sensors, type=pa.list_(pa.string())),
        VALID_FRACTION: pa.array(np.asarray(valid_fraction, dtype=np.float32)),
        MODEL: pa.array([meta.model] * n, type=pa.string()),
        EMBEDDING: pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), meta.dim),
    }
    for name, arr in cols.items():
        if len(arr) != n:
            raise SchemaError(f"column {name!r} has {len(arr)} values for {n} rows")
    return pa.Table.from_pydict(cols, schema=arrow_schema(meta.dim, meta))


DAMAGED_FIX = (
    "the database was changed outside earthvec; restore the file from a copy, or rebuild the "
    "database with earthvec build ... --overwrite"
)


def read_schema(path: str | Path) -> pa.Schema:
    """The Parquet schema of one shard.

    Raises:
        SchemaError: the file is no readable Parquet file (truncated, corrupt, another format).
    """
    try:
        return pq.read_schema(path)
    except FileNotFoundError as exc:
        raise SchemaError(
            f"{path} is listed in the database's manifest but missing (deleted outside earthvec): "
            f"{DAMAGED_FIX}"
        ) from exc
    except (pa.ArrowException, OSError) as exc:
        msg = " ".join(str(exc).split())
        raise SchemaError(
            f"{path} is not a readable Parquet file ({msg}); it is truncated or corrupt: {DAMAGED_FIX}"
        ) from exc


def read_meta(db: str | Path) -> DatasetMeta:
    """Validate every file's schema and return the database's single metadata.

    Raises:
        SchemaError: a file breaks the contract.
        ModelMismatchError: files come from different model versions or resolutions.
    """
    files = embedding_files(db)
    first: DatasetMeta | None = None
    first_file = files[0]
    for f in files:
        meta = validate_schema(read_schema(f), str(f))
        if first is None:
            first = meta
        elif not first.compatible(meta):
            raise ModelMismatchError(
                f"{db} mixes embeddings: {first_file} has {first.model} (dim {first.dim}, "
                f"res {first.h3_resolution}) but {f} has {meta.model} (dim {meta.dim}, "
                f"res {meta.h3_resolution}); never mix model versions: rebuild into a new "
                "database or delete the stale shards"
            )
    assert first is not None  # files is non-empty
    return first


def ensure_compatible(db: str | Path, meta: DatasetMeta, fix: str) -> None:
    """Refuse to add rows of ``meta`` to a database holding another model version or resolution.

    Args:
        db: database folder (may not exist yet).
        meta: metadata of the rows about to be written.
        fix: what the user should do instead (ends the error message).

    Raises:
        ModelMismatchError: naming both models and resolutions, and ``fix``.
    """
    try:
        old = read_meta(db)
    except FileNotFoundError:
        return
    if not old.compatible(meta):
        raise ModelMismatchError(
            f"{db} already holds embeddings from {old.model} at H3 res {old.h3_resolution}; this build "
            f"uses {meta.model} at res {meta.h3_resolution}. Never mix model versions: {fix}"
        )


def open_dataset(db: str | Path) -> tuple[pads.Dataset, DatasetMeta]:
    """Open the embeddings (one generation) as a pyarrow dataset after validating the contract."""
    with pinned(db):
        meta = read_meta(db)
        files = embedding_files(db)
    part = pads.partitioning(pa.schema([(PARTITION, pa.string())]), flavor="hive")
    ds = pads.dataset(
        [str(f) for f in files],
        schema=arrow_schema(meta.dim, meta).append(pa.field(PARTITION, pa.string())),
        format="parquet",
        partitioning=part,
        partition_base_dir=str(embeddings_dir(db)),
    )
    return ds, meta


def read_table(db: str | Path, columns: list[str] | None = None, filter: Any = None) -> pa.Table:
    """Read (some columns of) the embeddings, contract-checked.

    Raises:
        SchemaError: a shard cannot be read (its footer is intact but its data is damaged).
    """
    ds, _ = open_dataset(db)
    try:
        return ds.to_table(columns=columns, filter=filter)
    except (pa.ArrowInvalid, OSError) as exc:
        msg = " ".join(str(exc).split())
        raise SchemaError(
            f"cannot read the embeddings of {db} ({msg}); a shard is damaged: {DAMAGED_FIX}"
        ) from exc


def embeddings_matrix(table: pa.Table) -> np.ndarray:
    """The ``embedding`` column as a contiguous (N, D) float32 array (no copy per row)."""
    col = table.column(EMBEDDING).combine_chunks()
    dim = col.type.list_size
    return np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
