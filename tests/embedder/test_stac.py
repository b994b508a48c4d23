"""STAC: a static catalog around the real files, the same files over HTTP, and a tiny STAC API.

See :mod:`tests.embedder.stac_support` for how the catalog and the server are made.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from app.cli.main import main
from embedder import contract
from embedder.align import align_rows, plan_parts
from embedder.build import SourceSpec, build_db
from embedder.errors import InputNotFoundError
from embedder.reader import read_rows
from embedder.sources import items_for_source
from embedder.stac import StacQuery, stac_items
from tests.conftest import DATA, LANDSAT_GLOB
from tests.embedder.stac_support import Server, landsat_cloud_cover, write_catalog

AUSTRIA = (13.0, 47.0, 17.0, 49.0)
JUNE_2017 = "2017-06-01/2017-06-30"
BEN = DATA / "bigearthnet_s1s2"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    return write_catalog(tmp_path_factory.mktemp("stac"))


@pytest.fixture
def local_http(monkeypatch):
    """Requests to 127.0.0.1 never go through a proxy (GDAL's curl and urllib both read these)."""
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


def test_static_catalog_is_walked_and_filtered(catalog):
    items = stac_items(StacQuery(str(catalog)))
    assert Counter(i.sensor.name for i in items) == {
        "landsat8-l1": 1,
        "sentinel2-l2a-bigearthnet": 4,
        "sentinel1-grd": 4,
    }
    (l8,) = [i for i in items if i.sensor.name == "landsat8-l1"]
    assert list(l8.mask_files) == ["BQA"] and len(l8.band_files) == 11
    assert l8.datetime.date().isoformat() == "2015-08-04"
    s2 = stac_items(StacQuery(str(catalog), collections=["sentinel-2-l2a"], bbox=AUSTRIA))
    assert [Path(i.paths[0]).parent.name for i in s2] == ["S2A_MSIL2A_20170613T101031_87_48"]
    assert len(s2[0].band_files) == 12  # common-name asset keys (red, nir08 ...) through band_aliases
    june = stac_items(StacQuery(str(catalog), datetime=JUNE_2017))
    assert sorted(i.datetime.date().isoformat() for i in june) == ["2017-06-13"] * 2 + ["2017-06-17"] * 2
    cloud = landsat_cloud_cover()
    assert 5.0 < cloud < 7.0  # 6% of the scene's pixels are flagged cloud by its BQA band
    capped = stac_items(StacQuery(str(catalog), collections=["landsat-8-l1", "sentinel-2-l2a"], max_cloud=5))
    assert {i.sensor.name for i in capped} == {"sentinel2-l2a-bigearthnet"}  # no cover given: kept
    assert len(stac_items(StacQuery(str(catalog), collections=["landsat-8-l1"], max_cloud=10))) == 1


def test_stac_build_equals_the_build_from_the_files(catalog, tmp_path, capsys):
    args = [
        "build",
        str(tmp_path / "stac"),
        "--stac",
        str(catalog),
        "--datetime",
        JUNE_2017,
        "--model",
        "stats",
    ]
    args += ["--collection", "sentinel-2-l2a", "--collection", "sentinel-1-grd"]
    assert main(args) == 0
    assert "2 rows written" in capsys.readouterr().out
    folders = ["*_87_48", "*_36_85"]
    specs = [SourceSpec([str(BEN / m / f / "*.tif") for f in folders]) for m in ("S2", "S1")]
    build_db(tmp_path / "files", specs, model="stats")
    a = contract.read_table(tmp_path / "stac").to_pandas().set_index(contract.H3).sort_index()
    b = contract.read_table(tmp_path / "files").to_pandas().set_index(contract.H3).sort_index()
    assert list(a.index) == list(b.index)
    assert all(list(m) == ["optical", "sar"] for m in a[contract.MODALITIES])
    np.testing.assert_array_equal(np.stack(a[contract.EMBEDDING]), np.stack(b[contract.EMBEDDING]))


def test_cogs_are_read_over_http_with_range_requests(catalog, tmp_path, local_http):
    (local,) = items_for_source([LANDSAT_GLOB])
    local_rows = align_rows(plan_parts([local], 7, "auto"))
    with Server(catalog.parent) as srv:
        (item,) = stac_items(StacQuery(f"{srv.url}/catalog.json", collections=["landsat-8-l1"]))
        assert all(p.startswith(srv.url) for p in item.all_paths)
        rows = align_rows(plan_parts([item], 7, "auto"))
        assert [r.cell for r in rows] == [r.cell for r in local_rows]
        two = read_rows(rows[:2])["optical"]  # two chips: only the tiles under them travel
        size = os.path.getsize(catalog.parent / "assets" / "landsat" / "l8_B4.tif")
        b4 = sum(r["bytes"] for r in srv.served.tif() if r["path"].endswith("l8_B4.tif"))
        print(f"HTTP: 2 chips read {b4} of {size} bytes of l8_B4.tif")
        assert 0 < b4 < 0.5 * size
        want = read_rows(local_rows[:2])["optical"]
        for i in range(2):
            np.testing.assert_array_equal(two[i], want[i])  # COG tiles re-encode losslessly
        report = build_db(tmp_path / "db", [SourceSpec([], items=[item])], model="stats")
        assert report.rows_written == 65
        gets = [r for r in srv.served.tif() if r["method"] == "GET"]
    assert gets and all(r["range"] for r in gets) and all(r["status"] == 206 for r in gets)
    for r in gets:  # no response is a whole file
        assert r["bytes"] < os.path.getsize(catalog.parent / r["path"].lstrip("/"))
    build_db(tmp_path / "local", [SourceSpec([LANDSAT_GLOB])], model="stats")
    a = contract.read_table(tmp_path / "db").to_pandas().set_index(contract.H3).sort_index()
    b = contract.read_table(tmp_path / "local").to_pandas().set_index(contract.H3).sort_index()
    np.testing.assert_array_equal(np.stack(a[contract.EMBEDDING]), np.stack(b[contract.EMBEDDING]))


def test_stac_api_is_searched_with_pystac_client(catalog, local_http):
    with Server(catalog.parent, api_catalog=catalog) as srv:
        (item,) = stac_items(StacQuery(f"{srv.url}/", ["sentinel-2-l2a"], AUSTRIA, JUNE_2017))
        assert any(r["path"] == "/search" for r in srv.served.requests)  # searched, not walked
        # the query extension: the server filters by eo:cloud_cover (6% for the Landsat scene)
        assert len(stac_items(StacQuery(f"{srv.url}/", ["landsat-8-l1"], max_cloud=10))) == 1
        with pytest.raises(InputNotFoundError, match="no STAC item"):
            stac_items(StacQuery(f"{srv.url}/", ["landsat-8-l1"], max_cloud=5))
        assert item.sensor.name == "sentinel2-l2a-bigearthnet" and item.paths[0].startswith(srv.url)
        remote = read_rows(align_rows(plan_parts([item], 8, "auto")))["optical"]
    (local,) = items_for_source([str(BEN / "S2" / "*_87_48" / "*.tif")])
    np.testing.assert_array_equal(
        remote[0], read_rows(align_rows(plan_parts([local], 8, "auto")))["optical"][0]
    )
