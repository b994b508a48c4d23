"""embedder.folds: the one spatial fold assignment, checked against scikit-learn's GroupKFold."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GroupKFold

from embedder.folds import deal_blocks
from embedder.h3grid import latlon_to_cells
from embedder.model.data import load_eurosat


def test_unshuffled_folds_are_group_k_fold() -> None:
    """Blocks of distinct sizes (no ties): the same folds as GroupKFold, fold for fold."""
    blocks = np.repeat(np.arange(23) * 7 + 3, np.arange(1, 24))
    folds = deal_blocks(blocks, 5)
    for f, (_, test) in enumerate(GroupKFold(n_splits=5).split(blocks, groups=blocks)):
        np.testing.assert_array_equal(np.flatnonzero(folds == f), np.sort(test))


def test_seeded_folds_keep_real_blocks_whole_and_balanced() -> None:
    chips = load_eurosat()
    blocks = latlon_to_cells(chips.lat, chips.lon, 2)
    folds = deal_blocks(blocks, 5, seed=0)
    assert all(len(np.unique(folds[blocks == b])) == 1 for b in np.unique(blocks))
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= np.unique(blocks, return_counts=True)[1].max()
    np.testing.assert_array_equal(folds, deal_blocks(blocks, 5, seed=0))  # seeded: reproducible
    assert not np.array_equal(folds, deal_blocks(blocks, 5, seed=1))  # ties dealt in another order
