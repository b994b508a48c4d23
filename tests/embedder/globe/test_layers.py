"""Global layers on the real files in data/global: alignment, sampling oracles, land, labels."""

from __future__ import annotations

import gzip
from pathlib import Path

import h3.api.basic_int as h3i
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from embedder.errors import InputNotFoundError
from embedder.globe.cells import cell_chips, centres, children_block, iter_blocks, land_block
from embedder.globe.grid import ChipGrid
from embedder.globe.labels import igbp_classes, labels_table, majority_labels
from embedder.globe.layers import (
    GlobalLayers,
    default_global_dir,
    random_land_points,
    training_chip_batch,
)

ROOT = Path(__file__).resolve().parents[3] / "data" / "global"

SAHARA = (23.0, 10.0)
EVEREST = (27.99, 86.93)
AMAZON = (-3.0, -60.0)
GREENLAND = (72.0, -40.0)
PACIFIC = (0.0, -150.0)


@pytest.fixture(scope="module")
def layers() -> GlobalLayers:
    return GlobalLayers(ROOT)


def point(layers: GlobalLayers, name: str, where: tuple[float, float]) -> np.ndarray:
    return layers.values(name, np.array([where[0]]), np.array([where[1]]))[0]


def chip(layers: GlobalLayers, where: tuple[float, float]) -> dict[str, np.ndarray]:
    batch = layers.chips(np.array([where[0]]), np.array([where[1]]))
    return {k: m.data[0] for k, m in batch.modalities.items()}


def test_default_root_is_repo_data() -> None:
    assert default_global_dir() == ROOT


def test_missing_root_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="does not exist"):
        GlobalLayers(tmp_path / "nope")


def test_chip_batch_shapes_units_and_sensors(layers: GlobalLayers) -> None:
    lat = np.array([SAHARA[0], AMAZON[0], PACIFIC[0]])
    lon = np.array([SAHARA[1], AMAZON[1], PACIFIC[1]])
    batch = layers.chips(lat, lon)
    assert set(batch.modalities) == {"optical", "elevation", "climate"}
    opt = batch.modalities["optical"]
    assert opt.sensor == "bluemarble" and opt.bands == ("R", "G", "B")
    np.testing.assert_allclose(opt.wavelengths, [645, 555, 469])
    assert opt.data.shape == (3, 3, 16, 16) and opt.data.dtype == np.float32
    assert np.all((opt.data >= 0) & (opt.data <= 1))
    clim = batch.modalities["climate"]
    # Koppen has no value over the ocean: NaN pixels and the modality marked absent
    assert clim.present.tolist() == [True, True, False]
    assert np.isnan(clim.data[2]).all()
    assert set(np.unique(clim.data[:2])) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_sahara_is_arid_low_and_sandy(layers: GlobalLayers) -> None:
    c = chip(layers, SAHARA)
    assert np.all(c["climate"] == 2)  # B arid over the whole 1-degree chip
    assert 0 < c["elevation"].mean() < 1500
    r, g, b = c["optical"].reshape(3, -1).mean(axis=1)
    assert r > 0.3 and r > g > b  # bright, red-yellow sand


def test_everest_area_is_high(layers: GlobalLayers) -> None:
    assert point(layers, "elevation", EVEREST)[0] > 4000
    assert chip(layers, EVEREST)["elevation"].max() > 4000


def test_amazon_is_tropical_dark_forest(layers: GlobalLayers) -> None:
    c = chip(layers, AMAZON)
    assert point(layers, "climate", AMAZON)[0] == 1  # A tropical
    assert np.all(c["climate"] == 1)
    assert c["elevation"].mean() < 200
    assert c["optical"][0].mean() < 0.1  # dark canopy in red


def test_greenland_interior_is_polar_and_high(layers: GlobalLayers) -> None:
    c = chip(layers, GREENLAND)
    assert np.all(c["climate"] == 5)  # E polar
    assert c["elevation"].min() > 2000
    assert c["optical"].min() > 0.8  # ice sheet


def test_chip_orientation_north_up_west_left(layers: GlobalLayers) -> None:
    # Himalaya: Tibet (north) far above the Ganges plain (south)
    nepal = chip(layers, (27.8, 85.0))["elevation"][0]
    assert nepal[:4].mean() > nepal[-4:].mean() + 2000
    # Chilean coast near Antofagasta: Pacific to the west, Atacama to the east
    chile = chip(layers, (-23.5, -70.3))["elevation"][0]
    assert chile[:, :3].mean() < -1000 and chile[:, -3:].mean() > 500


def test_chip_gather_matches_point_sampling(layers: GlobalLayers) -> None:
    lat = np.array([SAHARA[0], 65.0, -40.0])
    lon = np.array([SAHARA[1], 179.8, -179.9])  # two chips straddle the antimeridian
    batch = layers.chips(lat, lon)
    rows, cols = layers.grid.windows(lat, lon)
    for name in ("optical", "elevation", "climate"):
        got = batch.modalities[name].data
        for i, j in [(0, 0), (7, 8), (15, 15), (3, 12)]:
            want = layers.values(name, rows[:, i], cols[:, j])
            np.testing.assert_allclose(got[:, :, i, j], want, rtol=1e-6, equal_nan=True)


def test_bilinear_matches_scipy_oracle(layers: GlobalLayers) -> None:
    r = layers.raster("elevation")
    rng = np.random.default_rng(0)
    lat = rng.uniform(-80, 80, 500)
    lon = rng.uniform(-170, 170, 500)
    got = r.sample_points(lat, lon, "bilinear")[:, 0]
    rows, cols = r.rows(lat), r.cols(lon)
    want = map_coordinates(r.data[0].astype(np.float64), [rows, cols], order=1, mode="nearest")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_etopo_longitude_roll_matches_raw_text_grid(layers: GlobalLayers) -> None:
    def load(name: str) -> np.ndarray:
        with gzip.open(ROOT / name) as f:
            return np.loadtxt(f)

    raw = load("etopo20data.gz")
    lats, lons = load("etopo20lats.gz"), load("etopo20lons.gz")
    i = int(np.argmin(np.abs(lats - 60.1667)))
    for raw_lon, lon in [(170.1667, 170.1667), (190.1667, -169.8333), (359.8333, -0.1667)]:
        j = int(np.argmin(np.abs(lons - raw_lon)))
        got = point(layers, "elevation", (float(lats[i]), lon))[0]
        assert got == pytest.approx(raw[i, j], abs=0.5), (raw_lon, lon)
    # Kamchatka/Koryak highlands at 170 E are land; the Bering Sea at -170 is not
    assert point(layers, "elevation", (62.0, 170.0))[0] > 0
    assert point(layers, "elevation", (58.0, -170.0))[0] < 0


def test_land_mask_keeps_land_and_drops_ocean(layers: GlobalLayers) -> None:
    lat = np.array([SAHARA[0], AMAZON[0], GREENLAND[0], PACIFIC[0], -80.0, 40.0])
    lon = np.array([SAHARA[1], AMAZON[1], GREENLAND[1], PACIFIC[1], 0.0, -40.0])
    land = layers.is_land(lat, lon, ring_deg=0.08)
    assert land.tolist() == [True, True, True, False, True, False]


def test_land_cells_exclude_ocean_and_keep_coast(layers: GlobalLayers) -> None:
    res = 5
    pacific = h3i.latlng_to_cell(PACIFIC[0], PACIFIC[1], res)
    sahara = h3i.latlng_to_cell(SAHARA[0], SAHARA[1], res)
    for cell, expect in [(pacific, False), (sahara, True)]:
        block = land_block(layers, children_block(h3i.cell_to_parent(cell, 2), res), res)
        assert (cell in set(block.cells.tolist())) is expect
    # a coastal parent keeps some but not all of its children
    coast = children_block(h3i.latlng_to_cell(43.3, 5.4, 3), res)  # Marseille
    kept = land_block(layers, coast, res)
    assert 0 < len(kept) < len(coast)


def test_iter_blocks_limit_and_order(layers: GlobalLayers) -> None:
    blocks = list(iter_blocks(layers, 3, limit=500))
    cells = np.concatenate([b.cells for b in blocks])
    assert len(cells) == 500 and len(np.unique(cells)) == 500
    assert all(h3i.get_resolution(int(c)) == 3 for c in cells[:20])
    lat, lon = centres(cells)
    assert layers.is_land(lat, lon, ring_deg=0.7).all()


def test_modis_labels_at_known_places(layers: GlobalLayers) -> None:
    names = igbp_classes()
    assert len(names) == 17 and names[0] == "Water Bodies"
    assert names[2] == "Evergreen Broadleaf Forests"
    res = 5
    cells = [h3i.latlng_to_cell(a, b, res) for a, b in [AMAZON, SAHARA, GREENLAND, (42.0, -93.5)]]
    lat, lon = centres(np.array(cells, dtype=np.uint64))
    codes = majority_labels(layers, lat, lon, res)
    assert codes.tolist() == [2, 16, 15, 12]  # forest, barren, ice, croplands (Iowa)
    table = labels_table(np.array(cells, dtype=np.uint64), codes)
    assert table.column("label_name").to_pylist()[0] == "Evergreen Broadleaf Forests"


def test_chip_grid_window_scales_with_latitude() -> None:
    grid = ChipGrid(px=16, window_deg=1.0)
    rows, cols = grid.windows(np.array([0.0, 60.0]), np.array([0.0, 0.0]))
    assert rows[0, 0] > rows[0, -1]  # north first
    np.testing.assert_allclose(np.ptp(rows, axis=1), 15 / 16)
    np.testing.assert_allclose(np.ptp(cols, axis=1), [15 / 16, 15 / 16 / np.cos(np.radians(60))])


def test_random_land_points_are_land_distinct_and_seeded(layers: GlobalLayers) -> None:
    cells, lat, lon = random_land_points(layers, 300, seed=1)
    assert len(np.unique(cells)) == 300
    assert layers.is_land(lat, lon, ring_deg=0.1).all()
    again, _, _ = random_land_points(layers, 300, seed=1)
    np.testing.assert_array_equal(cells, again)
    # uniform by area: the southern hemisphere holds far less land than the northern one
    assert 0.2 < (lat < 0).mean() < 0.45


def test_training_chip_batch_from_data_root() -> None:
    batch = training_chip_batch(ROOT.parent, n=64, seed=0)
    assert len(batch) == 64 and set(batch.modalities) == {"optical", "elevation", "climate"}
    assert batch.modalities["optical"].present.all()


def test_cell_chips_are_centred_on_the_cells(layers: GlobalLayers) -> None:
    cells = np.array([h3i.latlng_to_cell(a, b, 5) for a, b in [SAHARA, GREENLAND]], dtype=np.uint64)
    batch, lat, lon = cell_chips(layers, cells)
    want = np.array([h3i.cell_to_latlng(int(c)) for c in cells])
    np.testing.assert_allclose(np.c_[lat, lon], want)
    assert batch.modalities["climate"].data[:, 0, 8, 8].tolist() == [2.0, 5.0]
