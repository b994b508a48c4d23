"""Publishing derived data (index, pyramid levels, label layers, predictions) after the fact.

Derived data is computed from one generation (a pinned snapshot) by anyone, reader or
writer, into memory or keyed files; it becomes part of the database only through
:func:`publish_derived`, which takes the lock, checks that the embeddings are still the
ones it was made from and publishes a new manifest with the entry. A reader facing a
missing or stale index uses ``wait=False``: when a writer is busy it keeps its private
copy and publishes nothing. Files a publish replaces stay on disk until the next write
transaction commits (readers of the previous generation can finish).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from embedder import contract
from embedder.contract import Derived, Manifest
from embedder.storage.journal import read_journals
from embedder.storage.lock import DatabaseLockedError, DbLock
from embedder.storage.sweep import sweep

log = logging.getLogger(__name__)


def origin(snap: contract.Snapshot, model: str) -> dict[str, object]:
    """What derived data records about where it came from (also stored in its files)."""
    return {"generation": snap.generation, "fingerprint": snap.fingerprint, "model": model}


def publish_derived(
    db: str | Path,
    name: str,
    derived: Derived,
    *,
    command: str = "",
    wait: bool = True,
    write: Callable[[], object] | None = None,
) -> Manifest | None:
    """Publish ``derived`` under ``name`` in a new manifest generation.

    Args:
        db: database folder (with a manifest).
        name: entry name, e.g. ``"index"``, ``"pyramid/res=5"``, ``"predictions/map.parquet"``.
        derived: the entry; ``derived.fingerprint`` must match the published embeddings.
        command: recorded in the lock and the manifest.
        wait: wait for another writer (False: give up at once and return ``None``).
        write: optional callable run under the lock before publishing (writes the files of
            fixed-name artifacts such as pyramid levels; keyed files may be written before).

    Returns:
        The published manifest, or ``None`` when nothing was published (no manifest, the
        lock was busy with ``wait=False``, or the embeddings changed since).
    """
    try:
        lock = DbLock(db, command, wait=wait).acquire()
    except DatabaseLockedError as exc:
        log.info("not publishing %s: %s", name, exc)
        return None
    try:
        m = contract.read_manifest(db)
        if m is None or m.fingerprint != derived.fingerprint:
            log.info("not publishing %s of %s: the embeddings changed since it was made", name, db)
            return None
        if write is not None:
            write()
        new = Manifest(
            **{**m.__dict__, "generation": m.generation + 1, "derived": {**m.derived, name: derived}}
        )
        new.created, new.command = contract.utcnow(), command or m.command
        new.retired = sorted((set(m.retired) | m.paths()) - new.paths())  # kept until the next build
        contract.write_manifest(db, new)
        protect = {r.file.path for _, _, recs in read_journals(db) for r in recs if r.file is not None}
        sweep(db, new, [], protect)
        return new
    finally:
        lock.release()
