"""``earthvec index --out-of-core``, ``similar`` and ``info`` end to end through the real CLI entry point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import faiss
import h3
import numpy as np
import pytest

from app.cli.main import main
from embedder import contract
from index.vectors import iter_latest


@pytest.fixture()
def cli_db(eurosat_db: Path, tmp_path: Path) -> Path:
    out = tmp_path / "db"
    shutil.copytree(Path(eurosat_db) / contract.EMBEDDINGS_DIR, out / contract.EMBEDDINGS_DIR)
    return out


def _latest(db: Path) -> tuple[np.ndarray, np.ndarray]:
    tables = [t for _, t, _ in iter_latest(db, columns=[contract.H3, contract.DATETIME, contract.EMBEDDING])]
    cells = np.concatenate([np.asarray(t.column(contract.H3).to_numpy(), dtype=np.uint64) for t in tables])
    return cells, np.concatenate([contract.embeddings_matrix(t) for t in tables])


def test_index_out_of_core_then_similar_prints_the_exact_hits(
    cli_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["index", str(cli_db), "--out-of-core", "--nlist", "8"]) == 0
    out = capsys.readouterr().out
    assert "out-of-core index of" in out and "IVF8," in out and "369 cells in 17 shards" in out
    cells, vecs = _latest(cli_db)
    flat = faiss.IndexFlatIP(vecs.shape[1])
    flat.add(vecs)
    for i in (3, 150, 300):
        q = h3.int_to_str(int(cells[i]))
        argv = ["similar", str(cli_db), "--cell", q, "-k", "5", "--nprobe", "8", "--format", "json"]
        assert main(argv) == 0
        rows = json.loads(capsys.readouterr().out)  # stdout holds the results only
        _, want = flat.search(vecs[i : i + 1], 6)
        want_cells = [h3.int_to_str(int(c)) for c in cells[want[0]] if c != cells[i]][:5]
        assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
        assert q not in {r["h3"] for r in rows}
        assert len({r["h3"] for r in rows} & set(want_cells)) >= 4
        assert {"lat", "lon", "score", "datetime", "valid_fraction", "source", "sensors"} <= set(rows[0])
    assert not (cli_db / contract.INDEX_DIR / contract.SIDECAR_NAME).exists()  # answered out of core
    assert main(["similar", str(cli_db), "--cell", q, "-k", "3"]) == 0
    table = capsys.readouterr().out
    assert "score" in table and len(table.strip().splitlines()) == 4
    assert main(["info", str(cli_db)]) == 0
    assert "out-of-core index    fresh: IVF8,RaBitQ4, 369 vectors" in capsys.readouterr().out


def test_stale_out_of_core_index_is_reported_and_refused(
    cli_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["index", str(cli_db), "--out-of-core", "--nlist", "8"]) == 0
    cells, _ = _latest(cli_db)
    q = h3.int_to_str(int(cells[-1]))
    shutil.rmtree(sorted(contract.embeddings_dir(cli_db).glob(f"{contract.PARTITION}=*"))[0])
    capsys.readouterr()
    assert main(["info", str(cli_db)]) == 0
    info = capsys.readouterr().out
    assert "out-of-core index    stale:" in info and f"earthvec index {cli_db} --out-of-core" in info
    assert main(["similar", str(cli_db), "--cell", q, "-k", "3"]) != 0
    err = capsys.readouterr().err
    assert "stale" in err and f"earthvec index {cli_db} --out-of-core" in err
    assert not (cli_db / contract.INDEX_DIR / contract.SIDECAR_NAME).exists()  # no silent in-RAM build
    assert main(["similar", str(cli_db), "--lat", "50", "--lon", "10", "--out-of-core"]) != 0
    assert "answers --cell queries" in capsys.readouterr().err
    assert main(["index", str(cli_db), "--out-of-core", "--nlist", "8"]) == 0
    assert "354 cells in 16 shards" in capsys.readouterr().out
    assert main(["similar", str(cli_db), "--cell", q, "-k", "3", "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4


def test_overwrite_of_a_published_database_makes_it_stale(
    eurosat_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database with a manifest and an in-RAM index: ``--out-of-core`` picks the out-of-core one."""
    from embedder.build import build_db
    from tests.conftest import DATA

    db = tmp_path / "db"
    shutil.copytree(eurosat_db, db)
    assert main(["index", str(db), "--out-of-core", "--nlist", "8"]) == 0
    assert "generation" in capsys.readouterr().out
    q = h3.int_to_str(int(_latest(db)[0][0]))
    assert main(["similar", str(db), "--cell", q, "-k", "3", "--out-of-core", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    industrial = str(DATA / "eurosat_ms" / "tif" / "Industrial" / "*.tif")
    build_db(db, [industrial], sensor="sentinel2-l1c-eurosat", model="stats", overwrite=True)
    q = h3.int_to_str(int(_latest(db)[0][0]))
    assert main(["info", str(db)]) == 0
    assert "out-of-core index    stale:" in capsys.readouterr().out
    for flag in (["--out-of-core"], []):  # without an in-RAM index the stale one is refused, not replaced
        assert main(["similar", str(db), "--cell", q, "-k", "3", *flag]) != 0
        assert f"earthvec index {db} --out-of-core" in capsys.readouterr().err
    assert main(["index", str(db)]) == 0  # the in-RAM index, which similar prefers
    capsys.readouterr()
    assert main(["similar", str(db), "--cell", q, "-k", "3", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["similar", str(db), "--cell", q, "-k", "3", "--out-of-core"]) != 0  # still stale
    assert main(["index", str(db), "--out-of-core", "--nlist", "8"]) == 0
    assert main(["index", str(db), "--rebuild"]) == 0  # another publish, and its sweep of DB/index
    capsys.readouterr()
    assert main(["info", str(db)]) == 0
    assert "out-of-core index    fresh:" in capsys.readouterr().out
    assert main(["similar", str(db), "--cell", q, "-k", "3", "--out-of-core", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
