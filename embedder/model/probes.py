"""Label-efficiency probes over embeddings (numpy only).

kNN, logistic regression, few-shot learning curves and spatially blocked cross-validation.
"""

from __future__ import annotations

import numpy as np

from embedder.errors import EarthvecError
from embedder.folds import deal_blocks
from embedder.h3grid import latlon_to_cells

BLOCK_RES = 2  # H3 resolution of the spatial CV blocks (~160 km edge)
HOLDOUT_RES = 1  # H3 resolution of the region hold-out's blocks (~420 km edge)
HOLDOUT_SHARE = 0.22  # the hold-out takes whole blocks until it holds this share of the chips
HOLDOUT_MAX_SHARE = 0.30


def region_holdout(lat: np.ndarray, lon: np.ndarray, seed: int = 0) -> np.ndarray:
    """Mask of the region hold-out: whole H3 res-1 cells, drawn with ``seed``.

    Blocks are visited in a seeded random order and taken while the hold-out stays under
    30% of the chips, until it holds at least 22%. Nothing fitted or tuned may see these
    chips; ``earthvec eval`` reports them beside the cross-validation.
    """
    cells = latlon_to_cells(lat, lon, HOLDOUT_RES)
    blocks, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    n = len(cells)
    taken: list[int] = []
    total = 0
    for b in np.random.default_rng(seed).permutation(len(blocks)):
        if total + counts[b] > HOLDOUT_MAX_SHARE * n:
            continue
        taken.append(int(b))
        total += int(counts[b])
        if total >= HOLDOUT_SHARE * n:
            break
    return np.isin(inverse, taken)


def spatial_folds(
    lat: np.ndarray, lon: np.ndarray, n_folds: int = 5, seed: int = 0, res: int = BLOCK_RES
) -> np.ndarray:
    """Fold id per sample; all samples in one H3 cell at ``res`` share a fold.

    Blocks are shuffled with ``seed`` and dealt greedily to the currently smallest fold
    (:func:`embedder.folds.deal_blocks`, as in ``earthvec label``'s CV), so folds are balanced
    in sample count while nearby chips never straddle train and test.

    Raises:
        EarthvecError: when there are fewer blocks than folds.
    """
    cells = latlon_to_cells(lat, lon, res)
    n_blocks = len(np.unique(cells))
    if n_blocks < n_folds:
        raise EarthvecError(
            f"only {n_blocks} spatial blocks at H3 res {res} for {n_folds} folds; use fewer folds"
        )
    return deal_blocks(cells, n_folds, seed)


def vote_weight(distance: np.ndarray) -> np.ndarray:
    """Neighbour weight ``(1 + cos) / 2`` from scikit-learn's cosine distance ``1 - cos``.

    The same weight as ``earthvec label``'s vote (:func:`index.vote.vote`), so the CV of
    ``earthvec eval`` and of ``earthvec label`` count neighbours alike.
    """
    return (2.0 - np.asarray(distance, dtype=np.float64)) / 2.0 + 1e-9


def knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int) -> np.ndarray:
    """Similarity-weighted vote of the ``k`` most cosine-similar training rows (scikit-learn, exact)."""
    from sklearn.neighbors import KNeighborsClassifier

    k = max(1, min(int(k), len(train_x)))
    clf = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute", weights=vote_weight)
    return np.asarray(clf.fit(_unit(train_x), train_y).predict(_unit(test_x)))


def logreg_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    l2: float = 1e-3,
    iters: int = 300,
    lr: float = 0.1,
) -> np.ndarray:
    """Multinomial logistic regression (standardised features, L2, full-batch Adam)."""
    mu = train_x.mean(0)
    sd = train_x.std(0) + 1e-6
    xa = (train_x - mu) / sd
    xb = (test_x - mu) / sd
    classes, y = np.unique(train_y, return_inverse=True)
    n, d = xa.shape
    c = len(classes)
    if c == 1:
        return np.full(len(xb), classes[0])
    w = np.zeros((d, c))
    b = np.zeros(c)
    onehot = np.eye(c)[y]
    m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    for t in range(1, iters + 1):
        z = xa @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / n
        gw = xa.T @ g + l2 * w
        gb = g.sum(0)
        m_w = 0.9 * m_w + 0.1 * gw
        v_w = 0.999 * v_w + 0.001 * gw**2
        m_b = 0.9 * m_b + 0.1 * gb
        v_b = 0.999 * v_b + 0.001 * gb**2
        corr = np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        w -= lr * corr * m_w / (np.sqrt(v_w) + 1e-8)
        b -= lr * corr * m_b / (np.sqrt(v_b) + 1e-8)
    return classes[(xb @ w + b).argmax(axis=1)]


def blocked_cv(x: np.ndarray, y: np.ndarray, folds: np.ndarray, method: str, k: int = 5) -> float:
    """Accuracy over all samples, each predicted by a model fitted on the other folds.

    Args:
        x: (N, D) embeddings.
        y: (N,) labels.
        folds: fold id per sample (see :func:`spatial_folds`).
        method: ``"knn"`` or ``"logreg"``.
        k: neighbours for kNN.
    """
    pred = np.empty(len(y), dtype=y.dtype)
    for f in np.unique(folds):
        te = folds == f
        pred[te] = _fit_predict(x[~te], y[~te], x[te], method, k)
    return float((pred == y).mean())


def few_shot(
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    shots: int,
    method: str,
    draws: int = 20,
    seed: int = 0,
    query_x: np.ndarray | None = None,
) -> tuple[float, float]:
    """Mean and std accuracy over random draws of ``shots`` labels per class.

    For every held-out fold and draw, ``shots`` labelled examples per class are drawn from
    the other folds; the held-out fold is predicted (``query_x`` rows when given, e.g. the
    same chips embedded from fewer bands).
    """
    qx = x if query_x is None else query_x
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(draws):
        correct = 0
        for f in np.unique(folds):
            te = folds == f
            sel = draw_shots(np.flatnonzero(~te), y, shots, rng)
            k = min(5, shots) if method == "knn" else 0
            pred = _fit_predict(x[sel], y[sel], qx[te], method, k)
            correct += int((pred == y[te]).sum())
        accs.append(correct / len(y))
    return float(np.mean(accs)), float(np.std(accs))


def draw_shots(pool: np.ndarray, y: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """``shots`` rows of each class drawn from ``pool`` without replacement (all of a smaller class).

    Classes in sorted order, one ``rng.choice`` each: the draw the few-shot numbers of
    ``earthvec eval`` are made of.
    """
    labels = y[pool]
    picks = []
    for c in np.unique(labels):
        cand = pool[labels == c]
        picks.append(rng.choice(cand, size=min(shots, len(cand)), replace=False))
    return np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)


def _fit_predict(tx: np.ndarray, ty: np.ndarray, qx: np.ndarray, method: str, k: int) -> np.ndarray:
    if method == "knn":
        return knn_predict(tx, ty, qx, k)
    if method == "logreg":
        return logreg_predict(tx, ty, qx)
    raise EarthvecError(f"unknown probe {method!r}; use 'knn' or 'logreg'")


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x, dtype=np.float64), where=n > 0)
