"""Time-filtered search: exact ranking over the Parquet rows of a time range.

The index holds the most recent vector of each cell; a time filter on a database with
several dates per cell must rank the rows of that time range instead. They are read one
partition at a time (only partitions a region filter touches), reduced to the latest row
of each cell within the range, and ranked exactly (:func:`index.hits.brute`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedder import contract
from index.filters import Filter
from index.hits import Hits, brute, drop_excluded, widest
from index.store import VectorIndex
from index.vectors import ATTR_COLUMNS, latest_rows, partition_files, partition_overlaps, read_files


def top_k_parquet(
    vi: VectorIndex, q: np.ndarray, k: int, flt: Filter, exclude: Sequence[Sequence[int]]
) -> Hits:
    """Exact search over Parquet rows in a time range (latest row per cell within it).

    Args:
        vi: the open index (its database, resolution and rows for empty results).
        q: (n, dim) unit queries.
        k: hits per query.
        flt: the filter (with a time range).
        exclude: cells to leave out, one list per query.
    """
    expr = flt.arrow_expression(vi.resolution)
    ranges = flt.id_ranges(vi.resolution)
    tables, scores, rows = [], [], []
    offset = 0
    parts = list(partition_files(vi.db))
    if ranges:
        parts = [p for p in parts if any(partition_overlaps(p, lo, hi, vi.resolution) for lo, hi in ranges)]
    cols = [*ATTR_COLUMNS, contract.EMBEDDING]
    for table in _iter_filtered(vi, parts, cols, expr):
        table = table.filter(pa.array(flt.mask(table, vi.resolution)))
        if table.num_rows == 0:
            continue
        vecs = contract.embeddings_matrix(table)
        s, p = brute(vecs, q, k + widest(exclude))
        tables.append(table.select(ATTR_COLUMNS))
        scores.append(s)
        rows.append(p + offset)
        offset += table.num_rows
    if not tables:
        return Hits.none(vi.rows, len(q), vi.scalars)
    table = pa.concat_tables(t.replace_schema_metadata(None) for t in tables)
    s_all, r_all = np.concatenate(scores, axis=1), np.concatenate(rows, axis=1)
    order = np.argsort(-s_all, axis=1, kind="stable")
    s_all, r_all = (
        np.take_along_axis(s_all, order, axis=1),
        np.take_along_axis(r_all, order, axis=1),
    )
    ids_all = np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64)
    r, s = drop_excluded(ids_all, r_all, s_all, exclude, k)
    return Hits(table, r, s)


def _iter_filtered(
    vi: VectorIndex, parts: list[str], cols: list[str], expr: pc.Expression | None
) -> Iterator[pa.Table]:
    """The latest row of each cell among the rows passing ``expr``, one partition at a time."""
    files = partition_files(vi.db)
    for p in parts:
        yield latest_rows(read_files(files[p], cols, expr))[0]
