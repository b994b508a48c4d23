"""``export_stac``: GeoParquet 1.1 + ``emb`` block + STAC Embedding extension, read back by other tools."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pystac
import pytest
from pystac.errors import STACValidationError

from bench import product_layouts as pl
from embedder import contract
from embedder.contract import emb as embspec
from embedder.importers import import_product
from index.stac_export import ROW_GROUP, export_stac, validate_export


@pytest.fixture(scope="module")
def exported(tex_eurosat, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("stac") / "out"
    return out, export_stac(tex_eurosat.db, out, collection_id="eurosat-tex")


def test_stac_validates_and_lists_every_partition(exported, tex_eurosat) -> None:
    out, rep = exported
    assert validate_export(out) == 1 + rep.items
    col = pystac.read_file(str(out / "collection.json"))
    assert isinstance(col, pystac.Collection) and col.id == "eurosat-tex"
    assert embspec.STAC_EXTENSION in col.stac_extensions
    ef = col.extra_fields
    meta = contract.read_meta(tex_eurosat.db)
    assert (ef["emb:type"], ef["emb:dimensions"], ef["data_type"]) == ("chip", meta.dim, "float32")
    assert (
        ef["emb:chip_layout"]["layout_type"] == "named_grid"
        and ef["emb:chip_layout"]["grid_id"] == "h3-res-8"
    )
    assert {lk.rel for lk in col.links} >= {"emb:model", "emb:source-data"}
    assert json.loads((out / "model.json").read_text())["model"] == meta.model
    items = list(col.get_items(recursive=True))
    assert len(items) == rep.items == len(list(contract.embeddings_dir(tex_eurosat.db).iterdir()))
    for item in items:
        asset = item.assets[embspec.ASSET_KEY]
        assert not asset.href.startswith("/") and Path(asset.get_absolute_href()).is_file()
        assert item.properties["emb:quantization"]["method"] == "none"
    assert sum(it.properties["earthvec:rows"] for it in items) == rep.rows == len(tex_eurosat.cells)


def test_geoparquet_reads_back_with_geopandas_and_pyarrow(exported, tex_eurosat) -> None:
    out, rep = exported
    total = 0
    for f in rep.files:
        gdf = gpd.read_parquet(f)
        assert gdf.crs.to_string() == "OGC:CRS84" and (gdf.geometry.geom_type == "Polygon").all()
        assert (gdf["id"].str.len() == 15).all() and gdf["h3"].is_monotonic_increasing
        box = gdf.total_bounds
        sub = gpd.read_parquet(f, bbox=tuple(box))  # the bbox covering column is used for the filter
        assert len(sub) == len(gdf)
        pf = pq.ParquetFile(f)
        md = pf.schema_arrow.metadata
        geo = json.loads(md[b"geo"])
        assert geo["version"] == "1.1.0" and "covering" in geo["columns"]["geometry"]
        emb = json.loads(md[b"emb"])
        assert all(k in emb for k in embspec.EMB_BLOCK_REQUIRED) and emb["version"] == "0.0.1"
        assert emb["embedding_dim"] == contract.read_meta(tex_eurosat.db).dim
        assert all(pf.metadata.row_group(i).num_rows <= ROW_GROUP for i in range(pf.num_row_groups))
        vecs = np.stack(gdf["embedding"].to_numpy())
        pos = np.searchsorted(tex_eurosat.cells, gdf["h3"].to_numpy().astype(np.uint64))
        assert np.allclose(vecs, tex_eurosat.vectors[pos])
        total += len(gdf)
    assert total == len(tex_eurosat.cells)


def test_export_is_readable_as_an_earth_index_file(exported, tex_eurosat, tmp_path: Path) -> None:
    """Another tool that reads Earth Index files (here: earthvec's own importer) reads the export."""
    out, rep = exported
    back = import_product(tmp_path / "db", "earthindex", [str(out / "data")], res=8)
    meta = contract.read_meta(tex_eurosat.db)
    assert back.model == f"earthindex@{meta.model_name}-{meta.model_version}"
    t = contract.read_table(tmp_path / "db", columns=[contract.H3, contract.EMBEDDING])
    pos = np.searchsorted(tex_eurosat.cells, t.column(0).to_numpy())
    assert np.array_equal(tex_eurosat.cells[pos], t.column(0).to_numpy())
    assert np.allclose(contract.embeddings_matrix(t), tex_eurosat.vectors[pos], atol=1e-6)


def test_imported_product_exports_its_licence_and_links(tex_eurosat, tmp_path: Path) -> None:
    ref = pl.unit(tex_eurosat.vectors @ pl.projection(tex_eurosat.vectors.shape[1], 768))
    fp, lat, lon = pl.chip_footprints(tex_eurosat.files[:40])
    pl.write_clay(tmp_path / "clay", pl.Chips(fp, lat, lon, tex_eurosat.files[:40], ref[:40]))
    import_product(tmp_path / "db", "clay", [str(tmp_path / "clay")], res=8, spread=True)
    rep = export_stac(tmp_path / "db", tmp_path / "out")
    assert validate_export(tmp_path / "out") == 1 + rep.items
    col = json.loads((tmp_path / "out" / "collection.json").read_text())
    assert col["license"] == "ODC-BY-1.0" and col["emb:temporal_resolution"] == "single_acquisition"
    assert next(lk for lk in col["links"] if lk["rel"] == "emb:model")["href"].startswith("https://")
    cols = pq.read_schema(rep.files[0]).names
    assert {"count", "spread", "id", "bbox"} <= set(cols)


def test_validation_catches_a_broken_collection(exported, tmp_path: Path) -> None:
    out, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    doc = json.loads((copy / "collection.json").read_text())
    doc["emb:type"] = "patch"  # not pixel|chip
    (copy / "collection.json").write_text(json.dumps(doc))
    with pytest.raises(STACValidationError):
        validate_export(copy)
