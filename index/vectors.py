"""Reading the vectors to index: one row per cell (its most recent), one partition at a time.

A cell may have rows at several datetimes. The index holds only the most recent row of each
cell (rows without a datetime count as oldest); the other rows stay in Parquet and are
reached by time-filtered queries and SQL. A cell lives in exactly one ``h3_parent``
partition, so the choice can be made partition by partition with bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from embedder import contract, h3grid

ATTR_COLUMNS = [
    contract.H3,
    contract.LAT,
    contract.LON,
    contract.DATETIME,
    contract.VALID_FRACTION,
    contract.SOURCE,
    contract.SENSORS,
    contract.MODALITIES,
]
"""Columns of the indexed rows kept in memory beside the index (no vectors, no geometry)."""

OLDEST = np.iinfo(np.int64).min
"""The datetime (int64 microseconds) of rows without one: older than any real date."""


def partition_files(db: str | Path) -> dict[str, list[Path]]:
    """Embeddings files grouped by partition (``h3_parent`` hex id), both sorted."""
    out: dict[str, list[Path]] = {}
    for f in contract.embedding_files(db):
        key = f.parent.name.split("=", 1)[1]
        out.setdefault(key, []).append(f)
    return dict(sorted(out.items()))


def datetime_int(table: pa.Table) -> np.ndarray:
    """Datetimes as int64 microseconds, missing ones as the smallest int64 (oldest)."""
    col = table.column(contract.DATETIME).cast(pa.int64())
    return np.asarray(pc.fill_null(col, OLDEST).to_numpy(), dtype=np.int64)


def scalar_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """The scalar attribute columns of ``table`` as numpy arrays (datetime as int64 us)."""
    return {
        contract.H3: np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64),
        contract.LAT: np.asarray(table.column(contract.LAT).to_numpy(), dtype=np.float64),
        contract.LON: np.asarray(table.column(contract.LON).to_numpy(), dtype=np.float64),
        contract.DATETIME: datetime_int(table),
        contract.VALID_FRACTION: np.asarray(table.column(contract.VALID_FRACTION).to_numpy()),
    }


def latest_rows(table: pa.Table) -> tuple[pa.Table, bool]:
    """Keep the most recent row of each cell, sorted by cell id.

    Returns:
        The reduced table and whether any cell had several rows.
    """
    h3 = np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64)
    if len(h3) == 0:
        return table, False
    if len(h3) == 1 or bool(np.all(h3[1:] > h3[:-1])):
        return table, False  # one row per cell, already sorted: nothing to copy
    keep = latest_positions(h3, datetime_int(table))
    return table.take(pa.array(keep)), bool(len(keep) < len(h3))


def latest_positions(h3: np.ndarray, time_us: np.ndarray) -> np.ndarray:
    """Row numbers of the most recent row of each cell, ordered by cell id.

    Args:
        h3: (N,) cell ids.
        time_us: (N,) datetimes as int64 microseconds (:data:`OLDEST` for none).
    """
    if len(h3) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((time_us, h3))
    hs = h3[order]
    last = np.ones(len(hs), dtype=bool)
    last[:-1] = hs[1:] != hs[:-1]
    return order[last].astype(np.int64)


def read_files(files: list[Path], columns: list[str], filter: pc.Expression | None = None) -> pa.Table:
    """Read some columns of a few embeddings files (already contract-checked)."""
    ds = pads.dataset([str(f) for f in files], format="parquet")
    return ds.to_table(columns=columns, filter=filter)


def iter_latest(
    db: str | Path, columns: list[str] | None = None, parts: list[str] | None = None
) -> Iterator[tuple[str, pa.Table, bool]]:
    """Yield ``(partition, latest rows, had several dates)`` for each partition.

    Args:
        db: database folder.
        columns: columns to read (default: :data:`ATTR_COLUMNS` plus the embedding).
        parts: restrict to these partition ids.
    """
    cols = columns or [*ATTR_COLUMNS, contract.EMBEDDING]
    if contract.H3 not in cols or contract.DATETIME not in cols:
        cols = [
            contract.H3,
            contract.DATETIME,
            *[c for c in cols if c not in (contract.H3, contract.DATETIME)],
        ]
    for part, files in partition_files(db).items():
        if parts is not None and part not in parts:
            continue
        table, multi = latest_rows(read_files(files, cols))
        yield part, table, multi


def read_cells(files: list[Path], cells: np.ndarray, columns: list[str]) -> pa.Table:
    """The rows of ``files`` whose cell is in ``cells``, decoding only the row groups holding them.

    The ``h3`` column is read first (cheap); the other columns (the embedding dominates) are
    decoded only for the row groups that hold a wanted cell.
    """
    want = np.asarray(cells, dtype=np.uint64)
    parts = []
    for f in files:
        pf = pq.ParquetFile(f)
        h3 = np.asarray(pf.read(columns=[contract.H3]).column(0).to_numpy(), dtype=np.uint64)
        hit = np.flatnonzero(np.isin(h3, want))
        if len(hit) == 0:
            continue
        sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        groups = np.unique(np.searchsorted(starts, hit, side="right") - 1)
        table = pf.read_row_groups(groups.tolist(), columns=columns)
        offsets = np.concatenate([[0], np.cumsum([sizes[g] for g in groups])])
        local = np.concatenate(
            [
                hit[(hit >= starts[g]) & (hit < starts[g + 1])] - starts[g] + offsets[j]
                for j, g in enumerate(groups)
            ]
        )
        parts.append(table.take(pa.array(local)).replace_schema_metadata(None))
    if not parts:
        return read_files(files[:1], columns, pc.field(contract.H3).isin(pa.array([], pa.uint64())))
    return pa.concat_tables(parts)


def lookup_latest(db: str | Path, cells: np.ndarray, partition_res: int) -> tuple[np.ndarray, np.ndarray]:
    """The most recent vectors of those ``cells`` that the database holds.

    Reads only the partitions holding ``cells`` (a pushed-down ``isin`` filter), so a few
    thousand cells of a planet-sized database cost a few partition scans, no index.

    Returns:
        The found cells (sorted unique uint64) and their vectors (n, dim) float32.
    """
    cells = np.unique(np.asarray(cells, dtype=np.uint64))
    files = partition_files(db)
    found: list[np.ndarray] = []
    vecs: list[np.ndarray] = []
    parents = h3grid.cell_parents(cells, partition_res) if len(cells) else cells
    for p in np.unique(parents):
        key = h3grid.cell_to_str(int(p))
        if key not in files:
            continue
        table = latest_rows(
            read_cells(files[key], cells[parents == p], [contract.H3, contract.DATETIME, contract.EMBEDDING])
        )[0]
        found.append(np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64))
        vecs.append(contract.embeddings_matrix(table))
    if not found:
        return np.zeros(0, dtype=np.uint64), np.zeros((0, 0), dtype=np.float32)
    ids = np.concatenate(found)
    order = np.argsort(ids, kind="stable")
    return ids[order], np.concatenate(vecs)[order]


def embedding_chunks(table: pa.Table) -> list[np.ndarray]:
    """The ``embedding`` column as (n_i, D) float32 matrices, one per Arrow chunk (no copy)."""
    col = table.column(contract.EMBEDDING)
    dim = col.type.list_size
    return [
        np.asarray(ch.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
        for ch in col.chunks
    ]


def partition_overlaps(part: str, lo: int, hi: int, res: int) -> bool:
    """Whether partition ``part`` (hex parent id) holds cells at ``res`` in the id range ``[lo, hi]``."""
    plo, phi = h3grid.descendant_range(h3grid.parse_cell(part), res)
    return plo <= hi and lo <= phi
