"""Shard files: the upsert of one partition, written once, durably, under a deterministic name.

A write to a partition never edits a published file. It reads the partition's base files
(those of the generation the transaction started from), drops their rows whose
``(h3, datetime)`` the new rows (or the deletions) name, adds the new rows, sorts by
``(h3, datetime)`` and writes one new file. Its name hashes the content key and the base
files' checksums, so the same write on the same base always has the same name: a resumed
build finds it in the journal and, after checking it, reuses it.

:class:`ShardTarget` is all a worker process (or a Ray actor) needs to write a shard:
it is small and picklable, and :func:`write_shard_file` needs no lock (the transaction
that made the target holds it and records the result).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from embedder import contract
from embedder.contract import FileEntry, ShardRecord
from embedder.errors import SchemaError
from embedder.h3grid import cell_parents, cell_to_str, parse_cell

OLDEST = np.iinfo(np.int64).min  # rows without a datetime


@dataclass(frozen=True)
class ShardTarget:
    """Where one partition's upsert goes (picklable).

    Attributes:
        db: database folder.
        partition: hex id of the ``h3_parent`` partition.
        key: content key of the rows to write.
        path: output path relative to ``db`` (deterministic: key + base checksums).
        base: the partition's files in the base generation (relative paths).
    """

    db: str
    partition: str
    key: str
    path: str
    base: tuple[str, ...] = ()


def target_path(partition: str, key: str, base: Sequence[FileEntry]) -> str:
    """The deterministic relative path of an upsert of ``key`` onto ``base``."""
    h = hashlib.sha256(json.dumps([key, sorted(f.sha256 for f in base)]).encode()).hexdigest()[:20]
    return f"{contract.EMBEDDINGS_DIR}/{contract.PARTITION}={partition}/part-{h}.parquet"


def row_keys(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """``(h3 uint64, datetime int64 us)`` of every row (no datetime: the oldest int64)."""
    h3 = np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64)
    dt = pc.fill_null(table.column(contract.DATETIME).cast(pa.int64()), OLDEST)
    return h3, np.asarray(dt.to_numpy(), dtype=np.int64)


def _keys_of(pairs: Sequence[tuple[int, datetime | None]]) -> tuple[np.ndarray, np.ndarray]:
    if not pairs:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    h3 = np.array([int(c) for c, _ in pairs], dtype=np.uint64)
    dts = pa.array([d for _, d in pairs], type=pa.timestamp("us", tz="UTC"))
    return h3, np.asarray(pc.fill_null(dts.cast(pa.int64()), OLDEST).to_numpy(), dtype=np.int64)


def _merged_meta(new: pa.Table, base: list[pa.Table]) -> pa.Schema:
    """The new table's schema with the sensor tables of every input joined.

    Other metadata blocks of the new table (``geo``, an import's provenance) are kept.
    """
    meta = contract.DatasetMeta.from_schema(new.schema, "new shard")
    sensors = {}
    for t in base:
        sensors.update(contract.DatasetMeta.from_schema(t.schema, "base shard").sensors)
    sensors.update(meta.sensors)
    meta.sensors = dict(sorted(sensors.items()))
    return new.schema.with_metadata({**(new.schema.metadata or {}), **meta.to_metadata()})


def upsert(
    base: list[pa.Table], new: pa.Table, delete: Sequence[tuple[int, datetime | None]] = ()
) -> pa.Table:
    """``base`` rows not named by ``new`` or ``delete``, plus ``new``; sorted by ``(h3, datetime)``.

    Within ``base`` a key held twice (older folders) keeps its last row.

    Raises:
        SchemaError: ``new`` holds a ``(h3, datetime)`` twice.
    """
    schema = _merged_meta(new, base)
    tables = [t.select(schema.names).cast(schema) for t in base] + [new.cast(schema)]
    keys = [row_keys(t) for t in tables]
    nb = sum(t.num_rows for t in tables[:-1])
    dh, dd = _keys_of(delete)
    h3 = np.concatenate([*(k[0] for k in keys[:-1]), dh, keys[-1][0]])
    dt = np.concatenate([*(k[1] for k in keys[:-1]), dd, keys[-1][1]])
    pos = np.arange(len(h3))
    order = np.lexsort((pos, dt, h3))
    hs, ds = h3[order], dt[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (hs[1:] != hs[:-1]) | (ds[1:] != ds[:-1])
    keep = order[last]
    new_start = nb + len(dh)
    if int((keep >= new_start).sum()) != new.num_rows:
        raise SchemaError("the rows of one shard hold some (h3, datetime) twice; each must be unique")
    keep = keep[(keep < nb) | (keep >= new_start)]
    keep = np.where(keep >= new_start, keep - len(dh), keep)
    return pa.concat_tables(tables).take(pa.array(keep)).combine_chunks()


def write_shard_file(
    target: ShardTarget, table: pa.Table, delete: Sequence[tuple[int, datetime | None]] = ()
) -> ShardRecord:
    """Upsert ``table`` into the target's base and write the result durably (see module doc).

    Args:
        target: from :meth:`embedder.storage.Transaction.target`.
        table: contract rows of the partition (may be empty).
        delete: ``(h3, datetime)`` keys to remove from the base (rows the build planned
            but dropped, e.g. below ``--min-valid`` now).

    Returns:
        The record to hand to :meth:`embedder.storage.Transaction.add`.
    """
    db = Path(target.db)
    _check_partition(table, target.partition)
    base = [pq.read_table(db / p) for p in target.base]
    merged = upsert(base, table, delete) if (base or delete) else upsert([], table)
    if merged.num_rows == 0:
        return ShardRecord(target.partition, target.key, target.path, None)
    path = db / target.path
    contract.write_table_atomic(merged, path)
    return ShardRecord(target.partition, target.key, target.path, entry_of(db, target.path))


def _check_partition(table: pa.Table, partition: str) -> None:
    """Every row's cell must lie in ``partition`` (else a cell could live in two partitions).

    Raises:
        SchemaError: naming the first cell outside it.
    """
    if table.num_rows == 0:
        return
    meta = contract.DatasetMeta.from_schema(table.schema, "shard")
    h3, _ = row_keys(table)
    parents = cell_parents(h3, meta.partition_resolution)
    bad = np.flatnonzero(parents != np.uint64(parse_cell(partition)))
    if len(bad):
        raise SchemaError(
            f"cell {cell_to_str(int(h3[bad[0]]))} is not inside partition {partition} (res "
            f"{meta.partition_resolution}); give each partition only the rows of its cells"
        )


def entry_of(db: str | Path, rel: str) -> FileEntry:
    """The manifest entry (size, SHA-256, rows) of a file on disk."""
    path = Path(db) / rel
    return FileEntry(rel, path.stat().st_size, contract.sha256_file(path), pq.read_metadata(path).num_rows)


def verify(db: str | Path, entry: FileEntry) -> bool:
    """Whether the file still is what ``entry`` records: size, Parquet footer and SHA-256."""
    path = Path(db) / entry.path
    try:
        if path.stat().st_size != entry.size:
            return False
        if pq.read_metadata(path).num_rows != entry.rows:
            return False
        return contract.sha256_file(path) == entry.sha256
    except (OSError, pa.ArrowException):
        return False
