"""index.label: kNN votes vs a loop oracle, spatial CV, GeoParquet maps on real EuroSAT labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from embedder import contract, h3grid
from embedder.errors import SeedError
from index.cv import block_folds, spatial_cv
from index.filters import Filter
from index.label import CONFIDENCE, LABELS_META_KEY, label_db
from index.seeds import LABEL
from index.vote import knn_vote


@pytest.fixture()
def seeds_csv(tmp_path: Path, eurosat_labels: pd.DataFrame) -> Path:
    p = tmp_path / "eurosat_seeds.csv"
    eurosat_labels[["lat", "lon", "label"]].to_csv(p, index=False)
    return p


def test_knn_vote_equals_loop_oracle(eurosat_labels: pd.DataFrame) -> None:
    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    classes, y = np.unique(eurosat_labels["label"], return_inverse=True)
    seeds, queries = np.arange(0, 369, 2), np.arange(1, 369, 2)
    pred, conf = knn_vote(vecs[seeds], y[seeds], len(classes), vecs[queries], 7)
    for j, qi in enumerate(queries):
        sims = vecs[seeds] @ vecs[qi]
        nn = np.argsort(-sims)[:7]
        votes = np.zeros(len(classes))
        for n in nn:
            votes[y[seeds][n]] += (1 + sims[n]) / 2
        assert pred[j] == np.argmax(votes)
        assert conf[j] == pytest.approx(votes.max() / votes.sum(), rel=1e-5)


def test_block_folds_keep_blocks_whole_and_balanced() -> None:
    blocks = np.repeat(np.arange(23), np.arange(1, 24))  # 23 blocks of sizes 1..23
    folds = block_folds(blocks, 5)
    for b in np.unique(blocks):
        assert len(np.unique(folds[blocks == b])) == 1
    sizes = np.bincount(folds)
    assert len(sizes) == 5 and sizes.max() - sizes.min() <= 23


def test_spatial_cv_on_real_eurosat_labels(eurosat_labels: pd.DataFrame) -> None:
    cells = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    labels = eurosat_labels["label"].to_numpy()
    cv = spatial_cv(cells, vecs, labels, k=5, block_res=4, n_folds=5)
    chance = pd.Series(labels).value_counts(normalize=True).max()
    # measured 0.645 (stats model, 369 chips, 240 blocks at res 4); chance is 0.108
    assert cv.accuracy is not None and cv.accuracy > 0.5 > 4 * chance
    assert cv.n_folds == 5 and cv.n_blocks == len(np.unique(h3grid.cell_parents(cells, 4)))
    assert len(cv.fold_accuracy) == 5 and cv.message == ""
    # shuffled labels fall to chance level: the estimate measures signal, not leakage
    rng = np.random.default_rng(0)
    shuffled = spatial_cv(cells, vecs, rng.permutation(labels), k=5, block_res=4)
    assert shuffled.accuracy is not None and shuffled.accuracy < 0.25


def test_spatial_cv_reports_too_few_blocks(eurosat_labels: pd.DataFrame) -> None:
    cells = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    labels = eurosat_labels["label"].to_numpy()
    parents = h3grid.cell_parents(cells, 0)
    one = parents == parents[0]
    cv = spatial_cv(cells[one], vecs[one], labels[one], k=3, block_res=0)
    assert cv.accuracy is None and "too few" in cv.message
    vals, counts = np.unique(h3grid.cell_parents(cells, 1), return_counts=True)
    three = np.isin(h3grid.cell_parents(cells, 1), vals[np.argsort(-counts)[:3]])
    cv3 = spatial_cv(cells[three], vecs[three], labels[three], k=3, block_res=1, n_folds=5)
    assert cv3.n_folds == 3 and cv3.n_blocks == 3 and "3 folds instead of 5" in cv3.message


def test_label_db_writes_geoparquet_map(
    db: Path, seeds_csv: Path, tmp_path: Path, eurosat_labels: pd.DataFrame
) -> None:
    out = tmp_path / "maps" / "landcover.parquet"
    r = label_db(db, seeds_csv, k=5, out=out)
    assert r.cv.accuracy is not None and r.cv.accuracy > 0.5
    t = pq.read_table(out)
    assert t.num_rows == r.n_cells == len(eurosat_labels)
    assert t.column_names == [
        contract.H3,
        contract.LAT,
        contract.LON,
        contract.GEOMETRY,
        contract.BBOX,
        LABEL,
        CONFIDENCE,
    ]
    geo = json.loads(t.schema.metadata[contract.GEO_KEY])
    assert geo["primary_column"] == contract.GEOMETRY
    info = json.loads(t.schema.metadata[LABELS_META_KEY])
    assert info["model"] == contract.read_meta(db).model and info["k"] == 5
    conf = t.column(CONFIDENCE).to_numpy()
    assert ((conf > 0) & (conf <= 1)).all()
    assert sum(r.predicted_counts.values()) == t.num_rows
    # every seed cell sees itself first: most seed cells keep their own label
    pred = dict(zip(t.column(contract.H3).to_numpy(), t.column(LABEL).to_pylist(), strict=True))
    own = np.mean(
        [pred[c] == lb for c, lb in zip(eurosat_labels["h3"], eurosat_labels["label"], strict=True)]
    )
    assert own > 0.8
    assert (db / contract.PREDICTIONS_DIR / "landcover.parquet").read_bytes() == out.read_bytes()
    stored = pq.read_table(db / contract.LABELS_DIR / "eurosat_seeds.parquet")
    assert stored.num_rows == len(eurosat_labels)
    gpd = pytest.importorskip("geopandas")
    g = gpd.read_parquet(out)
    assert g.crs is not None and g.geometry.is_valid.all() and len(g) == t.num_rows
    assert not list(out.parent.glob(".*.tmp"))


def test_label_db_streams_a_region_only(
    db: Path, seeds_csv: Path, tmp_path: Path, eurosat_labels: pd.DataFrame
) -> None:
    cells = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    vals, counts = np.unique(h3grid.cell_parents(cells, 1), return_counts=True)
    region = int(vals[np.argmax(counts)])
    out = tmp_path / "region.parquet"
    r = label_db(db, seeds_csv, k=5, out=out, flt=Filter(region=h3grid.cell_to_str(region)))
    got = pq.read_table(out).column(contract.H3).to_numpy()
    assert r.n_cells == counts.max() == len(got)
    assert (h3grid.cell_parents(got, 1) == region).all()


def test_bad_seeds_write_nothing(db: Path, tmp_path: Path, eurosat_labels: pd.DataFrame) -> None:
    one = tmp_path / "one.csv"
    sub = eurosat_labels.iloc[:10]
    pd.DataFrame({"lat": sub["lat"], "lon": sub["lon"], "label": "Forest"}).to_csv(one, index=False)
    out = tmp_path / "never.parquet"
    with pytest.raises(SeedError, match="at least two classes"):
        label_db(db, one, out=out)
    outside = tmp_path / "outside.csv"
    outside.write_text("lat,lon,label\n0,0,A\n1,1,B\n")
    with pytest.raises(SeedError, match="none of the 2 seeds"):
        label_db(db, outside, out=out)
    assert not out.exists()
    assert not (db / contract.PREDICTIONS_DIR).exists() and not (db / contract.LABELS_DIR).exists()


def test_label_map_time_window_uses_rows_inside_it(
    db: Path, seeds_csv: Path, tmp_path: Path, eurosat_labels: pd.DataFrame
) -> None:
    from datetime import datetime, timezone

    from tests.index.index_helpers import table_of, write_db

    cells, vecs, _ = table_of(db)
    n = 40
    d19, d23 = datetime(2019, 5, 1, tzinfo=timezone.utc), datetime(2023, 5, 1, tzinfo=timezone.utc)
    old, new = vecs[100 : 100 + n], vecs[200 : 200 + n]
    write_db(
        db,
        np.concatenate([cells[:n], cells[:n]]),
        np.concatenate([old, new]),
        ["d"] * (2 * n),
        contract.read_meta(db),
        [d19] * n + [d23] * n,
        key="dated",
    )
    out = tmp_path / "y2019.parquet"
    r = label_db(db, seeds_csv, k=5, out=out, flt=Filter(start="2019-01-01", end="2019-12-31"))
    t = pq.read_table(out)
    assert r.n_cells == n and set(t.column(contract.H3).to_numpy()) == set(cells[:n])
    seed_vecs = open_index_vectors(db, eurosat_labels)
    classes, y = np.unique(eurosat_labels["label"], return_inverse=True)
    pred, _ = knn_vote(seed_vecs, y, len(classes), old, 5)
    want = dict(zip(cells[:n], classes[pred], strict=True))
    got = dict(zip(t.column(contract.H3).to_numpy(), t.column(LABEL).to_pylist(), strict=True))
    assert got == want


def open_index_vectors(db: Path, eurosat_labels: pd.DataFrame) -> np.ndarray:
    """Seed vectors as the labeller sees them: the indexed (most recent) vector of each cell."""
    from index.store import open_index

    return open_index(db).vectors(eurosat_labels["h3"].to_numpy(dtype=np.uint64))


def oracle_vote(seeds: np.ndarray, y: np.ndarray, n_classes: int, queries: np.ndarray, k: int):
    """Brute-force float64 kNN vote (numpy): labels, confidences and the k-th/(k+1)-th gap."""
    sims = queries.astype(np.float64) @ seeds.astype(np.float64).T
    order = np.argsort(-sims, axis=1, kind="stable")
    top = np.take_along_axis(sims, order, axis=1)
    votes = np.zeros((len(queries), n_classes))
    for j in range(k):
        np.add.at(votes, (np.arange(len(queries)), y[order[:, j]]), (1 + top[:, j]) / 2)
    gap = top[:, k - 1] - top[:, k] if seeds.shape[0] > k else np.full(len(queries), np.inf)
    return votes.argmax(axis=1), votes.max(axis=1) / votes.sum(axis=1), gap


def test_label_map_equals_numpy_oracle(db: Path, tmp_path: Path, eurosat_labels: pd.DataFrame) -> None:
    # every third cell is a seed; the map labels all 369 cells
    seeds = eurosat_labels.iloc[::3]
    csv = tmp_path / "third.csv"
    seeds[["h3", "label"]].assign(h3=[h3grid.cell_to_str(int(c)) for c in seeds["h3"]]).to_csv(
        csv, index=False
    )
    out = tmp_path / "map.parquet"
    r = label_db(db, csv, k=7, out=out)  # a folder: seeds read from Parquet, no index built
    assert not (db / contract.INDEX_DIR).exists()
    t = pq.read_table(out)
    classes, y = np.unique(seeds["label"], return_inverse=True)
    by_cell = eurosat_labels.set_index("h3")
    cells = t.column(contract.H3).to_numpy()
    assert (np.diff(cells.astype(np.uint64)) > 0).all() and len(cells) == len(eurosat_labels)
    queries = np.stack(by_cell.loc[cells, "vec"].to_numpy())
    want, want_conf, gap = oracle_vote(np.stack(seeds["vec"].to_numpy()), y, len(classes), queries, 7)
    got = np.searchsorted(classes, np.array(t.column(LABEL).to_pylist()))
    clear = gap > 1e-6  # float32 products may swap neighbours closer than that
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(got[clear], want[clear])
    np.testing.assert_allclose(t.column(CONFIDENCE).to_numpy()[clear], want_conf[clear], rtol=1e-5)
    assert r.predicted_counts == {c: int((np.array(t.column(LABEL).to_pylist()) == c).sum()) for c in classes}
    # the same map from an open index (seed vectors taken from the index)
    from index.label import MapSource
    from index.store import open_index

    out2 = tmp_path / "map2.parquet"
    vi = open_index(db)
    assert MapSource.of(vi).vi is vi  # vectors come from the open index, not from Parquet
    label_db(vi, csv, k=7, out=out2)
    t2 = pq.read_table(out2)
    assert t2.column(LABEL).to_pylist() == t.column(LABEL).to_pylist()
    np.testing.assert_array_equal(t2.column(CONFIDENCE).to_numpy(), t.column(CONFIDENCE).to_numpy())


def test_seed_voter_blocks_and_chunks_agree(eurosat_labels: pd.DataFrame) -> None:
    from index.vote import SeedVoter, vote

    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    classes, y = np.unique(eurosat_labels["label"], return_inverse=True)
    seeds = np.arange(0, 369, 4)
    v = SeedVoter(vecs[seeds], y[seeds], len(classes), 5)
    whole = v(vecs)
    pieces = v([vecs[:100], vecs[100:101], vecs[101:]], block=17)
    np.testing.assert_array_equal(whole[0], pieces[0])
    np.testing.assert_array_equal(whole[1], pieces[1])
    # the slot-wise vote equals a dense per-class accumulation, ties going to the lowest class
    sims = np.array([[0.9, 0.5, 0.5], [0.2, 0.2, 0.1]])
    cls = np.array([[2, 0, 1], [3, 1, 3]])
    pred, conf = vote(sims, cls, 4)
    w = (1 + sims) / 2 + 1e-9
    assert pred.tolist() == [2, 3]
    assert conf[0] == pytest.approx(w[0, 0] / w[0].sum()) and conf[1] == pytest.approx(
        (w[1, 0] + w[1, 2]) / w[1].sum()
    )
    tie = vote(np.array([[0.5, 0.5]]), np.array([[3, 1]]), 4)[0]
    assert tie.tolist() == [1]
    assert v(np.zeros((0, vecs.shape[1]), np.float32))[0].shape == (0,)
