"""Google Satellite Embedding files (of real earthvec-tex vectors of the Landsat-8 scene) round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio

from bench import product_layouts as pl
from bench.import_roundtrip import exact_top10, overlap, recall_at_10
from embedder import contract
from embedder.errors import ModelMismatchError, RasterError, SourceError
from embedder.importers import import_product
from embedder.importers.satellite_embedding import dequantise, quantise
from tests.conftest import LANDSAT_GLOB

BOX = (-87.46, 30.69, -87.41, 30.74)  # ~5 x 5 km inside the scene: 24 res-8 cells
ZONE_DIR = Path("satellite_embedding") / "v1" / "annual" / "2015" / "16N"


@pytest.fixture(scope="module")
def aef(tex_l8, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A Cloud Storage-layout COG and its bottom-up twin, both imported."""
    root = tmp_path_factory.mktemp("aef")
    ref = pl.unit(tex_l8.vectors @ pl.projection(tex_l8.vectors.shape[1], 64))
    field = pl.Field(tex_l8.cells, ref, 8)
    cog = pl.write_aef_cog(root / "gcs" / ZONE_DIR / "xa-0000000000-0000000000.tiff", field, BOX, 32616)
    flip = pl.write_aef_cog(root / "coop" / ZONE_DIR / "xa-0000000000-0000000000.tiff", field, BOX, 32616,
                            bottom_up=True)  # fmt: skip
    reports = {
        k: import_product(root / f"db_{k}", "satellite-embedding", [str(root / k)]) for k in ("gcs", "coop")
    }
    return {"root": root, "ref": ref, "cog": cog, "flip": flip, "reports": reports}


def test_dequantisation_follows_the_readme() -> None:
    q = np.arange(-127, 128, dtype=np.int8)
    v = dequantise(q)
    assert v[q == 127][0] == pytest.approx((127 / 127.5) ** 2)
    assert v[q == -64][0] == pytest.approx(-((64 / 127.5) ** 2))
    assert v[q == 0][0] == 0.0
    assert np.array_equal(quantise(v), q)  # the inverse recovers every int8 value


def test_cog_round_trip_keeps_cells_vectors_and_provenance(aef: dict, tex_l8) -> None:
    rep = aef["reports"]["gcs"]
    assert rep.model == "satellite-embedding@v1" and rep.years == [2015]
    assert rep.pixels_valid == rep.pixels_read > 0
    db = aef["root"] / "db_gcs"
    recall, matched, min_cos = recall_at_10(db, tex_l8.cells, aef["ref"])
    assert matched == rep.rows_written >= 20
    assert min_cos > 0.9998  # int8 quantisation only
    cells = np.sort(contract.read_table(db, columns=[contract.H3]).column(0).to_numpy())
    sel = np.searchsorted(tex_l8.cells, cells)
    oracle = overlap(exact_top10(aef["ref"][sel]), exact_top10(pl.dequantised("aef", aef["ref"])[sel]))
    assert recall >= oracle - 0.02
    (f,) = contract.embedding_files(db)
    t = pq.read_table(f)
    assert set(t.column("model").to_pylist()) == {"satellite-embedding@v1"}
    assert {str(d.date()) for d in t.column("datetime").to_pylist()} == {"2015-01-01"}
    assert {s for src in t.column("source").to_pylist() for s in src} == {str(aef["cog"])}
    assert t.column("count").to_numpy().sum() == rep.pixels_valid
    vf = t.column("valid_fraction").to_numpy()
    assert (
        vf.max() <= 1.0 and (vf > 0.99).sum() >= 5 and vf.min() < 0.5
    )  # interior cells full, edge cells cut
    block = contract.import_metadata(t.schema)
    assert (
        block is not None
        and block["product"] == "satellite-embedding"
        and block["files"] == [str(aef["cog"])]
    )
    meta = contract.read_meta(db)
    assert meta.model_config["dequantisation"] == "sign(q) * (abs(q) / 127.5) ** 2"


def test_bottom_up_copy_gives_the_same_rows(aef: dict) -> None:
    with rasterio.open(aef["flip"]) as src:
        assert src.transform.e > 0  # really bottom-up
    a = contract.read_table(aef["root"] / "db_gcs", columns=[contract.H3, contract.EMBEDDING])
    b = contract.read_table(aef["root"] / "db_coop", columns=[contract.H3, contract.EMBEDDING])
    assert a.column(0).to_pylist() == b.column(0).to_pylist()
    assert np.allclose(contract.embeddings_matrix(a), contract.embeddings_matrix(b), atol=1e-6)


def test_earth_engine_float_export_in_geographic_crs(tex_l8, tmp_path: Path) -> None:
    ref = pl.unit(tex_l8.vectors @ pl.projection(tex_l8.vectors.shape[1], 64))
    edge = (-87.53, 30.70, -87.47, 30.74)  # across the scene's west edge: pixels west of it are masked (0)
    path = pl.write_ee_export(tmp_path / "export.tif", pl.Field(tex_l8.cells, ref, 8), edge, 10 / 111_320)
    with pytest.raises(SourceError, match="--year"):
        import_product(tmp_path / "db", "satellite-embedding", [str(path)])
    rep = import_product(tmp_path / "db", "satellite-embedding", [str(path)], year=2015)
    assert rep.pixels_valid < rep.pixels_read  # the all-zero (masked) pixels are not pooled
    recall, matched, min_cos = recall_at_10(tmp_path / "db", tex_l8.cells, ref)
    assert matched == rep.rows_written and min_cos > 0.99999 and recall > 0.97


def test_masked_pixels_lower_the_valid_fraction(aef: dict, tmp_path: Path) -> None:
    src = aef["cog"]
    dst = tmp_path / "2015" / "masked.tiff"
    dst.parent.mkdir(parents=True)
    with rasterio.open(src) as s:
        prof, data = s.profile, s.read()
    data[:, :, : data.shape[2] // 2] = -128  # the west half masked, in every band as the readme says
    with rasterio.open(dst, "w", **prof) as d:
        d.write(data)
    rep = import_product(tmp_path / "db", "satellite-embedding", [str(dst)])
    assert rep.pixels_valid == pytest.approx(rep.pixels_read / 2, rel=0.01)
    masked = contract.read_table(tmp_path / "db", columns=[contract.H3, contract.VALID_FRACTION])
    full = contract.read_table(aef["root"] / "db_gcs", columns=[contract.H3, contract.VALID_FRACTION])
    vf_full = dict(zip(full.column(0).to_pylist(), full.column(1).to_pylist(), strict=True))
    pairs = zip(masked.column(0).to_pylist(), masked.column(1).to_pylist(), strict=True)
    lower = [vf < vf_full[c] - 0.05 for c, vf in pairs]
    assert any(lower) and masked.num_rows < full.num_rows


def test_wrong_files_are_refused_with_a_fix(tmp_path: Path) -> None:
    import glob

    band = sorted(glob.glob(LANDSAT_GLOB))[0]
    with pytest.raises(RasterError, match="64 embedding bands"):
        import_product(tmp_path / "db", "satellite-embedding", [band], year=2015)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_product(tmp_path / "db", "satellite-embedding", [str(tmp_path / "nope.tif")])


def test_rerun_skips_and_other_products_or_overlaps_are_refused(aef: dict, tex_l8, tmp_path: Path) -> None:
    db = aef["root"] / "db_gcs"
    before = contract.embedding_files(db)
    again = import_product(db, "satellite-embedding", [str(aef["root"] / "gcs")])
    assert again.partitions_skipped == again.partitions_total and again.rows_written == 0
    assert contract.embedding_files(db) == before
    other = tmp_path / "other" / "2015" / "b.tiff"  # other files, same cells and year
    ref = pl.unit(tex_l8.vectors @ pl.projection(tex_l8.vectors.shape[1], 64))
    pl.write_aef_cog(other, pl.Field(tex_l8.cells, ref, 8), (-87.44, 30.70, -87.43, 30.71), 32616)
    with pytest.raises(ModelMismatchError, match="already imported from other files"):
        import_product(db, "satellite-embedding", [str(other)])
    with pytest.raises(
        ModelMismatchError, match="satellite-embedding@v1; this import is satellite-embedding@v2"
    ):
        import_product(db, "satellite-embedding", [str(other)], version="v2")
    report = json.loads((db / contract.IMPORT_STATE).read_text())
    assert report["model"] == "satellite-embedding@v1"
