import numpy as np
import pytest
import rasterio

from embedder.chipplan import choose_mode, default_resolution, item_geometry, plan_chips
from embedder.chips import read_chips
from embedder.errors import RasterError
from embedder.sensors import get_sensor
from embedder.sources import group_items, resolve_sources
from tests.conftest import BEN_S2_GLOB, LANDSAT_GLOB
from tests.embedder.conftest import rewrite


def _item(pattern, sensor):
    return group_items(resolve_sources([pattern]), get_sensor(sensor))


def test_default_resolution_matches_chip_size():
    assert default_resolution(640) == 8  # 64 px at 10 m
    assert default_resolution(1920) == 7  # 64 px at 30 m


def test_eurosat_chip_is_the_file_itself(eurosat_manifest):
    row = eurosat_manifest.iloc[0]
    (item,) = _item(row.abspath, "sentinel2-l1c-eurosat")
    geom = item_geometry(item)
    assert choose_mode(geom, item) == "chip"
    (spec,) = plan_chips(item, geom, 8, "chip")
    # the chip's cell contains the file centre given in the manifest
    import h3.api.basic_int as h3i

    assert spec.cell == h3i.latlng_to_cell(row.center_lat, row.center_lon, 8)
    chip = read_chips(item, [spec], "chip")[0]
    with rasterio.open(row.abspath) as src:
        raw = src.read().astype(np.float32)
    np.testing.assert_allclose(chip, raw * 1e-4, rtol=1e-6)  # exact pixels, scaled to reflectance


def test_landsat_scene_tiles_into_cells_with_measured_nodata():
    (item,) = _item(LANDSAT_GLOB, "landsat8-l1")
    geom = item_geometry(item)
    assert choose_mode(geom, item) == "scene"
    specs = plan_chips(item, geom, 7, "scene")
    assert len(specs) > 30
    assert len({s.cell for s in specs}) == len(specs)
    chips = read_chips(item, specs, "scene")
    valid = np.isfinite(chips).mean(axis=(1, 2, 3))
    assert valid.max() == 1.0
    assert valid.min() < 1.0  # edge chips are partly outside the scene: NaN, not zeros
    assert not np.any(chips[np.isfinite(chips)] == -0.1)  # raw 0 (nodata) never scaled into data


def test_ben_bands_of_several_resolutions_land_on_one_grid():
    item = _item(BEN_S2_GLOB, "sentinel2-l2a-bigearthnet")[0]
    geom = item_geometry(item)
    specs = plan_chips(item, geom, 8, choose_mode(geom, item))
    chips = read_chips(item, specs, "chip")
    assert chips.shape == (1, 12, 64, 64)
    assert np.isfinite(chips).all()


def test_raster_without_crs_is_a_clear_error(tmp_path, eurosat_manifest):
    bad = rewrite(eurosat_manifest.abspath[0], tmp_path / "nocrs.tif", crs=False)
    (item,) = group_items([str(bad)], get_sensor("sentinel2-l1c-eurosat"))
    with pytest.raises(RasterError, match="has no CRS"):
        item_geometry(item)
