"""Spatially blocked cross-validation of kNN labelling, and learning curves.

Seeds are grouped by their parent cell at a coarse resolution (the blocks) and whole blocks
are held out together, so test seeds are never next to training seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from embedder import h3grid
from embedder.folds import deal_blocks
from index.vote import knn_vote

DEFAULT_K = 5
DEFAULT_FOLDS = 5
BLOCK_RES_OFFSET = 4
"""Default CV blocks: parents 4 resolutions coarser than the cells (res 8 -> res 4, ~22 km)."""


@dataclass
class CVResult:
    """Spatially blocked cross-validation of the seeds.

    Attributes:
        accuracy: share of held-out seeds predicted right (``None`` when CV was impossible).
        n_folds: folds used.
        n_blocks: spatial blocks (parent cells) holding seeds.
        block_resolution: H3 resolution of the blocks.
        fold_accuracy: accuracy of each fold.
        message: why CV was skipped or is weak, else empty.
        balanced_accuracy: mean over classes of the share of that class's held-out seeds
            predicted right (``None`` when CV was impossible).
    """

    accuracy: float | None
    n_folds: int
    n_blocks: int
    block_resolution: int
    fold_accuracy: list[float] = field(default_factory=list)
    message: str = ""
    balanced_accuracy: float | None = None


def block_folds(blocks: np.ndarray, n_folds: int) -> np.ndarray:
    """Fold number per seed: whole blocks per fold, folds balanced by seed count.

    Largest blocks are placed first, each in the fold holding fewest seeds so far
    (deterministic, like a group k-fold): :func:`embedder.folds.deal_blocks` without a shuffle,
    the fold assignment ``earthvec eval`` uses too.
    """
    return deal_blocks(blocks, n_folds)


def spatial_cv(
    cells: np.ndarray,
    vectors: np.ndarray,
    labels: np.ndarray,
    *,
    k: int = DEFAULT_K,
    block_res: int,
    n_folds: int = DEFAULT_FOLDS,
) -> CVResult:
    """Spatially blocked k-fold accuracy of kNN labelling on the seeds themselves."""
    blocks = h3grid.cell_parents(cells, block_res)
    n_blocks = len(np.unique(blocks))
    if n_blocks < 2:
        return CVResult(
            None,
            0,
            n_blocks,
            block_res,
            message=f"all seeds lie in {n_blocks} block at resolution {block_res}: too few "
            "blocks for spatial cross-validation; spread seeds over more places or use a "
            "finer block resolution",
        )
    folds = min(n_folds, n_blocks)
    fold = block_folds(blocks, folds)
    classes, y = np.unique(labels, return_inverse=True)
    right = np.zeros(len(cells), dtype=bool)
    per = []
    for f in range(folds):
        test, train = fold == f, fold != f
        pred, _ = knn_vote(vectors[train], y[train], len(classes), vectors[test], k)
        right[test] = pred == y[test]
        per.append(float(right[test].mean()))
    msg = ""
    if n_blocks < n_folds:
        msg = f"only {n_blocks} spatial blocks: {folds} folds instead of {n_folds}; the estimate is rough"
    balanced = float(np.mean([right[y == c].mean() for c in range(len(classes))]))
    return CVResult(float(right.mean()), folds, n_blocks, block_res, per, msg, balanced)


def curve_predictions(
    folds: np.ndarray,
    sizes: list[int],
    draws: int,
    rng: np.random.Generator,
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Held-out predictions for a learning curve: ``n`` training seeds drawn per fold.

    For each size ``n`` (sizes larger than the smallest training pool are skipped, never
    capped) and each of ``draws`` draws, every fold is predicted from ``n`` seeds drawn at
    random from the other folds.

    Args:
        folds: fold number per seed.
        sizes: training-set sizes.
        draws: random draws per size.
        rng: the random generator (consumed in size, draw, fold order).
        predict: ``(training rows, held-out mask) -> predictions of the held-out rows``.

    Yields:
        ``(n, [predictions of every seed, one array per draw])``.
    """
    fold_ids = np.unique(folds)
    smallest_pool = min(int(np.sum(folds != f)) for f in fold_ids)
    for n in sizes:
        if n > smallest_pool:
            continue
        preds = []
        for _ in range(draws):
            pred = np.zeros(len(folds), dtype=np.int64)
            for f in fold_ids:
                test = folds == f
                pool = np.flatnonzero(~test)
                pick = rng.choice(pool, size=min(n, len(pool)), replace=False)
                pred[test] = predict(pick, test)
            preds.append(pred)
        yield int(n), preds


def learning_curve(
    cells: np.ndarray,
    vectors: np.ndarray,
    labels: np.ndarray,
    *,
    k: int,
    block_res: int,
    n_folds: int = 5,
    sizes: list[int] | None = None,
    repeats: int = 5,
    seed: int = 0,
) -> list[tuple[int, float, float]]:
    """Spatially cross-validated kNN accuracy against the number of training seeds.

    Seeds are split into spatial blocks (parents at ``block_res``) and folds of whole
    blocks (:func:`block_folds`); see :func:`curve_predictions` for the draws.

    Returns:
        ``(n, mean accuracy, std over draws)`` per size; empty when fewer than two spatial
        blocks exist.
    """
    blocks = h3grid.cell_parents(cells, block_res)
    n_blocks = len(np.unique(blocks))
    if n_blocks < 2:
        return []
    folds = min(n_folds, n_blocks)
    fold = block_folds(blocks, folds)
    classes, y = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    if sizes is None:
        max_train = int(min(np.sum(fold != f) for f in range(folds)))
        sizes = sorted({int(x) for x in np.unique(np.geomspace(2, max(2, max_train), 8).round())})

    def predict(pick: np.ndarray, test: np.ndarray) -> np.ndarray:
        return knn_vote(vectors[pick], y[pick], len(classes), vectors[test], k)[0]

    out = []
    for n, preds in curve_predictions(fold, sizes, repeats, np.random.default_rng(seed), predict):
        accs = [float(np.mean(p == y)) for p in preds]
        out.append((n, float(np.mean(accs)), float(np.std(accs))))
    return out
