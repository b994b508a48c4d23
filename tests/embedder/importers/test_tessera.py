"""TESSERA tiles (geotessera layouts of real earthvec-tex vectors of the Landsat-8 scene) round trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from bench import product_layouts as pl
from bench.import_roundtrip import exact_top10, overlap, recall_at_10
from embedder import contract
from embedder.errors import InputNotFoundError, ModelMismatchError, RasterError
from embedder.importers import import_product
from embedder.importers.tessera import dequantise, normalise_version

TILES = ((-87.45, 30.75), (-87.35, 30.75))  # side by side: cells on the seam take pixels from both


@pytest.fixture(scope="module")
def tessera(tex_l8, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("tessera")
    ref = pl.unit(tex_l8.vectors @ pl.projection(tex_l8.vectors.shape[1], 128))
    field = pl.Field(tex_l8.cells, ref, 8)
    tiles = [pl.write_tessera_npy(root / "tiles", lon, lat, 2024, field) for lon, lat in TILES]
    rep = import_product(root / "db", "tessera", [str(root / "tiles")], spread=True)
    return {"root": root, "ref": ref, "tiles": tiles, "report": rep}


def test_dequantise_is_values_times_scales() -> None:
    q = np.array([[[1, -2], [127, 0]]], dtype=np.int8)
    per_pixel = np.array([[0.5, 2.0]], dtype=np.float32)
    assert np.array_equal(dequantise(q, per_pixel), [[[0.5, -1.0], [254.0, 0.0]]])
    assert np.array_equal(dequantise(q, np.full(q.shape, 0.25, np.float32)), q * 0.25)
    assert normalise_version("v1") == "1.0" and normalise_version("v1.1") == "1.1"


def test_npy_tiles_round_trip_and_pool_across_the_seam(tessera: dict, tex_l8) -> None:
    rep, db = tessera["report"], tessera["root"] / "db"
    assert rep.model == "tessera@1.0" and rep.files == 2 and rep.years == [2024]
    assert 0 < rep.pixels_valid < rep.pixels_read  # pixels off the scene have scale 0
    recall, matched, min_cos = recall_at_10(db, tex_l8.cells, tessera["ref"])
    assert matched == rep.rows_written > 200 and min_cos > 0.9999
    cells = np.sort(contract.read_table(db, columns=[contract.H3]).column(0).to_numpy())
    sel = np.searchsorted(tex_l8.cells, cells)
    ref = tessera["ref"]
    assert recall >= overlap(exact_top10(ref[sel]), exact_top10(pl.dequantised("tessera", ref)[sel])) - 0.02
    t = pq.read_table(contract.embedding_files(db))
    seam = [s for s in t.column("source").to_pylist() if len(s) == 2]
    assert seam and all(sorted(s) == sorted(map(str, tessera["tiles"])) for s in seam)
    assert float(np.max(t.column("spread").to_numpy())) < 1e-5  # every pixel of a cell holds its vector
    assert set(t.column("sensors").to_pylist()[0]) == {"sentinel-1", "sentinel-2"}


def test_version_mix_and_missing_landmask_are_refused(tessera: dict, tex_l8, tmp_path: Path) -> None:
    v11 = tmp_path / "v11"
    ref = pl.unit(tex_l8.vectors @ pl.projection(tex_l8.vectors.shape[1], 128))
    (tile,) = [pl.write_tessera_npy(v11, *TILES[0], 2024, pl.Field(tex_l8.cells, ref, 8), version="1.1")]
    assert json.loads((v11 / "tessera_metadata.json").read_text())["dataset_version"] == "1.1"
    with pytest.raises(ModelMismatchError, match="tessera@1.0; this import is tessera@1.1"):
        import_product(tessera["root"] / "db", "tessera", [str(tile)])
    shutil.rmtree(v11 / "global_0.1_degree_tiff_all")
    with pytest.raises(InputNotFoundError, match="landmask"):
        import_product(tmp_path / "db", "tessera", [str(tile)])


def test_scales_of_another_shape_are_refused(tessera: dict, tmp_path: Path) -> None:
    src = Path(tessera["tiles"][0])
    root = tmp_path / "bad"
    shutil.copytree(tessera["root"] / "tiles", root, ignore=shutil.ignore_patterns("grid_-87.35*"))
    scales = root / src.relative_to(tessera["root"] / "tiles").with_name(src.stem + "_scales.npy")
    np.save(scales, np.ones((3, 3), dtype=np.float32))
    with pytest.raises(RasterError, match="expected"):
        import_product(tmp_path / "db", "tessera", [str(scales.with_name(src.name))])


@pytest.mark.slow
def test_geotiff_export_round_trip(tex_l8, tmp_path: Path) -> None:
    ref = pl.unit(tex_l8.vectors @ pl.projection(tex_l8.vectors.shape[1], 128))
    path = pl.write_tessera_geotiff(tmp_path / "tiffs", *TILES[0], 2024, pl.Field(tex_l8.cells, ref, 8))
    rep = import_product(tmp_path / "db", "tessera", [str(path)])
    assert rep.model == "tessera@1.0" and rep.years == [2024]  # TESSERA_DATASET_VERSION v1, TESSERA_YEAR tag
    recall, matched, min_cos = recall_at_10(tmp_path / "db", tex_l8.cells, ref)
    assert matched == rep.rows_written > 100 and min_cos > 0.9999 and recall > 0.97
