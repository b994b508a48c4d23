"""Fixtures and helpers for the explorer tests (AppTest and browser)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.contract_db import make_change_db

APP = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"


@pytest.fixture(scope="session")
def explorer_db(eurosat_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the EuroSAT database (the explorer writes its index into it)."""
    db = tmp_path_factory.mktemp("explorer") / "db"
    shutil.copytree(eurosat_db, db)
    return db


@pytest.fixture(scope="session")
def change_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A database whose first six Forest cells have a 2018 and a 2021 row (3 changed)."""
    db = tmp_path_factory.mktemp("change") / "db"
    info = make_change_db(db)
    return db, info


def open_app(db: Path, page: str | None = None) -> AppTest:
    """Run the explorer on ``db`` (optionally switched to ``views/<page>.py``)."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["db"] = str(db)
    at.run()
    if page is not None:
        at.switch_page(f"views/{page}.py")
        at.run()
    assert not at.exception, at.exception
    return at


def deck(at: AppTest, key: str = "map") -> tuple[str, dict[str, Any]]:
    """Widget id and parsed JSON spec of the pydeck chart with ``key``.

    Charts without selection carry no id; a key not found falls back to the only such chart.
    """
    charts = list(at.get("deck_gl_json_chart"))
    for el in charts:
        if el.proto.id.endswith(f"-{key}"):
            return el.proto.id, json.loads(el.proto.json)
    plain = [el for el in charts if not el.proto.id]
    if len(plain) == 1:
        return "", json.loads(plain[0].proto.json)
    raise AssertionError(f"no pydeck chart with key {key!r}")


def layer(spec: dict[str, Any], layer_id: str) -> dict[str, Any] | None:
    """The layer ``layer_id`` of a deck spec, or None."""
    for lyr in spec["layers"]:
        if lyr.get("id") == layer_id:
            return lyr
    return None


def click_map(at: AppTest, cell_hex: str, key: str = "map", layer_id: str = "cells") -> AppTest:
    """Select the object of ``cell_hex`` on a map layer, as a click in the browser does.

    AppTest has no pydeck widget, so this sends the same widget state the frontend sends
    on a click (``{"selection": {"indices": ..., "objects": ...}}``) and reruns the app.
    """
    wid, spec = deck(at, key)
    lyr = layer(spec, layer_id)
    assert lyr is not None, f"no layer {layer_id!r}"
    data = lyr["data"]
    i = next(j for j, obj in enumerate(data) if obj["h3"] == cell_hex)
    states = at._tree.get_widget_states()
    w = states.widgets.add()
    w.id = wid
    w.string_value = json.dumps(
        {"selection": {"indices": {layer_id: [i]}, "objects": {layer_id: [data[i]]}}}
    )
    at._run(states)
    assert not at.exception, at.exception
    return at
