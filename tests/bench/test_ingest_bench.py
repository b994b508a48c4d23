"""The ingest benchmark's pieces: the VRT mosaics hold the real pixels where they say, and one
measurement of each method reads the same planned chips."""

from __future__ import annotations

import glob

import numpy as np
import rasterio
from rasterio.windows import Window

from bench.ingest_bench import check_targets, measure, table
from bench.mosaic import landsat_mosaic, s2_tile
from embedder.sources import items_for_source
from tests.conftest import DATA, LANDSAT_GLOB


def test_s2_tile_mosaic_places_the_real_patches(tmp_path):
    vrts = s2_tile(DATA, tmp_path, tile_px=480)
    (item,) = items_for_source([str(tmp_path / "*.vrt")])
    assert item.sensor.name == "sentinel2-l2a-bigearthnet" and len(item.band_files) == 12
    assert item.datetime is not None and item.datetime.date().isoformat() == "2017-06-13"
    patches = sorted(glob.glob(str(DATA / "bigearthnet_s1s2" / "S2" / "*")))
    b02 = next(v for v in vrts if v.name.endswith("_B02.vrt"))
    with rasterio.open(b02) as src:
        assert src.shape == (480, 480) and src.res == (10.0, 10.0) and src.crs.to_epsg() == 32633
        for i, j in ((0, 0), (1, 0), (0, 1), (3, 2)):
            got = src.read(1, window=Window(i * 120, j * 120, 120, 120))
            with rasterio.open(glob.glob(f"{patches[(i + 2 * j) % 4]}/*_B02.tif")[0]) as real:
                np.testing.assert_array_equal(got, real.read(1))


def test_landsat_mosaic_repeats_the_scene(tmp_path):
    landsat_mosaic(DATA, tmp_path, 2)
    (item,) = items_for_source([str(tmp_path / "*.vrt")])
    assert len(item.band_files) == 11 and item.datetime.date().isoformat() == "2015-08-04"  # MTL beside
    with (
        rasterio.open(item.band_files["B4"][0]) as big,
        rasterio.open(DATA / "landsat8" / "l8_B4.tif") as one,
    ):
        assert big.shape == (2 * one.height, 2 * one.width)
        np.testing.assert_array_equal(
            big.read(1, window=Window(one.width, one.height, one.width, one.height)), one.read(1)
        )


def test_each_method_reads_the_planned_chips():
    plain = measure(LANDSAT_GLOB, 7, "plain", 0)
    ours = measure(LANDSAT_GLOB, 7, "earthvec", 0)
    assert plain["chips_total"] == ours["chips_total"] == plain["chips_timed"] == ours["chips_timed"] == 65
    rows = [dict(plain, dataset="landsat8", method="plain", speedup=1.0)]
    rows.append(
        dict(ours, dataset="landsat8", method="earthvec", speedup=ours["chips_per_s"] / plain["chips_per_s"])
    )
    assert "landsat8" in table(rows)
    assert set(check_targets(rows)["speedup"]) == {"landsat8"}
