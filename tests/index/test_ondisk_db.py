"""The out-of-core index of a real database (369 EuroSAT cells, 17 partitions), against exact oracles.

Forced onto the out-of-core path with a small ``nlist`` (the database is tiny); answers are
checked against FAISS ``IndexFlatIP`` over the same latest vectors, staleness by a real
change of the embeddings, crash safety by SIGKILLing a real ``earthvec index --out-of-core``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from embedder import contract, h3grid
from embedder.errors import IndexMismatchError
from index.info import db_info
from index.ondisk_db import (
    build_db_ondisk,
    ondisk_state,
    open_db_ondisk,
    read_record,
    search_ondisk,
    similar_ondisk,
)
from index.search import similar
from index.vectors import iter_latest, partition_files

REPO = Path(__file__).resolve().parents[2]
NLIST = 16


def latest(db: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every cell's most recent vector (the oracle's data), sorted by cell."""
    cols = [contract.H3, contract.DATETIME, contract.EMBEDDING]
    tables = [t for _, t, _ in iter_latest(db, columns=cols)]
    cells = np.concatenate([np.asarray(t.column(contract.H3).to_numpy(), dtype=np.uint64) for t in tables])
    vecs = np.concatenate([contract.embeddings_matrix(t) for t in tables])
    order = np.argsort(cells)
    return cells[order], vecs[order]


def test_answers_match_the_exact_oracle_and_the_query_comes_first(db: Path) -> None:
    rec, built = build_db_ondisk(db, nlist=NLIST)
    cells, vecs = latest(db)
    assert built and rec.count == len(cells) == 369
    assert rec.shards == len(partition_files(db)) == 17 and rec.factory.startswith(f"IVF{NLIST},")
    assert ondisk_state(db) == "fresh"
    od, _ = open_db_ondisk(db)
    keys = [contract.H3, contract.DATETIME]
    per_partition = sorted(t.num_rows for _, t, _ in iter_latest(db, columns=keys))
    assert sorted(s["rows"] for s in od.manifest["shards"]) == per_partition
    flat = faiss.IndexFlatIP(vecs.shape[1])
    flat.add(vecs)
    qi = np.arange(0, len(cells), 37)  # 10 query cells spread over the partitions
    _, truth = flat.search(vecs[qi], 10)
    scores, got = search_ondisk(od, vecs[qi], 10, nprobe=NLIST // 2)
    recall = np.mean([len(set(cells[truth[i]]) & set(got[i])) / 10 for i in range(len(qi))])
    print(f"recall@10 {recall:.3f} at nprobe {NLIST // 2} of {NLIST} lists")
    assert recall >= 0.9, recall
    assert np.all(got[:, 0] == cells[qi])  # each query cell finds itself first
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    pos = np.searchsorted(cells, got)  # scores are the exact inner products of the returned cells
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", vecs[qi], vecs[pos]), atol=1e-5)


def test_similar_has_the_in_ram_columns_and_answers(db: Path) -> None:
    build_db_ondisk(db, nlist=NLIST)
    cells, _ = latest(db)
    q = h3grid.cell_to_str(int(cells[100]))
    got = similar_ondisk(db, q, k=10, nprobe=NLIST)
    assert not (contract.index_dir(db) / contract.SIDECAR_NAME).exists()  # no in-RAM index was built
    want = similar(db, cell=q, k=10)  # builds the exact (Flat) in-RAM index of the 369 cells
    assert list(got.columns) == list(want.columns)
    assert q not in set(got[contract.H3])
    assert len(set(got[contract.H3]) & set(want[contract.H3])) >= 9
    both = got.merge(want, on=contract.H3, suffixes=("", "_ram"))
    assert len(both) >= 9 and list(both[contract.SOURCE]) == list(both[f"{contract.SOURCE}_ram"])
    for col in (contract.LAT, contract.LON, "score", contract.VALID_FRACTION):
        np.testing.assert_allclose(both[col], both[f"{col}_ram"], atol=1e-5)


def _drop_one_partition(db: Path) -> None:
    """A real change of the published embeddings: one partition's file leaves the database."""
    first = sorted(contract.embeddings_dir(db).glob(f"{contract.PARTITION}=*"))[0]
    shutil.rmtree(first)


def test_a_changed_database_makes_it_stale_and_similar_refuses(db: Path) -> None:
    rec, _ = build_db_ondisk(db, nlist=NLIST)
    cells, _ = latest(db)
    q = h3grid.cell_to_str(int(cells[-1]))
    _drop_one_partition(db)
    assert ondisk_state(db) == "stale"
    assert db_info(db)["ondisk"]["state"] == "stale"
    with pytest.raises(IndexMismatchError, match=r"stale.*earthvec index .* --out-of-core"):
        similar_ondisk(db, q, k=5)
    again, built = build_db_ondisk(db, nlist=NLIST)
    assert built and again.fingerprint != rec.fingerprint and again.count < rec.count
    assert ondisk_state(db) == "fresh" and len(similar_ondisk(db, q, k=5)) == 5
    assert not (contract.ondisk_dir(db) / rec.folder).exists()  # the replaced build is removed
    assert build_db_ondisk(db, nlist=NLIST) == (again, False)  # fresh: nothing to do
    other, built = build_db_ondisk(db, nlist=NLIST // 2)  # other lists: built aside, then current
    assert built and other.factory.startswith(f"IVF{NLIST // 2},") and other.folder != again.folder
    assert [p.name for p in contract.ondisk_dir(db).glob("build-*")] == [other.folder]


def _index_cli(db: Path, kill_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    env.pop("EARTHVEC_KILL_AT", None)
    if kill_at:
        env["EARTHVEC_KILL_AT"] = kill_at
    cmd = [sys.executable, "-m", "app.cli.main", "index", str(db), "--out-of-core", "--nlist", str(NLIST)]
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kill_at", ["ondisk-shard:2", "ondisk-built"])
def test_a_killed_build_leaves_the_previous_index_in_force_and_the_rerun_resumes(
    db: Path, kill_at: str
) -> None:
    old, _ = build_db_ondisk(db, nlist=NLIST)
    _drop_one_partition(db)
    record = (contract.ondisk_dir(db) / contract.ONDISK_CURRENT).read_bytes()
    killed = _index_cli(db, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (contract.ondisk_dir(db) / contract.ONDISK_CURRENT).read_bytes() == record
    assert read_record(db) == old and ondisk_state(db) == "stale"  # the previous state, still refused
    with pytest.raises(IndexMismatchError, match="--out-of-core"):
        open_db_ondisk(db)
    side = contract.ondisk_build_dir(db, contract.load_snapshot(db).fingerprint)
    finished = sorted(p.name for p in side.glob("shard-*.json"))
    assert finished == (["shard-00000.json"] if kill_at.startswith("ondisk-shard") else finished)
    done = _index_cli(db, None)
    assert done.returncode == 0, done.stderr
    assert "out-of-core index of" in done.stdout and "built" in done.stdout
    assert "shard 0:" not in done.stderr  # finished shards are not redone
    if kill_at.startswith("ondisk-shard"):
        assert "shard 1:" in done.stderr
    else:  # killed between the merge and current.json: the merged lists are taken as they are
        assert "already merged" in done.stderr
    new = read_record(db)
    assert new is not None and new.folder == side.name and ondisk_state(db) == "fresh"
    assert new.count == len(latest(db)[0])
    assert json.loads((side / "ondisk.json").read_text())["ntotal"] == new.count
    assert not (contract.ondisk_dir(db) / old.folder).exists()
