"""Koppen climate-zone labels per H3 cell: known places and the table build_global_db writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from embedder import contract
from embedder.globe.build import build_global_db
from embedder.globe.labels import koppen_classes, koppen_path, majority_koppen
from embedder.globe.layers import GlobalLayers

ROOT = Path(__file__).resolve().parents[3] / "data" / "global"
LIMIT = 300


@pytest.fixture(scope="module")
def layers() -> GlobalLayers:
    return GlobalLayers(ROOT)


def test_classes_come_from_the_sensor_preset(layers: GlobalLayers) -> None:
    assert koppen_classes(layers) == {
        1: "A tropical", 2: "B arid", 3: "C temperate", 4: "D cold", 5: "E polar",
    }  # fmt: skip


def test_known_places_get_their_climate_zone(layers: GlobalLayers) -> None:
    places = {  # (lat, lon): zone
        (-3.0, -60.0): 1,  # Amazon rainforest
        (23.0, 25.0): 2,  # Sahara
        (48.0, 2.0): 3,  # Paris basin
        (62.0, 130.0): 4,  # Yakutia
        (-80.0, 0.0): 5,  # Antarctic plateau
    }
    lat = np.array([p[0] for p in places])
    lon = np.array([p[1] for p in places])
    for res in (3, 5):
        got = majority_koppen(layers, lat, lon, res)
        assert got.dtype == np.int16
        assert got.tolist() == list(places.values())


def test_open_ocean_has_no_zone(layers: GlobalLayers) -> None:
    assert majority_koppen(layers, np.array([-40.0]), np.array([-130.0]), 4).tolist() == [-1]


def test_build_writes_koppen_table(tmp_path: Path, layers: GlobalLayers) -> None:
    db = tmp_path / "g"
    build_global_db(db, res=3, model="stats", limit=LIMIT, progress=False, layers=layers)
    t = pq.read_table(koppen_path(db))
    assert t.column_names == [contract.H3, "label", "label_name"]
    assert t.schema.field("label").type == "int16"
    cells = t.column(contract.H3).to_numpy()
    emb = contract.read_table(db, columns=[contract.H3, contract.LAT, contract.LON])
    ref = dict(zip(emb.column(0).to_pylist(), range(emb.num_rows), strict=True))
    # coastal-ring cells can be all ocean, so not every cell has a zone
    assert set(cells.tolist()) <= set(ref) and len(cells) >= 0.8 * LIMIT
    rows = np.array([ref[c] for c in cells.tolist()])
    again = majority_koppen(
        layers, emb.column(contract.LAT).to_numpy()[rows], emb.column(contract.LON).to_numpy()[rows], 3
    )
    np.testing.assert_array_equal(t.column("label").to_numpy(), again)
    names = koppen_classes(layers)
    assert t.column("label_name").to_pylist() == [names[int(c)] for c in again]
    assert set(again.tolist()) <= set(names)
