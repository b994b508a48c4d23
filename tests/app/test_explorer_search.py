"""AppTest of the Map & search page on the real EuroSAT database."""

from __future__ import annotations

from pathlib import Path

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import pytest

from app.logic.exact import exact_top_k
from app.logic.rows import load_rows
from index.search import example_query as query_vector
from index.search import similar
from tests.app.conftest import click_map, deck, layer, open_app


def _label_of(manifest: pd.DataFrame, res: int) -> dict[str, str]:
    cells = [
        format(h3i.latlng_to_cell(a, b, res), "x")
        for a, b in zip(manifest["center_lat"], manifest["center_lon"], strict=True)
    ]
    return dict(zip(cells, manifest["label"], strict=True))


def _forest_cell(explorer_db: Path, manifest: pd.DataFrame) -> str:
    rows = load_rows(explorer_db)
    labels = _label_of(manifest, rows.resolution)
    return next(c for c, lab in sorted(labels.items()) if lab == "Forest")


def test_map_shows_every_cell_on_the_offline_basemap(explorer_db: Path) -> None:
    at = open_app(explorer_db)
    _, spec = deck(at)
    base = layer(spec, "basemap")
    assert base is not None and base["@@type"] == "BitmapLayer"
    assert base["image"].startswith("data:image/jpeg;base64,")
    assert base["bounds"] == [-180, -90, 180, 90]
    # no tile provider or remote style: nothing is fetched from the internet
    assert "mapProvider" not in spec or spec["mapProvider"] is None
    assert spec.get("mapStyle") in (None, "__MAP_STYLE__")
    cells = layer(spec, "cells")
    assert cells is not None and cells["@@type"] == "H3HexagonLayer"
    rows = load_rows(explorer_db)
    assert len(cells["data"]) == len(rows.latest) == 369
    first = cells["data"][0]
    assert {"cell", "place", "date", "sensors", "valid"} <= set(first)
    assert first["sensors"] == "sentinel2-l1c-eurosat"
    # PCA colours differ between cells (an RGB projection, not one flat colour)
    colours = {tuple(d["color"]) for d in cells["data"]}
    assert len(colours) > 300
    assert "Click a cell" in " ".join(m.value for m in at.info)


def test_click_a_cell_lists_similar_places(explorer_db: Path, eurosat_manifest: pd.DataFrame) -> None:
    at = open_app(explorer_db)
    query = _forest_cell(explorer_db, eurosat_manifest)
    click_map(at, query)
    assert at.session_state["positives"] == [query]
    table = at.dataframe[0].value
    assert len(table) == 10 and query not in set(table["cell"])
    # same ranking as the index layer (the FAISS path) and as the exact numpy oracle
    assert any("Ranked by FAISS index" in c.value for c in at.caption)
    expected = similar(explorer_db, cell=query, k=10)
    assert list(table["cell"]) == list(expected["h3"])
    rows = load_rows(explorer_db)
    q = rows.vectors[rows.row_of_cell(int(query, 16))]
    cand = rows.latest[rows.h3[rows.latest] != np.uint64(int(query, 16))]
    top, scores = exact_top_k(rows.vectors, q, 10, cand)
    np.testing.assert_allclose(table["similarity"], scores, atol=1e-4)
    assert list(table["cell"]) == [format(int(c), "x") for c in rows.h3[top]]
    # real imagery: similar places of a forest chip are mostly forest
    labels = _label_of(eurosat_manifest, rows.resolution)
    assert sum(labels[c] == "Forest" for c in table["cell"]) >= 6
    # query and results are outlined on the map; chips shown from the source files
    _, spec = deck(at)
    assert layer(spec, "query")["data"][0]["h3"] == query  # type: ignore[index]
    assert [d["h3"] for d in layer(spec, "results")["data"]] == list(table["cell"])  # type: ignore[index]
    captions = [im.caption for el in at.get("image") for im in el.proto.imgs]
    assert any(c.startswith("query") for c in captions) and len(captions) >= 5


def test_negatives_refine_the_query(explorer_db: Path, eurosat_manifest: pd.DataFrame) -> None:
    at = open_app(explorer_db)
    query = _forest_cell(explorer_db, eurosat_manifest)
    click_map(at, query)
    first = list(at.dataframe[0].value["cell"])
    at.sidebar.radio(key="click_action").set_value("negative: add as negative")
    at.run()
    click_map(at, first[0])
    assert at.session_state["negatives"] == [first[0]]
    table = at.dataframe[0].value
    rows = load_rows(explorer_db)
    pos, neg = rows.row_of_cell(int(query, 16)), rows.row_of_cell(int(first[0], 16))
    q = query_vector(rows.vectors, [pos], [neg], 0.5)
    cand = rows.latest[~np.isin(rows.latest, [pos, neg])]
    top, _ = exact_top_k(rows.vectors, q, 10, cand)
    assert list(table["cell"]) == [format(int(c), "x") for c in rows.h3[top]]
    assert first[0] not in set(table["cell"])
    # a second positive: the query becomes the mean of both positives minus the negative
    at.sidebar.radio(key="click_action").set_value("positive: add as positive")
    at.run()
    click_map(at, first[1])
    assert at.session_state["positives"] == [query, first[1]]
    q2 = query_vector(rows.vectors, [pos, rows.row_of_cell(int(first[1], 16))], [neg], 0.5)
    cand = rows.latest[~np.isin(rows.h3[rows.latest], [int(query, 16), int(first[0], 16),
                                                       int(first[1], 16)])]
    top, _ = exact_top_k(rows.vectors, q2, 10, cand)
    assert list(at.dataframe[0].value["cell"]) == [format(int(c), "x") for c in rows.h3[top]]
    at.sidebar.button(key="clear").click()
    at.run()
    assert at.session_state["positives"] == [] and not at.dataframe


def test_region_filter_and_point_query(explorer_db: Path, eurosat_manifest: pd.DataFrame) -> None:
    at = open_app(explorer_db)
    rows = load_rows(explorer_db)
    row = eurosat_manifest.iloc[0]
    cell = h3i.latlng_to_cell(row["center_lat"], row["center_lon"], rows.resolution)
    at.sidebar.number_input(key="pt_lat").set_value(float(row["center_lat"]))
    at.sidebar.number_input(key="pt_lon").set_value(float(row["center_lon"]))
    at.sidebar.button[0].click()  # the form's "Find cell"
    at.run()
    assert at.session_state["positives"] == [format(cell, "x")]
    region = format(h3i.cell_to_parent(cell, 2), "x")
    at.sidebar.text_input(key="region").set_value(region)
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    inside = [h3i.cell_to_parent(int(c, 16), 2) == int(region, 16) for c in table["cell"]]
    assert len(table) > 0 and all(inside)
    _, spec = deck(at)
    shown = [d["h3"] for d in layer(spec, "cells")["data"]]  # type: ignore[index]
    assert all(h3i.cell_to_parent(int(c, 16), 2) == int(region, 16) for c in shown)
    n_inside = int(np.sum([h3i.cell_to_parent(int(c), 2) == int(region, 16) for c in rows.h3]))
    assert len(shown) == n_inside


def test_colour_by_similarity(explorer_db: Path, eurosat_manifest: pd.DataFrame) -> None:
    at = open_app(explorer_db)
    query = _forest_cell(explorer_db, eurosat_manifest)
    click_map(at, query)
    at.sidebar.radio(key="colour_by").set_value("Similarity to query")
    at.run()
    _, spec = deck(at)
    data = layer(spec, "cells")["data"]  # type: ignore[index]
    sims = {d["h3"]: float(d["info"].split()[-1]) for d in data}
    assert sims[query] == pytest.approx(1.0, abs=1e-3)
    # the colour ramp is monotone in brightness: most similar is brighter than least
    best, worst = max(sims, key=sims.__getitem__), min(sims, key=sims.__getitem__)
    colour = {d["h3"]: d["color"] for d in data}
    assert sum(colour[best]) > sum(colour[worst])


def test_many_cells_are_drawn_as_parents(explorer_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.logic import mapview

    monkeypatch.setattr(mapview, "MAX_CELLS", 40)
    at = open_app(explorer_db)
    _, spec = deck(at)
    assert layer(spec, "cells") is None
    parents = layer(spec, "parents")["data"]  # type: ignore[index]
    assert 0 < len(parents) <= 40
    assert sum(int(p["info"].split()[0]) for p in parents) == 369
    click_map(at, parents[0]["h3"], layer_id="parents")
    assert at.session_state["region"] == parents[0]["h3"]
    _, spec = deck(at)
    n = int(parents[0]["info"].split()[0])
    shown = layer(spec, "cells") or layer(spec, "parents")
    assert shown is not None
    if layer(spec, "cells") is not None:
        assert len(shown["data"]) == n


def test_big_database_without_index_ranks_exactly(
    eurosat_db: Path, tmp_path: Path, eurosat_manifest: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from app import state

    db = tmp_path / "db"
    shutil.copytree(eurosat_db, db)
    shutil.rmtree(db / "index", ignore_errors=True)
    monkeypatch.setattr(state, "AUTO_BUILD_MAX", 100)  # pretend 369 cells is "big"
    at = open_app(db)
    query = _forest_cell(db, eurosat_manifest)
    click_map(at, query)
    assert not (db / "index").exists()  # nothing was built
    assert any("ranking exactly with numpy" in c.value for c in at.caption)
    rows = load_rows(db)
    q = rows.vectors[rows.row_of_cell(int(query, 16))]
    cand = rows.latest[rows.h3[rows.latest] != np.uint64(int(query, 16))]
    top, scores = exact_top_k(rows.vectors, q, 10, cand)
    table = at.dataframe[0].value
    assert list(table["cell"]) == [format(int(c), "x") for c in rows.h3[top]]
    np.testing.assert_allclose(table["similarity"], scores, atol=1e-4)
