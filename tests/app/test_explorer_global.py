"""The explorer's pages on a (small) real global database: optical + elevation + climate cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.logic.rows import load_rows
from tests.app.conftest import click_map, deck, layer, open_app


@pytest.fixture(scope="module")
def global_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from embedder.globe.build import build_global_db

    db = tmp_path_factory.mktemp("global") / "db"
    build_global_db(db, res=3, limit=2000, progress=False)
    return db


def test_map_and_search_on_the_global_database(global_db: Path) -> None:
    at = open_app(global_db)
    _, spec = deck(at)
    cells = layer(spec, "cells")
    assert cells is not None and len(cells["data"]) == len(load_rows(global_db).latest)
    assert "elevation" in cells["data"][0]["sensors"] or "etopo" in cells["data"][0]["sensors"]
    query = cells["data"][0]["cell"]
    click_map(at, query)
    table = at.dataframe[0].value
    assert len(table) == 10 and query not in set(table["cell"])
    assert table["similarity"].is_monotonic_decreasing


@pytest.mark.parametrize("page", ["label", "change", "sql"])
def test_other_pages_render_on_the_global_database(global_db: Path, page: str) -> None:
    at = open_app(global_db, page)
    assert not at.exception


def test_a_folder_of_databases_gets_a_chooser(global_db: Path, eurosat_db: Path, tmp_path: Path) -> None:
    """``earthvec explore demo_db`` (eurosat + global): the sidebar switches between them."""
    root = tmp_path / "demo_db"
    root.mkdir()
    (root / "eurosat").symlink_to(Path(eurosat_db).resolve())
    (root / "global").symlink_to(global_db.resolve())
    at = open_app(root)
    chooser = at.sidebar.selectbox(key="db")
    assert [Path(o).name for o in chooser.options] == ["eurosat", "global"]
    assert len(layer(deck(at)[1], "cells")["data"]) == len(load_rows(eurosat_db).latest)
    click_map(at, layer(deck(at)[1], "cells")["data"][0]["cell"])
    assert at.session_state["positives"]
    chooser.select(str(root / "global")).run()
    assert not at.exception
    assert len(layer(deck(at)[1], "cells")["data"]) == len(load_rows(global_db).latest)
    assert "positives" not in at.session_state or not at.session_state["positives"]
