"""Run a build's shards as a Ray Data pipeline on a local or remote Ray cluster.

One row of the dataset is one shard spec. Three operators stream it::

    from_items(specs) -> read (CPU tasks) -> embed (actor pool) -> write (CPU tasks) -> driver

* **read**: ``job.read(spec)`` runs as Ray tasks (``read_cpus`` each) ahead of the
  embedder; Ray Data's streaming executor keeps several shards read while the actors
  embed (prefetch), with backpressure on the object store;
* **embed**: ``map_batches`` with a callable class: each actor builds the embedder once
  from ``job.embedder`` and embeds one shard per call. ``num_gpus`` per actor when the
  cluster has GPUs (one actor per GPU by default), CPU actors otherwise;
* **write**: ``job.write(spec, vectors)`` runs as Ray tasks and writes one shard file under
  the spec's deterministic name (local path or pyarrow filesystem URI), returning a small
  :class:`~embedder.runners.interface.ShardResult` that streams back to the driver.

Fault tolerance is Ray's: a killed actor is restarted and its shard retried, a killed task
is retried. Output order is not kept (not needed: names are deterministic), and a shard
file appears only once written whole, so a rerun after a killed driver skips the shards on
disk and writes the rest: the result equals a single-machine build row for row.

Ray is imported only here (the ``ray`` extra: ``pip install "earthvec[ray]"``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from embedder.errors import EarthvecError
from embedder.runners.interface import ShardJob, ShardResult

log = logging.getLogger(__name__)


class RayUnavailableError(EarthvecError, ImportError):
    """``--engine ray`` was asked for but Ray is not installed or the cluster is unreachable."""


@dataclass
class RayOptions:
    """How to run on Ray.

    Attributes:
        address: cluster address (``auto``, ``HOST:6379``, ``ray://HOST:10001``); None starts a
            local Ray instance on this machine (or reuses the one this process already joined).
        workers: embedding actors (default: one per GPU, or CPUs / (``cpus_per_worker`` +
            ``read_cpus``) without GPUs).
        gpus_per_worker: GPUs per embedding actor (fractions share a GPU); None: 1 when the
            cluster has GPUs, else 0 (CPU actors).
        cpus_per_worker: CPUs reserved per embedding actor.
        read_cpus: CPUs reserved per read task.
        write_cpus: CPUs reserved per write task.
        write_in_actor: write each shard in the embedding actor right after embedding it
            instead of in a separate task; None: yes for CPU actors (no accelerator to keep
            busy; saves a task and a copy of the vectors per shard), no for GPU actors (the
            GPU never waits for Parquet compression).
        prefetch: shards read at once per embedding actor (at least 2; the CPUs left
            beside the actors bound it too).
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


def _import_ray() -> Any:
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
    ray = _import_ray()
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
    """One dataset row of one shard.

    Columns: the pickled spec, the pickled output of the last step, the seconds spent in the
    steps so far, and the pickled earthvec error of a failed step (empty when none).
    """
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
    """Apply ``fn(spec, data)`` to a one-row batch.

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


def _read(table: pa.Table, job: ShardJob) -> pa.Table:
    return _step(table, lambda spec, _: job.read(spec))


class _Embed:
    """The embedding actor: builds the embedder once, then embeds (and writes) one shard per call."""

    def __init__(self, job: ShardJob, write: bool) -> None:
        self.job = job
        self.write = write
        self.error: EarthvecError | None = None
        try:
            self.emb = job.embedder.build()
        except EarthvecError as exc:  # e.g. other weights on this machine: reported per shard
            self.error = exc
        log.info("embedding actor %d ready (%s)", os.getpid(), job.embedder.expect)

    def __call__(self, table: pa.Table) -> pa.Table:
        if self.error is not None:
            return _step(table, lambda spec, pixels: _raise(self.error))
        if self.write:
            return _step(
                table, lambda spec, pixels: self.job.write(spec, self.job.embed(self.emb, spec, pixels))
            )
        return _step(table, lambda spec, pixels: self.job.embed(self.emb, spec, pixels))


def _raise(exc: BaseException | None) -> None:
    raise exc if exc is not None else RuntimeError("no error")


def _write(table: pa.Table, job: ShardJob) -> pa.Table:
    return _step(table, lambda spec, vectors: job.write(spec, vectors))


def _quiet(ray: Any) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "bars disabled"


def build_dataset(ray: Any, job: ShardJob, specs: Sequence[Any], options: RayOptions) -> Any:
    """The Ray dataset whose rows are the records of the written shards (lazy)."""
    workers, gpus = plan_resources(ray.cluster_resources(), options)
    workers = min(workers, len(specs))  # no idle actors
    items = [{"spec": pickle.dumps(s, protocol=5), "data": b"", "seconds": 0.0, "error": b""} for s in specs]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    task = {"batch_size": 1, "batch_format": "pyarrow", "num_cpus": options.read_cpus}
    # a read-task pool of another size than the actor pool also keeps Ray Data from fusing
    # the reads into the actors (it fuses task -> actor stages of equal size and resources),
    # which would run them in the embedder's process, one after the other with embedding
    # (equal sizes remain only when there are as many shards as actors: nothing to overlap)
    reads = ray.data.TaskPoolStrategy(size=min(len(specs), max(2, options.prefetch) * workers))
    ds = ds.map_batches(_read, fn_kwargs={"job": job}, compute=reads, **task)
    write_in_actor = options.write_in_actor if options.write_in_actor is not None else gpus == 0
    ds = ds.map_batches(
        _Embed,
        fn_constructor_kwargs={"job": job, "write": write_in_actor},
        compute=ray.data.ActorPoolStrategy(size=workers),
        batch_size=1,
        batch_format="pyarrow",
        num_cpus=options.cpus_per_worker,
        num_gpus=gpus,
    )
    if write_in_actor:
        return ds
    task["num_cpus"] = options.write_cpus
    return ds.map_batches(_write, fn_kwargs={"job": job}, **task)


def run_ray(
    job: ShardJob,
    specs: Sequence[Any],
    options: RayOptions | None = None,
    on_result: Callable[[ShardResult], None] | None = None,
) -> list[ShardResult]:
    """Run every spec's read, embed and write on Ray; records stream back as shards finish.

    Args:
        job: the build's steps (pickled to the workers).
        specs: shard specs (only the unfinished ones); their ``name`` must be deterministic.
        options: cluster and resource options.
        on_result: called on the driver with each record as soon as its shard is written.

    Returns:
        The records, in completion order.

    Raises:
        EarthvecError: the first earthvec error a worker raised (bad raster, model mismatch).
        RayUnavailableError: Ray missing or the cluster unreachable.
    """
    options = options or RayOptions()
    if not specs:
        return []
    out: list[ShardResult] = []
    with ray_session(options) as ray:
        _quiet(ray)
        for row in build_dataset(ray, job, specs, options).iter_rows():
            if row["error"]:
                raise pickle.loads(row["error"])
            res = dataclasses.replace(pickle.loads(row["data"]), seconds=row["seconds"])
            if on_result is not None:
                on_result(res)
            out.append(res)
    return out
