"""``earthvec info`` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.cli.main import main
from embedder import contract


def test_info_table_and_json(eurosat_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "db"
    shutil.copytree(Path(eurosat_db) / contract.EMBEDDINGS_DIR, db / contract.EMBEDDINGS_DIR)
    assert main(["info", str(db)]) == 0
    text = capsys.readouterr().out
    meta = contract.read_meta(db)
    assert "369 rows, 369 cells" in text and meta.model in text and "missing" in text
    assert main(["info", str(db), "--update-index", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["index"]["state"] == "fresh" and info["index"]["count"] == 369
    assert info["h3_resolution"] == meta.h3_resolution and info["partitions"] >= 1
    assert main(["info", str(db), "--pyramid", "6,4", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["pyramid"] == [4, 6]
    assert main(["info", str(db), "--pyramid", "9"]) == 1
    assert "coarser than the database" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing")]) == 1
    assert "no embeddings" in capsys.readouterr().err
