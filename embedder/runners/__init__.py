"""Build runners: who executes the shards of a build, in which processes, on which machines.

A build is planned on one machine (the driver) into a list of picklable shard specs, each
with a deterministic name. A runner executes every spec through three steps of a
:class:`~embedder.runners.interface.ShardJob` and hands the small
:class:`~embedder.runners.interface.ShardResult` records back to the driver:

* ``read(spec)`` (CPU: raster reads, chip cutting) -> pixels;
* ``embed(embedder, spec, pixels)`` (the embedder, built once per worker from a picklable
  :class:`~embedder.runners.interface.EmbedderSpec`) -> vectors;
* ``write(spec, vectors)`` (CPU) -> one shard file written atomically under its
  deterministic name, and the record of what it wrote.

:func:`~embedder.runners.interface.run_local` runs the steps in a plain loop;
:mod:`embedder.runners.ray_runner` runs them as a Ray Data pipeline (reads as CPU tasks
ahead of an actor pool holding the embedder, GPU actors when GPUs exist) on a local or
remote Ray cluster. :mod:`embedder.runners.source_job` and :mod:`embedder.runners.globe_job`
are the jobs of ``build_db`` and ``build_global_db``. Ray is an optional extra
(``pip install earthvec[ray]``) imported only by the Ray runner.
"""
