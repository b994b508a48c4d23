"""Acquisition dates, several dates of one place, median composites and quality masks.

``data/`` holds one date per place, so the time series is made from the real Landsat-8
scene: observation A is the scene as shipped (2015-08-04, with its BQA cloud mask); B is the
scene reprojected into EPSG:4326 (BQA included) and C a lossless copy without BQA, each given
a later acquisition time by the test in a GeoTIFF tag (2015-08-20, 2015-09-05). The pixels
are real; the later dates are labels set by the test.
"""

from __future__ import annotations

import glob
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio

from app.cli.main import main
from embedder import contract
from embedder.align import align_rows, plan_parts
from embedder.build import SourceSpec, build_db
from embedder.masks import mask_rules
from embedder.reader import read_rows
from embedder.sensors import get_sensor
from embedder.sources import items_for_source
from tests.conftest import DATA, LANDSAT_GLOB
from tests.embedder.reproject import crop_file, reproject_file

BANDS_ONLY = str(DATA / "landsat8" / "l8_B[0-9]*.tif")  # without l8_BQA.tif
DATES = ("2015-08-04", "2015-08-20", "2015-09-05")


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("series")
    for f in sorted(glob.glob(LANDSAT_GLOB)):
        reproject_file(
            f, root / "b" / Path(f).name, "EPSG:4326", tags={"ACQUISITION_DATETIME": "2015-08-20T16:27:00Z"}
        )
    for f in sorted(glob.glob(BANDS_ONLY)):
        with rasterio.open(f) as src:
            bounds = tuple(src.bounds)
        crop_file(f, root / "c" / Path(f).name, bounds)  # an unchanged copy
        with rasterio.open(root / "c" / Path(f).name, "r+") as dst:
            dst.update_tags(ACQUISITION_DATETIME="2015-09-05T16:27:00Z")
    return [LANDSAT_GLOB, str(root / "b" / "l8_B*.tif"), str(root / "c" / "l8_B*.tif")]


def test_every_input_keeps_its_acquisition_time(series):
    items = [i for pat in series for i in items_for_source([pat])]
    assert [i.datetime.date().isoformat() for i in items] == list(DATES)
    assert [sorted(i.mask_files) for i in items] == [["BQA"], ["BQA"], []]


def test_several_dates_become_several_rows_and_datetime_selects(series, tmp_path):
    specs = [SourceSpec([p]) for p in series]
    build_db(tmp_path / "all", specs, model="stats")
    t = contract.read_table(tmp_path / "all").to_pandas()
    per_cell = t.groupby(contract.H3)[contract.DATETIME].nunique()
    assert len(per_cell) == 65 and (per_cell == 3).all()  # one row per cell and date
    assert {d.date().isoformat() for d in t[contract.DATETIME]} == set(DATES)
    r = build_db(tmp_path / "aug", specs, model="stats", datetime_window="2015-08-01/2015-08-31")
    aug = contract.read_table(tmp_path / "aug").to_pandas()
    assert r.items_outside_datetime == 1 and len(aug) == 2 * 65
    assert {d.date().isoformat() for d in aug[contract.DATETIME]} == set(DATES[:2])


def test_median_composite_is_the_median_of_clear_observations(series):
    items = [i for pat in series for i in items_for_source([pat])]
    parts = plan_parts(items, 7, "auto")
    rows, comp = align_rows(parts), align_rows(parts, "median")
    assert len(comp) == 65 and len(rows) == 3 * 65
    assert {r.datetime for r in comp} == {
        datetime(2015, 8, 20, 16, 27, tzinfo=timezone.utc)
    }  # the middle one
    single, composite = read_rows(rows)["optical"], read_rows(comp)["optical"]
    by_cell: dict[int, list[np.ndarray]] = {}
    for i, r in enumerate(rows):
        by_cell.setdefault(r.cell, []).append(single[i])
    gained = 0
    for i, r in enumerate(comp):
        obs = np.stack(by_cell[r.cell])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
            oracle = np.nanmedian(obs, axis=0)
        np.testing.assert_allclose(composite[i], oracle, rtol=1e-6, equal_nan=True)
        # cloud pixels masked in A and B are filled by C: the composite has more valid pixels
        gained += np.isfinite(composite[i]).mean() > np.isfinite(obs[0]).mean()
    assert gained >= 5


def test_composite_build_gives_one_row_per_cell(series, tmp_path, capsys):
    args = ["build", str(tmp_path / "db"), "--model", "stats", "--composite", "median"]
    assert main([*args, *[a for p in series for a in ("--source", p)]]) == 0
    t = contract.read_table(tmp_path / "db").to_pandas()
    assert len(t) == 65 and t[contract.H3].is_unique
    assert all(len(s) == 33 for s in t[contract.SOURCE])  # 11 band files of each of the 3 observations


def _flagged_share(spec, bqa) -> float:
    """Share of the chip's pixels that BQA flags (read with a plain window: the file is on the chip grid)."""
    rule = mask_rules(get_sensor("landsat8-l1"))["BQA"]
    with rasterio.open(bqa) as src:
        win = rasterio.windows.from_bounds(
            spec.x - 960, spec.y - 960, spec.x + 960, spec.y + 960, src.transform
        )
        q = src.read(1, window=win.round_offsets().round_lengths(), boundless=True, fill_value=0)
    return float(rule.flags(q.astype(np.float64)).mean())


def test_bqa_clouds_lower_valid_fraction_and_min_valid_drops_are_counted(tmp_path, capsys):
    with_qa = build_db(tmp_path / "qa", [SourceSpec([LANDSAT_GLOB])], model="stats")
    without = build_db(tmp_path / "noqa", [SourceSpec([BANDS_ONLY])], model="stats")
    assert with_qa.rows_written == without.rows_written == 65
    a = contract.read_table(tmp_path / "qa").to_pandas().set_index(contract.H3)
    b = contract.read_table(tmp_path / "noqa").to_pandas().set_index(contract.H3)
    drop = b.loc[a.index, contract.VALID_FRACTION] - a[contract.VALID_FRACTION]
    assert (drop >= -1e-6).all() and (drop > 0.05).sum() >= 5  # cloudy chips lose their cloud pixels
    (item,) = items_for_source([LANDSAT_GLOB])
    specs = {p.spec.cell: p.spec for p in plan_parts([item], 7, "auto")}
    bqa = str(DATA / "landsat8" / "l8_BQA.tif")
    for cell in drop.index[drop > 0.05][:5]:
        assert abs(drop[cell] - _flagged_share(specs[cell], bqa)) < 0.02  # the flagged pixels, no more
    threshold = 0.9
    expected = int((a[contract.VALID_FRACTION] <= threshold).sum())
    assert expected > 0
    rc = main(
        [
            "build",
            str(tmp_path / "mv"),
            "--source",
            LANDSAT_GLOB,
            "--model",
            "stats",
            "--min-valid",
            str(threshold),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert f"{expected} below --min-valid 0.9 dropped" in out
    assert len(contract.read_table(tmp_path / "mv")) == 65 - expected


def test_scl_classes_flag_clouds_shadows_and_nodata():
    rule = mask_rules(get_sensor("sentinel2-l2a-bigearthnet"))["SCL"]
    codes = np.arange(12, dtype=np.float64)
    assert list(np.flatnonzero(rule.flags(codes))) == [0, 1, 3, 8, 9, 10]
    assert not rule.flags(np.array([np.nan])).any()  # unread mask pixels flag nothing
