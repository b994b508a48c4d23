from pathlib import Path

import pytest

from embedder.errors import InputNotFoundError, RasterError, SensorError
from embedder.sensors import get_sensor
from embedder.sources import detect_sensor, group_items, resolve_sources
from tests.conftest import BEN_S1_GLOB, BEN_S2_GLOB, EUROSAT_GLOB, LANDSAT_GLOB
from tests.embedder.conftest import rewrite


def test_glob_finds_all_eurosat_chips():
    assert len(resolve_sources([EUROSAT_GLOB])) == 369


def test_empty_glob_is_a_clear_error(tmp_path):
    with pytest.raises(InputNotFoundError, match="matches no file"):
        resolve_sources([str(tmp_path / "*.tif")])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        resolve_sources([str(tmp_path / "nope.tif")])


@pytest.mark.parametrize(
    ("pattern", "sensor", "n_items", "n_bands"),
    [
        (EUROSAT_GLOB, "sentinel2-l1c-eurosat", 369, 13),
        (BEN_S2_GLOB, "sentinel2-l2a-bigearthnet", 4, 12),
        (BEN_S1_GLOB, "sentinel1-grd", 4, 2),
        (LANDSAT_GLOB, "landsat8-l1", 1, 11),
    ],
)
def test_sensor_detection_and_grouping(pattern, sensor, n_items, n_bands):
    paths = resolve_sources([pattern])
    s = detect_sensor(paths)
    assert s.name == sensor
    items = group_items(paths, s)
    assert len(items) == n_items
    assert all(len(i.band_files) == n_bands for i in items)


def test_datetimes_from_names_and_sidecars():
    ben = group_items(resolve_sources([BEN_S2_GLOB]), get_sensor("sentinel2-l2a-bigearthnet"))
    assert {i.datetime.date().isoformat() for i in ben} == {
        "2017-06-13",
        "2017-06-17",
        "2017-09-24",
        "2017-12-21",
    }
    l8 = group_items(resolve_sources([LANDSAT_GLOB]), get_sensor("landsat8-l1"))
    assert l8[0].datetime.date().isoformat() == "2015-08-04"  # from l8_MTL.txt DATE_ACQUIRED


def test_band_count_mismatch_names_file_and_fix(tmp_path, eurosat_manifest):
    bad = rewrite(eurosat_manifest.abspath[0], tmp_path / "ten_bands.tif", bands=10)
    with pytest.raises(RasterError, match=r"has 10 bands .* expects 13.*--bands"):
        group_items([str(bad)], get_sensor("sentinel2-l1c-eurosat"))


def test_unknown_sensor_lists_presets():
    with pytest.raises(SensorError, match="sentinel2-l1c-eurosat"):
        get_sensor("sentinel-9")


def test_bands_override_reorders(eurosat_manifest):
    s = get_sensor("sentinel2-l1c-eurosat", ["B04", "B03", "B02"])
    assert s.band_names == ("B04", "B03", "B02")
    assert s.bands[0].wavelength_nm == 665


def test_unreadable_file(tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    with pytest.raises(RasterError, match="cannot read"):
        group_items([str(junk)], get_sensor("sentinel2-l1c-eurosat"))


def test_qa_band_is_skipped_not_fatal():
    items = group_items(
        resolve_sources([str(Path(LANDSAT_GLOB).parent / "*.tif")]), get_sensor("landsat8-l1")
    )
    assert all("BQA" not in p for p in items[0].paths)
