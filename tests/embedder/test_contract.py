import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from embedder import contract
from embedder.errors import InputNotFoundError, SchemaError


def _meta(dim=4):
    return contract.DatasetMeta("m", "v1", dim, 8, 1)


def _table(meta, emb):
    n = len(emb)
    return contract.make_table(
        h3=np.arange(n, dtype=np.uint64) + 613196570331971583,
        lat=np.zeros(n),
        lon=np.zeros(n),
        geometry=[b"x"] * n,
        datetime_=[None] * n,
        source=[["a.tif"]] * n,
        modalities=[["optical"]] * n,
        sensors=[["s"]] * n,
        valid_fraction=np.ones(n),
        embedding=emb,
        meta=meta,
    )


def test_round_trip_keeps_types_and_metadata(tmp_path):
    meta = _meta()
    emb = np.eye(4, dtype=np.float32)[:3]
    path = tmp_path / "x.parquet"
    contract.write_table_atomic(_table(meta, emb), path)
    schema = pq.read_schema(path)
    assert contract.validate_schema(schema, str(path)) == meta
    assert json.loads(schema.metadata[contract.GEO_KEY])["primary_column"] == contract.GEOMETRY
    back = contract.embeddings_matrix(pq.read_table(path))
    np.testing.assert_array_equal(back, emb)


def test_refuses_unnormalised_vectors():
    with pytest.raises(SchemaError, match="L2-normalised"):
        _table(_meta(), np.full((2, 4), 3.0, dtype=np.float32))


def test_refuses_wrong_dim():
    with pytest.raises(SchemaError, match="does not match"):
        _table(_meta(dim=5), np.eye(4, dtype=np.float32))


def test_foreign_parquet_is_a_schema_error(tmp_path):
    import pyarrow as pa

    path = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"h3": [1]}), path)
    with pytest.raises(SchemaError, match="not written by earthvec"):
        contract.validate_schema(pq.read_schema(path), str(path))


def test_missing_db_tells_how_to_build(tmp_path):
    with pytest.raises(InputNotFoundError, match="earthvec build"):
        contract.read_meta(tmp_path / "nothing")


def test_find_databases_in_a_database_or_a_folder_of_them(tmp_path):
    meta = _meta()
    emb = np.eye(4, dtype=np.float32)
    for name in ("global", "eurosat"):
        contract.write_table_atomic(_table(meta, emb), contract.shard_path(tmp_path / name, "0", "k"))
    (tmp_path / "not_a_db").mkdir()
    assert contract.find_databases(tmp_path) == [tmp_path / "eurosat", tmp_path / "global"]
    assert contract.find_databases(tmp_path / "global") == [tmp_path / "global"]
    with pytest.raises(InputNotFoundError, match="not an earthvec database"):
        contract.find_databases(tmp_path / "not_a_db")
    with pytest.raises(InputNotFoundError, match="not an earthvec database"):
        contract.find_databases(tmp_path / "missing")


def test_named_tables_and_pyramid_levels_live_where_the_layout_says(tmp_path):
    import pyarrow as pa

    db = tmp_path / "db"
    table = pa.table({"h3": pa.array([1], pa.uint64())})
    for path in (
        contract.label_path(db, contract.MODIS_LABELS),
        contract.label_path(db, "seeds"),
        contract.prediction_path(db, "map"),
        contract.level_path(db, 5),
        contract.level_path(db, 3),
    ):
        contract.write_table_atomic(table, path)
    (contract.labels_dir(db) / ".seeds.parquet.tmp").write_bytes(b"")  # an unfinished write
    assert contract.label_path(db, "seeds") == db / contract.LABELS_DIR / "seeds.parquet"
    names = [p.name for p in contract.table_files(contract.labels_dir(db))]
    assert names == ["modis_igbp.parquet", "seeds.parquet"]
    assert contract.table_files(contract.predictions_dir(db)) == [contract.prediction_path(db, "map")]
    assert contract.pyramid_levels(db) == [3, 5] and contract.pyramid_levels(tmp_path / "none") == []
