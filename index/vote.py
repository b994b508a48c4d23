"""The kNN vote kernel: exact top-k seeds per cell and a similarity-weighted vote.

Each cell takes the labels of its ``k`` most similar seeds; votes are weighted by
similarity, ``w = (1 + cos) / 2``, and the confidence is the winner's share of the weight.
Per block of cells one (cells x seeds) inner-product matrix (FAISS flat index over the
seeds: BLAS plus a heap top-k, exact), then a vectorised vote; blocks run on a pool of
single-threaded FAISS workers.

This module is the one place the vote is computed (:func:`knn_vote`, :class:`SeedVoter`),
so it can be swapped for another implementation without touching the streaming map
(:mod:`index.label`) or the cross-validation (:mod:`index.cv`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np

BLOCK_ROWS = 16_384
"""Cells scored per matrix product (bounds memory to ``BLOCK_ROWS x seeds`` similarities)."""


def seed_index(seed_vectors: np.ndarray) -> faiss.IndexFlatIP:
    """An exact inner-product index over the seeds (BLAS products plus a heap top-k)."""
    sv = np.ascontiguousarray(seed_vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(sv.shape[1])
    index.add(sv)
    return index


def vote(sims: np.ndarray, classes: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-weighted vote of neighbours, vectorised over rows.

    A class's vote is the sum of ``(1 + cos) / 2`` over the neighbours holding it. Computed
    per neighbour slot (``k x k`` vector operations, no dense rows x classes table); sums
    run over the slots in order, so they equal a per-class accumulation bit for bit.

    Args:
        sims: (N, k) cosine similarities of each row's neighbours.
        classes: (N, k) class numbers (``< n_classes``) of those neighbours.
        n_classes: number of classes.

    Returns:
        Winning class (N,) (lowest class number on a tie) and its share of the weight (N,).
    """
    n, k = sims.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    w = (1.0 + sims.astype(np.float64)) / 2.0 + 1e-9
    total = np.zeros(n, dtype=np.float64)
    best = np.full(n, -1.0)
    pred = np.full(n, n_classes, dtype=np.int64)
    for j in range(k):
        total += w[:, j]
        cj = classes[:, j]
        score = np.zeros(n, dtype=np.float64)
        for i in range(k):
            score += np.where(classes[:, i] == cj, w[:, i], 0.0)
        better = (score > best) | ((score == best) & (cj < pred))
        best = np.where(better, score, best)
        pred = np.where(better, cj, pred)
    return pred, (best / total).astype(np.float32)


class SeedVoter:
    """Exact kNN vote of many cells against a fixed set of seeds.

    Every cell is compared with every seed: a (cells x seeds) matrix product per block of
    :data:`BLOCK_ROWS` cells (FAISS flat inner product: BLAS plus a heap top-k), then the
    ``k`` best seeds vote. Blocks run on a pool of one thread per core, each calling FAISS
    single-threaded: no OpenMP barriers, which stall badly on a busy machine.
    """

    def __init__(self, seed_vectors: np.ndarray, seed_classes: np.ndarray, n_classes: int, k: int) -> None:
        self.k = max(1, min(int(k), len(seed_vectors)))
        self.classes = np.asarray(seed_classes, dtype=np.int64)
        self.n_classes = int(n_classes)
        self.dim = int(seed_vectors.shape[1])
        self.index = seed_index(seed_vectors)

    def _block(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sims, nn = self.index.search(q, self.k)
        return vote(sims, self.classes[nn], self.n_classes)

    def __call__(
        self, queries: np.ndarray | list[np.ndarray], block: int = BLOCK_ROWS
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted class numbers (N,) and confidences (N,) of unit vectors (N, D).

        ``queries`` is one matrix or a list of matrices (e.g. the zero-copy chunks of an
        Arrow column), labelled as if stacked.
        """
        mats = queries if isinstance(queries, list) else [queries]
        qs = [np.ascontiguousarray(m, dtype=np.float32).reshape(-1, self.dim) for m in mats]
        block = min(block, max(1024, -(-sum(len(q) for q in qs) // SEARCH_WORKERS)))  # all cores busy
        blocks = [q[b : b + block] for q in qs for b in range(0, len(q), block)]
        if not blocks:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        parts = list(_search_pool().map(self._block, blocks))
        return np.concatenate([p for p, _ in parts]), np.concatenate([c for _, c in parts])


_POOL: list[ThreadPoolExecutor] = []
SEARCH_WORKERS = max(1, min(os.cpu_count() or 1, 8))
"""Threads labelling blocks of cells (one per core; each runs FAISS single-threaded)."""


def _search_pool() -> ThreadPoolExecutor:
    """The process-wide pool of single-threaded FAISS workers (one per core, made once)."""
    if not _POOL:
        _POOL.append(
            ThreadPoolExecutor(
                max_workers=SEARCH_WORKERS,
                thread_name_prefix="earthvec-knn",
                initializer=faiss.omp_set_num_threads,
                initargs=(1,),
            )
        )
    return _POOL[0]


def knn_vote(
    seed_vectors: np.ndarray, seed_classes: np.ndarray, n_classes: int, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-weighted kNN vote (exact).

    Each query takes its ``k`` most similar seeds; votes weigh ``(1 + cos) / 2``.

    Args:
        seed_vectors: (S, D) unit vectors of the seeds.
        seed_classes: (S,) class numbers in ``[0, n_classes)``.
        n_classes: number of classes.
        queries: (N, D) unit vectors to label.
        k: neighbours per query (capped at S).

    Returns:
        Predicted class numbers (N,) and confidences (N,) in (0, 1].
    """
    return SeedVoter(seed_vectors, seed_classes, n_classes, k)(queries)
