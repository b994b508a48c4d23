"""The exact inner-product top-k over in-memory vectors (numpy; the oracle for FAISS)."""

from __future__ import annotations

import numpy as np


def exact_top_k(
    vectors: np.ndarray, query: np.ndarray, k: int, candidates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``k`` among candidate rows (numpy; the oracle for FAISS).

    Returns:
        ``(rows, scores)``, best first; ties broken by row number.
    """
    cand = np.arange(len(vectors)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    if len(cand) == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    scores = vectors[cand] @ np.asarray(query, dtype=np.float32)
    k = min(k, len(cand))
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.lexsort((cand[part], -scores[part]))]
    return cand[order], scores[order].astype(np.float32)
