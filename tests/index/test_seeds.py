"""index.seeds: reading CSV/GeoJSON seeds and mapping them onto database cells."""

from __future__ import annotations

import json
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from embedder import h3grid
from embedder.errors import InputNotFoundError, SeedError
from index.seeds import map_seeds, read_seeds

RES = 8


@pytest.fixture()
def cells(eurosat_labels: pd.DataFrame) -> np.ndarray:
    return eurosat_labels["h3"].to_numpy(dtype=np.uint64)


def _csv(path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(path, index=False)
    return path


def test_csv_points_map_to_containing_cells(
    tmp_path: Path, eurosat_labels: pd.DataFrame, cells: np.ndarray
) -> None:
    sub = eurosat_labels.iloc[:30]
    # points near (not at) the centres still fall in the cells; two points far outside the DB
    df = pd.DataFrame({"lat": sub["lat"] + 1e-4, "lon": sub["lon"] - 1e-4, "label": sub["label"]})
    df = pd.concat(
        [df, pd.DataFrame({"lat": [0.0, -30.0], "lon": [0.0, 20.0], "label": ["Forest", "River"]})]
    )
    s = map_seeds(read_seeds(_csv(tmp_path / "s.csv", df)), cells, RES, tmp_path / "s.csv")
    assert s.n_read == 32 and s.n_outside == 2 and s.n_duplicate == 0
    np.testing.assert_array_equal(s.cells, sub["h3"].to_numpy(dtype=np.uint64))
    assert s.labels.tolist() == sub["label"].tolist()
    assert s.class_counts() == sub["label"].value_counts().to_dict()


def test_csv_h3_and_geojson_agree(tmp_path: Path, eurosat_labels: pd.DataFrame, cells: np.ndarray) -> None:
    sub = eurosat_labels.iloc[40:60]
    hexes = [h3grid.cell_to_str(int(c)) for c in sub["h3"]]
    hexes[0] = h3.cell_to_center_child(hexes[0], RES + 1)  # a finer cell maps to its parent
    a = map_seeds(
        read_seeds(_csv(tmp_path / "h.csv", pd.DataFrame({"h3": hexes, "label": sub["label"]}))),
        cells,
        RES,
    )
    feats = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lo, la]},
            "properties": {"label": lb},
        }
        for la, lo, lb in zip(sub["lat"], sub["lon"], sub["label"], strict=True)
    ]
    gj = tmp_path / "s.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    b = map_seeds(read_seeds(gj), cells, RES)
    np.testing.assert_array_equal(a.cells, b.cells)
    assert a.labels.tolist() == b.labels.tolist() == sub["label"].tolist()


def test_duplicate_cells_keep_first(tmp_path: Path, eurosat_labels: pd.DataFrame, cells: np.ndarray) -> None:
    sub = eurosat_labels.iloc[:5]
    df = pd.DataFrame(
        {
            "lat": list(sub["lat"]) + [sub["lat"].iloc[0]],
            "lon": list(sub["lon"]) + [sub["lon"].iloc[0]],
            "label": list(sub["label"]) + ["Other"],
        }
    )
    s = map_seeds(read_seeds(_csv(tmp_path / "d.csv", df)), cells, RES)
    assert s.n_duplicate == 1 and "Other" not in s.labels


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("lat,lon,label\n0,0,Forest\n-10,10,River\n", "none of the 2 seeds"),
        ("x,y,label\n1,2,Forest\n", "need 'lat,lon,label' or 'h3,label'"),
        ("lat,lon,label\n95,0,Forest\n", "row 1: latitude 95"),
        ("h3,label\nzzz,Forest\n", "row 1: 'zzz' is not an H3 cell"),
        ("h3,label\n81083ffffffffff,Forest\n", "coarser than the database"),
        ("lat,lon,label\n50,3,\n", "empty label"),
    ],
)
def test_bad_seed_files(tmp_path: Path, cells: np.ndarray, content: str, match: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(SeedError, match=match):
        map_seeds(read_seeds(p), cells, RES, p)


def test_one_class_inside_is_an_error(
    tmp_path: Path, eurosat_labels: pd.DataFrame, cells: np.ndarray
) -> None:
    sub = eurosat_labels.iloc[:6]
    df = pd.DataFrame(
        {
            "lat": list(sub["lat"]) + [0.0],
            "lon": list(sub["lon"]) + [0.0],
            "label": ["Forest"] * 6 + ["River"],
        }
    )  # River lies outside the DB
    with pytest.raises(SeedError, match="at least two classes"):
        map_seeds(read_seeds(_csv(tmp_path / "one.csv", df)), cells, RES)


def test_missing_and_non_point_files(tmp_path: Path, cells: np.ndarray) -> None:
    with pytest.raises(InputNotFoundError, match="does not exist"):
        read_seeds(tmp_path / "nope.csv")
    gj = tmp_path / "poly.geojson"
    gj.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]],
                        },
                        "properties": {"label": "A"},
                    }
                ],
            }
        )
    )
    with pytest.raises(SeedError, match="not a Point"):
        read_seeds(gj)
