"""kNN labels of in-memory rows and active-learning suggestions (the explorer's label page)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedder.errors import SeedError
from index.vote import knn_vote


@dataclass
class Prediction:
    """kNN labels of rows.

    Attributes:
        rows: the labelled row numbers.
        classes: class names; ``pred`` indexes them.
        pred: predicted class number per row.
        confidence: the winner's share of the similarity-weighted vote, in (0, 1].
        nearest_seed: similarity of each row to its most similar seed.
    """

    rows: np.ndarray
    classes: list[str]
    pred: np.ndarray
    confidence: np.ndarray
    nearest_seed: np.ndarray

    def labels(self) -> np.ndarray:
        """Predicted class names per row."""
        return np.asarray(self.classes, dtype=object)[self.pred]


def predict_rows(
    vectors: np.ndarray,
    rows: np.ndarray,
    seed_rows: np.ndarray,
    seed_labels: list[str],
    k: int,
    chunk: int = 65_536,
) -> Prediction:
    """kNN-label ``rows`` from seed rows with :func:`index.vote.knn_vote`, in chunks.

    Raises:
        SeedError: with fewer than two classes among the seeds.
    """
    classes, y = np.unique(np.asarray(seed_labels, dtype=str), return_inverse=True)
    if len(classes) < 2:
        raise SeedError(
            f"labelling needs seeds of at least two classes; all seeds are {classes.tolist()}"
        )
    sv = np.ascontiguousarray(vectors[np.asarray(seed_rows, dtype=np.int64)], dtype=np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    pred = np.zeros(len(rows), dtype=np.int64)
    conf = np.zeros(len(rows), dtype=np.float32)
    near = np.zeros(len(rows), dtype=np.float32)
    for s in range(0, len(rows), chunk):
        q = vectors[rows[s : s + chunk]]
        p, c = knn_vote(sv, y, len(classes), q, k)
        pred[s : s + chunk], conf[s : s + chunk] = p, c
        near[s : s + chunk] = (q @ sv.T).max(axis=1)
    return Prediction(rows, [str(c) for c in classes], pred, conf, near)


def suggest_next(pred: Prediction, labelled_rows: np.ndarray, n: int = 5) -> np.ndarray:
    """Rows most worth labelling next (active learning by uncertainty).

    Ranks unlabelled rows by the vote's disagreement (lowest winner share first); ties go
    to the row least similar to any seed (the most novel).

    Returns:
        Up to ``n`` row numbers, most useful first.
    """
    labelled = np.asarray(labelled_rows, dtype=np.int64)
    # only rows at or below the (n + seeds)-th lowest confidence can be among the answers
    m = min(len(pred.rows), n + len(labelled))
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    cut = np.partition(pred.confidence, m - 1)[m - 1]
    cand = np.flatnonzero(pred.confidence <= cut)
    cand = cand[~np.isin(pred.rows[cand], labelled)]
    order = np.lexsort((pred.nearest_seed[cand], pred.confidence[cand]))
    return pred.rows[cand[order[:n]]]
