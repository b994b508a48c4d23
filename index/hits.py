"""Top-k results: the :class:`Hits` of a batch of queries and the kernels that rank and trim them.

A hit is a row number into a table of attribute rows (the open index's rows, or Parquet
rows read for a time filter) with its cosine score; ``-1`` marks a missing hit. The
exact inner-product kernel is FAISS's brute-force kNN; exclusions (the query's own cells)
are dropped after ranking, vectorised over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa

from embedder import contract, h3grid
from index.vectors import OLDEST, scalar_columns

SCORE = "score"
RANK = "rank"
QUERY = "query"

_UTC_NS = pd.DatetimeTZDtype(unit="ns", tz="UTC")


@dataclass
class Hits:
    """Top-k results of a batch of queries: rows of ``table`` with scores."""

    table: pa.Table
    rows: np.ndarray
    scores: np.ndarray
    scalars: dict[str, np.ndarray] | None = None

    @classmethod
    def none(cls, table: pa.Table, n_queries: int, scalars: dict[str, np.ndarray] | None = None) -> Hits:
        """No hit for any of ``n_queries`` queries (nothing passed the filters)."""
        return cls(table, np.full((n_queries, 0), -1), np.zeros((n_queries, 0), np.float32), scalars)

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
        data[contract.DATETIME] = utc_times(sc[contract.DATETIME][rows])
        data[contract.VALID_FRACTION] = sc[contract.VALID_FRACTION][rows]
        idx = pa.array(rows, type=pa.int64())
        for col in (contract.SOURCE, contract.SENSORS, contract.MODALITIES):
            data[col] = self.table.column(col).take(idx).to_pylist()
        return pd.DataFrame(data, copy=False)


def utc_times(us: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Int64 microseconds (:data:`~index.vectors.OLDEST` = no datetime) as tz-aware UTC, NaT where missing.

    The smallest int64 is numpy's NaT, so missing values map by a plain view.
    """
    ns = np.where(us == OLDEST, OLDEST, us * 1000)
    return pd.array(ns.view("datetime64[ns]"), dtype=_UTC_NS)


def brute(vectors: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
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


def widest(exclude: Sequence[Sequence[int]] | None) -> int:
    """The most cells any query excludes: how many extra hits to ask for."""
    return max((len(e) for e in exclude), default=0) if exclude else 0


def drop_excluded(
    ids: np.ndarray, rows: np.ndarray, scores: np.ndarray, exclude: Sequence[Sequence[int]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Drop missing and excluded hits and keep the first ``k`` of each query (vectorised)."""
    rows = np.asarray(rows, dtype=np.int64)
    if not exclude and rows.shape[1] == k and (rows.size == 0 or rows.min() >= 0):
        return rows, np.asarray(scores, dtype=np.float32)  # the common case: nothing to drop
    ok = rows >= 0
    width = widest(exclude)
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
