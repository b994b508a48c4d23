"""The local shard loop both builds use: in this process with read-ahead, or a fork pool.

:func:`run_local` takes the shards still to do (an iterator, so planning streams), runs
:func:`~embedder.shard.run_shard` on each and hands every result to ``on_result`` in the
calling thread (the driver records it in its transaction there). In this process the next
shard's ``read()`` (raster I/O, which releases the GIL) runs in a thread while the
current one embeds. With ``workers > 1`` and an embedder that declares ``fork_safe``
(numpy only; torch's thread pool does not survive a fork) shards run in forked worker
processes, which inherit the loaded embedder and layers; they drop the inherited lock
file first and die with the driver.

:func:`get_runner` picks the runner of a build's ``engine``: this local loop, or the Ray
runner (:func:`embedder.ray_runner.run_ray`, same arguments; Ray is imported only then).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import queue
import signal
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

from embedder.errors import EarthvecError
from embedder.shard import EmbedderSpec, ShardResult, ShardSpec, run_shard
from embedder.storage.lock import forget_inherited_locks

Runner = Callable[[Iterable[ShardSpec], EmbedderSpec, Callable[[ShardResult], None]], None]
"""``runner(specs, embedder_spec, on_result)``: runs every shard, hands each result to ``on_result``."""
ENGINES = ("local", "ray")


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (no orphans after a kill -9)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _init_worker() -> None:
    forget_inherited_locks()
    _die_with_parent()


def _run_pool(
    specs: Iterable[ShardSpec], embedder: EmbedderSpec, on_result: Callable[[ShardResult], None], workers: int
) -> None:
    """Fork pool; specs are drawn and results recorded in the calling thread, 2 per worker in flight."""
    done: queue.Queue[tuple[bool, Any]] = queue.Queue()
    inflight = 0

    def drain() -> None:
        nonlocal inflight
        ok, value = done.get()
        inflight -= 1
        if not ok:
            raise value
        on_result(value)

    with embedder.share_with_forks(), mp.get_context("fork").Pool(workers, initializer=_init_worker) as pool:
        for spec in specs:
            pool.apply_async(
                run_shard,
                (spec, embedder),
                callback=lambda r: done.put((True, r)),
                error_callback=lambda e: done.put((False, e)),
            )
            inflight += 1
            while inflight >= 2 * workers:
                drain()
        while inflight:
            drain()


def _read_ahead(specs: Iterable[ShardSpec]) -> Iterator[tuple[ShardSpec, Any]]:
    """``(spec, spec.read())`` with the next read running in a thread (specs drawn here)."""
    it = iter(specs)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="earthvec-read") as pool:
        nxt = next(it, None)
        pending: Future[Any] | None = pool.submit(nxt.read) if nxt is not None else None
        while nxt is not None and pending is not None:
            cur, fut = nxt, pending
            nxt = next(it, None)
            pending = pool.submit(nxt.read) if nxt is not None else None
            yield cur, fut.result()


def fork_workers(emb: Any, workers: int, what: str) -> int:
    """``workers`` when the embedder may be forked, else 1 (with a warning)."""
    if workers > 1 and not getattr(emb, "fork_safe", False):
        warnings.warn(
            f"{what} is not fork-safe (torch threads); building in one process with its own "
            f"threads instead of {workers} worker processes",
            stacklevel=3,
        )
        return 1
    return max(1, workers)


def run_local(
    specs: Iterable[ShardSpec],
    embedder: EmbedderSpec,
    on_result: Callable[[ShardResult], None],
    *,
    workers: int = 1,
    prefetch: bool = True,
) -> None:
    """Run every shard of ``specs`` (see the module docstring).

    Args:
        specs: shards to run (drawn lazily, in the calling thread).
        embedder: the model; loaded here before any fork, so workers share it.
        on_result: called with each result in the calling thread, in completion order.
        workers: worker processes (only for fork-safe embedders; see :func:`fork_workers`).
        prefetch: read the next shard while embedding this one (in-process runs).
    """
    emb = embedder.load()
    workers = fork_workers(emb, workers, f"{getattr(emb, 'name', embedder.model)}")
    if workers > 1:
        _run_pool(specs, embedder, on_result, workers)
        return
    if prefetch:
        for spec, payload in _read_ahead(specs):
            on_result(run_shard(spec, embedder, payload))
    else:
        for spec in specs:
            on_result(run_shard(spec, embedder))


def get_runner(engine: str = "local", *, workers: int = 1, ray: Any = None) -> Runner:
    """The runner of ``engine``: ``local`` (:func:`run_local`) or ``ray`` (:mod:`embedder.ray_runner`).

    Args:
        engine: ``local`` or ``ray``.
        workers: local worker processes (``local`` only; Ray's actors are ``ray.workers``).
        ray: :class:`~embedder.ray_runner.RayOptions` (``ray`` only; default options).

    Raises:
        EarthvecError: an unknown engine; ``ray`` without Ray installed.
    """
    if engine == "local":
        return partial(run_local, workers=workers)
    if engine == "ray":
        from embedder.ray_runner import RayOptions, import_ray, run_ray

        import_ray()  # a missing extra is refused before the build plans or locks anything
        return partial(run_ray, options=ray if ray is not None else RayOptions())
    raise EarthvecError(f"engine {engine!r} is unknown; use one of {', '.join(ENGINES)} (--engine)")
