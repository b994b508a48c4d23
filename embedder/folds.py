"""Spatially blocked folds: whole blocks (H3 cells) per fold, folds balanced by sample count.

The one fold assignment behind every cross-validation in earthvec: ``earthvec eval``'s
probes (:func:`embedder.model.probes.spatial_folds`, blocks shuffled with a seed first) and
``earthvec label``'s CV and learning curves (:func:`index.cv.block_folds`, no shuffle).
"""

from __future__ import annotations

import numpy as np


def deal_blocks(blocks: np.ndarray, n_folds: int, seed: int | None = None) -> np.ndarray:
    """Fold number per sample: the blocks, largest first, each dealt to the smallest fold so far.

    Args:
        blocks: (N,) block id per sample (e.g. an H3 parent cell).
        n_folds: number of folds.
        seed: shuffle the blocks with this seed before the (stable) sort by size, so equal
            blocks are dealt in a seeded order; ``None`` keeps them in block-id order.

    Returns:
        (N,) int64 fold numbers in ``0 .. n_folds - 1``.
    """
    ub, inverse, counts = np.unique(blocks, return_inverse=True, return_counts=True)
    order = np.arange(len(ub)) if seed is None else np.random.default_rng(seed).permutation(len(ub))
    order = order[np.argsort(-counts[order], kind="stable")]
    fold_of_block = np.zeros(len(ub), dtype=np.int64)
    sizes = np.zeros(n_folds, dtype=np.int64)
    for b in order:
        f = int(np.argmin(sizes))
        fold_of_block[b] = f
        sizes[f] += counts[b]
    return fold_of_block[inverse.reshape(-1)]
