"""Tune an index's search parameters for a target recall against the exact answer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from index.faiss_build import _inner


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean share of the true ``k`` nearest ids found among the returned ``k``."""
    f, t = found[:, :k], truth[:, :k]
    hits = sum(len(np.intersect1d(a, b)) for a, b in zip(f, t, strict=True))
    return hits / float(t.size)


def calibrate(
    index: Any,
    queries: np.ndarray,
    truth: np.ndarray,
    *,
    k: int = 10,
    target: float = 0.95,
    values: Iterable[int] | None = None,
) -> tuple[str, int, float]:
    """Set the smallest ``nprobe`` (IVF) or ``efSearch`` (HNSW) whose recall@k reaches ``target``.

    Args:
        index: a trained, filled index.
        queries: (q, d) query vectors.
        truth: (q, >=k) exact neighbour ids (e.g. from an ``IndexFlatIP`` oracle).
        k: neighbours per query.
        target: recall to reach.
        values: candidate parameter values, increasing.

    Returns:
        ``(parameter, value, recall)``; exact structures return ``("", 0, recall)``. When no
        value reaches ``target`` the largest is kept.
    """
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        name = "nprobe"
        cands = list(values or (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256))
        cands = [v for v in cands if v <= ivf.nlist] or [ivf.nlist]
    elif "HNSW" in type(_inner(index)).__name__:
        name = "efSearch"
        cands = list(values or (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512))
    else:
        _, ids = index.search(queries, k)
        return "", 0, recall_at_k(ids, truth, k)
    ps = faiss.ParameterSpace()
    rec = 0.0
    for v in cands:
        ps.set_index_parameter(index, name, v)
        _, ids = index.search(queries, k)
        rec = recall_at_k(ids, truth, k)
        if rec >= target:
            return name, v, rec
    return name, cands[-1], rec
