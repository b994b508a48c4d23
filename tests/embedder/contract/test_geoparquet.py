"""GeoParquet 1.1: every geometry-bearing file has a correct ``bbox`` covering column."""

from __future__ import annotations

import io
import json
from pathlib import Path

import geopandas as gpd
import h3.api.basic_int as h3i
import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely

from embedder import contract, h3grid

ANTIMERIDIAN_CELL = h3i.latlng_to_cell(0.0, 179.99, 3)


def _cells() -> np.ndarray:
    pts = [(48.1, 11.5), (-33.9, 18.4), (64.1, -21.9), (0.0, 179.99), (-17.0, -179.9)]
    return np.array([h3i.latlng_to_cell(a, b, 3) for a, b in pts], dtype=np.uint64)


def _embeddings_file(tmp_path: Path) -> Path:
    cells = _cells()
    lat, lon = h3grid.cell_centres(cells)
    meta = contract.DatasetMeta("m", "v1", 2, 3, 0)
    table = contract.make_table(
        h3=cells, lat=lat, lon=lon, geometry=h3grid.cells_wkb(cells), datetime_=[None] * len(cells),
        source=[["a.tif"]] * len(cells), modalities=[["optical"]] * len(cells),
        sensors=[["s"]] * len(cells), valid_fraction=np.ones(len(cells)),
        embedding=np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(cells), 1)), meta=meta,
    )  # fmt: skip
    path = tmp_path / "part.parquet"
    contract.write_table_atomic(table, path)
    return path


def _check_covering(table_path_or_buf: Path | io.BytesIO) -> None:
    t = pq.read_table(table_path_or_buf)
    geo = json.loads(t.schema.metadata[contract.GEO_KEY])
    col = geo["columns"][contract.GEOMETRY]
    assert geo["version"] == "1.1.0"
    assert col["covering"]["bbox"] == {f: [contract.BBOX, f] for f in ("xmin", "ymin", "xmax", "ymax")}
    assert t.schema.field(contract.BBOX).type == contract.BBOX_TYPE
    assert t.column_names.index(contract.BBOX) == t.column_names.index(contract.GEOMETRY) + 1
    want = shapely.bounds(shapely.from_wkb(t.column(contract.GEOMETRY).to_numpy(zero_copy_only=False)))
    box = t.column(contract.BBOX).combine_chunks()
    got = np.stack([box.field(f).to_numpy() for f in ("xmin", "ymin", "xmax", "ymax")], axis=1)
    np.testing.assert_array_equal(got, want)


def test_embeddings_files_carry_a_correct_bbox_covering(tmp_path: Path) -> None:
    path = _embeddings_file(tmp_path)
    _check_covering(path)
    # geopandas reads the file as a GeoDataFrame and filters rows by the covering column
    gdf = gpd.read_parquet(path)
    assert gdf.geometry.name == contract.GEOMETRY and len(gdf) == len(_cells())
    europe = gpd.read_parquet(path, bbox=(0.0, 40.0, 20.0, 55.0))
    assert europe[contract.H3].tolist() == [int(_cells()[0])]


def test_antimeridian_cell_box_is_small(tmp_path: Path) -> None:
    t = pq.read_table(_embeddings_file(tmp_path))
    i = t.column(contract.H3).to_pylist().index(ANTIMERIDIAN_CELL)
    b = t.column(contract.BBOX)[i].as_py()
    assert b["xmax"] - b["xmin"] < 5.0  # one small cell, not a band around the globe
    assert b["xmax"] > 180.0 or b["xmin"] < -180.0


def test_prediction_pyramid_and_export_files_have_the_covering(tmp_path: Path) -> None:
    from app.logic import export

    cells = _cells()
    buf = io.BytesIO(export.geoparquet(cells, {"label": ["a"] * len(cells)}))
    _check_covering(buf)
    buf.seek(0)
    geo = json.loads(pq.read_schema(buf).metadata[contract.GEO_KEY])
    box = geo["columns"][contract.GEOMETRY]["bbox"]
    assert box[0] < -180.0 or box[2] > 180.0  # the overall box includes unwrapped cells
    for schema in (contract.prediction_schema(), contract.pyramid_schema(4)):
        assert schema.field(contract.BBOX).type == contract.BBOX_TYPE


def test_unreadable_geometry_gets_a_nan_box() -> None:
    box = contract.bbox_array([b"x"])
    assert np.isnan(box.field("xmin").to_numpy()[0])


@pytest.mark.parametrize("cell", [ANTIMERIDIAN_CELL, int(_cells()[0])])
def test_wkb_is_the_unwrapped_ring(cell: int) -> None:
    poly = shapely.from_wkb(h3grid.cell_wkb(cell))
    ring = np.asarray(poly.exterior.coords)
    np.testing.assert_allclose(ring, h3grid.cell_rings(np.array([cell], dtype=np.uint64))[0])
    assert poly.is_valid and poly.exterior.is_ccw
