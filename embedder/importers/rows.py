"""Writing imported rows: contract tables grouped per H3 partition, one shard file each.

Every import writes through one write transaction (:class:`~embedder.storage.Transaction`),
one ``write_shard`` call per ``h3_parent`` partition, under a key that hashes what fixes the shard's
content (product version, resolution, partition, the source files' signatures), so a
re-run finds its shards and skips them. Rows of a second product, or of another version,
are refused: one database holds one product version (one model), never a mix.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from embedder import contract, h3grid
from embedder.errors import ModelMismatchError, SchemaError
from embedder.importers.products import Product
from embedder.storage import Transaction
from embedder.vectors import config_hash

PARTITION_OFFSET = 7
"""Partition resolution = row resolution - 7 (as ``earthvec build``)."""


@dataclass
class CellRows:
    """Rows to write: one per (cell, datetime), unit vectors, provenance and pooling counts."""

    cells: np.ndarray
    datetimes: list[datetime | None]
    vectors: np.ndarray
    valid_fraction: np.ndarray
    count: np.ndarray
    spread: np.ndarray | None
    sources: list[list[str]]
    sensors: list[list[str]]
    modalities: list[list[str]]

    def __len__(self) -> int:
        return len(self.cells)

    @classmethod
    def concat(cls, parts: list[CellRows]) -> CellRows:
        """All rows of ``parts`` in order."""
        if not parts:
            raise SchemaError("nothing to import: no valid pixel or chip in the inputs")
        spreads = [p.spread for p in parts if p.spread is not None]
        spread = np.concatenate(spreads) if len(spreads) == len(parts) else None
        return cls(
            cells=np.concatenate([p.cells for p in parts]),
            datetimes=[d for p in parts for d in p.datetimes],
            vectors=np.concatenate([p.vectors for p in parts]),
            valid_fraction=np.concatenate([p.valid_fraction for p in parts]),
            count=np.concatenate([p.count for p in parts]),
            spread=spread,
            sources=[s for p in parts for s in p.sources],
            sensors=[s for p in parts for s in p.sensors],
            modalities=[m for p in parts for m in p.modalities],
        )

    def take(self, idx: np.ndarray) -> CellRows:
        """The rows at positions ``idx``."""
        ix = idx.tolist()
        return CellRows(
            cells=self.cells[idx],
            datetimes=[self.datetimes[i] for i in ix],
            vectors=self.vectors[idx],
            valid_fraction=self.valid_fraction[idx],
            count=self.count[idx],
            spread=None if self.spread is None else self.spread[idx],
            sources=[self.sources[i] for i in ix],
            sensors=[self.sensors[i] for i in ix],
            modalities=[self.modalities[i] for i in ix],
        )


@dataclass
class ImportReport:
    """What an import did (also written to ``DB/import.json``)."""

    db: str
    product: str
    model: str
    resolution: int
    files: int
    rows: int = 0
    rows_written: int = 0
    partitions_total: int = 0
    partitions_written: int = 0
    partitions_skipped: int = 0
    pixels_read: int = 0
    pixels_valid: int = 0
    chips_read: int = 0
    years: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return dict(self.__dict__)


def import_meta(
    product: Product, version: str, dim: int, res: int, config: dict[str, Any]
) -> contract.DatasetMeta:
    """The database metadata of rows imported from ``product`` (model ``name@version``)."""
    return contract.DatasetMeta(
        model_name=product.name,
        model_version=version,
        dim=dim,
        h3_resolution=res,
        partition_resolution=max(0, res - PARTITION_OFFSET),
        model_config={**product.summary(), "version": version, **config},
        normalisation={"vectors": "unit length after pooling (mean of de-quantised values, renormalised)"},
        sensors={s: {"from_product": product.name} for s in product.sensors},
    )


def _mix_error(db: Path, old_model: str, imported: bool, meta: contract.DatasetMeta) -> ModelMismatchError:
    what = "imported from" if imported else "built with"
    return ModelMismatchError(
        f"{db} holds rows {what} {old_model}; this import is {meta.model}. One database holds "
        f"one product version: import into a new folder (earthvec import NEW_DB --from "
        f"{meta.model_name} ...) or pass --overwrite to replace its embeddings"
    )


def check_target(db: Path, meta: contract.DatasetMeta, overwrite: bool) -> None:
    """Refuse early (before reading any pixel) to add rows of another product or version to ``db``.

    Reads only; the write transaction checks again under the lock.

    Raises:
        ModelMismatchError: naming what the database holds and what to do instead.
    """
    if overwrite:
        return
    try:
        old = contract.read_meta(db)
    except FileNotFoundError:
        return
    if old.model != meta.model:
        raise _mix_error(db, old.model, bool(old.model_config.get("product")), meta)
    contract.ensure_compatible(db, meta, MIX_FIX)


MIX_FIX = "import into a new database folder, or pass --overwrite to replace the old embeddings"


def _existing_keys(tx: Transaction, parent_hex: str) -> set[tuple[int, Any]]:
    """(h3, datetime) of rows the base generation already holds in the partition."""
    part = tx.base_partition(parent_hex)
    out: set[tuple[int, Any]] = set()
    for f in part.files if part else []:
        t = pq.read_table(tx.db / f.path, columns=[contract.H3, contract.DATETIME])
        out.update(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True))
    return out


def _signature(path: str) -> str:
    p = Path(path)
    return f"{p.name}:{contract.file_signature(p)}" if p.is_file() else path


def write_rows(
    tx: Transaction,
    rows: CellRows,
    meta: contract.DatasetMeta,
    info: dict[str, Any],
    files: set[str],
    report: ImportReport,
) -> None:
    """Write ``rows`` partition by partition (skipping shards a previous run finished).

    Args:
        tx: the open write transaction of the database (the caller commits).
        rows: the rows.
        meta: their metadata (model = the product's ``name@version``).
        info: provenance for the ``earthvec_import`` block of every file.
        files: the product files read; a shard's key and block name those feeding its rows.
        report: counts are added here.

    Raises:
        ModelMismatchError: a partition already holds rows of the same cells and times from
            an import of other files.
    """
    db = tx.db
    if tx.base is not None and tx.base.partitions and not tx.replace and tx.base.model != meta.model:
        raise _mix_error(db, tx.base.model, True, meta)
    tx.check_meta(meta, MIX_FIX)
    parents = h3grid.cell_parents(rows.cells, meta.partition_resolution)
    when = np.array([d.timestamp() if d else -np.inf for d in rows.datetimes])
    report.rows = len(rows)
    uniq = np.unique(parents)
    report.partitions_total = len(uniq)
    for parent in uniq.tolist():
        sel = np.flatnonzero(parents == parent)
        part = rows.take(sel[np.lexsort((when[sel], rows.cells[sel]))])
        files_in = sorted({s for src in part.sources for s in src if s in files})
        parent_hex = h3grid.cell_to_str(parent)
        key = config_hash(meta.model, meta.h3_resolution, parent_hex, [_signature(f) for f in files_in],
                          part.spread is not None)  # fmt: skip
        if tx.has_shard(parent_hex, key):
            report.partitions_skipped += 1
            continue
        clash = _existing_keys(tx, parent_hex) & {
            (int(c), d) for c, d in zip(part.cells.tolist(), part.datetimes, strict=True)
        }
        if clash:
            cell, d = sorted(clash, key=str)[0]
            raise ModelMismatchError(
                f"{db}: cell {h3grid.cell_to_str(cell)} at {d} was already imported from other files "
                f"({len(clash)} such rows in partition {parent_hex}); import all files of a region in one "
                "run (cells on tile edges pool across tiles), or pass --overwrite"
            )
        lat, lon = h3grid.cell_centres(part.cells)
        table = contract.make_table(
            h3=part.cells, lat=lat, lon=lon, geometry=h3grid.cells_wkb(part.cells), datetime_=part.datetimes,
            source=part.sources, modalities=part.modalities, sensors=part.sensors,
            valid_fraction=part.valid_fraction, embedding=part.vectors, meta=meta,
        )  # fmt: skip
        table = contract.with_pooling_columns(table, part.count, part.spread)
        table = contract.with_import_metadata(table, {**info, "files": files_in})
        tx.write_shard(parent_hex, key, table)
        report.partitions_written += 1
        report.rows_written += len(part)


def save_report(db: Path, report: ImportReport) -> None:
    """Write ``DB/import.json``."""
    os.makedirs(db, exist_ok=True)
    contract.atomic_write_bytes(db / contract.IMPORT_STATE, json.dumps(report.to_dict(), indent=2).encode())
