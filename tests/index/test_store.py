"""index.store: build, reopen, stale/incremental updates, model mismatch, atomic writes."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from embedder import contract, h3grid
from embedder.contract import SIDECAR_NAME, Sidecar, index_dir
from embedder.errors import IndexMismatchError, ModelMismatchError
from index.store import build_index, index_state, open_index
from index.vectors import partition_files
from tests.index.index_helpers import table_of, write_db

UTC = timezone.utc


def _index_content(vi) -> dict[int, np.ndarray]:  # noqa: ANN001
    vecs = vi.index.reconstruct_batch(vi.ids.astype(np.int64))
    return {int(c): v for c, v in zip(vi.ids, vecs, strict=True)}


def test_build_indexes_every_cell_exactly(db: Path) -> None:
    vi = open_index(db)
    cells, vecs, _ = table_of(db)
    meta = contract.read_meta(db)
    sc = json.loads((index_dir(db) / SIDECAR_NAME).read_text())
    assert sc["factory"] == "IDMap2,Flat"
    assert sc["count"] == len(cells) == vi.index.ntotal == len(vi)
    assert sc["model"] == meta.model and sc["dim"] == meta.dim == 34
    assert sc["h3_resolution"] == meta.h3_resolution
    assert np.all(np.diff(vi.ids.astype(np.float64)) > 0)  # sorted, unique
    content = _index_content(vi)
    for c, v in zip(cells, vecs, strict=True):
        np.testing.assert_array_equal(content[int(c)], v)
    assert sorted(p.name for p in index_dir(db).iterdir()) == sorted(
        [SIDECAR_NAME, sc["index_file"], sc["rows_file"]]
    )


def test_reopen_loads_without_rebuilding(db: Path) -> None:
    first = open_index(db)
    again = open_index(db, rebuild=False)
    assert again.sidecar.index_file == first.sidecar.index_file
    assert again.sidecar.built_at == first.sidecar.built_at
    assert index_state(db) == "fresh"


def test_most_recent_row_of_each_cell_is_indexed(db: Path) -> None:
    open_index(db)
    cells, vecs, _ = table_of(db)
    meta = contract.read_meta(db)
    pick = np.arange(0, 40)
    newer, older = vecs[pick + 100], vecs[pick + 200]  # real vectors of other cells
    dates = [datetime(2022, 6, 1, tzinfo=UTC)] * len(pick) + [datetime(2019, 6, 1, tzinfo=UTC)] * len(pick)
    write_db(
        db,
        np.concatenate([cells[pick], cells[pick]]),
        np.concatenate([newer, older]),
        ["new"] * len(pick) + ["old"] * len(pick),
        meta,
        dates,
        key="dated",
    )
    assert index_state(db) == "stale"
    vi = open_index(db)
    assert vi.sidecar.multi_date
    assert len(vi) == len(np.unique(cells))
    got = vi.vectors(cells[pick])
    np.testing.assert_array_equal(got, newer)
    untouched = np.setdiff1d(np.arange(len(cells)), pick)[:20]
    np.testing.assert_array_equal(vi.vectors(cells[untouched]), vecs[untouched])


@pytest.mark.parametrize("factory", ["Flat", "IVF8,Flat"])
def test_incremental_update_equals_full_rebuild(
    db: Path, tmp_path: Path, factory: str, caplog: pytest.LogCaptureFixture
) -> None:
    vi0 = open_index(db, factory=factory)
    assert vi0.exact_vectors
    parts = partition_files(db)
    victim = sorted(parts, key=lambda p: len(parts[p]))[-1]
    removed = set()
    for f in parts[victim]:
        removed |= set(map(int, table_of_file(f)))
        f.unlink()
    cells, vecs, _ = table_of(db)
    meta = contract.read_meta(db)
    write_db(
        db,
        cells[:10],
        vecs[10:20],
        ["swap"] * 10,
        meta,
        [datetime(2023, 1, 1, tzinfo=UTC)] * 10,
        key="upd",
    )
    with caplog.at_level(logging.INFO, logger="index.store"):
        vi = open_index(db)
    assert "partition(s); updating the index" in caplog.text
    assert vi.sidecar.index_file != vi0.sidecar.index_file
    assert len(vi) == len(vi0) - len(removed)
    fresh_db = tmp_path / "fresh"
    shutil.copytree(db / contract.EMBEDDINGS_DIR, fresh_db / contract.EMBEDDINGS_DIR)
    fresh = build_index(fresh_db, factory=factory, progress=False)
    assert vi.sidecar.factory == fresh.sidecar.factory
    np.testing.assert_array_equal(vi.ids, fresh.ids)
    a, b = _index_content(vi), _index_content(fresh)
    assert all(np.array_equal(a[c], b[c]) for c in a)
    assert not (removed & set(a))
    assert vi.rows.equals(fresh.rows)
    np.testing.assert_array_equal(vi.vectors(cells[:10]), vecs[10:20])
    if factory == "Flat":  # rows appended out of cell order: the row-order shortcut is off
        assert vi.row_order.index is None and vi.row_order.matrix is None
        assert fresh.row_order.matrix is not None
    q = fresh.vectors(fresh.ids[:40])
    s_want, r_want = fresh.search_rows(q, 5)
    for got in (vi, fresh):  # search results agree with or without the shortcut (ties: as sets)
        s, r = got.search_rows(q, 5)
        np.testing.assert_allclose(s, s_want, rtol=1e-6)
        hit_vecs = fresh.vectors(got.ids[r].reshape(-1)).reshape(*r.shape, -1)
        np.testing.assert_allclose(np.einsum("qkd,qd->qk", hit_vecs, q), s, rtol=1e-5)  # ties may swap


def table_of_file(f: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    return pq.read_table(f, columns=[contract.H3]).column(0).to_numpy()


def test_hnsw_index_rebuilds_when_stale(db: Path) -> None:
    vi = open_index(db, factory="HNSW32")
    assert vi.sidecar.factory == "IDMap2,HNSW32"
    cells, vecs, _ = table_of(db)
    write_db(
        db,
        cells[:5],
        vecs[5:10],
        ["x"] * 5,
        contract.read_meta(db),
        [datetime(2024, 1, 1, tzinfo=UTC)] * 5,
        key="h",
    )
    vi2 = open_index(db)
    assert vi2.sidecar.factory == "IDMap2,HNSW32"
    np.testing.assert_array_equal(vi2.vectors(cells[:5]), vecs[5:10])


def test_index_of_another_model_is_refused(db: Path) -> None:
    open_index(db)
    path = index_dir(db) / SIDECAR_NAME
    sc = json.loads(path.read_text())
    sc["model"] = "stats@0000deadbeef"
    path.write_text(json.dumps(sc))
    before = {p.name: p.stat().st_mtime_ns for p in index_dir(db).iterdir()}
    with pytest.raises(IndexMismatchError) as err:
        open_index(db)
    msg = str(err.value)
    assert "stats@0000deadbeef" in msg and contract.read_meta(db).model in msg
    assert "--rebuild-index" in msg
    assert index_state(db) == "model mismatch"
    assert {p.name: p.stat().st_mtime_ns for p in index_dir(db).iterdir()} == before
    assert open_index(db, rebuild=True).model == contract.read_meta(db).model


def test_db_of_another_model_under_an_index_is_refused(db: Path, tmp_path: Path) -> None:
    """A second DB built with another model version gets the first DB's index swapped in."""
    open_index(db)
    cells, vecs, _ = table_of(db)
    meta = contract.read_meta(db)
    other = contract.DatasetMeta(**{**meta.__dict__, "model_version": "feedfacecafe"})
    db2 = tmp_path / "db2"
    write_db(db2, cells, vecs, ["x"] * len(cells), other)
    shutil.copytree(index_dir(db), index_dir(db2))
    with pytest.raises(IndexMismatchError, match="another model"):
        open_index(db2)


def test_mixed_model_versions_in_parquet_are_refused(db: Path) -> None:
    cells, vecs, _ = table_of(db)
    meta = contract.read_meta(db)
    other = contract.DatasetMeta(**{**meta.__dict__, "model_version": "feedfacecafe"})
    write_db(db, cells[:3], vecs[:3], ["x"] * 3, other, key="mixed")
    with pytest.raises(ModelMismatchError, match="never mix model versions"):
        open_index(db)
    assert not index_dir(db).exists()


def test_stale_index_with_rebuild_false_is_an_error(db: Path) -> None:
    open_index(db)
    cells, vecs, _ = table_of(db)
    write_db(db, cells[:2], vecs[2:4], ["x"] * 2, contract.read_meta(db), key="s")
    with pytest.raises(IndexMismatchError, match="stale"):
        open_index(db, rebuild=False)
    shutil.rmtree(index_dir(db))
    with pytest.raises(IndexMismatchError, match="no index"):
        open_index(db, rebuild=False)
    assert not index_dir(db).exists()


def test_crash_before_sidecar_keeps_previous_index(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = open_index(db)

    def boom(self: Sidecar, db: Path) -> None:
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(Sidecar, "save", boom)
    with pytest.raises(RuntimeError):
        build_index(db, progress=False)
    monkeypatch.undo()
    again = open_index(db, rebuild=False)
    assert again.sidecar.index_file == first.sidecar.index_file
    assert again.index.ntotal == first.index.ntotal
    assert not list(index_dir(db).glob(".*.tmp"))


def test_bad_factory_is_a_clear_error(db: Path) -> None:
    with pytest.raises(Exception, match="NotAnIndex"):
        open_index(db, factory="NotAnIndex")
    assert not (index_dir(db) / SIDECAR_NAME).exists()


def test_vectors_of_unknown_cell_name_the_fix(db: Path) -> None:
    vi = open_index(db)
    outside = h3grid.latlon_to_cells(np.array([0.0]), np.array([0.0]), vi.resolution)
    with pytest.raises(Exception, match="not in the database"):
        vi.vectors(outside)
