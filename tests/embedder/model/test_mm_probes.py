"""Probes against exact oracles, and spatial folds."""

from __future__ import annotations

import numpy as np
import pytest

from embedder.model import probes
from embedder.registry import get_embedder


@pytest.fixture(scope="module")
def stats_x(eurosat_chips) -> np.ndarray:
    return get_embedder("stats").embed(eurosat_chips.batch)


def test_spatial_folds_keep_blocks_together_and_balance(eurosat_chips) -> None:
    import h3

    f = probes.spatial_folds(eurosat_chips.lat, eurosat_chips.lon, 5, seed=0)
    pts = zip(eurosat_chips.lat, eurosat_chips.lon, strict=True)
    cells = [h3.latlng_to_cell(a, b, probes.BLOCK_RES) for a, b in pts]
    by_cell: dict[str, set[int]] = {}
    for c, fold in zip(cells, f, strict=True):
        by_cell.setdefault(c, set()).add(int(fold))
    assert all(len(v) == 1 for v in by_cell.values())
    counts = np.bincount(f)
    assert len(counts) == 5 and counts.max() - counts.min() <= max(counts) // 3
    np.testing.assert_array_equal(f, probes.spatial_folds(eurosat_chips.lat, eurosat_chips.lon, 5, seed=0))


def test_knn_matches_sklearn_oracle(stats_x, eurosat_chips) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    y = eurosat_chips.labels
    tr, te = np.arange(0, 369, 2), np.arange(1, 369, 2)
    ours = probes.knn_predict(stats_x[tr], y[tr], stats_x[te], 1)
    ref = (
        KNeighborsClassifier(1, metric="cosine", algorithm="brute")
        .fit(stats_x[tr], y[tr])
        .predict(stats_x[te])
    )
    assert (ours == ref).mean() > 0.99  # exact up to floating-point ties
    # k=5: same neighbours as sklearn, and votes (ties -> larger summed similarity) as a loop oracle
    ours5 = probes.knn_predict(stats_x[tr], y[tr], stats_x[te], 5)
    nn = KNeighborsClassifier(5, metric="cosine", algorithm="brute").fit(stats_x[tr], y[tr])
    _, idx = nn.kneighbors(stats_x[te])
    a = stats_x[tr] / np.linalg.norm(stats_x[tr], axis=1, keepdims=True)
    b = stats_x[te] / np.linalg.norm(stats_x[te], axis=1, keepdims=True)
    for q in range(len(te)):
        votes: dict[str, tuple[int, float]] = {}
        for j in idx[q]:
            n, s = votes.get(y[tr][j], (0, 0.0))
            votes[y[tr][j]] = (n + 1, s + float(a[j] @ b[q]))
        assert ours5[q] == max(votes, key=lambda c: votes[c])


def test_logreg_close_to_sklearn(stats_x, eurosat_chips) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    y = eurosat_chips.labels
    tr, te = np.arange(0, 369, 2), np.arange(1, 369, 2)
    ours = (probes.logreg_predict(stats_x[tr], y[tr], stats_x[te]) == y[te]).mean()
    sc = StandardScaler().fit(stats_x[tr])
    ref = LogisticRegression(max_iter=2000).fit(sc.transform(stats_x[tr]), y[tr])
    acc = (ref.predict(sc.transform(stats_x[te])) == y[te]).mean()
    assert ours > 0.5 and abs(ours - acc) < 0.08


def test_few_shot_curve_rises_with_labels(stats_x, eurosat_chips) -> None:
    f = probes.spatial_folds(eurosat_chips.lat, eurosat_chips.lon)
    one = probes.few_shot(stats_x, eurosat_chips.labels, f, 1, "logreg", draws=4)[0]
    twenty = probes.few_shot(stats_x, eurosat_chips.labels, f, 20, "logreg", draws=4)[0]
    assert 0.1 < one < twenty
