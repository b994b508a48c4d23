"""Chip products (Major TOM, Clay, Earth Index files of real EuroSAT earthvec-tex vectors) round trip."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest

from bench import product_layouts as pl
from bench.import_roundtrip import label_agreement, recall_at_10, write_reference_db
from embedder import contract, h3grid
from embedder.errors import ModelMismatchError, SchemaError, SourceError
from embedder.importers import import_product
from tests.conftest import DATA

SEEDS = DATA / "eurosat_ms" / "seeds.csv"
CASES = {
    "majortom": (2048, pl.write_majortom, {}, "majortom@Core-S2L1C-SSL4EO"),
    "clay": (768, pl.write_clay, {}, "clay@v001"),
    "earthindex": (
        384,
        pl.write_earthindex,
        {"model_id": "tex384", "model_version": "1"},
        "earthindex@tex384-1",
    ),
}


@pytest.fixture(scope="module")
def footprints(tex_eurosat) -> tuple:
    return pl.chip_footprints(tex_eurosat.files)


def _chips(native, dim: int, footprints: tuple) -> tuple[pl.Chips, np.ndarray]:
    ref = pl.unit(native.vectors @ pl.projection(native.vectors.shape[1], dim))
    fp, lat, lon = footprints
    return pl.Chips(fp, lat, lon, native.files, ref), ref


@pytest.mark.parametrize("product", list(CASES))
def test_round_trip_gives_the_native_answers(product: str, tex_eurosat, footprints, tmp_path: Path) -> None:
    dim, writer, kw, model = CASES[product]
    chips, ref = _chips(tex_eurosat, dim, footprints)
    writer(tmp_path / "files", chips, **kw)
    rep = import_product(tmp_path / "db", product, [str(tmp_path / "files")], res=8)
    assert rep.model == model and rep.chips_read == rep.rows_written == len(tex_eurosat.cells)
    recall, matched, min_cos = recall_at_10(tmp_path / "db", tex_eurosat.cells, ref)
    assert matched == len(tex_eurosat.cells) and min_cos > 0.99999 and recall == 1.0
    ref_db = write_reference_db(tex_eurosat, tmp_path / "ref", ref, f"ref-{dim}", tex_eurosat.cells)
    lab = label_agreement(tmp_path / "db", ref_db, SEEDS, tmp_path)
    assert lab["cv_imported"] == lab["cv_reference"] > 0.6 and lab["map_agreement"] == 1.0
    t = pq.read_table(contract.embedding_files(tmp_path / "db")[0])
    assert t.column("count").to_pylist() == [1] * t.num_rows
    assert all(src[0].startswith(str(tmp_path / "files")) for src in t.column("source").to_pylist())


def test_default_resolution_follows_the_chip_size(tex_eurosat, footprints, tmp_path: Path) -> None:
    chips, _ = _chips(tex_eurosat, 384, footprints)
    pl.write_earthindex(tmp_path / "files", chips, model_id="tex384", model_version="1")
    rep = import_product(tmp_path / "db", "earthindex", [str(tmp_path / "files")])
    assert (
        rep.resolution == 8
    )  # 640 m EuroSAT chips: the res whose cell area matches (as earthvec build picks)


def test_chips_sharing_a_coarse_cell_are_averaged(tex_eurosat, footprints, tmp_path: Path) -> None:
    chips, ref = _chips(tex_eurosat, 768, footprints)
    pl.write_clay(tmp_path / "files", chips)
    rep = import_product(tmp_path / "db", "clay", [str(tmp_path / "files")], res=3, spread=True)
    t = pq.read_table(contract.embedding_files(tmp_path / "db"))
    assert rep.rows_written == t.num_rows < len(ref)
    cells3 = h3grid.latlon_to_cells(chips.lat, chips.lon, 3)
    vecs = contract.embeddings_matrix(t)
    for cell, vec, count, spread in zip(t.column("h3").to_pylist(), vecs, t.column("count").to_pylist(),
                                        t.column("spread").to_pylist(), strict=True):  # fmt: skip
        members = ref[cells3 == cell]
        mean = members.mean(axis=0)
        assert count == len(members)
        assert np.allclose(vec, mean / np.linalg.norm(mean), atol=1e-5)
        assert spread == pytest.approx(1 - np.linalg.norm(mean), abs=1e-5)


def test_layout_errors_name_the_fix(tex_eurosat, footprints, tmp_path: Path) -> None:
    chips, _ = _chips(tex_eurosat, 2048, footprints)
    (shard, *_) = pl.write_majortom(tmp_path / "mt", chips)
    loose = tmp_path / "loose.parquet"
    loose.write_bytes(shard.read_bytes())
    with pytest.raises(SourceError, match="--version"):
        import_product(tmp_path / "db", "majortom", [str(loose)])
    rep = import_product(tmp_path / "db", "majortom", [str(loose)], version="Core-S2L1C-SSL4EO")
    assert rep.model == "majortom@Core-S2L1C-SSL4EO"
    gdf = gpd.read_parquet(pl.write_clay(tmp_path / "clay", _chips(tex_eurosat, 768, footprints)[0])[0])
    bad = tmp_path / "bad_v001.gpq"
    gdf.drop(columns=["embeddings"]).to_parquet(bad)
    with pytest.raises(SchemaError, match="lacks column"):
        import_product(tmp_path / "db2", "clay", [str(bad)])
    with pytest.raises(ModelMismatchError, match="majortom@Core-S2L1C-SSL4EO; this import is clay@v001"):
        import_product(tmp_path / "db", "clay", [str(tmp_path / "clay")])
