"""The global SQL examples and H3 UDFs of index.sql, checked against pandas/numpy/h3-py oracles."""

from __future__ import annotations

from pathlib import Path

import h3.api.basic_int as h3i
import numpy as np
import pyarrow.parquet as pq
import pytest

from embedder import contract
from embedder.globe.build import build_global_db
from embedder.globe.labels import koppen_path, labels_path
from index.sql import EXAMPLES, connect, run_query

ROOT = Path(__file__).resolve().parents[2] / "data" / "global"
LIMIT = 400


@pytest.fixture(scope="module")
def gdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("gsql") / "db"
    build_global_db(db, res=3, model="stats", limit=LIMIT, progress=False, root=ROOT)
    return db


@pytest.fixture(scope="module")
def emb(gdb: Path) -> tuple[np.ndarray, np.ndarray]:
    t = contract.read_table(gdb, columns=[contract.H3, contract.EMBEDDING])
    return t.column(contract.H3).to_numpy(), contract.embeddings_matrix(t)


def test_label_files_get_views_by_stem(gdb: Path) -> None:
    con = connect(gdb, read_only=True)
    for view, path in (("modis_igbp", labels_path(gdb)), ("koppen", koppen_path(gdb))):
        t, _ = run_query(con, f"SELECT * FROM {view} ORDER BY h3")
        ref = pq.read_table(path).sort_by(contract.H3)
        assert t.column_names == ref.column_names
        assert t.column("h3").to_pylist() == ref.column(contract.H3).to_pylist()
        assert t.column("label").to_pylist() == ref.column("label").to_pylist()


def test_area_and_neighbour_udfs_equal_h3_py(gdb: Path, emb: tuple[np.ndarray, np.ndarray]) -> None:
    con = connect(gdb)
    t, _ = run_query(
        con, "SELECT h3, h3_area_km2(h3) a, h3_neighbors(h3) n FROM embeddings ORDER BY h3 LIMIT 40"
    )
    for c, a, n in zip(*(t.column(i).to_pylist() for i in range(3)), strict=True):
        assert a == pytest.approx(h3i.cell_area(c, unit="km^2"))
        assert sorted(n) == sorted(h3i.grid_ring(c, 1))
    pent = h3i.get_pentagons(3)[0]
    t, _ = run_query(con, f"SELECT h3_neighbors({pent}::UBIGINT) n")
    assert sorted(t.column("n")[0].as_py()) == sorted(set(h3i.grid_disk(pent, 1)) - {pent})
    assert len(t.column("n")[0].as_py()) == 5


def test_landcover_area_per_climate(gdb: Path) -> None:
    t, _ = run_query(connect(gdb), EXAMPLES["landcover_area_per_climate"])
    got = t.to_pandas()
    cells = contract.read_table(gdb, columns=[contract.H3]).column(0).to_numpy()
    k = pq.read_table(koppen_path(gdb)).to_pandas().rename(columns={"label_name": "climate"})
    m = pq.read_table(labels_path(gdb)).to_pandas().rename(columns={"label_name": "land_cover"})
    df = k[["h3", "climate"]].merge(m[["h3", "land_cover"]], on="h3")
    df = df[df["h3"].isin(cells)]
    df["area"] = [h3i.cell_area(int(c), unit="km^2") for c in df["h3"]]
    agg = df.groupby(["climate", "land_cover"]).agg(cells=("h3", "size"), area=("area", "sum")).reset_index()
    top = agg.sort_values(["climate", "area"], ascending=[True, False]).groupby("climate").head(2)
    assert len(got) == len(top) > 0
    assert got["climate"].tolist() == top["climate"].tolist()
    assert got["land_cover"].tolist() == top["land_cover"].tolist()
    assert got["cells"].tolist() == top["cells"].tolist()
    np.testing.assert_allclose(got["area_km2"], top["area"].round(), atol=1.0)


def test_mean_embedding_per_res2_parent(gdb: Path, emb: tuple[np.ndarray, np.ndarray]) -> None:
    t, _ = run_query(connect(gdb), EXAMPLES["mean_embedding_per_res2_parent"])
    cells, vecs = emb
    parents = np.array([h3i.cell_to_parent(int(c), 2) for c in cells])
    assert t.num_rows == len(np.unique(parents))
    for p, n, mean in zip(*(t.column(i).to_pylist() for i in range(3)), strict=True):
        rows = parents == h3i.str_to_int(p)
        assert n == rows.sum()
        np.testing.assert_allclose(mean, vecs[rows].astype(np.float64).mean(axis=0), atol=1e-5)


def test_least_similar_to_neighbours(gdb: Path, emb: tuple[np.ndarray, np.ndarray]) -> None:
    t, _ = run_query(connect(gdb), EXAMPLES["least_similar_to_neighbours"])
    cells, vecs = emb
    row = {int(c): i for i, c in enumerate(cells)}
    oracle = {}
    for c, i in row.items():
        nb = [row[n] for n in h3i.grid_ring(c, 1) if n in row]
        if len(nb) >= 3:
            oracle[c] = (len(nb), float((vecs[nb].astype(np.float64) @ vecs[i]).mean()))
    best = sorted(oracle.items(), key=lambda kv: (round(kv[1][1], 4), h3i.int_to_str(kv[0])))[:10]
    assert t.num_rows == 10
    got = t.to_pandas()
    np.testing.assert_allclose(got["mean_cos"], [v[1] for _, v in best], atol=2e-4)
    assert got["neighbours"].tolist() == [v[0] for _, v in best]
    assert got["mean_cos"].is_monotonic_increasing
    for cell, n, cos in zip(got["cell"], got["neighbours"], got["mean_cos"], strict=True):
        assert oracle[h3i.str_to_int(cell)][0] == n
        assert oracle[h3i.str_to_int(cell)][1] == pytest.approx(cos, abs=1e-4)
