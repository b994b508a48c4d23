"""``engine="ray"`` on a local 2-CPU Ray cluster: the same rows and manifest files as a local build."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedder import build as build_module
from embedder import contract
from embedder.build import build_db
from embedder.errors import EarthvecError, RasterError
from embedder.globe.build import build_global_db
from embedder.globe.layers import GlobalLayers
from embedder.ray_runner import RayOptions, build_dataset
from embedder.registry import get_embedder
from tests.conftest import DATA, EUROSAT_GLOB
from tests.embedder.conftest import rewrite
from tests.embedder.ray_runner.conftest import digest, shard_names

pytest.importorskip("ray")
pytestmark = pytest.mark.ray

SENSOR = "sentinel2-l1c-eurosat"


def _no_leftovers(db: Path) -> None:
    """Every embeddings file on disk is one the manifest lists; no temporary file, no journal."""
    on_disk = {p.relative_to(db).as_posix() for p in (db / contract.EMBEDDINGS_DIR).rglob("*.parquet")}
    assert on_disk == set(shard_names(db))
    assert not [p for p in db.rglob("*") if p.name.endswith(".tmp")]
    journals = contract.journal_dir(db)
    assert not journals.exists() or not any(journals.iterdir())


def test_ray_build_of_eurosat_equals_the_local_build(
    tmp_path: Path, ray_cluster: Any, eurosat_db: Path
) -> None:
    db = tmp_path / "ray"
    report = build_db(db, [EUROSAT_GLOB], sensor=SENSOR, model="stats", engine="ray")
    assert digest(db) == digest(eurosat_db) and report.rows_written == 369
    assert shard_names(db) == shard_names(eurosat_db)  # the same deterministic names, published
    assert report.shards_written == report.shards_total == len(shard_names(db)) and report.generation == 1
    _no_leftovers(db)
    again = build_db(db, [EUROSAT_GLOB], sensor=SENSOR, model="stats", engine="ray")
    assert again.shards_written == 0 and again.shards_skipped == again.shards_total == report.shards_total


@pytest.mark.slow
def test_ray_global_res4_build_equals_the_local_build(tmp_path: Path, ray_cluster: Any) -> None:
    layers = GlobalLayers(DATA / "global")
    local = build_global_db(tmp_path / "local", res=4, progress=False, layers=layers)  # the default model
    report = build_global_db(tmp_path / "ray", res=4, progress=False, layers=layers, engine="ray")
    assert local.rows_written == report.rows_written > 90_000
    assert digest(tmp_path / "ray") == digest(tmp_path / "local")
    assert shard_names(tmp_path / "ray") == shard_names(tmp_path / "local")
    for f in ("labels/modis_igbp.parquet", "labels/koppen.parquet"):
        assert (tmp_path / "ray" / f).read_bytes() == (tmp_path / "local" / f).read_bytes()
    _no_leftovers(tmp_path / "ray")


@pytest.mark.slow
def test_worker_errors_reach_the_driver_as_earthvec_errors(
    tmp_path: Path, ray_cluster: Any, eurosat_manifest: Any
) -> None:
    empty = rewrite(eurosat_manifest.abspath[0], tmp_path / "in" / "empty.tif", pixels=np.zeros((13, 64, 64)))
    kw: dict[str, Any] = {"sensor": SENSOR, "model": "stats", "engine": "ray"}
    with pytest.raises(RasterError, match=r"empty\.tif.*no valid pixel.*--skip-empty") as err:
        build_db(tmp_path / "db", [str(empty)], **kw)
    assert "Traceback" not in str(err.value)  # the worker's message, not Ray's wrapper
    manifest = contract.read_manifest(tmp_path / "db")  # nothing published (a failed first build
    assert manifest is None or manifest.generation == 0  # removes the folder it made)
    assert not list((tmp_path / "db").rglob("*.parquet"))
    report = build_db(tmp_path / "db", [str(empty)], skip_empty=True, **kw)
    assert report.rows_written == 0 and report.rows_dropped_empty == 1
    with pytest.raises(EarthvecError, match="--gpus-per-worker 1 but the Ray cluster has 0 GPU"):
        build_db(tmp_path / "gpu", [str(empty)], ray=RayOptions(gpus_per_worker=1), **kw)


@pytest.mark.slow
@pytest.mark.parametrize("write_in_actor", [True, False])
def test_reads_run_as_tasks_ahead_of_the_embedding_actors(
    tmp_path: Path, ray_cluster: Any, monkeypatch: pytest.MonkeyPatch, write_in_actor: bool
) -> None:
    seen: dict[str, Any] = {}

    def runner(engine: str, workers: int = 1, ray: Any = None) -> Any:
        def run(specs, espec, on_result):  # noqa: ANN001, ANN202 - build_db's own specs, run on Ray
            specs = list(specs)
            ds = build_dataset(ray_cluster, specs, espec, RayOptions(write_in_actor=write_in_actor))
            rows = ds.take_all()
            seen.update(n=len(specs), rows=rows, stats=ds.stats())
            for r in rows:
                on_result(pickle.loads(r["data"]))

        return run

    monkeypatch.setattr(build_module, "get_runner", runner)
    src = str(DATA / "eurosat_ms" / "tif" / "River" / "*.tif")
    # an embedder instance (as --weights makes) travels to the actors beside the spec
    report = build_db(tmp_path / "db", [src], sensor=SENSOR, embedder=get_embedder("stats"))
    assert seen["n"] > 2 and len(seen["rows"]) == seen["n"] == report.shards_written  # something to prefetch
    assert not any(r["error"] for r in seen["rows"])
    stats = seen["stats"]
    # the reads were not fused into the actor stage; writes run as tasks only when asked
    assert "MapBatches(_read)" in stats and "MapBatches(_Compute)" in stats
    assert "MapBatches(_read)->MapBatches(_Compute)" not in stats
    assert ("MapBatches(_write)" in stats) is not write_in_actor
    local = tmp_path / "local"
    build_db(local, [src], sensor=SENSOR, model="stats")
    assert digest(tmp_path / "db") == digest(local) and shard_names(tmp_path / "db") == shard_names(local)
