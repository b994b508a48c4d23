"""Helpers of the runner tests: a row digest, shard names, a small local Ray cluster."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from embedder import contract

RAY_CPUS = 2  # the CI machine's cores


def digest(db: str | Path) -> tuple[str, int]:
    """SHA-256 of the rows sorted by (h3, datetime): cell id, time and embedding bytes."""
    t = contract.read_table(db, columns=[contract.H3, contract.DATETIME, contract.EMBEDDING])
    cells = t.column(0).to_numpy()
    when = [str(x) for x in t.column(1).to_pylist()]
    vecs = contract.embeddings_matrix(t)
    h = hashlib.sha256()
    for i in sorted(range(len(cells)), key=lambda i: (int(cells[i]), when[i])):
        h.update(int(cells[i]).to_bytes(8, "little") + when[i].encode() + vecs[i].tobytes())
    return h.hexdigest(), t.num_rows


def shard_names(db: str | Path) -> list[str]:
    """The shard files of a database relative to it (the deterministic names)."""
    return [p.relative_to(db).as_posix() for p in contract.embedding_files(db)]


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
