"""AppTest of the Label page: seeds by click and upload, kNN map, CV, suggestions, exports."""

from __future__ import annotations

from pathlib import Path

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd

from app.logic.rows import load_rows
from index.vote import knn_vote
from tests.app.conftest import click_map, deck, layer, open_app

ROOT = Path(__file__).resolve().parents[2]


def _seed_frame(manifest: pd.DataFrame, per_class: int) -> pd.DataFrame:
    seeds = pd.read_csv(ROOT / "data" / "eurosat_ms" / "seeds.csv")
    return seeds.groupby("label").head(per_class).reset_index(drop=True)


def test_click_cells_to_label_them(explorer_db: Path, eurosat_manifest: pd.DataFrame) -> None:
    at = open_app(explorer_db, "label")
    rows = load_rows(explorer_db)
    m = eurosat_manifest
    forest = m[m["label"] == "Forest"].iloc[0]
    water = m[m["label"] == "SeaLake"].iloc[0]
    fcell = format(h3i.latlng_to_cell(forest["center_lat"], forest["center_lon"], rows.resolution), "x")
    wcell = format(h3i.latlng_to_cell(water["center_lat"], water["center_lon"], rows.resolution), "x")
    at.sidebar.text_input(key="label_new_class").set_value("Forest")
    at.run()
    click_map(at, fcell, key="label_map")
    at.sidebar.text_input(key="label_new_class").set_value("Water")
    at.run()
    click_map(at, wcell, key="label_map")
    assert at.session_state["labels"] == {fcell: "Forest", wcell: "Water"}
    # two classes: every cell gets a predicted class; seeds keep theirs
    pred = at.session_state["predictions"]
    assert len(pred.rows) == 369 and sorted(pred.classes) == ["Forest", "Water"]
    got = dict(zip([format(int(c), "x") for c in rows.h3[pred.rows]], pred.labels(), strict=True))
    assert got[fcell] == "Forest" and got[wcell] == "Water"
    _, spec = deck(at, "label_map")
    assert {d["h3"] for d in layer(spec, "seeds")["data"]} == {fcell, wcell}  # type: ignore[index]
    # erase mode removes a label
    at.sidebar.radio(key="label_mode").set_value("erase: remove the label")
    at.run()
    click_map(at, wcell, key="label_map")
    assert at.session_state["labels"] == {fcell: "Forest"}
    assert "predictions" not in at.session_state


def test_upload_seeds_runs_knn_with_spatial_cv(explorer_db: Path, eurosat_manifest: pd.DataFrame) -> None:
    at = open_app(explorer_db, "label")
    seeds = _seed_frame(eurosat_manifest, 8)
    at.sidebar.file_uploader(key="seed_upload").set_value(
        ("seeds.csv", seeds.to_csv(index=False).encode(), "text/csv")
    )
    at.run()
    assert not at.exception
    rows = load_rows(explorer_db)
    labels = at.session_state["labels"]
    assert len(labels) == len(seeds) == 80
    # the map equals the index layer's kNN vote (the oracle) on every cell
    pred = at.session_state["predictions"]
    cells = np.array([int(c, 16) for c in labels], dtype=np.uint64)
    srows = [rows.row_of_cell(int(c)) for c in cells]
    classes, y = np.unique(list(labels.values()), return_inverse=True)
    want, conf = knn_vote(rows.vectors[srows], y, len(classes), rows.vectors[pred.rows], 5)
    assert list(pred.classes) == list(classes)
    np.testing.assert_array_equal(pred.pred, want)
    np.testing.assert_allclose(pred.confidence, conf, atol=1e-6)
    # real land cover: far better than chance (10 classes) on the cells that are not seeds
    truth = {
        h3i.latlng_to_cell(a, b, rows.resolution): lab
        for a, b, lab in zip(eurosat_manifest["center_lat"], eurosat_manifest["center_lon"],
                             eurosat_manifest["label"], strict=True)
    }
    test = [i for i, c in enumerate(rows.h3[pred.rows]) if format(int(c), "x") not in labels]
    acc = np.mean([pred.labels()[i] == truth[int(rows.h3[pred.rows][i])] for i in test])
    assert acc > 0.4
    metrics = {m.label: m.value for m in at.metric}
    cv = float(metrics["Spatial CV accuracy"].rstrip("%")) / 100
    assert 0.2 < cv <= 1.0
    assert metrics["Cells labelled"] == "369"
    # learning curve drawn; suggestions are unlabelled and the least confident cells
    assert len(at.get("vega_lite_chart")) == 1
    sug = at.dataframe[1].value  # [0]: cells per class, [1]: suggestions
    assert len(sug) == 5 and not set(sug["cell"]) & set(labels)
    unl = np.array([format(int(c), "x") not in labels for c in rows.h3[pred.rows]])
    assert sug["confidence"].max() <= np.sort(pred.confidence[unl])[4] + 1e-3
    # five export buttons
    assert len(at.get("download_button")) == 5


def test_map_page_colours_by_predicted_class(explorer_db: Path, eurosat_manifest: pd.DataFrame) -> None:
    at = open_app(explorer_db, "label")
    seeds = _seed_frame(eurosat_manifest, 3)
    at.sidebar.file_uploader(key="seed_upload").set_value(
        ("seeds.csv", seeds.to_csv(index=False).encode(), "text/csv")
    )
    at.run()
    pred = at.session_state["predictions"]
    at.switch_page("views/map_search.py")
    at.run()
    at.sidebar.radio(key="colour_by").set_value("Predicted class")
    at.run()
    assert not at.exception
    _, spec = deck(at)
    data = layer(spec, "cells")["data"]  # type: ignore[index]
    rows = load_rows(explorer_db)
    want = dict(zip([format(int(c), "x") for c in rows.h3[pred.rows]], pred.labels(), strict=True))
    assert all(d["info"].startswith(f"predicted {want[d['h3']]} (") for d in data)
    # one hue per class: cells of a class at full confidence share its palette colour
    assert len({tuple(d["color"]) for d in data}) > len(pred.classes)


def test_upload_geojson_seeds(explorer_db: Path, eurosat_manifest: pd.DataFrame) -> None:
    seeds = _seed_frame(eurosat_manifest, 2)
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
             "properties": {"label": lab}}
            for lat, lon, lab in zip(seeds["lat"], seeds["lon"], seeds["label"], strict=True)
        ]
        + [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [-150.0, -60.0]},
            "properties": {"label": "Ocean"}}],
    }
    import json

    at = open_app(explorer_db, "label")
    at.sidebar.file_uploader(key="seed_upload").set_value(
        ("seeds.geojson", json.dumps(doc).encode(), "application/geo+json")
    )
    at.run()
    assert len(at.session_state["labels"]) == 20
    assert "20 seeds added; 1 outside" in at.sidebar.success[0].value
