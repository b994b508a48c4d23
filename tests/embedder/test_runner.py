"""Choosing a build's runner, and the Ray runner's pieces that need no cluster."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from embedder.errors import EarthvecError, ModelMismatchError
from embedder.interface import model_id
from embedder.ray_runner import RayOptions, _Compute, _row, plan_resources, run_ray
from embedder.registry import get_embedder
from embedder.runner import get_runner, run_local
from embedder.shard import EmbedderSpec
from embedder.storage import Transaction


def test_unknown_engine_is_refused_with_the_choices() -> None:
    with pytest.raises(EarthvecError, match="engine 'spark' is unknown; use one of local, ray"):
        get_runner("spark")
    local = get_runner("local", workers=3)
    assert local.func is run_local and local.keywords == {"workers": 3}  # type: ignore[attr-defined]


def test_ray_engine_runs_run_ray_with_its_options() -> None:
    pytest.importorskip("ray")
    opts = RayOptions(workers=2)
    runner = get_runner("ray", ray=opts)
    assert runner.func is run_ray and runner.keywords == {"options": opts}  # type: ignore[attr-defined]


def test_nothing_to_do_starts_no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    import embedder.ray_runner as rr

    monkeypatch.setattr(rr, "ray_session", lambda options: pytest.fail("Ray was started"))
    run_ray(iter([]), EmbedderSpec("stats"), lambda r: pytest.fail("a result"))


def test_resources_one_actor_per_gpu_else_half_the_cpus() -> None:
    assert plan_resources({"CPU": 2.0}, RayOptions()) == (1, 0.0)
    assert plan_resources({"CPU": 64.0}, RayOptions()) == (32, 0.0)
    assert plan_resources({"CPU": 64.0, "GPU": 8.0}, RayOptions()) == (8, 1.0)
    assert plan_resources({"CPU": 64.0, "GPU": 8.0}, RayOptions(gpus_per_worker=0.5)) == (16, 0.5)
    assert plan_resources({"CPU": 64.0, "GPU": 8.0}, RayOptions(workers=3)) == (3, 1.0)
    with pytest.raises(EarthvecError, match="has 0 GPU"):
        plan_resources({"CPU": 2.0}, RayOptions(gpus_per_worker=1))


def test_an_actor_with_another_model_version_refuses_every_shard() -> None:
    emb = get_embedder("stats")
    ok = _Compute(EmbedderSpec("stats"), None, f"stats@{emb.version}", True)
    assert ok.error is None
    actor = _Compute(EmbedderSpec("stats"), None, "stats@000000000000", True)
    out = actor(_row(pickle.dumps("any shard")))
    err = pickle.loads(out.column("error")[0].as_py())  # travels to the driver as data
    assert isinstance(err, ModelMismatchError) and "driver planned stats@000000000000" in str(err)
    assert out.column("data")[0].as_py() == b""


def test_an_embedder_instance_travels_to_the_actor_beside_its_spec() -> None:
    emb = get_embedder("stats")
    spec = EmbedderSpec("stats", instance=emb)
    with pytest.raises(EarthvecError, match="instance was not sent to this worker"):
        _unpickle_elsewhere(spec)  # a spec alone carries its instance to forks only
    shipped, instance = pickle.loads(pickle.dumps((dataclasses.replace(spec, instance=None), emb)))
    actor = _Compute(shipped, instance, model_id(emb), True)  # what build_dataset hands each actor
    assert actor.error is None and actor.spec.load() is instance


def _unpickle_elsewhere(spec: EmbedderSpec) -> EmbedderSpec:
    """Unpickle as a process that was not forked from this one would (no registered instance)."""
    from embedder import shard

    data = pickle.dumps(spec)
    saved = dict(shard._LOADED)
    shard._LOADED.clear()
    try:
        return pickle.loads(data)
    finally:
        shard._LOADED.update(saved)


def test_shard_targets_carry_an_absolute_database_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Transaction("db", "test") as tx:
        target = tx.target("8029fffffffffff", "k")
    assert Path(target.db) == tmp_path / "db" and Path(target.db).is_absolute()
