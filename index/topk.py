"""Filtered top-k over an open index: one FAISS search, an exact scan, or an id selector.

Without a filter the queries take one FAISS search. A filter that keeps at most
:data:`EXACT_FILTER_MAX` cells is ranked exhaustively (exact on any index; a region is one
contiguous run of rows, read in place when the index holds raw vectors in row order); a
larger one is searched by FAISS within a row span or with an id selector. A time filter on
a database with several dates per cell goes to :mod:`index.parquet_search`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from index.filters import Filter
from index.hits import Hits, brute, drop_excluded, widest
from index.parquet_search import top_k_parquet
from index.store import VectorIndex

EXACT_FILTER_MAX = 100_000
"""Filters keeping at most this many cells are searched exhaustively (exact) on any index."""


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
    if flt is not None and flt.empty:
        flt = None
    if flt is not None:
        flt.validate(vi.resolution)
        if flt.has_time and vi.sidecar.multi_date:
            return top_k_parquet(vi, q, k, flt, exclude or [[] for _ in range(len(q))])
    kk = k + widest(exclude)
    if flt is None:
        scores, rows = vi.search_rows(q, kk)
    else:
        cand = flt.range_positions(vi.ids, vi.resolution)
        if cand is None:
            cand = np.flatnonzero(flt.mask(vi.rows, vi.resolution))
        if len(cand) == 0:
            return Hits.none(vi.rows, len(q), vi.scalars)
        contiguous = int(cand[-1]) - int(cand[0]) == len(cand) - 1
        if len(cand) <= EXACT_FILTER_MAX:
            scores, pos = brute(vi.vectors_at(cand), q, min(kk, len(cand)))
            rows = np.where(pos >= 0, cand[np.maximum(pos, 0)], -1)
        elif contiguous:
            scores, rows = vi.search_rows(q, min(kk, len(cand)), span=(int(cand[0]), int(cand[-1]) + 1))
        else:
            scores, ids = vi.search(q, min(kk, len(cand)), sel=flt.selector(vi.ids[cand], vi.resolution))
            rows = np.where(ids >= 0, vi.positions(np.maximum(ids, 0).astype(np.uint64)), -1)
    rows, scores = drop_excluded(vi.ids, rows, scores, exclude or (), k)
    return Hits(vi.rows, rows, scores, vi.scalars)
