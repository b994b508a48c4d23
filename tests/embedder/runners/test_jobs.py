"""The runner interface without Ray: the jobs' steps in a plain loop equal the local builds."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from embedder import contract
from embedder.build import build_db
from embedder.errors import EarthvecError, ModelMismatchError
from embedder.globe.build import build_global_db
from embedder.globe.layers import GlobalLayers
from embedder.registry import get_embedder
from embedder.runners.interface import EmbedderSpec, ShardResult, run_local
from embedder.runners.ray_runner import RayOptions, plan_resources
from embedder.runners.source_job import SourceJob, plan_source_build
from embedder.runners.store import ShardStore, is_uri
from tests.conftest import DATA, EUROSAT_GLOB
from tests.embedder.runners.conftest import digest, shard_names

SENSOR = "sentinel2-l1c-eurosat"


def test_source_job_in_a_loop_writes_the_files_build_db_writes(tmp_path: Path) -> None:
    build_db(tmp_path / "local", [EUROSAT_GLOB], sensor=SENSOR, model="stats")
    store = ShardStore(tmp_path / "job")
    meta, spec, shards, report = plan_source_build(store, [EUROSAT_GLOB], sensor=SENSOR, model="stats")
    assert spec.name == "stats" and spec.instance is None and spec.expect == report.model
    assert [s.name for s in shards] == shard_names(tmp_path / "local")  # the same deterministic names
    seen: list[ShardResult] = []
    results = run_local(SourceJob(spec, store, meta), shards, on_result=seen.append)
    assert seen == results and sum(r.rows_written for r in results) == report.rows_planned == 369
    assert digest(tmp_path / "job") == digest(tmp_path / "local")
    assert shard_names(tmp_path / "job") == shard_names(tmp_path / "local")


def test_globe_job_in_a_loop_equals_build_global_db(tmp_path: Path) -> None:
    from embedder.runners import globe_job

    layers = GlobalLayers(DATA / "global")
    build_global_db(tmp_path / "local", res=3, model="stats", limit=400, progress=False, layers=layers)
    # the Ray driver with run_ray swapped for the reference loop: planning, steps and records
    seen: list[ShardResult] = []

    def loop(job, specs, options=None, on_result=None):  # noqa: ANN001, ANN202
        seen.extend(run_local(job, specs, on_result))
        return seen

    mp = pytest.MonkeyPatch()
    mp.setattr(globe_job, "run_ray", loop)
    mp.setitem(globe_job._LAYERS, (str(layers.root.resolve()), layers.grid), layers)  # loaded once
    try:
        kw = {"res": 3, "model": "stats", "limit": 400, "progress": False, "layers": layers}
        report = globe_job.build_global_db_ray(tmp_path / "job", **kw)  # type: ignore[arg-type]
    finally:
        mp.undo()
    assert report.rows_written == 400 and report.shards_written == len(seen) == report.shards_total
    assert digest(tmp_path / "job") == digest(tmp_path / "local")
    assert shard_names(tmp_path / "job") == shard_names(tmp_path / "local")
    for f in ("labels/modis_igbp.parquet", "labels/koppen.parquet"):
        assert (tmp_path / "job" / f).read_bytes() == (tmp_path / "local" / f).read_bytes()


def test_embedder_spec_refuses_a_worker_with_other_weights() -> None:
    emb = get_embedder("stats")
    assert EmbedderSpec.of(emb, "stats").build().version == emb.version
    assert EmbedderSpec.of(emb).build() is emb  # an instance travels as is
    with pytest.raises(ModelMismatchError, match="same earthvec version and model weights"):
        EmbedderSpec("stats", {}, None, "stats@000000000000").build()


def test_store_writes_through_a_pyarrow_uri(tmp_path: Path, eurosat_db: Path) -> None:
    uri = (tmp_path / "db").as_uri()
    store = ShardStore(uri)
    assert is_uri(uri) and store.local is None and not is_uri(str(tmp_path))
    name = shard_names(eurosat_db)[0]
    table = pq.read_table(eurosat_db / name)
    assert not store.exists(name)
    store.write_table(name, table)
    assert store.exists(name) and store.list_dir(str(Path(name).parent)) == [Path(name).name]
    assert pq.read_table(tmp_path / "db" / name).equals(table)
    assert contract.read_table(tmp_path / "db").num_rows == table.num_rows > 0
    meta = contract.read_meta(eurosat_db)
    store.ensure_compatible(meta, "fix")  # same model: fine
    other = contract.DatasetMeta(**{**meta.__dict__, "model_version": "000000000000"})
    with pytest.raises(ModelMismatchError, match="stats@000000000000"):
        store.ensure_compatible(other, "fix")
    store.delete(name)
    assert not store.exists(name) and store.list_dir("embeddings/nowhere") == []


def test_resources_one_actor_per_gpu_else_half_the_cpus() -> None:
    assert plan_resources({"CPU": 2.0}, RayOptions()) == (1, 0.0)
    assert plan_resources({"CPU": 64.0}, RayOptions()) == (32, 0.0)
    assert plan_resources({"CPU": 64.0, "GPU": 8.0}, RayOptions()) == (8, 1.0)
    assert plan_resources({"CPU": 64.0, "GPU": 8.0}, RayOptions(gpus_per_worker=0.5)) == (16, 0.5)
    assert plan_resources({"CPU": 64.0, "GPU": 8.0}, RayOptions(workers=3)) == (3, 1.0)
    with pytest.raises(EarthvecError, match="has 0 GPU"):
        plan_resources({"CPU": 2.0}, RayOptions(gpus_per_worker=1))
