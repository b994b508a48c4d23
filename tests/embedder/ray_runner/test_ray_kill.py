"""Crash safety of ``engine="ray"`` with real signals: SIGKILL the embedding actor, then the driver.

A 30,000-cell res-4 global build (22 shards) is killed once a few shards are on disk; the
rerun must finish with every row exactly once, equal the local build row for row (same
manifest file names), and leave no orphan shard, temporary file or journal behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from embedder import contract
from embedder.globe.build import build_global_db
from embedder.storage.journal import read_journals
from tests.conftest import DATA, ROOT
from tests.embedder.ray_runner.conftest import RAY_CPUS, digest, shard_names

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.ray]

CELLS = 30_000
BUILD: dict[str, Any] = {"res": 4, "limit": CELLS, "progress": False, "root": str(DATA / "global")}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[str, int], list[str]]:
    """Digest and manifest file names of the local build (the oracle)."""
    db = tmp_path_factory.mktemp("local") / "db"
    build_global_db(db, **BUILD)
    return digest(db), shard_names(db)


def _shards(db: Path) -> int:
    d = db / contract.EMBEDDINGS_DIR
    return len(list(d.rglob("part-*.parquet"))) if d.exists() else 0


def _journaled(db: Path) -> int:
    return sum(len(recs) for _, _, recs in read_journals(db)) if contract.journal_dir(db).exists() else 0


def _wait_for(count: Any, n: int, proc: subprocess.Popen[bytes] | None = None) -> int:
    """Wait until ``count()`` reaches ``n`` (or ``proc`` ends); returns the last count."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        have = int(count())
        if have >= n or (proc is not None and proc.poll() is not None):
            return have
        time.sleep(0.02)
    raise TimeoutError(f"{count} did not reach {n} after 300 s")


def _check(db: Path, local: tuple[tuple[str, int], list[str]]) -> None:
    cells = contract.read_table(db, columns=[contract.H3]).column(0).to_numpy()
    assert len(cells) == len(np.unique(cells)) == CELLS  # no row lost or doubled
    assert (digest(db), shard_names(db)) == local
    on_disk = {p.relative_to(db).as_posix() for p in (db / contract.EMBEDDINGS_DIR).rglob("*.parquet")}
    assert on_disk == set(local[1])  # the sweep left no orphan shard
    assert not [p for p in db.rglob("*") if p.name.endswith(".tmp")] and not read_journals(db)


def test_killed_driver_rerun_finishes_and_equals_local(
    tmp_path: Path, local: tuple[tuple[str, int], list[str]], request: pytest.FixtureRequest
) -> None:
    db = tmp_path / "db"
    logs = tempfile.mkdtemp(prefix="evray")  # short: Ray's socket paths must stay under 108 chars
    code = (
        "from embedder.globe.build import build_global_db\n"
        "from embedder.ray_runner import RayOptions\n"
        f"opts = RayOptions(init=dict(num_cpus={RAY_CPUS}, object_store_memory=256 * 2**20, "
        f"log_to_driver=False, _temp_dir={logs!r}))\n"
        f"build_global_db({str(db)!r}, engine='ray', ray=opts, **{BUILD!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    driver = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL)
    ours: list[psutil.Process] = []
    try:
        at_kill = _wait_for(lambda: _journaled(db), 2, driver)  # shards the driver recorded
        assert driver.poll() is None, "the driver ended before it could be killed"
        ours = psutil.Process(driver.pid).children(recursive=True)  # its local Ray instance
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
        _, alive = psutil.wait_procs(ours, timeout=15)
        for p in alive:  # Ray's node processes outlive a killed driver: end them by pid
            p.kill()
        psutil.wait_procs(alive, timeout=15)
        shutil.rmtree(logs, ignore_errors=True)
    assert driver.returncode == -signal.SIGKILL
    journaled = _journaled(db)
    assert 2 <= at_kill <= journaled < len(local[1]) and not (db / contract.BUILD_STATE).exists()
    assert contract.read_manifest(db).generation == 0  # nothing published by the killed driver
    print(f"killed driver: {journaled} shards journaled, {_shards(db)} on disk")
    request.getfixturevalue("ray_cluster")  # the rerun's Ray, started once the killed one is gone
    report = build_global_db(db, engine="ray", **BUILD)
    assert report.shards_skipped == journaled  # the shards the driver recorded are reused
    assert report.shards_skipped + report.shards_written == len(local[1])
    _check(db, local)


def test_killed_embedding_actor_rerun_finishes_and_equals_local(
    tmp_path: Path, local: tuple[tuple[str, int], list[str]], ray_cluster: Any
) -> None:
    from ray._private import state  # the GCS actor table (the public state API needs the dashboard)

    db = tmp_path / "db"
    killed: dict[str, Any] = {}

    def kill_actor() -> None:
        killed["at"] = _wait_for(lambda: _shards(db), 2)
        actors = [
            a for a in state.actors().values() if a["State"] == "ALIVE" and "_Compute" in a["ActorClassName"]
        ]
        killed["actor"] = actors[0]["ActorID"]
        os.kill(int(actors[0]["Pid"]), signal.SIGKILL)

    killer = threading.Thread(target=kill_actor, daemon=True)
    killer.start()
    try:
        first = build_global_db(db, engine="ray", **BUILD)
        first_error = None
    except Exception as exc:  # Ray may give up on the shard; the rerun must then finish it
        first, first_error = None, exc
    killer.join(timeout=60)
    assert "actor" in killed and 2 <= killed["at"] < len(local[1])
    restarts = state.actors()[killed["actor"]]["NumRestarts"]
    assert restarts >= 1 or first_error is not None  # Ray restarted the actor, or the run failed
    if first is not None:  # Ray restarted the actor and retried its shard: nothing lost in this run
        assert first.shards_written == len(local[1]) and first.rows_written == CELLS
        _check(db, local)
    report = build_global_db(db, engine="ray", **BUILD)
    assert report.shards_skipped + report.shards_written == len(local[1])
    _check(db, local)
