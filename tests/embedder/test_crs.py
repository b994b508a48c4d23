"""Chips in any CRS: real rasters reprojected by the test give the same cells and vectors.

The Landsat-8 scene (UTM 16N) is reprojected into EPSG:4326 and the polar stereographic
EPSG:3413, and cut into two overlapping halves, the western one reprojected into UTM 15N (a
pair of files in neighbouring zones meeting at a seam). The Koppen-Geiger climate layer
(real, EPSG:4326) is cut on both sides of the antimeridian and reprojected into the
Pacific-centred EPSG:3832. Tolerances are stated next to each assertion.
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from embedder import contract
from embedder.align import align_rows, plan_parts
from embedder.build import SourceSpec, build_db
from embedder.chipplan import item_geometry
from embedder.rasterfile import RasterItem
from embedder.reader import read_rows
from embedder.sensors import get_sensor
from tests.conftest import DATA, LANDSAT_GLOB
from tests.embedder.reproject import crop_file, reproject_file

MTL = DATA / "landsat8" / "l8_MTL.txt"
# earthvec-tex vectors of a reprojected scene against the original's, cell by cell. Pixels are
# resampled twice (by the test into the other CRS, by earthvec back onto the chip grid, both
# nearest neighbour), which moves texture a little, most at the scene's ragged edge.
MEDIAN_COSINE = 0.99
MIN_COSINE = 0.95  # for scale: two different cells of the original scene reach up to 0.973


def _reprojected(root: Path, crs: str, files: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for f in files or sorted(glob.glob(LANDSAT_GLOB)):
        reproject_file(f, root / Path(f).name, crs)
    shutil.copy(MTL, root / MTL.name)
    return root


def _zone_pair(root: Path) -> tuple[Path, Path]:
    """West part (cols 0-330) into UTM 15N, east part (cols 300-627) kept in UTM 16N; 900 m overlap."""
    with rasterio.open(DATA / "landsat8" / "l8_B1.tif") as src:
        b = src.bounds
    west, east = root / "west", root / "east"
    for f in sorted(glob.glob(LANDSAT_GLOB)):
        crop_file(f, root / "tmp" / Path(f).name, (b.left, b.bottom, b.left + 330 * 30, b.top))
        reproject_file(root / "tmp" / Path(f).name, west / Path(f).name, "EPSG:32615")
        crop_file(f, east / Path(f).name, (b.left + 300 * 30, b.bottom, b.right, b.top))
    for d in (west, east):
        shutil.copy(MTL, d / MTL.name)
    return west, east


def _table(db: Path):
    t = contract.read_table(db).to_pandas().set_index(contract.H3)
    return t


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("crs")
    out = {"original": _table_of(root / "db0", [SourceSpec([LANDSAT_GLOB])])}
    for name, crs in (("epsg4326", "EPSG:4326"), ("epsg3413", "EPSG:3413")):
        folder = _reprojected(root / name, crs)
        out[name] = _table_of(root / f"db_{name}", [SourceSpec([str(folder / "l8_B*.tif")])])
    west, east = _zone_pair(root / "pair")
    out["zone_pair"] = _table_of(
        root / "db_pair", [SourceSpec([str(west / "l8_B*.tif")]), SourceSpec([str(east / "l8_B*.tif")])]
    )
    return out


def _table_of(db: Path, specs: list[SourceSpec]):
    build_db(db, specs)
    return _table(db)


def _cosines(a, b) -> np.ndarray:
    ea = np.stack(a[contract.EMBEDDING])
    eb = np.stack(b.loc[a.index, contract.EMBEDDING])
    return np.sum(ea * eb, axis=1)


@pytest.mark.parametrize("variant", ["epsg4326", "epsg3413", "zone_pair"])
def test_reprojected_scene_gives_same_cells_and_vectors(builds, variant):
    orig, other = builds["original"], builds[variant]
    assert len(orig) == 65
    assert set(other.index) == set(orig.index)  # the same cells, none lost or added
    cos = _cosines(orig, other)
    e0, e1 = np.stack(orig[contract.EMBEDDING]), np.stack(other.loc[orig.index, contract.EMBEDDING])
    own = np.mean((e1 @ e0.T).argmax(axis=1) == np.arange(len(e0)))
    print(
        f"{variant}: {len(other)} cells, cosine min {cos.min():.4f} median {np.median(cos):.4f}, own nn {own}"
    )
    assert np.median(cos) >= MEDIAN_COSINE and cos.min() >= MIN_COSINE
    assert own == 1.0  # every cell's nearest original vector is its own
    vf = np.abs(orig[contract.VALID_FRACTION] - other.loc[orig.index, contract.VALID_FRACTION])
    print(f"{variant}: valid fraction max difference {vf.max():.4f}")
    assert vf.max() <= 0.02  # edge chips stay as partial as in the original, interior ones full


def test_zone_pair_seam_chips_are_filled_from_the_other_scene(builds):
    pair = builds["zone_pair"]
    both = [s for s in pair[contract.SOURCE] if {Path(p).parent.name for p in s} == {"west", "east"}]
    assert both  # seam chips read from the scene covering more, empty pixels from the other
    seam = pair[[{Path(p).parent.name for p in s} == {"west", "east"} for s in pair[contract.SOURCE]]]
    orig = builds["original"].loc[seam.index]
    np.testing.assert_allclose(seam[contract.VALID_FRACTION], orig[contract.VALID_FRACTION], atol=0.02)


KOPPEN = DATA / "global" / "KG_simplified_uint8.tif"
AM_LATS = (62.0, 68.0)  # Chukotka and Alaska: land on both sides of 180 degrees


def _am_item(path: Path) -> RasterItem:
    from dataclasses import replace

    # the Koppen preset with 16 px chips at 2 km (32 km chips); read through the generic chip code
    sensor = replace(get_sensor("koppen"), chip_gsd_m=2000.0, layout="stack")
    return RasterItem(str(path), sensor, {"koppen": (str(path), 1)})


@pytest.fixture(scope="module")
def antimeridian(tmp_path_factory):
    """Real Koppen-Geiger pixels east and west of 180 (EPSG:4326), and both in EPSG:3832 as one file."""
    from rasterio.warp import calculate_default_transform, reproject

    root = tmp_path_factory.mktemp("am")
    east = crop_file(KOPPEN, root / "east.tif", (170.0, AM_LATS[0], 180.0, AM_LATS[1]))
    west = crop_file(KOPPEN, root / "west.tif", (-180.0, AM_LATS[0], -170.0, AM_LATS[1]))
    crs = "EPSG:3832"  # WGS 84 / PDC Mercator, centred on 150 E: the region is one rectangle
    with rasterio.open(east) as a:
        t, w, h = calculate_default_transform(
            a.crs, crs, a.width * 2, a.height, 170.0, AM_LATS[0], 190.0, AM_LATS[1]
        )
    dst = np.zeros((h, w), np.uint8)
    for f in (east, west):
        with rasterio.open(f) as src:
            reproject(
                rasterio.band(src, 1),
                dst,
                src_nodata=0,
                dst_transform=t,
                dst_crs=crs,
                dst_nodata=0,
                init_dest_nodata=False,
                resampling=rasterio.enums.Resampling.nearest,
            )
    pac = root / "pacific.tif"
    with rasterio.open(
        pac, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs=crs, transform=t, nodata=0
    ) as out:
        out.write(dst, 1)
    return _am_item(east), _am_item(west), _am_item(pac)


def test_antimeridian_scene_gives_same_cells_and_chips(antimeridian):
    east, west, pacific = antimeridian
    res = 4
    rows_pair = align_rows(plan_parts([east, west], res, "scene"))
    rows_pac = align_rows(plan_parts([pacific], res, "scene"))
    cells_pair = {r.cell for r in rows_pair}
    cells_pac = {r.cell for r in rows_pac}
    lons = np.array([r.lon for r in rows_pac])
    assert (lons > 179).any() and (lons < -179).any()  # cells on both sides of the antimeridian
    assert pacific.sensor.name == "koppen" and item_geometry(pacific).crs.to_epsg() == 3832
    # same cells up to resampling at the region's outer edge (the test's reprojection is nearest)
    assert len(cells_pair ^ cells_pac) <= 0.02 * len(cells_pac)
    pix_pair, pix_pac = read_rows(rows_pair)["climate"], read_rows(rows_pac)["climate"]
    by_cell_pair = {r.cell: pix_pair[i] for i, r in enumerate(rows_pair)}
    diffs, seam = [], 0
    for i, r in enumerate(rows_pac):
        if r.cell in by_cell_pair:
            a, b = by_cell_pair[r.cell], pix_pac[i]
            ok = np.isfinite(a) & np.isfinite(b)
            diffs.append(np.median(np.abs(a[ok] - b[ok])) if ok.any() else 0.0)
    pac_valid = {r.cell: np.isfinite(pix_pac[i]).mean() for i, r in enumerate(rows_pac)}
    for i, r in enumerate(rows_pair):  # chips on 180 degrees: read from the file covering more, filled
        if r.parts["climate"].fill and r.cell in pac_valid:
            seam += 1
            assert abs(np.isfinite(pix_pair[i]).mean() - pac_valid[r.cell]) <= 0.05  # not half-empty
    print(f"antimeridian: {len(cells_pac)} cells, {seam} seam chips, median class diff {np.max(diffs):.3f}")
    assert seam > 0
    assert np.max(diffs) <= 0.25  # per chip median |difference| of averaged class codes
