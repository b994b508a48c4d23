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

This module is the front door; the rooms behind it hold one idea each:
:mod:`index.query` (cells, points, vectors and examples to one query vector),
:mod:`index.topk` (filtered top-k over the index), :mod:`index.parquet_search` (time-filtered
search over Parquet rows) and :mod:`index.hits` (the result rows and ranking kernels). Their
public names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from embedder.errors import QueryError
from index.filters import Filter
from index.hits import QUERY, RANK, SCORE, Hits
from index.query import (
    EARTH_RADIUS_KM,
    NEG_WEIGHT,
    Example,
    example_query,
    haversine_km,
    nearest_indexed,
    query_for,
    query_vector,
    resolve_cell,
    unit,
)
from index.store import VectorIndex, open_index
from index.topk import EXACT_FILTER_MAX, top_k

__all__ = [
    "EARTH_RADIUS_KM", "EXACT_FILTER_MAX", "NEG_WEIGHT", "QUERY", "RANK", "SCORE", "Example", "Hits",
    "as_index", "example_query", "haversine_km", "nearest_indexed", "query_for", "query_vector",
    "resolve_cell", "similar", "similar_batch", "top_k", "unit",
]  # fmt: skip


def as_index(db: str | Path | VectorIndex) -> VectorIndex:
    """An open index from a path (opening, building or updating it) or an open index."""
    return db if isinstance(db, VectorIndex) else open_index(db)


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
        vi, cell=cell, lat=lat, lon=lon, vector=vector, positives=positives, negatives=negatives,
        neg_weight=neg_weight,
    )  # fmt: skip
    return top_k(vi, q[None, :], k, flt, [skip]).frame(with_query=False)


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
