"""index.search: FAISS results against the numpy brute-force oracle on the real EuroSAT DB."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from embedder import contract, h3grid
from embedder.errors import QueryError
from index.filters import Filter
from index.search import similar, similar_batch, top_k
from index.store import VectorIndex, open_index
from tests.index.index_helpers import oracle_top_k, table_of, write_db

UTC = timezone.utc


@pytest.fixture(scope="module")
def ro_index(source_db: Path, tmp_path_factory: pytest.TempPathFactory) -> VectorIndex:
    """An exact index over a module-private copy of the EuroSAT DB."""
    import shutil

    db = tmp_path_factory.mktemp("search") / "db"
    shutil.copytree(source_db / contract.EMBEDDINGS_DIR, db / contract.EMBEDDINGS_DIR)
    return open_index(db)


def _hex(c: int) -> str:
    return h3grid.cell_to_str(int(c))


def _matches_oracle(df: pd.DataFrame, ids: np.ndarray, scores: np.ndarray) -> None:
    np.testing.assert_allclose(df["score"].to_numpy(), scores, atol=1e-5)
    got = [h3.str_to_int(x) for x in df["h3"]]
    # ids must agree wherever scores are not tied
    for i, (g, w) in enumerate(zip(got, ids, strict=True)):
        tied = np.sum(np.abs(scores - scores[i]) < 1e-6) > 1
        assert tied or g == int(w)


def test_every_cell_query_equals_numpy_oracle(ro_index: VectorIndex, eurosat_labels: pd.DataFrame) -> None:
    ids = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    res = similar_batch(ro_index, [int(c) for c in ids], k=10)
    assert len(res) == 10 * len(ids)
    for qi, c in enumerate(ids):
        want_ids, want_s = oracle_top_k(vecs, ids, vecs[qi], 10, exclude={int(c)})
        _matches_oracle(res[res["query"] == qi], want_ids, want_s)


def test_cell_query_table(ro_index: VectorIndex, eurosat_labels: pd.DataFrame) -> None:
    c = int(eurosat_labels["h3"].iloc[7])
    df = similar(ro_index, cell=_hex(c), k=5)
    assert list(df.columns[:5]) == ["h3", "lat", "lon", "score", "rank"]
    assert {"datetime", "valid_fraction", "source", "sensors", "modalities"} <= set(df.columns)
    assert df["rank"].tolist() == [1, 2, 3, 4, 5]
    assert _hex(c) not in set(df["h3"])
    assert (np.diff(df["score"].to_numpy()) <= 1e-7).all()
    row = eurosat_labels.set_index("h3").loc[np.uint64(h3.str_to_int(df["h3"].iloc[0]))]
    assert df["lat"].iloc[0] == pytest.approx(row["lat"])
    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    ids = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    _matches_oracle(df, *oracle_top_k(vecs, ids, vecs[7], 5, exclude={c}))


def test_point_query_uses_the_containing_cell(ro_index: VectorIndex, eurosat_labels: pd.DataFrame) -> None:
    c = int(eurosat_labels["h3"].iloc[3])
    lat, lon = h3.cell_to_latlng(_hex(c))
    by_point = similar(ro_index, lat=lat + 1e-4, lon=lon - 1e-4, k=4)
    by_cell = similar(ro_index, cell=c, k=4)
    assert by_point["h3"].tolist() == by_cell["h3"].tolist()


def test_finer_cell_maps_to_parent(ro_index: VectorIndex, eurosat_labels: pd.DataFrame) -> None:
    c = int(eurosat_labels["h3"].iloc[3])
    child = h3.cell_to_center_child(_hex(c), ro_index.resolution + 2)
    assert similar(ro_index, cell=child, k=3)["h3"].tolist() == similar(ro_index, cell=c, k=3)["h3"].tolist()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lat": 91.0, "lon": 0.0}, "latitude 91.0 is out of range"),
        ({"lat": 10.0, "lon": -180.5}, "longitude -180.5 is out of range"),
        ({"lat": float("nan"), "lon": 0.0}, "latitude"),
        ({"cell": "not-a-cell"}, "not an H3 cell"),
        ({"cell": "8828308281fffff0"}, "H3 cell"),
        ({"cell": "81083ffffffffff"}, "coarser than the database"),
        (
            {"lat": 0.0, "lon": 0.0},
            r"not in the database .* nearest cell it holds is [0-9a-f]{15}, [0-9.]+ km",
        ),
        ({}, "exactly one query"),
        ({"lat": 1.0}, "exactly one query|both lat and lon"),
        ({"vector": np.ones(5)}, "length 5"),
        ({"vector": np.zeros(34)}, "zero or not finite"),
        ({"cell": "8808b1573bfffff", "k": 0}, "at least one"),
    ],
)
def test_bad_queries_are_clear_errors(ro_index: VectorIndex, kwargs: dict, match: str) -> None:
    with pytest.raises(QueryError, match=match):
        similar(ro_index, **kwargs)


def test_raw_vector_query_finds_its_cell(ro_index: VectorIndex, eurosat_labels: pd.DataFrame) -> None:
    v = eurosat_labels["vec"].iloc[11] * 3.0  # any length: normalised
    df = similar(ro_index, vector=v, k=3)
    assert h3.str_to_int(df["h3"].iloc[0]) == int(eurosat_labels["h3"].iloc[11])
    assert df["score"].iloc[0] == pytest.approx(1.0, abs=1e-5)


def test_positive_and_negative_examples(ro_index: VectorIndex, eurosat_labels: pd.DataFrame) -> None:
    forest = eurosat_labels[eurosat_labels["label"] == "Forest"]
    sea = eurosat_labels[eurosat_labels["label"] == "SeaLake"]
    pos = [int(c) for c in forest["h3"].iloc[:3]]
    neg = [int(sea["h3"].iloc[0])]
    pt = h3.cell_to_latlng(_hex(pos[2]))
    df = similar(ro_index, positives=[pos[0], _hex(pos[1]), pt], negatives=neg, k=10)
    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    ids = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    pv = np.stack(forest["vec"].iloc[:3].to_numpy()).mean(0) - 0.5 * sea["vec"].iloc[0]
    q = pv / np.linalg.norm(pv)
    _matches_oracle(df, *oracle_top_k(vecs, ids, q, 10, exclude=set(pos + neg)))
    # negatives push results away from them: lower similarity to the negative than without
    plain = similar(ro_index, positives=[pos[0], _hex(pos[1]), pt], k=10)
    by_cell = dict(zip(ids, vecs, strict=True))

    def sim_to_neg(frame: pd.DataFrame) -> float:
        return float(
            np.mean([by_cell[np.uint64(h3.str_to_int(x))] @ sea["vec"].iloc[0] for x in frame["h3"]])
        )

    assert sim_to_neg(df) < sim_to_neg(plain)
    hits = eurosat_labels.set_index("h3").loc[[np.uint64(h3.str_to_int(x)) for x in plain["h3"]], "label"]
    assert (hits == "Forest").mean() >= 0.5  # forest examples find forest


def test_batch_of_raw_vectors(ro_index: VectorIndex, eurosat_labels: pd.DataFrame) -> None:
    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    ids = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    q = vecs[:20] + vecs[20:40]
    df = similar_batch(ro_index, q, k=4)
    for i in range(20):
        want = oracle_top_k(vecs, ids, q[i] / np.linalg.norm(q[i]), 4)
        _matches_oracle(df[df["query"] == i], *want)


def _filtered_oracle(eurosat_labels: pd.DataFrame, keep: np.ndarray, qi: int, k: int):  # noqa: ANN202
    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    ids = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    q = vecs[qi]
    return oracle_top_k(vecs[keep], ids[keep], q, k, exclude={int(ids[qi])})


def _region_with_most_cells(eurosat_labels: pd.DataFrame, res: int) -> str:
    parents = h3grid.cell_parents(eurosat_labels["h3"].to_numpy(dtype=np.uint64), res)
    vals, counts = np.unique(parents, return_counts=True)
    return _hex(vals[np.argmax(counts)])


def test_region_filter_uses_id_range_and_equals_oracle(
    ro_index: VectorIndex, eurosat_labels: pd.DataFrame
) -> None:
    region = _region_with_most_cells(eurosat_labels, 2)
    ids = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    keep = h3grid.cell_parents(ids, 2) == h3.str_to_int(region)
    assert 5 < keep.sum() < len(ids)
    flt = Filter(region=region)
    assert flt.region_only
    import faiss

    assert isinstance(flt.selector(ids[keep], ro_index.resolution), faiss.IDSelectorRange)
    qi = int(np.flatnonzero(keep)[0])
    df = similar(ro_index, cell=int(ids[qi]), k=50, flt=flt)
    assert len(df) == keep.sum() - 1  # everything in the region but the query
    _matches_oracle(df, *_filtered_oracle(eurosat_labels, keep, qi, 50))


def test_bbox_where_cells_polygon_filters_equal_oracle(
    ro_index: VectorIndex, eurosat_labels: pd.DataFrame
) -> None:
    lat, lon = eurosat_labels["lat"].to_numpy(), eurosat_labels["lon"].to_numpy()
    ids = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    box = (0.0, 45.0, 15.0, 52.0)
    in_box = (lon >= 0) & (lon <= 15) & (lat >= 45) & (lat <= 52)
    poly = [(45.0, 0.0), (44.0, 8.0), (45.0, 15.0), (52.0, 15.0), (52.0, 0.0)]
    hole = [(46.0, 2.0), (50.0, 2.0), (50.0, 12.0), (46.0, 12.0)]
    holed = {
        "type": "Polygon",
        "coordinates": [[[lo, la] for la, lo in poly], [[lo, la] for la, lo in hole]],
    }
    shapely = pytest.importorskip("shapely")
    in_poly = shapely.contains_xy(shapely.Polygon([(lo, la) for la, lo in poly]), lon, lat)
    in_hole = shapely.contains_xy(shapely.Polygon([(lo, la) for la, lo in hole]), lon, lat)
    assert in_hole.any() and (in_poly & ~in_hole).sum() > 3
    some = ids[::3]
    region1 = _region_with_most_cells(eurosat_labels, 1)
    cases = [
        (Filter(bbox=box), in_box),
        (Filter(bbox=box, where="lat < 48.5"), in_box & (lat < 48.5)),
        (Filter(cells=[_hex(c) for c in some]), np.isin(ids, some)),
        (Filter(polygon=poly), in_poly),
        (Filter(polygon=holed), in_poly & ~in_hole),
        (
            Filter(region=region1, min_valid_fraction=0.5),
            h3grid.cell_parents(ids, 1) == h3.str_to_int(region1),
        ),
    ]
    for flt, keep in cases:
        assert keep.sum() > 3, flt
        qi = int(np.flatnonzero(keep)[1])
        df = similar(ro_index, cell=int(ids[qi]), k=8, flt=flt)
        _matches_oracle(df, *_filtered_oracle(eurosat_labels, keep, qi, 8))
    # H3's own polygon fill keeps the same cells (centre inside) on a small polygon
    c = eurosat_labels.iloc[0]
    d = 0.05
    small = [
        (c["lat"] - d, c["lon"] - d),
        (c["lat"] - d, c["lon"] + d),
        (c["lat"] + d, c["lon"] + d),
        (c["lat"] + d, c["lon"] - d),
    ]
    fill = h3.h3shape_to_cells(h3.LatLngPoly(small), ro_index.resolution)
    filled = {h3.str_to_int(x) for x in fill}
    mask = Filter(polygon=small).mask(ro_index.rows, ro_index.resolution)
    assert mask.sum() >= 1
    assert {int(x) for x in ro_index.ids[mask]} == filled & {int(x) for x in ro_index.ids}


@pytest.mark.parametrize(
    "flt",
    [
        Filter(bbox=(0, 60, 1, 50)),
        Filter(start="2020-13-01"),
        Filter(start="2022-01-01", end="2021-01-01"),
        Filter(where="foo > 1"),
        Filter(region="8828308281fffff0"),
        Filter(min_valid_fraction=2),
        Filter(polygon=[(0, 0), (1, 1)]),
        Filter(polygon={"type": "Point", "coordinates": [0, 0]}),
    ],
)
def test_bad_filters_are_clear_errors(ro_index: VectorIndex, flt: Filter) -> None:
    with pytest.raises(QueryError):
        similar(ro_index, cell=int(ro_index.ids[0]), flt=flt)


def test_approximate_index_is_exact_when_filter_is_selective(db: Path, eurosat_labels: pd.DataFrame) -> None:
    vi = open_index(db, factory="HNSW8")
    region = _region_with_most_cells(eurosat_labels, 2)
    ids = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    keep = h3grid.cell_parents(ids, 2) == h3.str_to_int(region)
    qi = int(np.flatnonzero(keep)[0])
    df = similar(vi, cell=int(ids[qi]), k=10, flt=Filter(region=region))
    _matches_oracle(df, *_filtered_oracle(eurosat_labels, keep, qi, 10))


def test_time_filter_searches_dated_rows_exactly(db: Path) -> None:
    cells, vecs, _ = table_of(db)
    meta = contract.read_meta(db)
    n = 60
    d19, d21, d23 = (datetime(y, 7, 1, tzinfo=UTC) for y in (2019, 2021, 2023))
    # 60 cells get two dated rows (2019: vector of cell i+100, 2023: of i+200); 30 more get 2021
    write_db(
        db,
        np.concatenate([cells[:n], cells[:n], cells[n : n + 30]]),
        np.concatenate([vecs[100 : 100 + n], vecs[200 : 200 + n], vecs[n : n + 30]]),
        ["d"] * (2 * n + 30),
        meta,
        [d19] * n + [d23] * n + [d21] * 30,
        key="dates",
    )
    vi = open_index(db)
    assert vi.sidecar.multi_date
    q = vecs[5]
    # window 2018-2021: the 2019 rows of the first 60 cells and the 2021 rows
    df = similar(vi, vector=q, k=15, flt=Filter(start="2018-01-01", end="2021-12-31"))
    ids = np.concatenate([cells[:n], cells[n : n + 30]])
    v = np.concatenate([vecs[100 : 100 + n], vecs[n : n + 30]])
    _matches_oracle(df, *oracle_top_k(v, ids, q, 15))
    assert df["datetime"].dt.year.isin([2019, 2021]).all()
    # no time filter: the most recent row of each cell (2023 for the first 60)
    df2 = similar(vi, vector=vecs[205], k=1)
    assert h3.str_to_int(df2["h3"].iloc[0]) == int(cells[5]) and df2["score"].iloc[0] == pytest.approx(1.0)
    assert df2["datetime"].iloc[0].year == 2023


def test_top_k_overhead_is_one_faiss_call(ro_index: VectorIndex) -> None:
    q = ro_index.index.reconstruct_batch(ro_index.ids[:50].astype(np.int64))
    hits = top_k(ro_index, q, 5)
    s, i = ro_index.index.search(q, 5)
    np.testing.assert_array_equal(ro_index.ids[hits.rows].astype(np.int64), i)
    np.testing.assert_allclose(hits.scores, s)


def test_k_larger_than_database(ro_index: VectorIndex) -> None:
    df = similar(ro_index, cell=int(ro_index.ids[0]), k=10_000)
    assert len(df) == len(ro_index) - 1 and df["rank"].tolist() == list(range(1, len(ro_index)))
    assert h3grid.cell_to_str(int(ro_index.ids[0])) not in set(df["h3"])


def test_large_filters_go_through_faiss_selectors(
    ro_index: VectorIndex, eurosat_labels: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above EXACT_FILTER_MAX candidates FAISS filters with an id selector (exact on Flat)."""
    import index.topk as topk

    monkeypatch.setattr(topk, "EXACT_FILTER_MAX", 0)
    ids = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    lat = eurosat_labels["lat"].to_numpy()
    region = _region_with_most_cells(eurosat_labels, 1)
    for flt, keep in [
        (Filter(region=region), h3grid.cell_parents(ids, 1) == h3.str_to_int(region)),
        (Filter(where="lat > 50"), lat > 50),
    ]:
        qi = int(np.flatnonzero(keep)[2])
        df = similar(ro_index, cell=int(ids[qi]), k=12, flt=flt)
        _matches_oracle(df, *_filtered_oracle(eurosat_labels, keep, qi, 12))


@pytest.mark.parametrize("factory", ["Flat", "HNSW8"])
def test_row_order_shortcut_equals_id_mapped_search(
    db: Path, eurosat_labels: pd.DataFrame, factory: str
) -> None:
    """Indexes built in cell order are searched without their id map and read in place."""
    vi = open_index(db, factory=factory)
    ro = vi.row_order
    assert ro.index is not None and ro.matrix is not None
    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    np.testing.assert_array_equal(ro.matrix, vecs)  # rows sorted by cell, like the fixture
    np.testing.assert_array_equal(vi.vectors(vi.ids[::7]), vecs[::7])
    np.testing.assert_array_equal(vi.vectors_at(np.arange(10, 30)), vecs[10:30])
    q = vecs[::5]
    s, rows = vi.search_rows(q, 8)
    s_ids, ids = vi.index.search(q, 8)  # through the id map
    np.testing.assert_array_equal(vi.ids[rows].astype(np.int64), ids)
    np.testing.assert_allclose(s, s_ids)
    a, b = 40, 90  # a span of rows is an id range of the inner index
    s2, rows2 = vi.search_rows(q, 8, span=(a, b))
    want_ids, want_s = oracle_top_k(vecs[a:b], eurosat_labels["h3"].to_numpy(dtype=np.uint64)[a:b], q[0], 8)
    if factory == "Flat":
        np.testing.assert_array_equal(vi.ids[rows2[0]], want_ids)
        np.testing.assert_allclose(s2[0], want_s, rtol=1e-5)
    found = rows2[rows2 >= 0]  # a graph may stop short of k under a selector (-1 padding)
    assert len(found) > 0 and ((found >= a) & (found < b)).all()
