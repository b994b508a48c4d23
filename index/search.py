"""Find similar places: by cell, point, raw vector, or positive and negative examples.

Similarity is the inner product of unit vectors (cosine). The index holds the most recent
vector of each cell; a time filter on a database with several dates per cell searches the
Parquet rows of that time range instead (exactly, one partition at a time).

Typical use::

    from index.search import similar
    similar("db", cell="8828308281fffff", k=10)
    similar("db", lat=48.1, lon=11.6, k=5, flt=Filter(region="841f8dbffffffff"))

For many queries open the index once with :func:`index.store.open_index` and pass it
instead of the path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from embedder import contract, h3grid
from embedder.errors import QueryError
from index.filters import Filter
from index.store import VectorIndex, open_index
from index.vectors import (
    ATTR_COLUMNS,
    latest_rows,
    partition_files,
    partition_overlaps,
    read_files,
    scalar_columns,
)

SCORE = "score"
RANK = "rank"
QUERY = "query"
EXACT_FILTER_MAX = 100_000
"""Filters keeping at most this many cells are searched exhaustively (exact) on any index."""
NEG_WEIGHT = 0.5
EARTH_RADIUS_KM = 6371.0088
_NO_TIME = np.iinfo(np.int64).min

Example = str | int | tuple[float, float]
"""A query example: an H3 cell (hex or int) or a ``(lat, lon)`` point."""


def as_index(db: str | Path | VectorIndex) -> VectorIndex:
    """An open index from a path (opening, building or updating it) or an open index."""
    return db if isinstance(db, VectorIndex) else open_index(db)


def haversine_km(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Great-circle distances in km from one point to many."""
    p1, p2 = np.radians(lat), np.radians(lats)
    dphi, dlmb = p2 - p1, np.radians(lons - lon)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def nearest_indexed(vi: VectorIndex, lat: float, lon: float) -> tuple[str, float]:
    """The indexed cell whose centre is nearest to a point, and its distance in km."""
    if len(vi) == 0:
        return "", math.inf
    d = haversine_km(
        lat, lon, vi.rows.column(contract.LAT).to_numpy(), vi.rows.column(contract.LON).to_numpy()
    )
    i = int(np.argmin(d))
    return h3grid.cell_to_str(int(vi.ids[i])), float(d[i])


def resolve_cell(vi: VectorIndex, example: Example) -> int:
    """The indexed cell of an example (cell or ``(lat, lon)`` point).

    A point maps to the cell containing it at the database resolution; a cell finer than
    the database maps to its parent.

    Raises:
        QueryError: bad cell or point, a cell coarser than the database, or a cell the
            database does not hold (naming the nearest cell that it does hold).
    """
    if isinstance(example, tuple):
        lat, lon = (float(v) for v in example)
        h3grid.check_latlon(lat, lon)
        cell = int(h3grid.latlon_to_cells(np.array([lat]), np.array([lon]), vi.resolution)[0])
        where = f"point ({lat}, {lon}) falls in cell {h3grid.cell_to_str(cell)}, which"
    else:
        cell = h3grid.parse_cell(example)
        r = h3grid.cell_resolution(cell)
        if r < vi.resolution:
            raise QueryError(
                f"cell {h3grid.cell_to_str(cell)} has resolution {r}, coarser than the database "
                f"resolution {vi.resolution}; pick a cell at resolution {vi.resolution} or use it "
                "as a region filter"
            )
        cell = int(h3grid.cell_parents(np.array([cell], dtype=np.uint64), vi.resolution)[0])
        lat, lon = (float(v[0]) for v in h3grid.cell_centres(np.array([cell], dtype=np.uint64)))
        where = f"cell {h3grid.cell_to_str(cell)}"
    if not vi.contains(cell):
        near, km = nearest_indexed(vi, lat, lon)
        raise QueryError(
            f"{where} is not in the database {vi.db} ({len(vi)} cells at resolution "
            f"{vi.resolution}); the nearest cell it holds is {near}, {km:.1f} km away: query "
            "that cell or a point inside the database"
        )
    return cell


def example_query(
    vectors: np.ndarray,
    positives: Sequence[int],
    negatives: Sequence[int] | None = None,
    weight: float = NEG_WEIGHT,
    *,
    hint: str = "a cell or a lat/lon point",
) -> np.ndarray:
    """One unit query from example rows: ``normalise(mean(pos) - weight * mean(neg))``.

    The rule of the Earth Index app; the one implementation behind :func:`query_vector`
    and the explorer.

    Args:
        vectors: (N, D) unit vectors.
        positives: rows of ``vectors`` to move towards.
        negatives: rows to move away from.
        weight: weight of the negatives' mean.
        hint: how the user gives an example (ends the error message).

    Raises:
        QueryError: without positives, or when positives and negatives cancel out.
    """
    if len(positives) == 0:
        raise QueryError(f"give at least one positive example ({hint})")
    q = vectors[np.asarray(positives)].mean(axis=0)
    if negatives is not None and len(negatives):
        q = q - weight * vectors[np.asarray(negatives)].mean(axis=0)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n < 1e-8:
        raise QueryError("the positive and negative examples cancel out; remove some negatives")
    return (q / n).astype(np.float32)


def query_vector(
    vi: VectorIndex,
    positives: Sequence[Example],
    negatives: Sequence[Example] = (),
    neg_weight: float = NEG_WEIGHT,
) -> tuple[np.ndarray, list[int]]:
    """One query vector from examples: ``normalise(mean(pos) - neg_weight * mean(neg))``.

    Returns:
        The unit query vector and the example cells (excluded from results).

    Raises:
        QueryError: no positive example, or examples cancelling out.
    """
    if not positives:
        raise QueryError("give at least one positive example (a cell or a lat/lon point)")
    pos = [resolve_cell(vi, e) for e in positives]
    neg = [resolve_cell(vi, e) for e in negatives]
    vecs = vi.vectors(np.array(pos + neg, dtype=np.uint64))
    q = example_query(vecs, range(len(pos)), range(len(pos), len(pos) + len(neg)), neg_weight)
    return q, pos + neg


def unit(
    vector: np.ndarray | Sequence[float], what: str = "the query vector", dim: int | None = None
) -> np.ndarray:
    """A validated unit-length float32 copy of ``vector``.

    Raises:
        QueryError: wrong length, non-finite values or a zero vector.
    """
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    if dim is not None and v.shape[0] != dim:
        raise QueryError(f"{what} has length {v.shape[0]}; the database vectors have length {dim}")
    n = float(np.linalg.norm(v))
    if not np.all(np.isfinite(v)) or n == 0.0:
        raise QueryError(f"{what} is zero or not finite; give a non-zero vector of finite numbers")
    return v / n


@dataclass
class Hits:
    """Top-k results of a batch of queries: rows of ``table`` with scores."""

    table: pa.Table
    rows: np.ndarray
    scores: np.ndarray
    scalars: dict[str, np.ndarray] | None = None

    def cells(self) -> np.ndarray:
        """Cell ids (uint64) of the hits, 0 where a query had fewer than ``k`` hits."""
        ids = (self.scalars or scalar_columns(self.table))[contract.H3]
        return np.where(self.rows >= 0, ids[np.maximum(self.rows, 0)], np.uint64(0))

    def frame(self, with_query: bool) -> pd.DataFrame:
        """Result table: h3 hex, lat, lon, score, rank, datetime, valid fraction, provenance.

        Built from numpy columns extracted once per index (:attr:`VectorIndex.scalars`):
        only the ``k`` result rows are touched.
        """
        ok = self.rows >= 0
        qi, ri = np.nonzero(ok)
        rows = self.rows[ok]
        sc = self.scalars if self.scalars is not None else scalar_columns(self.table)
        data: dict[str, object] = {}
        if with_query:
            data[QUERY] = qi.astype(np.int32)
        data[contract.H3] = np.array(
            [h3grid.cell_to_str(int(c)) for c in sc[contract.H3][rows]], dtype=object
        )
        data[contract.LAT] = sc[contract.LAT][rows]
        data[contract.LON] = sc[contract.LON][rows]
        data[SCORE] = self.scores[ok].astype(np.float32)
        data[RANK] = (ri + 1).astype(np.int32)
        data[contract.DATETIME] = _utc_times(sc[contract.DATETIME][rows])
        data[contract.VALID_FRACTION] = sc[contract.VALID_FRACTION][rows]
        idx = pa.array(rows, type=pa.int64())
        for col in (contract.SOURCE, contract.SENSORS, contract.MODALITIES):
            data[col] = self.table.column(col).take(idx).to_pylist()
        return pd.DataFrame(data, copy=False)


_UTC_NS = pd.DatetimeTZDtype(unit="ns", tz="UTC")


def _utc_times(us: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Int64 microseconds (the smallest int64 = no datetime) as tz-aware UTC, NaT where missing.

    The smallest int64 is numpy's NaT, so missing values map by a plain view.
    """
    ns = np.where(us == _NO_TIME, _NO_TIME, us * 1000)
    return pd.array(ns.view("datetime64[ns]"), dtype=_UTC_NS)


def top_k(
    vi: VectorIndex,
    queries: np.ndarray,
    k: int,
    flt: Filter | None = None,
    exclude: Sequence[Sequence[int]] | None = None,
) -> Hits:
    """Top ``k`` rows for each query (unit vectors), honouring filters and exclusions.

    The fast path is one FAISS search. With a filter, at most :data:`EXACT_FILTER_MAX`
    passing cells are ranked exhaustively (exact on any index; a region is one contiguous
    run of rows, read in place when the index holds raw vectors in row order); more are
    searched by FAISS with an id selector (one ``IDSelectorRange`` for a region).
    """
    q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, vi.dim)
    extra = max((len(e) for e in exclude), default=0) if exclude else 0
    if flt is not None and flt.empty:
        flt = None
    if flt is not None:
        flt.validate(vi.resolution)
        if flt.has_time and vi.sidecar.multi_date:
            return _top_k_parquet(vi, q, k, flt, exclude or [[] for _ in range(len(q))])
    kk = k + extra
    if flt is None:
        scores, rows = vi.search_rows(q, kk)
    else:
        cand = flt.range_positions(vi.ids, vi.resolution)
        if cand is None:
            cand = np.flatnonzero(flt.mask(vi.rows, vi.resolution))
        if len(cand) == 0:
            return Hits(vi.rows, np.full((len(q), 0), -1), np.zeros((len(q), 0), np.float32), vi.scalars)
        contiguous = int(cand[-1]) - int(cand[0]) == len(cand) - 1
        if len(cand) <= EXACT_FILTER_MAX:
            scores, pos = _brute(vi.vectors_at(cand), q, min(kk, len(cand)))
            rows = np.where(pos >= 0, cand[np.maximum(pos, 0)], -1)
        elif contiguous:
            scores, rows = vi.search_rows(q, min(kk, len(cand)), span=(int(cand[0]), int(cand[-1]) + 1))
        else:
            scores, ids = vi.search(q, min(kk, len(cand)), sel=flt.selector(vi.ids[cand], vi.resolution))
            rows = np.where(ids >= 0, vi.positions(np.maximum(ids, 0).astype(np.uint64)), -1)
    rows, scores = _drop_excluded(vi.ids, rows, scores, exclude or (), k)
    return Hits(vi.rows, rows, scores, vi.scalars)


def _brute(vectors: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product, positions into ``vectors``.

    FAISS's brute-force kNN: a few queries take its single-threaded SIMD scan, no BLAS call
    (whose threads would fight FAISS's spinning OpenMP workers on a small machine).
    """
    if len(vectors) == 0:
        return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
    k = min(k, len(vectors))
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    qs = np.ascontiguousarray(q, dtype=np.float32)
    scores, pos = faiss.knn(qs, v, k, metric=faiss.METRIC_INNER_PRODUCT)
    return scores.astype(np.float32, copy=False), pos.astype(np.int64, copy=False)


def _drop_excluded(
    ids: np.ndarray, rows: np.ndarray, scores: np.ndarray, exclude: Sequence[Sequence[int]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Drop missing and excluded hits and keep the first ``k`` of each query (vectorised)."""
    rows = np.asarray(rows, dtype=np.int64)
    if not exclude and rows.shape[1] == k and (rows.size == 0 or rows.min() >= 0):
        return rows, np.asarray(scores, dtype=np.float32)  # the common case: nothing to drop
    ok = rows >= 0
    width = max((len(e) for e in exclude), default=0)
    if width and rows.size:
        ex = np.zeros((len(rows), width), dtype=np.uint64)  # 0 is never an H3 cell
        for i, e in enumerate(exclude):
            ex[i, : len(e)] = np.asarray(e, dtype=np.uint64)
        hit = ids[np.maximum(rows, 0)]
        ok &= ~(hit[:, :, None] == ex[:, None, :]).any(axis=2)
    if ok.all() and rows.shape[1] <= k:
        out_r, out_s = rows, np.asarray(scores, dtype=np.float32)
    else:
        order = np.argsort(~ok, axis=1, kind="stable")[:, :k]  # kept hits first, in rank order
        keep = np.take_along_axis(ok, order, axis=1)
        out_r = np.where(keep, np.take_along_axis(rows, order, axis=1), -1)
        out_s = np.where(keep, np.take_along_axis(scores, order, axis=1), 0).astype(np.float32)
    if out_r.shape[1] < k:
        pad = k - out_r.shape[1]
        out_r = np.pad(out_r, ((0, 0), (0, pad)), constant_values=-1)
        out_s = np.pad(out_s, ((0, 0), (0, pad)))
    return out_r, out_s


def _top_k_parquet(
    vi: VectorIndex, q: np.ndarray, k: int, flt: Filter, exclude: Sequence[Sequence[int]]
) -> Hits:
    """Exact search over Parquet rows in a time range (latest row per cell within it)."""
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
        s, p = _brute(vecs, q, k + max((len(e) for e in exclude), default=0))
        tables.append(table.select(ATTR_COLUMNS))
        scores.append(s)
        rows.append(p + offset)
        offset += table.num_rows
    if not tables:
        return Hits(vi.rows, np.full((len(q), 0), -1), np.zeros((len(q), 0), np.float32), vi.scalars)
    table = pa.concat_tables(t.replace_schema_metadata(None) for t in tables)
    s_all, r_all = np.concatenate(scores, axis=1), np.concatenate(rows, axis=1)
    order = np.argsort(-s_all, axis=1, kind="stable")
    s_all, r_all = (
        np.take_along_axis(s_all, order, axis=1),
        np.take_along_axis(r_all, order, axis=1),
    )
    ids_all = np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64)
    r, s = _drop_excluded(ids_all, r_all, s_all, exclude, k)
    return Hits(table, r, s)


def _iter_filtered(
    vi: VectorIndex, parts: list[str], cols: list[str], expr: pc.Expression | None
) -> Iterator[pa.Table]:
    files = partition_files(vi.db)
    for p in parts:
        yield latest_rows(read_files(files[p], cols, expr))[0]


def similar(
    db: str | Path | VectorIndex,
    *,
    cell: str | int | None = None,
    lat: float | None = None,
    lon: float | None = None,
    vector: np.ndarray | Sequence[float] | None = None,
    positives: Sequence[Example] | None = None,
    negatives: Sequence[Example] | None = None,
    k: int = 10,
    flt: Filter | None = None,
    neg_weight: float = NEG_WEIGHT,
) -> pd.DataFrame:
    """The ``k`` places most similar to one query, as a table.

    Give exactly one kind of query: ``cell``, ``lat`` + ``lon``, ``vector`` or
    ``positives`` (optionally with ``negatives``). Query cells are excluded from the results.

    Args:
        db: database folder or an open :class:`VectorIndex`.
        cell: H3 cell (hex or int) in the database.
        lat: latitude of a point query (with ``lon``); the point maps to the cell
            containing it at the database resolution.
        lon: longitude of a point query.
        vector: a raw query vector of the database's dimension (normalised here).
        positives: examples (cells or ``(lat, lon)``); the query is
            ``normalise(mean(pos) - neg_weight * mean(neg))``.
        negatives: examples to move away from.
        k: number of results.
        flt: region, time and attribute filters.
        neg_weight: weight of the negative examples.

    Returns:
        One row per result: ``h3`` (hex), ``lat``, ``lon``, ``score`` (cosine), ``rank``
        (1 = best), ``datetime``, ``valid_fraction``, ``source``, ``sensors``, ``modalities``.

    Raises:
        QueryError: no or several kinds of query, bad cell/point/vector, a cell not in the DB.
        IndexMismatchError: the index was built with another model than the embeddings.
    """
    if k < 1:
        raise QueryError(f"k={k}: ask for at least one result")
    vi = as_index(db)
    q, skip = query_for(
        vi,
        cell=cell,
        lat=lat,
        lon=lon,
        vector=vector,
        positives=positives,
        negatives=negatives,
        neg_weight=neg_weight,
    )
    return top_k(vi, q[None, :], k, flt, [skip]).frame(with_query=False)


def query_for(
    vi: VectorIndex,
    *,
    cell: str | int | None = None,
    lat: float | None = None,
    lon: float | None = None,
    vector: np.ndarray | Sequence[float] | None = None,
    positives: Sequence[Example] | None = None,
    negatives: Sequence[Example] | None = None,
    neg_weight: float = NEG_WEIGHT,
) -> tuple[np.ndarray, list[int]]:
    """The unit query vector of one query (as :func:`similar` takes it) and the cells to skip.

    Raises:
        QueryError: no or several kinds of query, bad cell/point/vector, a cell not in the DB.
    """
    kinds = [
        cell is not None,
        lat is not None or lon is not None,
        vector is not None,
        bool(positives),
    ]
    if sum(kinds) != 1:
        raise QueryError("give exactly one query: a cell, a lat/lon point, a vector or positive examples")
    if (lat is None) != (lon is None):
        raise QueryError("a point query needs both lat and lon")
    if vector is not None:
        return unit(vector, dim=vi.dim), []
    if positives:
        return query_vector(vi, positives, negatives or (), neg_weight)
    c = resolve_cell(vi, cell if cell is not None else (float(lat), float(lon)))  # type: ignore[arg-type]
    return vi.vectors(np.array([c], dtype=np.uint64))[0], [c]


def similar_batch(
    db: str | Path | VectorIndex,
    queries: np.ndarray | Sequence[Example],
    *,
    k: int = 10,
    flt: Filter | None = None,
) -> pd.DataFrame:
    """Top ``k`` for many queries at once: raw vectors (n, dim) or examples (cells, points).

    Returns:
        The :func:`similar` columns plus ``query`` (position of the query in ``queries``).
        Example queries exclude their own cell.
    """
    vi = as_index(db)
    arr = np.asarray(queries) if isinstance(queries, np.ndarray) else None
    if arr is not None and arr.dtype.kind == "f":
        q = np.stack([unit(v, f"query vector {i}", vi.dim) for i, v in enumerate(arr.reshape(len(arr), -1))])
        skip: list[list[int]] = [[] for _ in range(len(q))]
    else:
        cells = [resolve_cell(vi, e) for e in queries]
        q = vi.vectors(np.array(cells, dtype=np.uint64))
        skip = [[c] for c in cells]
    return top_k(vi, q, k, flt, skip).frame(with_query=True)
