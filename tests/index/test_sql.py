"""index.sql: DuckDB views, H3 UDFs against h3-py, read-only mode and row limits."""

from __future__ import annotations

from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from embedder import contract
from embedder.errors import QueryError
from index.label import label_db
from index.sql import connect, run_query


def test_embeddings_view_matches_parquet(db: Path) -> None:
    con = connect(db)
    t, cut = run_query(con, "SELECT h3, h3_parent, embedding FROM embeddings ORDER BY h3")
    ref = contract.read_table(db).sort_by(contract.H3)
    assert not cut and t.num_rows == ref.num_rows
    np.testing.assert_array_equal(t.column("h3").to_numpy(), ref.column(contract.H3).to_numpy())
    typ = t.schema.field("embedding").type
    assert typ.list_size == 34 and str(typ.value_type) == "float"
    np.testing.assert_array_equal(contract.embeddings_matrix(t), contract.embeddings_matrix(ref))
    norms, _ = run_query(con, "SELECT min(array_inner_product(embedding, embedding)) m FROM embeddings")
    assert norms.column("m")[0].as_py() == pytest.approx(1.0, abs=1e-4)


def test_h3_functions_equal_h3_py(db: Path) -> None:
    con = connect(db)
    t, _ = run_query(
        con,
        "SELECT h3, h3_to_string(h3) s, h3_parent(h3, 4) p, h3_lat(h3) la, h3_lon(h3) lo, "
        "h3_resolution(h3) r, h3_from_string(h3_to_string(h3)) back, h3_parent "
        "FROM embeddings LIMIT 50",
    )
    df = t.to_pandas()
    for _, row in df.iterrows():
        s = h3.int_to_str(int(row["h3"]))
        assert row["s"] == s
        assert int(row["p"]) == h3.str_to_int(h3.cell_to_parent(s, 4))
        assert (row["la"], row["lo"]) == pytest.approx(h3.cell_to_latlng(s))
        assert row["r"] == h3.get_resolution(s) and int(row["back"]) == int(row["h3"])
        assert row["h3_parent"] == h3.cell_to_parent(s, contract.read_meta(db).partition_resolution)
    bad, _ = run_query(
        con,
        "SELECT h3_from_string('nope') a, h3_parent(NULL, 3) b, "
        "h3_parent(h3_from_string('8808b1573bfffff'), 10) c",
    )
    assert bad.to_pylist() == [{"a": None, "b": None, "c": None}]


def test_similarity_in_sql_equals_numpy(db: Path, eurosat_labels: pd.DataFrame) -> None:
    con = connect(db)
    c = int(eurosat_labels["h3"].iloc[0])
    t, _ = run_query(
        con,
        f"WITH q AS (SELECT embedding FROM embeddings WHERE h3 = {c}) "
        "SELECT e.h3, array_inner_product(e.embedding, q.embedding) s FROM embeddings e, q "
        "ORDER BY s DESC LIMIT 5",
    )
    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    want = np.sort(vecs @ vecs[0])[::-1][:5]
    np.testing.assert_allclose(t.column("s").to_numpy(), want, atol=1e-5)


def test_labels_and_predictions_views(db: Path, tmp_path: Path, eurosat_labels: pd.DataFrame) -> None:
    con = connect(db)
    assert run_query(con, "SELECT count(*) n FROM predictions")[0].column("n")[0].as_py() == 0
    seeds = tmp_path / "seeds.csv"
    eurosat_labels[["lat", "lon", "label"]].to_csv(seeds, index=False)
    label_db(db, seeds, out=tmp_path / "map.parquet")
    con = connect(db)
    t, _ = run_query(
        con, "SELECT p.label = l.label AS same, p.file FROM predictions p JOIN labels l USING (h3)"
    )
    assert t.num_rows == len(eurosat_labels) and set(t.column("file").to_pylist()) == {"map"}
    assert np.mean(t.column("same").to_pylist()) > 0.8


def test_read_only_blocks_other_files(db: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    con = connect(db, read_only=True)
    assert run_query(con, "SELECT count(*) n FROM embeddings")[0].column("n")[0].as_py() > 0
    for sql in [
        f"SELECT * FROM read_csv('{secret}')",
        f"COPY (SELECT 1) TO '{tmp_path / 'x.csv'}'",
        "SET enable_external_access = true",
        "INSTALL h3",
    ]:
        with pytest.raises(QueryError):
            run_query(con, sql)
    assert not (tmp_path / "x.csv").exists()
    writable = connect(db)
    assert run_query(writable, f"SELECT a FROM read_csv('{secret}')")[0].num_rows == 1


def test_row_limit_and_errors(db: Path) -> None:
    con = connect(db)
    t, cut = run_query(con, "SELECT * FROM embeddings", limit=7)
    assert t.num_rows == 7 and cut
    t, cut = run_query(con, "SELECT * FROM embeddings LIMIT 3", limit=7)
    assert t.num_rows == 3 and not cut
    with pytest.raises(QueryError, match="SQL failed"):
        run_query(con, "SELECT nope FROM embeddings")


def test_pyramid_view(db: Path) -> None:
    from index.pyramid import build_pyramid

    build_pyramid(db, [6, 3])
    con = connect(db, read_only=True)
    t, _ = run_query(
        con, "SELECT resolution, sum(count) n, min(h3_resolution(h3)) r FROM pyramid GROUP BY 1 ORDER BY 1"
    )
    assert t.to_pylist() == [{"resolution": 3, "n": 369, "r": 3}, {"resolution": 6, "n": 369, "r": 6}]
