"""Find-similar-places for the explorer: examples in, ranked rows and a table out.

The ranking comes from :func:`index.search.similar` over the database's FAISS index (the
same code path as ``earthvec similar``). Without an index (it could not be opened) the
explorer falls back to the exact numpy ranking of :func:`app.logic.exact.exact_top_k`.
"""

from __future__ import annotations

from dataclasses import dataclass

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd

from app.logic.exact import exact_top_k
from app.logic.rows import Rows, filter_mask
from embedder.h3grid import check_latlon, parse_cell
from index.filters import Filter
from index.query import NEG_WEIGHT, example_query
from index.search import similar
from index.store import VectorIndex
from index.vectors import latest_positions


@dataclass
class SearchResult:
    """Ranked rows (best first) with their similarity to the query."""

    rows: np.ndarray
    scores: np.ndarray
    query: np.ndarray
    engine: str


def cell_at_point(rows: Rows, lat: float, lon: float) -> int:
    """The database cell containing a point.

    Raises:
        QueryError: for a point out of range or outside every cell of the database.
    """
    check_latlon(lat, lon)
    cell = int(h3i.latlng_to_cell(float(lat), float(lon), rows.resolution))
    rows.row_of_cell(cell)  # raises QueryError when absent
    return cell


def candidate_rows(rows: Rows, mask: np.ndarray | None) -> np.ndarray:
    """The most recent row of each cell among the rows passing ``mask``."""
    if mask is None or mask.all():
        return rows.latest
    idx = np.flatnonzero(mask)
    return idx[latest_positions(rows.h3[idx], rows.time_us[idx])]


def _rows_of_hits(rows: Rows, df: pd.DataFrame) -> np.ndarray:
    """Row numbers of the hits of :func:`similar` (cell + datetime identify a row)."""
    out = []
    for cell_hex, when in zip(df["h3"], df["datetime"], strict=True):
        cands = rows.rows_of_cell(parse_cell(cell_hex))
        if len(cands) > 1 and when is not None and not pd.isna(when):
            t = int(pd.Timestamp(when).value // 1000)
            hit = cands[rows.time_us[cands] == t]
            cands = hit if len(hit) else cands
        out.append(int(cands[-1]))
    return np.asarray(out, dtype=np.int64)


def search(
    rows: Rows,
    positives: list[str],
    negatives: list[str] | None,
    k: int,
    flt: Filter | None = None,
    index: VectorIndex | None = None,
) -> SearchResult:
    """Top-``k`` cells most similar to the examples, honouring the filter.

    Example cells are left out of the results.

    Args:
        rows: database rows (all dates).
        positives: example cells (hex ids) to look like.
        negatives: example cells (hex ids) to move away from.
        k: how many results.
        flt: region/box/time filter.
        index: the open FAISS index; None ranks exactly with numpy.

    Raises:
        QueryError: for unknown cells, a bad filter or without positives.
    """
    pos = [rows.row_of_cell(parse_cell(c)) for c in positives]
    neg = [rows.row_of_cell(parse_cell(c)) for c in negatives or []]
    q = example_query(rows.vectors, pos, neg, NEG_WEIGHT, hint="click a cell on the map")
    if index is not None:
        df = similar(index, positives=list(positives), negatives=list(negatives or []), k=k, flt=flt)
        return SearchResult(
            _rows_of_hits(rows, df), df["score"].to_numpy(np.float32), q, "FAISS index"
        )
    cand = candidate_rows(rows, filter_mask(rows, flt))
    ex = np.array([parse_cell(c) for c in [*positives, *(negatives or [])]], dtype=np.uint64)
    cand = cand[~np.isin(rows.h3[cand], ex)]
    top, scores = exact_top_k(rows.vectors, q, k, cand)
    return SearchResult(top, scores, q, "exact (numpy)")


def similarity_to(rows: Rows, query: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Similarity of rows ``idx`` to a unit query vector."""
    return rows.vectors[np.asarray(idx, dtype=np.int64)] @ query


def results_frame(rows: Rows, result: SearchResult) -> pd.DataFrame:
    """The results as a table: rank, cell, place, date, similarity and provenance."""
    idx = result.rows
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(idx) + 1),
            "cell": [format(int(c), "x") for c in rows.h3[idx]],
            "similarity": np.round(result.scores.astype(np.float64), 4),
            "lat": np.round(rows.lat[idx], 5),
            "lon": np.round(rows.lon[idx], 5),
            "date": [rows.datetime_text(int(i)) for i in idx],
            "sensors": [", ".join(x) for x in rows.provenance("sensors", idx)],
            "valid_fraction": np.round(rows.valid_fraction[idx].astype(np.float64), 3),
            "source": [", ".join(x) for x in rows.provenance("source", idx)],
        }
    )
