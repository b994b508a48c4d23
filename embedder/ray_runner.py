"""The Ray runner: a build's shard specs as a Ray Data pipeline on a local or remote cluster.

:func:`run_ray` has the shape of :func:`~embedder.runner.run_local`: it takes the same
shard specs (:class:`~embedder.raster_shard.RasterShard`,
:class:`~embedder.globe.shards.GlobalShard`) and :class:`~embedder.shard.EmbedderSpec`,
and hands each :class:`~embedder.shard.ShardResult` to ``on_result`` on the driver, which
records it in its :class:`~embedder.storage.Transaction`. One dataset row is one shard::

    from_items(specs) -> read (CPU tasks) -> compute (actor pool) [-> write (CPU tasks)] -> driver

* **read**: ``spec.read()`` (raster reads, global chips) runs as Ray tasks ahead of the
  actors; the streaming executor keeps a few shards read while the actors embed (prefetch),
  with backpressure on the object store;
* **compute**: ``map_batches`` with a callable class; each actor loads the embedder once
  (``EmbedderSpec.load()``), checks it is the version the driver planned, and runs
  ``spec.compute(payload, embedder, batch_size)``; ``num_gpus`` per actor when the cluster
  has GPUs, CPU actors otherwise;
* **write**: :func:`~embedder.storage.shardfile.write_shard_file` to ``spec.target`` (no
  lock needed), in the CPU actor right after computing, or in a CPU task after a GPU actor
  (the GPU never waits for Parquet compression). Only the small result travels back.

Fault tolerance is Ray's (a killed actor is restarted and its shard retried, a killed task
retried). Shard file names are deterministic and the driver journals every result it
records, so a rerun after a killed driver skips the journaled shards, rewrites the others
under the same names and, once it commits, the storage sweep removes anything left over.
An earthvec error in a worker (a bad raster, another model version) travels to the driver
as data and is raised there as itself. Ray is imported only here (the ``ray`` extra).
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from embedder.errors import EarthvecError, ModelMismatchError
from embedder.interface import model_id
from embedder.shard import EmbedderSpec, ShardOutput, ShardResult, ShardSpec, run_shard, write_output

log = logging.getLogger(__name__)


class RayUnavailableError(EarthvecError, ImportError):
    """``--engine ray`` was asked for but Ray is not installed or the cluster is unreachable."""


@dataclass
class RayOptions:
    """How to run on Ray.

    Attributes:
        address: cluster address (``auto``, ``HOST:6379``, ``ray://HOST:10001``); None starts a
            local Ray instance for the build (or reuses the one this process already joined).
        workers: embedding actors (default: one per GPU, or CPUs / (``cpus_per_worker`` +
            ``read_cpus``) without GPUs).
        gpus_per_worker: GPUs per embedding actor (fractions share a GPU); None: 1 when the
            cluster has GPUs, else 0 (CPU actors).
        cpus_per_worker: CPUs reserved per embedding actor.
        read_cpus: CPUs reserved per read task.
        write_cpus: CPUs reserved per write task.
        write_in_actor: write each shard in the actor right after computing it; None: yes
            for CPU actors (a task and a copy of the table less per shard), no for GPU actors.
        prefetch: read tasks per embedding actor (at least 2).
        init: extra ``ray.init`` arguments for a local instance (e.g. ``num_cpus=2``).
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 1.0
    read_cpus: float = 1.0
    write_cpus: float = 1.0
    write_in_actor: bool | None = None
    prefetch: int = 2
    init: dict[str, Any] = field(default_factory=dict)


def import_ray() -> Any:
    """The ``ray`` module with Ray Data.

    Raises:
        RayUnavailableError: Ray is not installed.
    """
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayUnavailableError(
            'Ray is not installed; pip install "earthvec[ray]" (or "ray[data]"), or build with --engine local'
        ) from exc
    return ray


@contextmanager
def ray_session(options: RayOptions) -> Iterator[Any]:
    """Join the cluster at ``options.address`` (or start a local one) for the block's duration.

    A session this process had already joined is reused and left running.

    Raises:
        RayUnavailableError: when Ray is missing or the address cannot be reached.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    if options.address is None:  # "local": a new instance, never one a `ray start` left running
        kwargs["include_dashboard"] = False
    kwargs.update(options.init)
    try:
        ray.init(address=options.address or "local", **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnavailableError(
            f"cannot join the Ray cluster at {options.address!r} ({exc}); start one with "
            "'ray start --head' or pass --address of a running cluster"
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def plan_resources(cluster: dict[str, float], options: RayOptions) -> tuple[int, float]:
    """(embedding actors, GPUs per actor) for a cluster's resources and the options.

    Raises:
        EarthvecError: when GPUs are asked for but the cluster has none.
    """
    n_gpu = float(cluster.get("GPU", 0.0))
    n_cpu = float(cluster.get("CPU", 1.0))
    gpus = options.gpus_per_worker if options.gpus_per_worker is not None else (1.0 if n_gpu >= 1 else 0.0)
    if gpus > 0 and n_gpu < gpus:
        raise EarthvecError(
            f"--gpus-per-worker {gpus:g} but the Ray cluster has {n_gpu:g} GPU(s); "
            "drop the option to embed on CPU actors, or join a cluster with GPUs (--address)"
        )
    if options.workers is not None:
        workers = int(options.workers)
    elif gpus > 0:
        workers = max(1, int(n_gpu // gpus))
    else:
        workers = max(1, int(n_cpu // (options.cpus_per_worker + options.read_cpus)))
    return workers, gpus


def _row(spec: bytes, data: bytes = b"", seconds: float = 0.0, error: bytes = b"") -> pa.Table:
    """One dataset row: pickled spec, pickled output of the last step, seconds so far, error."""
    blob = pa.large_binary()
    return pa.table(
        {
            "spec": pa.array([spec], blob),
            "data": pa.array([data], blob),
            "seconds": pa.array([seconds], pa.float64()),
            "error": pa.array([error], blob),
        }
    )


def _step(table: pa.Table, fn: Callable[[Any, Any], Any]) -> pa.Table:
    """Apply ``fn(spec, data)`` to a one-row batch, adding its time to the row's seconds.

    An earthvec error (a bad input: deterministic, not worth a retry) travels on to the
    driver as data, which raises it; Ray would only hand the driver its text.
    """
    spec, data, seconds, error = (table.column(c)[0].as_py() for c in ("spec", "data", "seconds", "error"))
    if error:
        return table
    t = time.perf_counter()
    try:
        out = fn(pickle.loads(spec), pickle.loads(data) if data else None)
    except EarthvecError as exc:
        return _row(spec, seconds=seconds, error=pickle.dumps(exc))
    return _row(spec, pickle.dumps(out, protocol=5), seconds + time.perf_counter() - t)


def _read(table: pa.Table) -> pa.Table:
    return _step(table, lambda spec, _: spec.read())


class _Compute:
    """The embedding actor: loads the embedder once, then computes (and writes) one shard per call."""

    def __init__(self, embedder: EmbedderSpec, instance: Any, expect: str, write: bool) -> None:
        self.spec = dataclasses.replace(embedder, instance=instance) if instance is not None else embedder
        self.write = write
        self.error: EarthvecError | None = None
        try:
            got = model_id(self.spec.load())
            if got != expect:
                raise ModelMismatchError(
                    f"this Ray worker builds {got} but the driver planned {expect}; install the same "
                    "earthvec version and model weights on every worker"
                )
        except EarthvecError as exc:  # reported per shard, so the driver raises it as itself
            self.error = exc

    def _run(self, spec: ShardSpec, payload: Any) -> ShardResult | ShardOutput:
        if self.error is not None:
            raise self.error
        if self.write:
            return run_shard(spec, self.spec, payload)
        return spec.compute(payload, self.spec.load(), self.spec.batch_size)

    def __call__(self, table: pa.Table) -> pa.Table:
        return _step(table, self._run)


def _write(table: pa.Table) -> pa.Table:
    return _step(table, write_output)


def _quiet(ray: Any) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "bars disabled"


def build_dataset(ray: Any, specs: Sequence[ShardSpec], embedder: EmbedderSpec, options: RayOptions) -> Any:
    """The (lazy) Ray dataset whose rows carry the pickled results of the written shards."""
    workers, gpus = plan_resources(ray.cluster_resources(), options)
    workers = min(workers, len(specs))  # no idle actors
    expect = model_id(embedder.load())
    items = [{"spec": pickle.dumps(s, protocol=5), "data": b"", "seconds": 0.0, "error": b""} for s in specs]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    task = {"batch_size": 1, "batch_format": "pyarrow", "num_cpus": options.read_cpus}
    # a read-task pool of another size than the actor pool also keeps Ray Data from fusing
    # the reads into the actors (it fuses task -> actor stages of equal size and resources),
    # which would run them in the embedder's process, one after the other with embedding
    reads = ray.data.TaskPoolStrategy(size=min(len(specs), max(2, options.prefetch) * workers))
    ds = ds.map_batches(_read, compute=reads, **task)
    write_in_actor = options.write_in_actor if options.write_in_actor is not None else gpus == 0
    shipped = dataclasses.replace(embedder, instance=None)  # the instance travels on its own
    ds = ds.map_batches(
        _Compute,
        fn_constructor_kwargs={
            "embedder": shipped,
            "instance": embedder.instance,
            "expect": expect,
            "write": write_in_actor,
        },
        compute=ray.data.ActorPoolStrategy(size=workers),
        batch_size=1,
        batch_format="pyarrow",
        num_cpus=options.cpus_per_worker,
        num_gpus=gpus,
    )
    if write_in_actor:
        return ds
    task["num_cpus"] = options.write_cpus
    return ds.map_batches(_write, **task)


def run_ray(
    specs: Iterable[ShardSpec],
    embedder: EmbedderSpec,
    on_result: Callable[[ShardResult], None],
    *,
    options: RayOptions | None = None,
) -> None:
    """Run every shard of ``specs`` on Ray (see the module docstring); results stream back.

    Args:
        specs: shards to run (drawn here, on the driver, before Ray starts).
        embedder: the model; an instance travels to the actors pickled, a name is loaded there.
        on_result: called on the driver with each result, in completion order.
        options: cluster and resource options.

    Raises:
        EarthvecError: the first earthvec error a worker raised (bad raster, model mismatch).
        RayUnavailableError: Ray missing or the cluster unreachable.
    """
    options = options or RayOptions()
    todo = list(specs)
    if not todo:
        return
    with ray_session(options) as ray:
        _quiet(ray)
        for row in build_dataset(ray, todo, embedder, options).iter_rows():
            if row["error"]:
                raise pickle.loads(row["error"])
            res = pickle.loads(row["data"])  # seconds: read + compute + write, in the workers
            on_result(dataclasses.replace(res, seconds=row["seconds"]))
