"""index.info: counts and the index state life cycle (missing, fresh, stale, model mismatch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from embedder import contract
from embedder.contract import SIDECAR_NAME, index_dir
from index.info import db_info
from index.store import open_index
from tests.index.index_helpers import table_of, write_db


def test_info_counts_and_index_states(db: Path) -> None:
    info = db_info(db)
    ref = contract.read_table(db)
    meta = contract.read_meta(db)
    assert info["rows"] == ref.num_rows == 369 and info["cells"] == 369
    assert info["model"] == meta.model and info["dim"] == meta.dim
    assert info["h3_resolution"] == meta.h3_resolution
    assert info["partitions"] == len(set(ref.column(contract.PARTITION).to_pylist()))
    assert info["modalities"] == {"optical": 369}
    assert info["index"]["state"] == "missing" and info["dated_rows"] == 0
    open_index(db)
    assert db_info(db)["index"]["state"] == "fresh"
    cells, vecs, _ = table_of(db)
    write_db(db, cells[:2], vecs[2:4], ["x", "y"], meta, key="extra")
    info = db_info(db)
    assert info["index"]["state"] == "stale" and info["rows"] == 371 and info["cells"] == 369
    open_index(db)
    path = index_dir(db) / SIDECAR_NAME
    sc = json.loads(path.read_text())
    sc["model"] = "other@1"
    path.write_text(json.dumps(sc))
    assert db_info(db)["index"]["state"] == "model mismatch"
    json.dumps(db_info(db))  # JSON-able
    assert np.isfinite(info["bytes"])
