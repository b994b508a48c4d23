"""build_global_db on the real global layers: contract-valid shards, labels, resume."""

from __future__ import annotations

from pathlib import Path

import h3.api.basic_int as h3i
import numpy as np
import pyarrow.parquet as pq
import pytest

from embedder import contract
from embedder.errors import ModelMismatchError, QueryError
from embedder.globe.build import build_global_db
from embedder.globe.cells import centres
from embedder.globe.labels import labels_path
from embedder.globe.layers import GlobalLayers
from embedder.h3grid import cell_wkb, cells_wkb
from embedder.registry import get_embedder

ROOT = Path(__file__).resolve().parents[3] / "data" / "global"
LIMIT = 400


@pytest.fixture(scope="module")
def layers() -> GlobalLayers:
    return GlobalLayers(ROOT)


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory, layers: GlobalLayers) -> Path:
    db = tmp_path_factory.mktemp("global") / "db"
    build_global_db(db, res=3, limit=LIMIT, progress=False, layers=layers)
    return db


def test_small_build_is_contract_valid(small_db: Path) -> None:
    meta = contract.read_meta(small_db)
    emb = get_embedder()  # the default model: the fitted spectral-texture embedder
    assert meta.model == f"earthvec-tex@{emb.version}" and meta.dim == emb.dim and meta.h3_resolution == 3
    assert set(meta.sensors) == {"bluemarble", "etopo", "koppen"}
    table = contract.read_table(small_db)
    assert table.num_rows == LIMIT
    cells = table.column(contract.H3).to_numpy()
    assert len(np.unique(cells)) == LIMIT
    assert all(h3i.get_resolution(int(c)) == 3 for c in cells)
    vecs = contract.embeddings_matrix(table)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    # centres are the cells' own centres and geometry is the cells' polygon
    lat, lon = centres(cells[:20])
    np.testing.assert_allclose(table.column(contract.LAT).to_numpy()[:20], lat)
    np.testing.assert_allclose(table.column(contract.LON).to_numpy()[:20], lon)
    assert table.column(contract.GEOMETRY).to_pylist()[:5] == [cell_wkb(int(c)) for c in cells[:5]]
    mods = table.column(contract.MODALITIES).to_pylist()
    assert all({"optical", "elevation"} <= set(m) for m in mods)
    full = ["data/global/bmng.jpg", "data/global/etopo20data.gz", "data/global/KG_simplified_uint8.tif"]
    for m, s, sen in zip(
        mods,
        table.column(contract.SOURCE).to_pylist(),
        table.column(contract.SENSORS).to_pylist(),
        strict=True,
    ):
        assert len(s) == len(m) == len(sen) and set(s) <= set(full)
        if len(m) == 3:
            assert s == full and sen == ["bluemarble", "etopo", "koppen"]
    assert table.column(contract.DATETIME).null_count == LIMIT
    vf = table.column(contract.VALID_FRACTION).to_numpy()
    assert np.all((vf > 0) & (vf <= 1))


def test_small_build_writes_modis_labels(small_db: Path) -> None:
    labels = pq.read_table(labels_path(small_db))
    assert labels.column_names == [contract.H3, "label", "label_name"]
    emb_cells = set(contract.read_table(small_db, columns=[contract.H3]).column(0).to_pylist())
    lab_cells = labels.column(contract.H3).to_pylist()
    assert set(lab_cells) <= emb_cells and len(lab_cells) >= 0.95 * LIMIT
    codes = labels.column("label").to_numpy()
    assert codes.min() >= 0 and codes.max() <= 16


def test_rebuild_skips_finished_shards(small_db: Path, layers: GlobalLayers) -> None:
    files = contract.embedding_files(small_db)
    report = build_global_db(small_db, res=3, limit=LIMIT, progress=False, layers=layers)
    assert report.shards_written == 0 and report.shards_skipped == report.shards_total > 0
    assert contract.embedding_files(small_db) == files


def test_changed_limit_replaces_stale_shard(tmp_path: Path, layers: GlobalLayers) -> None:
    db = tmp_path / "db"
    build_global_db(db, res=3, limit=50, progress=False, layers=layers)
    build_global_db(db, res=3, limit=80, progress=False, layers=layers)
    cells = contract.read_table(db, columns=[contract.H3]).column(0).to_numpy()
    assert len(cells) == 80 and len(np.unique(cells)) == 80


def test_other_resolution_into_same_db_is_refused(small_db: Path, layers: GlobalLayers) -> None:
    with pytest.raises(ModelMismatchError, match="new database"):
        build_global_db(small_db, res=2, limit=10, progress=False, layers=layers)


def test_bad_resolution_is_refused(tmp_path: Path, layers: GlobalLayers) -> None:
    with pytest.raises(QueryError, match="resolution"):
        build_global_db(tmp_path / "db", res=16, limit=10, progress=False, layers=layers)


def test_cells_wkb_matches_cell_wkb() -> None:
    cells = np.array(
        h3i.cell_to_children(h3i.latlng_to_cell(65.0, 179.9, 1), 4)  # crosses the antimeridian
        + h3i.cell_to_children(h3i.latlng_to_cell(-89.0, 0.0, 1), 3)  # polar, odd vertex counts
        + [c for c in h3i.get_pentagons(2)],
        dtype=np.uint64,
    )
    assert cells_wkb(cells) == [cell_wkb(int(c)) for c in cells]


def test_two_workers_write_the_same_shards(tmp_path: Path, layers: GlobalLayers) -> None:
    one, two = tmp_path / "w1", tmp_path / "w2"
    build_global_db(one, res=3, model="stats", limit=LIMIT, progress=False, layers=layers)
    from embedder.baseline import ChannelStats  # an instance reaches forked workers too

    report = build_global_db(
        two, res=3, embedder=ChannelStats(), limit=LIMIT, progress=False, layers=layers, workers=2
    )
    assert report.rows_written == LIMIT
    names = [p.relative_to(one) for p in contract.embedding_files(one)]
    assert [p.relative_to(two) for p in contract.embedding_files(two)] == names
    a = contract.read_table(one).sort_by(contract.H3)
    b = contract.read_table(two).sort_by(contract.H3)
    np.testing.assert_array_equal(contract.embeddings_matrix(a), contract.embeddings_matrix(b))


def test_torch_embedder_is_not_forked(small_db: Path, tmp_path: Path, layers: GlobalLayers) -> None:
    """A forked torch pool deadlocks; the build warns and runs in-process instead."""
    ref = tmp_path / "ref"
    build_global_db(ref, res=3, limit=LIMIT, progress=False, layers=layers, model="earthvec-mm")
    db = tmp_path / "db2"
    with pytest.warns(UserWarning, match="not fork-safe"):
        report = build_global_db(
            db, res=3, limit=LIMIT, progress=False, layers=layers, workers=2, model="earthvec-mm"
        )
    assert report.rows_written == LIMIT
    names = [p.relative_to(ref) for p in contract.embedding_files(ref)]
    assert [p.relative_to(db) for p in contract.embedding_files(db)] == names
    a = contract.read_table(ref).sort_by(contract.H3)
    b = contract.read_table(db).sort_by(contract.H3)
    np.testing.assert_array_equal(contract.embeddings_matrix(a), contract.embeddings_matrix(b))


@pytest.mark.bench
def test_bench_global_build(tmp_path: Path, layers: GlobalLayers) -> None:
    """Whole-planet land build timings; res from $EARTHVEC_BENCH_GLOBAL_RES (default "4")."""
    import json
    import os
    import resource

    out = Path(os.environ.get("EARTHVEC_BENCH_OUT", "bench_results"))
    resolutions = [int(r) for r in os.environ.get("EARTHVEC_BENCH_GLOBAL_RES", "4").split(",")]
    layers.prepare()
    rows = []
    for res in resolutions:
        for model, workers in (("earthvec-mm", 1), ("stats", 1), ("stats", 2)):
            db = tmp_path / f"res{res}_{model}_w{workers}"
            rep = build_global_db(db, res=res, model=model, progress=False, layers=layers, workers=workers)
            assert rep.rows_written == rep.rows_planned > 0
            assert contract.read_meta(db).h3_resolution == res
            rows.append(
                {
                    "res": res,
                    "model": model,
                    "workers": workers,
                    "land_cells": rep.rows_written,
                    "shards": rep.shards_written,
                    "seconds": round(rep.seconds, 2),
                    "cells_per_s": round(rep.rows_per_second, 1),
                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                    "cpu_count": os.cpu_count(),
                }
            )
    print("\nres model       workers land_cells seconds cells/s")
    for r in rows:
        print(
            f"{r['res']:>3} {r['model']:<11} {r['workers']:>7} {r['land_cells']:>10} "
            f"{r['seconds']:>7} {r['cells_per_s']:>7}"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "global_build.json").write_text(json.dumps({"rows": rows}, indent=2))
