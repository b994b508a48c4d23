"""Helpers of the Ray runner tests: a row digest and manifest names (from the benchmark), a local Ray."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from bench.ray_bench import rows_digest as digest
from bench.ray_bench import shard_names

__all__ = ["RAY_CPUS", "digest", "ray_cluster", "shard_names"]

RAY_CPUS = 2  # the CI machine's cores


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A local Ray instance with 2 CPUs, no dashboard, a small object store, logs in /tmp.

    Module-scoped: the workers (and the global layers they cache) go away after each module.
    """
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        yield ray
        return
    tmp = tempfile.mkdtemp(prefix="evray")  # short: Ray's socket paths must stay under 108 chars
    ray.init(
        address="local",  # a new instance, never one a `ray start` left running
        num_cpus=RAY_CPUS,
        object_store_memory=256 * 2**20,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
        _temp_dir=tmp,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
