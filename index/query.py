"""What a search looks for: cells, points, raw vectors or examples, as one unit query vector.

A point maps to the database cell containing it, a cell finer than the database to its
parent; several positive and negative examples make one query by the Earth Index rule
``normalise(mean(pos) - weight * mean(neg))`` (:func:`example_query`, shared with the
explorer). Every bad query raises :class:`~embedder.errors.QueryError` naming the fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from embedder import contract, h3grid
from embedder.errors import QueryError
from embedder.h3grid import EARTH_RADIUS_KM
from index.store import VectorIndex

NEG_WEIGHT = 0.5

Example = str | int | tuple[float, float]
"""A query example: an H3 cell (hex or int) or a ``(lat, lon)`` point."""


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
    """The unit query vector of one query (as :func:`index.search.similar` takes it) and the cells to skip.

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
