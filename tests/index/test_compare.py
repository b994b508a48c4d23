"""``compare``: the same spatially blocked kNN probe over two databases, checked against sklearn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from bench import product_layouts as pl
from embedder import h3grid
from embedder.errors import SeedError
from embedder.importers import import_product
from index.compare import compare
from index.cv import block_folds, spatial_cv
from index.vote import knn_vote
from tests.conftest import DATA

SEEDS = DATA / "eurosat_ms" / "seeds.csv"


def test_balanced_accuracy_matches_sklearn(tex_eurosat) -> None:
    df = pd.read_csv(SEEDS)
    cells = h3grid.latlon_to_cells(df["lat"].to_numpy(), df["lon"].to_numpy(), 8)
    pos = np.searchsorted(tex_eurosat.cells, cells)
    vecs, labels = tex_eurosat.vectors[pos], df["label"].to_numpy(dtype=str)
    cv = spatial_cv(cells, vecs, labels, k=5, block_res=3, n_folds=5)
    fold = block_folds(h3grid.cell_parents(cells, 3), 5)
    classes, y = np.unique(labels, return_inverse=True)
    pred = np.zeros(len(y), dtype=np.int64)
    for f in range(5):
        te = fold == f
        pred[te] = knn_vote(vecs[~te], y[~te], len(classes), vecs[te], 5)[0]
    assert cv.accuracy == pytest.approx(float(np.mean(pred == y)))
    assert cv.balanced_accuracy == pytest.approx(balanced_accuracy_score(y, pred))
    assert cv.balanced_accuracy != cv.accuracy  # the classes are unbalanced (30-40 seeds each)


def test_an_isometric_copy_scores_the_same_and_another_model_differs(
    tex_eurosat, eurosat_db, tmp_path: Path
) -> None:
    ref = pl.unit(tex_eurosat.vectors @ pl.projection(tex_eurosat.vectors.shape[1], 2048))
    fp, lat, lon = pl.chip_footprints(tex_eurosat.files)
    pl.write_majortom(tmp_path / "mt", pl.Chips(fp, lat, lon, tex_eurosat.files, ref))
    import_product(tmp_path / "db", "majortom", [str(tmp_path / "mt")], res=8)
    same = compare(tex_eurosat.db, tmp_path / "db", SEEDS)
    assert same.seeds_used == same.seeds_read == 369
    assert same.a.accuracy == same.b.accuracy and same.a.fold_accuracy == same.b.fold_accuracy
    assert (same.a.dim, same.b.dim) == (144, 2048) and same.b.model == "majortom@Core-S2L1C-SSL4EO"
    other = compare(tex_eurosat.db, eurosat_db, SEEDS, k=5)  # earthvec-tex vs channel statistics
    assert other.a.n_blocks == other.b.n_blocks and other.a.n_folds == other.b.n_folds == 5
    assert other.a.accuracy != other.b.accuracy
    assert other.a.fold_std == pytest.approx(float(np.std(other.a.fold_accuracy)))


def test_seeds_outside_one_database_are_refused(tex_eurosat, tex_l8) -> None:
    with pytest.raises(SeedError, match="both databases"):
        compare(tex_eurosat.db, tex_l8.db, SEEDS)
