"""Derived data records the generation and model it came from; stale data is refused, never used."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from app.cli.main import main
from embedder import contract
from embedder.baseline import ChannelStats
from embedder.build import build_db
from embedder.errors import IndexMismatchError, StaleDataError
from index.info import db_info
from index.label import label_db
from index.pyramid import build_pyramid, level_state, read_level
from index.sql import connect
from index.store import index_state, open_index
from index.txindex import index_into
from tests.conftest import DATA, EUROSAT_GLOB

TIF = Path(EUROSAT_GLOB).parent.parent
SEEDS = DATA / "eurosat_ms" / "seeds.csv"


class _Other(ChannelStats):
    def __init__(self) -> None:
        super().__init__()
        self.version = "0000000other"


def _build(db: Path, *classes: str, **kw) -> contract.BuildReport:  # noqa: ANN003
    src = [str(TIF / c / "*.tif") for c in classes]
    kw.setdefault("finish", index_into)
    return build_db(db, src, sensor="sentinel2-l1c-eurosat", model="stats", **kw)


def test_derived_data_records_its_origin_and_goes_stale(tmp_path: Path) -> None:
    db = tmp_path / "db"
    _build(db, "Forest", "River")
    m = contract.read_manifest(db)
    assert m.derived["index"].fingerprint == m.fingerprint and index_state(db) == "fresh"
    out = tmp_path / "map.parquet"
    label_db(db, SEEDS, out=out)
    made = json.loads(pq.read_schema(out).metadata[contract.LABELS_META_KEY])
    assert (made["generation"], made["fingerprint"], made["model"]) == (m.generation, m.fingerprint, m.model)
    build_pyramid(open_index(db), [5])
    m = contract.read_manifest(db)
    assert {"predictions/map.parquet", "labels/seeds.parquet", "pyramid/res=5.parquet"} <= set(m.derived)
    assert all(d.fingerprint == m.fingerprint for d in m.derived.values())
    assert level_state(db, 5) == "fresh"
    con = connect(db, read_only=True)
    assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == pq.read_metadata(out).num_rows
    assert con.execute("SELECT count(DISTINCT resolution) FROM pyramid").fetchone() == (1,)

    _build(db, "Highway", finish=None)  # new embeddings, no index built with them
    assert index_state(db) == "stale" and level_state(db, 5) == "stale"
    with pytest.raises(IndexMismatchError, match=rf"stale.*earthvec index {db}"):
        open_index(db, rebuild=False)
    with pytest.raises(StaleDataError, match=rf"earthvec index {db} --pyramid 5"):
        read_level(db, 5)
    info = db_info(db)
    assert info["stale_predictions"] == ["map.parquet"] and info["stale_pyramid"] == [5]
    assert main(["info", str(db)]) == 0
    con = connect(db, read_only=True)  # SQL leaves the stale map and level out
    assert con.execute("SELECT count(*) FROM predictions").fetchone() == (0,)
    assert "pyramid" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}


def test_overwrite_with_another_model_removes_the_old_models_derived_data(tmp_path: Path) -> None:
    db = tmp_path / "db"
    _build(db, "Forest", "River")
    label_db(db, SEEDS, out=db / "predictions" / "map.parquet")
    build_pyramid(open_index(db), [4])
    old = contract.read_manifest(db)
    old_files = [db / p for d in old.derived.values() for p in d.files]
    assert len(old_files) >= 4 and all(p.exists() for p in old_files)
    src = [str(TIF / "Forest" / "*.tif")]
    build_db(db, src, sensor="sentinel2-l1c-eurosat", embedder=_Other(), overwrite=True)
    new = contract.read_manifest(db)
    assert new.model.endswith("@0000000other") and new.derived == {}
    assert not any(p.exists() for p in old_files)  # stale: swept right after the publish
    assert index_state(db) == "missing"


def test_read_command_never_writes_while_a_writer_holds_the_lock(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from embedder.storage import DbLock

    db = tmp_path / "db"
    _build(db, "Forest", finish=None)  # no index yet
    before = contract.manifest_path(db).read_bytes()
    cell = format(contract.read_table(db, columns=["h3"]).column(0)[0].as_py(), "x")
    with DbLock(db, "a writer elsewhere"):  # held by this process: a reader must not wait ...
        import subprocess
        import sys

        env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "TQDM_DISABLE": "1", "PATH": ""}
        r = subprocess.run(
            [sys.executable, "-m", "app.cli.main", "similar", str(db), "--cell", cell, "-k", "3"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert r.returncode == 0, r.stderr
    assert contract.manifest_path(db).read_bytes() == before  # ... nor write
    assert not contract.index_dir(db).exists()
    assert main(["similar", str(db), "--cell", cell, "-k", "3"]) == 0  # lock free: stored now
    assert index_state(db) == "fresh"
