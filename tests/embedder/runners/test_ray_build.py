"""``--engine ray`` on a local 2-CPU Ray cluster: the same rows and shard names as a local build."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedder import contract
from embedder.build import build_db
from embedder.errors import EarthvecError, RasterError
from embedder.globe.build import build_global_db
from embedder.globe.layers import GlobalLayers
from embedder.runners.globe_job import build_global_db_ray
from embedder.runners.ray_runner import RayOptions
from embedder.runners.source_job import build_db_ray
from tests.conftest import DATA, EUROSAT_GLOB
from tests.embedder.conftest import rewrite
from tests.embedder.runners.conftest import digest, shard_names

pytest.importorskip("ray")
pytestmark = pytest.mark.ray

SENSOR = "sentinel2-l1c-eurosat"


def test_ray_build_of_eurosat_equals_the_local_build(tmp_path: Path, ray_cluster: Any) -> None:
    local = build_db(tmp_path / "local", [EUROSAT_GLOB], sensor=SENSOR)  # the default model
    report = build_db_ray(tmp_path / "ray", [EUROSAT_GLOB], sensor=SENSOR)
    assert digest(tmp_path / "ray") == digest(tmp_path / "local") and report.rows_written == 369
    assert shard_names(tmp_path / "ray") == shard_names(tmp_path / "local")
    assert (report.model, report.shards_written, report.rows_planned) == (
        local.model,
        local.shards_written,
        local.rows_planned,
    )
    assert json.loads((tmp_path / "ray" / contract.BUILD_STATE).read_text())["rows_written"] == 369
    again = build_db_ray(tmp_path / "ray", [EUROSAT_GLOB], sensor=SENSOR)
    assert again.shards_written == 0 and again.shards_skipped == again.shards_total == local.shards_total


@pytest.mark.slow
def test_ray_global_res4_build_equals_the_local_build(tmp_path: Path, ray_cluster: Any) -> None:
    layers = GlobalLayers(DATA / "global")
    local = build_global_db(tmp_path / "local", res=4, progress=False, layers=layers)
    report = build_global_db_ray(tmp_path / "ray", res=4, progress=False, layers=layers)
    assert local.rows_written == report.rows_written > 90_000
    assert digest(tmp_path / "ray") == digest(tmp_path / "local")
    assert shard_names(tmp_path / "ray") == shard_names(tmp_path / "local")
    for f in ("labels/modis_igbp.parquet", "labels/koppen.parquet"):
        assert (tmp_path / "ray" / f).read_bytes() == (tmp_path / "local" / f).read_bytes()


@pytest.mark.slow
def test_ray_build_into_a_pyarrow_uri_equals_the_local_build(tmp_path: Path, ray_cluster: Any) -> None:
    src = str(DATA / "eurosat_ms" / "tif" / "Forest" / "*.tif")
    build_db(tmp_path / "local", [src], sensor=SENSOR, model="stats")
    opts = RayOptions(write_in_actor=False)  # the write tasks of GPU clusters
    build_db_ray((tmp_path / "uri").as_uri(), [src], sensor=SENSOR, model="stats", ray=opts)
    assert digest(tmp_path / "uri") == digest(tmp_path / "local")
    assert shard_names(tmp_path / "uri") == shard_names(tmp_path / "local")
    assert (tmp_path / "uri" / contract.BUILD_STATE).exists()


@pytest.mark.slow
def test_worker_errors_reach_the_driver_as_earthvec_errors(
    tmp_path: Path, ray_cluster: Any, eurosat_manifest: Any
) -> None:
    empty = rewrite(eurosat_manifest.abspath[0], tmp_path / "in" / "empty.tif", pixels=np.zeros((13, 64, 64)))
    with pytest.raises(RasterError, match=r"empty\.tif.*no valid pixel.*--skip-empty") as err:
        build_db_ray(tmp_path / "db", [str(empty)], sensor=SENSOR, model="stats")
    assert "Traceback" not in str(err.value)  # the worker's message, not Ray's wrapper
    assert not list((tmp_path / "db").rglob("*.parquet"))
    report = build_db_ray(tmp_path / "db", [str(empty)], sensor=SENSOR, model="stats", skip_empty=True)
    assert report.rows_written == 0 and report.rows_dropped_empty == 1
    with pytest.raises(EarthvecError, match="--gpus-per-worker 1 but the Ray cluster has 0 GPU"):
        build_db_ray(
            tmp_path / "gpu", [str(empty)], sensor=SENSOR, model="stats", ray=RayOptions(gpus_per_worker=1)
        )


@pytest.mark.slow
def test_reads_run_as_tasks_ahead_of_the_embedding_actors(tmp_path: Path, ray_cluster: Any) -> None:
    from embedder.runners.ray_runner import build_dataset
    from embedder.runners.source_job import SourceJob, plan_source_build
    from embedder.runners.store import ShardStore

    store = ShardStore(tmp_path / "db")
    src = str(DATA / "eurosat_ms" / "tif" / "River" / "*.tif")
    meta, spec, shards, _ = plan_source_build(store, [src], sensor=SENSOR, model="stats")
    assert len(shards) > 2  # more shards than actors: something to prefetch
    for write_in_actor in (True, False):
        opts = RayOptions(write_in_actor=write_in_actor)
        ds = build_dataset(ray_cluster, SourceJob(spec, store, meta), shards, opts)
        rows = ds.take_all()
        assert len(rows) == len(shards) and not any(r["error"] for r in rows)
        assert all(store.exists(s.name) for s in shards)
        stats = ds.stats()
        # the reads were not fused into the actor stage; writes run as tasks only when asked
        assert "MapBatches(_read)" in stats and "MapBatches(_Embed)" in stats
        assert "MapBatches(_read)->MapBatches(_Embed)" not in stats
        assert ("MapBatches(_write)" in stats) is not write_in_actor
