"""Crash safety of ``--engine ray`` with real signals: SIGKILL the embedding actor, then the driver.

A 30,000-cell res-4 global build (22 shards) is killed once a few shards are on disk; the
rerun must finish with every row exactly once and equal the local build row for row.
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
from embedder.runners.globe_job import build_global_db_ray
from tests.conftest import DATA, ROOT
from tests.embedder.runners.conftest import RAY_CPUS, digest, shard_names

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.ray]

CELLS = 30_000
BUILD = {"res": 4, "limit": CELLS, "progress": False, "root": str(DATA / "global")}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[str, int], list[str]]:
    """Digest and shard names of the local build (the oracle)."""
    db = tmp_path_factory.mktemp("local") / "db"
    build_global_db(db, **BUILD)  # type: ignore[arg-type]
    return digest(db), shard_names(db)


def _shards(db: Path) -> int:
    d = db / contract.EMBEDDINGS_DIR
    return len(list(d.rglob("part-*.parquet"))) if d.exists() else 0


def _wait_for_shards(db: Path, n: int, proc: subprocess.Popen[bytes] | None = None) -> int:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        have = _shards(db)
        if have >= n or (proc is not None and proc.poll() is not None):
            return have
        time.sleep(0.02)
    raise TimeoutError(f"no {n} shards in {db} after 300 s")


def _check_rows(db: Path, local: tuple[tuple[str, int], list[str]]) -> None:
    cells = contract.read_table(db, columns=[contract.H3]).column(0).to_numpy()
    assert len(cells) == len(np.unique(cells)) == CELLS  # no row lost or doubled
    assert (digest(db), shard_names(db)) == local


def test_killed_driver_rerun_finishes_and_equals_local(
    tmp_path: Path, local: tuple[tuple[str, int], list[str]], request: pytest.FixtureRequest
) -> None:
    db = tmp_path / "db"
    logs = tempfile.mkdtemp(prefix="evray")  # short: Ray's socket paths must stay under 108 chars
    code = (
        "from embedder.runners.globe_job import build_global_db_ray\n"
        "from embedder.runners.ray_runner import RayOptions\n"
        f"opts = RayOptions(init=dict(num_cpus={RAY_CPUS}, object_store_memory=256 * 2**20, "
        f"log_to_driver=False, _temp_dir={logs!r}))\n"
        f"build_global_db_ray({str(db)!r}, ray=opts, **{BUILD!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    driver = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL)
    ours: list[psutil.Process] = []
    try:
        at_kill = _wait_for_shards(db, 2, driver)
        assert driver.poll() is None, "the driver ended before it could be killed"
        ours = psutil.Process(driver.pid).children(recursive=True)  # its local Ray instance
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
        _, alive = psutil.wait_procs(ours, timeout=15)
        for p in alive:  # Ray's node agents outlive a killed driver: end them by pid
            p.kill()
        shutil.rmtree(logs, ignore_errors=True)
    assert driver.returncode == -signal.SIGKILL
    assert 2 <= at_kill < len(local[1]) and not (db / contract.BUILD_STATE).exists()
    request.getfixturevalue("ray_cluster")  # the rerun's Ray, started once the killed one is gone
    report = build_global_db_ray(db, **BUILD)  # type: ignore[arg-type]
    assert report.shards_skipped >= at_kill and report.shards_skipped + report.shards_written == len(local[1])
    _check_rows(db, local)


def test_killed_embedding_actor_rerun_finishes_and_equals_local(
    tmp_path: Path, local: tuple[tuple[str, int], list[str]], ray_cluster: Any
) -> None:
    from ray._private import state  # the GCS actor table (the public state API needs the dashboard)

    db = tmp_path / "db"
    killed: dict[str, Any] = {}

    def kill_actor() -> None:
        killed["at"] = _wait_for_shards(db, 2)
        actors = [
            a for a in state.actors().values() if a["State"] == "ALIVE" and "_Embed" in a["ActorClassName"]
        ]
        killed["actor"] = actors[0]["ActorID"]
        os.kill(int(actors[0]["Pid"]), signal.SIGKILL)

    killer = threading.Thread(target=kill_actor, daemon=True)
    killer.start()
    try:
        first = build_global_db_ray(db, **BUILD)  # type: ignore[arg-type]
        first_error = None
    except Exception as exc:  # Ray may give up on the shard; the rerun must then finish it
        first, first_error = None, exc
    killer.join(timeout=60)
    assert "actor" in killed and 2 <= killed["at"] < len(local[1])
    restarts = state.actors()[killed["actor"]]["NumRestarts"]
    assert restarts >= 1 or first_error is not None  # Ray restarted the actor, or the run failed
    if first is not None:  # Ray restarted the actor and retried its shard: nothing lost in this run
        assert first.shards_written == len(local[1]) and first.rows_written == CELLS
    report = build_global_db_ray(db, **BUILD)  # type: ignore[arg-type]
    assert report.shards_skipped + report.shards_written == len(local[1])
    _check_rows(db, local)
