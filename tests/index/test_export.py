"""GeoTIFF export of a kNN land-cover map built on the real global layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio

from app.cli.main import main as cli
from embedder.errors import InputNotFoundError, RasterError
from embedder.globe.build import build_global_db
from embedder.globe.labels import labels_path
from index.export import NODATA, prediction_geotiff, read_classes
from index.label import label_db

ROOT = Path(__file__).resolve().parents[2] / "data" / "global"
STEP = 0.1


@pytest.fixture(scope="module")
def pred_map(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(database, seeds CSV, map GeoParquet): 400 res-3 cells labelled from 60 MODIS seed cells."""
    tmp = tmp_path_factory.mktemp("export")
    db = tmp / "db"
    build_global_db(db, res=3, model="stats", limit=400, progress=False, root=ROOT)
    labels = pq.read_table(labels_path(db)).to_pandas()
    seeds = labels.iloc[np.random.default_rng(0).choice(len(labels), 60, replace=False)]
    csv = tmp / "seeds.csv"
    seeds.assign(h3=[f"{int(c):x}" for c in seeds["h3"]])[["h3", "label_name"]].rename(
        columns={"label_name": "label"}
    ).to_csv(csv, index=False)
    out = tmp / "map.parquet"
    label_db(db, csv, k=3, out=out, n_folds=2)
    return db, csv, out


def _pixels_at(tif: Path, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    with rasterio.open(tif) as src:
        band = src.read(1)
        rows, cols = rasterio.transform.rowcol(src.transform, lon, lat)
        return band[np.asarray(rows), np.asarray(cols)]


def test_every_cell_centre_pixel_has_its_class(pred_map: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, parquet = pred_map
    tif = tmp_path / "map.tif"
    info = prediction_geotiff(parquet, tif, resolution_deg=STEP)
    m = pq.read_table(parquet).to_pandas()
    classes = read_classes(tif)
    assert classes == info.classes and sorted(classes.values()) == sorted(set(m["label"]))
    code = {name: c for c, name in classes.items()}
    got = _pixels_at(tif, m["lat"].to_numpy(), m["lon"].to_numpy())
    np.testing.assert_array_equal(got, [code[x] for x in m["label"]])
    with rasterio.open(tif) as src:
        assert src.crs.to_epsg() == 4326 and src.nodata == NODATA
        assert src.res == pytest.approx((STEP, STEP))
        assert src.tags()[f"class_{code[m['label'][0]]}"] == m["label"][0]
        assert src.colormap(1)[1][3] == 255 and src.colormap(1)[NODATA][3] == 0
        band = src.read(1)
    assert info.pixels_labelled == int((band != NODATA).sum()) > 0
    assert (band == NODATA).any()  # pixels outside the 400 cells stay nodata
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, no temporary left


def test_bad_inputs_name_the_problem(pred_map: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, parquet = pred_map
    with pytest.raises(InputNotFoundError, match="no prediction map"):
        prediction_geotiff(tmp_path / "missing.parquet", tmp_path / "x.tif")
    with pytest.raises(RasterError, match="positive pixel size"):
        prediction_geotiff(parquet, tmp_path / "x.tif", resolution_deg=0)


def test_cli_label_writes_geotiff(pred_map: tuple[Path, Path, Path], tmp_path: Path) -> None:
    db, csv, _ = pred_map
    out, tif = tmp_path / "cli.parquet", tmp_path / "cli.tif"
    argv = ["label", str(db), "--seeds", str(csv), "-k", "3", "--folds", "2", "--out", str(out)]
    assert cli([*argv, "--geotiff", str(tif), "--geotiff-res", "0.2"]) == 0
    m = pq.read_table(out).to_pandas()
    code = {n: c for c, n in read_classes(tif).items()}
    got = _pixels_at(tif, m["lat"].to_numpy(), m["lon"].to_numpy())
    np.testing.assert_array_equal(got, [code[x] for x in m["label"]])
    assert cli([*argv, "--geotiff", str(tmp_path / "bad.png")]) != 0


def _ring_cells(lat: float, lon: float, res: int, k: int) -> np.ndarray:
    import h3.api.basic_int as h3i

    return np.array(sorted(h3i.grid_disk(h3i.latlng_to_cell(lat, lon, res), k)), dtype=np.uint64)


@pytest.mark.parametrize(("where", "lat", "lon"), [("south pole", -90.0, 0.0), ("antimeridian", 66.0, 180.0)])
def test_burnt_outlines_match_h3_lookup(where: str, lat: float, lon: float) -> None:
    """rasterio.features burning of cell outlines == H3's own point lookup, pixel for pixel.

    Around a pole (the polar cell is a cap over all longitudes) and across the antimeridian
    (cells split onto both edges of the map); the two may only disagree on pixel centres
    lying within metres of a cell edge.
    """
    from index.export import PixelGrid, burn_cells, rasterise, sample_cells

    cells = _ring_cells(lat, lon, 3, 4)
    codes = (np.arange(len(cells)) % 7 + 1).astype(np.int32)
    box = (-180.0, -90.0, 180.0, -80.0) if where == "south pole" else (-180.0, 55.0, 180.0, 75.0)
    grid = PixelGrid(box, 0.1)
    burnt = burn_cells(cells, codes, 3, grid)
    looked_up = sample_cells(cells, codes, 3, grid)
    labelled = int((looked_up != NODATA).sum())
    assert labelled > 10_000
    assert int((burnt != looked_up).sum()) <= labelled * 1e-4
    np.testing.assert_array_equal(rasterise(cells, codes, 3, grid), burnt)  # fine pixels: burnt
    if where == "south pole":
        cap = burnt[-2:]  # south of -89.8: inside the polar cell's cap, at every longitude
        assert (cap == looked_up[-2:]).all() and (cap == cap[0, 0]).all() and cap[0, 0] != NODATA
    else:
        assert (burnt[:, 0] != NODATA).any() and (burnt[:, -1] != NODATA).any()  # both map edges
